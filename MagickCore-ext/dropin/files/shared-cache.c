/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
%                  SSSSS  H   H   AAA   RRRR   EEEEE  DDDD                    %
%                  SS     H   H  A   A  R   R  E      D   D                   %
%                   SSS   HHHHH  AAAAA  RRRR   EEE    D   D                   %
%                     SS  H   H  A   A  R R    E      D   D                   %
%                  SSSSS  H   H  A   A  R  R   EEEEE  DDDD                    %
%                                                                             %
%                      CCCC   AAA    CCCC  H   H  EEEEE                       %
%                     C      A   A  C      H   H  E                           %
%                     C      AAAAA  C      HHHHH  EEE                         %
%                     C      A   A  C      H   H  E                           %
%                      CCCC  A   A   CCCC  H   H  EEEEE                       %
%                                                                             %
%                                                                             %
%           MagickCore Shared-Memory Pixel Cache Tier, magick-dpc            %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  The shared-memory tier ("shm" in cache:tiers): the pixels of a cache are
%  a sealed memfd segment handed out by the local magick-dpc over its Unix
%  socket (dpc_shmclient), mapped shared and used in place like any memory
%  cache, under the server's one host-wide budget.  And
%  AttachSharedPixelCache(), with which the SHM coder makes a published
%  image's pixels an image's pixel cache without copying them.
%
%  Included at the end of distribute-cache.c (one translation unit: it uses
%  GetDistributeCacheSetting() and the tier order there); not compiled on
%  its own.
%
*/

#define DPCSharedRetry  10

/*
  Typedef declarations.
*/
typedef struct _SharedSegment
{
  void
    *pixels;

  size_t
    length;

  uint64_t
    id;  /* 0: a private mapping of a published image */
} SharedSegment;

/*
  Global declarations: the process's connection to the local magick-dpc
  and the segments it mapped, under one lock.
*/
static pthread_mutex_t
  shared_lock = PTHREAD_MUTEX_INITIALIZER;

static struct dpc_shmc
  *shared_client = (struct dpc_shmc *) NULL;

static pid_t
  shared_pid = 0;

static time_t
  shared_failed = 0;

static MagickBooleanType
  shared_warned = MagickFalse;

static SharedSegment
  *shared_segments = (SharedSegment *) NULL;

static size_t
  shared_count = 0,
  shared_capacity = 0;

/*
  A published image's mapping waiting for OpenPixelCache() on this thread.
*/
static __thread SharedSegment
  shared_pending = { (void *) NULL, 0, 0 };

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
+   A c q u i r e M e m o r y P i x e l C a c h e                             %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  AcquireMemoryPixelCache() gives a memory cache its pixels from the memory
%  or the shared-memory tier, whichever comes first in cache:tiers and
%  admits it: the memory tier when the memory resource allows (heap, or an
%  anonymous mapping when the policy asks for one), the shm tier when the
%  local magick-dpc grants a segment.  A published image being attached
%  (AttachSharedPixelCache) takes precedence.  It returns MagickFalse when
%  neither tier admits the cache; on MagickTrue, cache_info->pixels may
%  still be NULL if the heap was out of memory, as in OpenPixelCache().
%
%  The format of the AcquireMemoryPixelCache method is:
%
%      MagickBooleanType AcquireMemoryPixelCache(const Image *image,
%        CacheInfo *cache_info,const MagickBooleanType anonymous)
%
%  A description of each parameter follows:
%
%    o image: the image.
%
%    o cache_info: the pixel cache, its length set.
%
%    o anonymous: use an anonymous mapping rather than the heap.
%
*/

static MagickBooleanType RememberSharedSegment(void *pixels,
  const size_t length,const uint64_t id)
{
  if (shared_count == shared_capacity)
    {
      size_t
        capacity;

      SharedSegment
        *segments;

      capacity=shared_capacity == 0 ? 64 : 2*shared_capacity;
      segments=(SharedSegment *) ResizeQuantumMemory(shared_segments,
        capacity,sizeof(*segments));
      if (segments == (SharedSegment *) NULL)
        return(MagickFalse);
      shared_segments=segments;
      shared_capacity=capacity;
    }
  shared_segments[shared_count].pixels=pixels;
  shared_segments[shared_count].length=length;
  shared_segments[shared_count].id=id;
  shared_count++;
  return(MagickTrue);
}

