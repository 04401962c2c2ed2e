/*
  Copyright @ 1999 ImageMagick Studio LLC, a non-profit organization
  dedicated to making software imaging solutions freely available.

  You may not use this file except in compliance with the License.  You may
  obtain a copy of the License at

    https://imagemagick.org/script/license.php

  Unless required by applicable law or agreed to in writing, software
  distributed under the License is distributed on an "AS IS" BASIS,
  WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
  See the License for the specific language governing permissions and
  limitations under the License.

  MagickCore distributed cache private methods, magick-dpc edition.
*/
#ifndef MAGICKCORE_DISTRIBUTE_CACHE_PRIVATE_H
#define MAGICKCORE_DISTRIBUTE_CACHE_PRIVATE_H

#include "magick/geometry.h"
#include "magick/exception.h"

#if defined(__cplusplus) || defined(c_plusplus)
extern "C" {
#endif

#define DPCHostname  "127.0.0.1"
#define DPCPendingConnections  10
#define DPCPort  6668
#define DPCSessionKeyLength  8

struct dpc_link;
struct dpc_tiles;

typedef struct _DistributeCacheInfo
{
  int
    file;

  char
    hostname[MaxTextExtent];

  int
    port;

  size_t
    number_hosts,
    listed_hosts,
    replicas,
    hosts_lost,
    timeout;

  struct dpc_link
    **links;

  struct dpc_tiles
    *tiles;

  void
    *lock;

  MagickBooleanType
    debug;

  size_t
    signature;
} DistributeCacheInfo;

extern MagickPrivate const char
  *GetDistributeCacheHostname(const DistributeCacheInfo *);

extern MagickPrivate DistributeCacheInfo
  *AcquireDistributeCacheInfo(ExceptionInfo *),
  *DestroyDistributeCacheInfo(DistributeCacheInfo *);

extern MagickPrivate int
  GetDistributeCacheFile(const DistributeCacheInfo *),
  GetDistributeCachePort(const DistributeCacheInfo *);

struct _CacheInfo;

extern MagickPrivate MagickBooleanType
  AcquireMemoryPixelCache(const Image *,struct _CacheInfo *,
    const MagickBooleanType),
  CloneDistributePixelCache(DistributeCacheInfo *,DistributeCacheInfo *),
  IsPixelCacheTier(const Image *,const char *),
  OpenDistributePixelCache(DistributeCacheInfo *,Image *),
  RelinquishDistributePixelCache(DistributeCacheInfo *),
  RelinquishSharedPixelCache(struct _CacheInfo *),
  UseDistributePixelCache(const Image *,const MagickBooleanType);

extern MagickExport MagickBooleanType
  AttachSharedPixelCache(Image *,const int,const MagickOffsetType,
    const MagickSizeType,ExceptionInfo *);

extern MagickPrivate MagickOffsetType
  ReadDistributePixelCacheIndexes(DistributeCacheInfo *,
    const RectangleInfo *,const MagickSizeType,unsigned char *,
    ExceptionInfo *),
  ReadDistributePixelCachePixels(DistributeCacheInfo *,const RectangleInfo *,
    const MagickSizeType,unsigned char *magick_restrict,ExceptionInfo *),
  WriteDistributePixelCacheIndexes(DistributeCacheInfo *,
    const RectangleInfo *,const MagickSizeType,const unsigned char *,
    ExceptionInfo *),
  WriteDistributePixelCachePixels(DistributeCacheInfo *,const RectangleInfo *,
    const MagickSizeType,const unsigned char *magick_restrict,
    ExceptionInfo *);

#if defined(__cplusplus) || defined(c_plusplus)
}
#endif

#endif