static ExceptionType SharedCacheSeverity(const Image *image)
{
  /*
    An error only when no tier follows the shm tier.
  */
  ssize_t
    shared;

  shared=GetPixelCacheTierRank(image,"shm");
  if ((GetPixelCacheTierRank(image,"memory") > shared) ||
      (GetPixelCacheTierRank(image,"distributed") > shared) ||
      (GetPixelCacheTierRank(image,"disk") > shared))
    return(CacheWarning);
  return(CacheError);
}

static void ThrowSharedCacheException(const Image *image,const char *error,
  const MagickBooleanType spent)
{
  ExceptionType
    severity;

  severity=SharedCacheSeverity(image);
  if (image->debug != MagickFalse)
    (void) LogMagickEvent(CacheEvent,GetMagickModule(),
      "magick-dpc: shm tier: %s",error);
  if (severity == CacheWarning)
    {
      /*
        A spent budget is the next tier's cue, not news; other failures are
        told once per process.
      */
      if ((spent != MagickFalse) || (shared_warned != MagickFalse))
        return;
      shared_warned=MagickTrue;
    }
  (void) ThrowMagickException((ExceptionInfo *) &image->exception,
    GetMagickModule(),severity,"SharedPixelCache","%s",error);
}

/*
  A child of fork() starts with the lock free (another thread may have held
  it) and without the parent's connection.  Caches it inherited stay
  shared with the parent, as the parent's own memory-mapped files would.
*/
static void SharedCacheForkChild(void)
{
  (void) pthread_mutex_init(&shared_lock,(const pthread_mutexattr_t *) NULL);
  shared_client=(struct dpc_shmc *) NULL;  /* the parent's socket stays open
                                              in the child, unused */
  shared_failed=0;
}

static void RegisterSharedCacheForkHandler(void)
{
  (void) pthread_atfork((void (*)(void)) NULL,(void (*)(void)) NULL,
    SharedCacheForkChild);
}

/*
  The process's connection to the local server; called with shared_lock
  held.  A failed server is not asked again for DPCSharedRetry seconds.
*/
static struct dpc_shmc *GetSharedClient(const Image *image,char *error,
  const size_t length)
{
  char
    *path,
    socket_path[MaxTextExtent];

  static pthread_once_t
    once = PTHREAD_ONCE_INIT;

  (void) pthread_once(&once,RegisterSharedCacheForkHandler);
  if (shared_client != (struct dpc_shmc *) NULL)
    return(shared_client);
  if ((shared_failed != 0) && (time((time_t *) NULL) < shared_failed+
      DPCSharedRetry))
    {
      (void) FormatLocaleString(error,length,"the local magick-dpc failed "
        "less than %d s ago",DPCSharedRetry);
      return((struct dpc_shmc *) NULL);
    }
  path=GetDistributeCacheSetting(image,"cache:dpc-socket");
  if (path != (char *) NULL)
    {
      (void) CopyMagickString(socket_path,path,MaxTextExtent);
      path=DestroyString(path);
    }
  else
    if (dpc_shmc_default_path(socket_path,sizeof(socket_path)) < 0)
      *socket_path='\0';
  shared_client=dpc_shmc_connect(socket_path,1000*DPCDefaultTimeout,error,
    length);
  if (shared_client == (struct dpc_shmc *) NULL)
    {
      shared_failed=time((time_t *) NULL);
      return((struct dpc_shmc *) NULL);
    }
  shared_failed=0;
  shared_pid=getpid();
  return(shared_client);
}

static MagickBooleanType AcquireSharedPixels(const Image *image,
  CacheInfo *cache_info)
{
  char
    error[DPC_ERRLEN];

  int
    file;

  MagickBooleanType
    spent;

  struct dpc_lp_req
    request;

  struct dpc_shmc
    *client;

  uint64_t
    id,
    size;

  void
    *pixels;

  (void) memset(&request,0,sizeof(request));
  request.op=DPC_LP_ALLOC;
  request.size=(uint64_t) cache_info->length;
  file=(-1);
  spent=MagickFalse;
  (void) pthread_mutex_lock(&shared_lock);
  client=GetSharedClient(image,error,sizeof(error));
  if ((client != (struct dpc_shmc *) NULL) &&
      (dpc_shmc_grant(client,&request,&file,&id,&size,error,
        sizeof(error)) < 0))
    {
      spent=dpc_shmc_last_status(client) == DPC_LP_ENOSPC ? MagickTrue :
        MagickFalse;
      if (dpc_shmc_last_status(client) == DPC_LP_OK)
        {
          dpc_shmc_close(client);  /* lost or malformed: reconnect later */
          shared_client=(struct dpc_shmc *) NULL;
        }
    }
  (void) pthread_mutex_unlock(&shared_lock);
  if (file < 0)
    {
      ThrowSharedCacheException(image,error,spent);
      return(MagickFalse);
    }
  /*
    The server reserved every page: map them all now (one call) rather than
    fault them in one by one.
  */
  pixels=mmap((void *) NULL,(size_t) cache_info->length,PROT_READ |
    PROT_WRITE,MAP_SHARED | MAP_POPULATE,file,0);
  (void) close(file);
  (void) pthread_mutex_lock(&shared_lock);
  if ((pixels != MAP_FAILED) &&
      (RememberSharedSegment(pixels,(size_t) cache_info->length,id) ==
       MagickFalse))
    {
      (void) munmap(pixels,(size_t) cache_info->length);
      pixels=MAP_FAILED;
    }
  if ((pixels == MAP_FAILED) && (shared_client != (struct dpc_shmc *) NULL))
    {
      request.op=DPC_LP_FREE;
      request.id=id;
      (void) dpc_shmc_simple(shared_client,&request,error,sizeof(error));
    }
  (void) pthread_mutex_unlock(&shared_lock);
  if (pixels == MAP_FAILED)
    {
      ThrowSharedCacheException(image,"cannot map the segment",MagickFalse);
      return(MagickFalse);
    }
  cache_info->pixels=(PixelPacket *) pixels;
  cache_info->mapped=MagickTrue;
  if (image->debug != MagickFalse)
    (void) LogMagickEvent(CacheEvent,GetMagickModule(),
      "magick-dpc: shm tier: %s: segment %.20g, %.20g bytes",
      cache_info->filename,(double) id,(double) cache_info->length);
  return(MagickTrue);
}

static MagickBooleanType AcquireHeapPixels(CacheInfo *cache_info,
  const MagickBooleanType anonymous)
{
  if (AcquireMagickResource(MemoryResource,cache_info->length) == MagickFalse)
    return(MagickFalse);
  if (anonymous == MagickFalse)
    {
      cache_info->mapped=MagickFalse;
      cache_info->pixels=(PixelPacket *) MagickAssumeAligned(
        AcquireAlignedMemory(1,(size_t) cache_info->length));
    }
  else
    {
      cache_info->mapped=MagickTrue;
      cache_info->pixels=(PixelPacket *) MapBlob(-1,IOMode,0,(size_t)
        cache_info->length);
    }
  return(MagickTrue);
}

MagickPrivate MagickBooleanType AcquireMemoryPixelCache(const Image *image,
  CacheInfo *cache_info,const MagickBooleanType anonymous)
{
  ssize_t
    memory,
    shared;

  if ((shared_pending.pixels != (void *) NULL) &&
      (shared_pending.length == (size_t) cache_info->length))
    {
      MagickBooleanType
        status;

      (void) pthread_mutex_lock(&shared_lock);
      status=RememberSharedSegment(shared_pending.pixels,
        shared_pending.length,0);
      (void) pthread_mutex_unlock(&shared_lock);
      if (status != MagickFalse)
        {
          cache_info->pixels=(PixelPacket *) shared_pending.pixels;
          cache_info->mapped=MagickTrue;
          shared_pending.pixels=(void *) NULL;
          return(MagickTrue);
        }
    }
  memory=GetPixelCacheTierRank(image,"memory");
  shared=GetPixelCacheTierRank(image,"shm");
  if ((shared >= 0) && ((memory < 0) || (shared < memory)) &&
      (AcquireSharedPixels(image,cache_info) != MagickFalse))
    return(MagickTrue);
  if ((memory >= 0) && (AcquireHeapPixels(cache_info,anonymous) != MagickFalse))
    return(MagickTrue);
  if ((shared > memory) && (memory >= 0))
    return(AcquireSharedPixels(image,cache_info));
  return(MagickFalse);
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
+   R e l i n q u i s h S h a r e d P i x e l C a c h e                       %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  RelinquishSharedPixelCache() unmaps a memory cache's pixels when they are
%  a shared-memory segment or an attached published image, and gives the
%  segment back to the local magick-dpc.  It returns MagickFalse for any
%  other mapping, which the caller unmaps itself.
%
%  The format of the RelinquishSharedPixelCache method is:
%
%      MagickBooleanType RelinquishSharedPixelCache(CacheInfo *cache_info)
%
%  A description of each parameter follows:
%
%    o cache_info: the pixel cache.
%
*/
MagickPrivate MagickBooleanType RelinquishSharedPixelCache(
  CacheInfo *cache_info)
{
  char
    error[DPC_ERRLEN];

  SharedSegment
    segment;

  ssize_t
    i;

  if (cache_info->pixels == (PixelPacket *) NULL)
    return(MagickFalse);
  (void) pthread_mutex_lock(&shared_lock);
  for (i=(ssize_t) shared_count-1; i >= 0; i--)
    if (shared_segments[i].pixels == (void *) cache_info->pixels)
      break;
  if (i < 0)
    {
      (void) pthread_mutex_unlock(&shared_lock);
      return(MagickFalse);
    }
  segment=shared_segments[i];
  shared_segments[i]=shared_segments[--shared_count];
  (void) munmap(segment.pixels,segment.length);
  if ((segment.id != 0) && (shared_client != (struct dpc_shmc *) NULL) &&
      (shared_pid == getpid()))
    {
      struct dpc_lp_req
        request;

      (void) memset(&request,0,sizeof(request));
      request.op=DPC_LP_FREE;
      request.id=segment.id;
      if (dpc_shmc_simple(shared_client,&request,error,sizeof(error)) < 0)
        {
          if (cache_info->debug != MagickFalse)
            (void) LogMagickEvent(CacheEvent,GetMagickModule(),
              "magick-dpc: shm tier: %s",error);
          if (dpc_shmc_last_status(shared_client) == DPC_LP_OK)
            {
              dpc_shmc_close(shared_client);  /* out of step: reconnect */
              shared_client=(struct dpc_shmc *) NULL;
            }
        }
    }
  (void) pthread_mutex_unlock(&shared_lock);
  cache_info->pixels=(PixelPacket *) NULL;
  return(MagickTrue);
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
%   A t t a c h S h a r e d P i x e l C a c h e                               %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  AttachSharedPixelCache() makes length bytes of a published image's
%  segment, at offset, the pixel cache of an image that has none yet.  The
%  bytes must be laid out as a memory cache is (pixels, then indexes when
%  the image has them).  The mapping is private: pages the image never
%  changes are never copied, and changes stay in this process.  It returns
%  MagickFalse (the caller then copies) when the image already has pixels,
%  the length is not the image's, or the map fails.
%
%  The format of the AttachSharedPixelCache method is:
%
%      MagickBooleanType AttachSharedPixelCache(Image *image,const int file,
%        const MagickOffsetType offset,const MagickSizeType length,
%        ExceptionInfo *exception)
%
%  A description of each parameter follows:
%
%    o image: the image, its geometry, class, colorspace and matte set.
%
%    o file: the segment's descriptor, open for reading.
%
%    o offset: where the pixels start, a multiple of the page size.
%
%    o length: the pixels' length.
%
%    o exception: return any errors or warnings in this structure.
%
*/
MagickExport MagickBooleanType AttachSharedPixelCache(Image *image,
  const int file,const MagickOffsetType offset,const MagickSizeType length,
  ExceptionInfo *exception)
{
  CacheInfo
    *magick_restrict cache_info;

  MagickBooleanType
    status;

  void
    *pixels;

  assert(image != (Image *) NULL);
  assert(image->signature == MagickCoreSignature);
  cache_info=(CacheInfo *) image->cache;
  if ((cache_info == (CacheInfo *) NULL) ||
      (cache_info->type != UndefinedCache) ||
      (length != (MagickSizeType) ((size_t) length)) || (offset < 0))
    return(MagickFalse);
  pixels=mmap((void *) NULL,(size_t) length,PROT_READ | PROT_WRITE,
    MAP_PRIVATE,file,(off_t) offset);
  if (pixels == MAP_FAILED)
    return(MagickFalse);
  shared_pending.pixels=pixels;
  shared_pending.length=(size_t) length;
  status=SyncImagePixelCache(image,exception);
  if (shared_pending.pixels != (void *) NULL)
    {
      /*
        OpenPixelCache() did not take it (a different length, or a tier
        refused the area): the caller copies instead.
      */
      (void) munmap(shared_pending.pixels,shared_pending.length);
      shared_pending.pixels=(void *) NULL;
      return(MagickFalse);
    }
  return(status);
}
