/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
%    DDDD    IIIII   SSSSS  TTTTT  RRRR   IIIII  BBBB   U   U  TTTTT  EEEEE   %
%    D   D     I     SS       T    R   R    I    B   B  U   U    T    E       %
%    D   D     I      SSS     T    RRRR     I    BBBB   U   U    T    EEE     %
%    D   D     I        SS    T    R R      I    B   B  U   U    T    E       %
%    DDDDA   IIIII   SSSSS    T    R  R   IIIII  BBBB    UUU     T    EEEEE   %
%                                                                             %
%                      CCCC   AAA    CCCC  H   H  EEEEE                       %
%                     C      A   A  C      H   H  E                           %
%                     C      AAAAA  C      HHHHH  EEE                         %
%                     C      A   A  C      H   H  E                           %
%                      CCCC  A   A   CCCC  H   H  EEEEE                       %
%                                                                             %
%                                                                             %
%         MagickCore Distributed Pixel Cache Methods, magick-dpc edition      %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  A drop-in replacement for ImageMagick's distribute-cache.c.  The pixel
%  cache is cut into tiles striped over every host of cache:hosts, spoken to
%  with magick-dpc's native protocol (mutual HMAC-SHA256 proof of the
%  cache:shared-secret, pipelined batches), behind a bounded local tile
%  cache.  The process's caches share a few connections per host.  This
%  file only adapts: the protocol, the links and the tile cache
%  are magick-dpc's core (dpc_link, dpc_tiles), whose "0 / -1 + error text"
%  become ImageMagick exceptions and cache events here.
%
%  The shared-memory tier ("shm" in cache:tiers) and AttachSharedPixelCache()
%  are in shared-cache.c, included at the end.
%
%  Settings, each from -define (image artifact), the image registry, or
%  policy.xml (domain "cache"), in that order:
%    cache:hosts           host:port[,host:port...]; a name counts as
%                          one host per address it resolves to (resolved
%                          again for each new cache)
%    cache:dpc-replicas    copies of each tile, on distinct hosts (default
%                          1); with 2 or more a lost host is a warning,
%                          the job goes on with the other copies, and the
%                          lost copies are made again on the hosts left
%    cache:tiers           tier order, e.g. "memory,distributed,disk"
%    cache:dpc-tile-cache  local tile cache size (default 1/8 of the cache)
%    cache:dpc-tile        tile geometry (default 32x32)
%    cache:dpc-timeout     seconds to wait for a host (default 10)
%    cache:dpc-tls         on (default): the native protocol inside TLS 1.3,
%                          keyed from cache:shared-secret; off: plaintext
%    cache:dpc-tls-ca      PEM CA file: verify the server's certificate
%                          with it instead of the secret's key
%    cache:dpc-tls-cert    PEM client certificate (with cache:dpc-tls-key)
%    cache:dpc-tls-key     its private key
%    cache:dpc-socket      the local magick-dpc's Unix socket (default
%                          $XDG_RUNTIME_DIR/magick-dpc.sock, else
%                          /run/magick-dpc/magick-dpc.sock)
%    cache:dpc-server-user the user the local magick-dpc may run as besides
%                          root and ourselves (default magick-dpc)
%
*/

/*
  Include declarations.
*/
#include "magick/studio.h"
#include "magick/artifact.h"
#include "magick/cache.h"
#include "magick/cache-private.h"
#include "magick/distribute-cache.h"
#include "magick/distribute-cache-private.h"
#include "magick/exception.h"
#include "magick/exception-private.h"
#include "magick/image.h"
#include "magick/image-private.h"
#include "magick/locale_.h"
#include "magick/log.h"
#include "magick/blob.h"
#include "magick/blob-private.h"
#include "magick/memory_.h"
#include "magick/memory-private.h"
#include "magick/policy.h"
#include "magick/registry.h"
#include "magick/resource_.h"
#include "magick/string_.h"
#include "magick/string-private.h"
#include "magick/token.h"
#include "magick/utility-private.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dpc_link.h"
#include "dpc_net.h"
#include "dpc_util.h"
#include "dpc_parse.h"
#include "dpc_pool.h"
#include "dpc_shmclient.h"
#include "dpc_tiles.h"
#include "dpc_tls.h"
#include "dpc_tlsclient.h"
#include "dpc_wire.h"

/*
  Define declarations.
*/
#define DPCMaxHosts  64
#define DPCDefaultTile  32
#define DPCDefaultTimeout  10
#define DPCDefaultTiers  "memory,distributed,disk"
#define DPCMinTileCache  (1024*1024)
#define DPCMaxReplicas  DPCMaxHosts

/*
  Forward declarations.
*/
static char
  *GetDistributeCacheSetting(const Image *,const char *);

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
+   A c q u i r e D i s t r i b u t e C a c h e I n f o                       %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  AcquireDistributeCacheInfo() allocates the DistributeCacheInfo structure.
%  The hosts are reached by OpenDistributePixelCache(), which knows the image
%  and so its settings.
%
%  The format of the AcquireDistributeCacheInfo method is:
%
%      DistributeCacheInfo *AcquireDistributeCacheInfo(ExceptionInfo *exception)
%
%  A description of each parameter follows:
%
%    o exception: return any errors or warnings in this structure.
%
*/
MagickPrivate DistributeCacheInfo *AcquireDistributeCacheInfo(
  ExceptionInfo *exception)
{
  DistributeCacheInfo
    *server_info;

  magick_unreferenced(exception);
  server_info=(DistributeCacheInfo *) AcquireCriticalMemory(
    sizeof(*server_info));
  (void) memset(server_info,0,sizeof(*server_info));
  server_info->file=(-1);
  server_info->port=DPCPort;
  (void) CopyMagickString(server_info->hostname,DPCHostname,MaxTextExtent);
  server_info->debug=IsEventLogging();
  /*
    cache.c leaves the serialization of a distributed cache's I/O to it: an
    adaptive mutex, as most accesses are tile-cache hits of a few hundred
    nanoseconds, where sleeping on a contended lock costs far more.
  */
  server_info->lock=AcquireCriticalMemory(sizeof(pthread_mutex_t));
  {
    pthread_mutexattr_t
      attributes;

    (void) pthread_mutexattr_init(&attributes);
#if defined(PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP)
    (void) pthread_mutexattr_settype(&attributes,PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    (void) pthread_mutex_init((pthread_mutex_t *) server_info->lock,
      &attributes);
    (void) pthread_mutexattr_destroy(&attributes);
  }
  server_info->signature=MagickCoreSignature;
  return(server_info);
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
+   D e s t r o y D i s t r i b u t e C a c h e I n f o                       %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  DestroyDistributeCacheInfo() releases the cache on every host, closes the
%  connections and frees the structure.
%
%  The format of the DestroyDistributeCacheInfo method is:
%
%      DistributeCacheInfo *DestroyDistributeCacheInfo(
%        DistributeCacheInfo *server_info)
%
%  A description of each parameter follows:
%
%    o server_info: the distributed cache info.
%
*/
MagickPrivate DistributeCacheInfo *DestroyDistributeCacheInfo(
  DistributeCacheInfo *server_info)
{
  ssize_t
    i;

  assert(server_info != (DistributeCacheInfo *) NULL);
  assert(server_info->signature == MagickCoreSignature);
  if (server_info->tiles != (struct dpc_tiles *) NULL)
    (void) dpc_tiles_close(server_info->tiles,(char *) NULL,0);
  server_info->tiles=(struct dpc_tiles *) NULL;
  if (server_info->links != (struct dpc_link **) NULL)
    {
      for (i=0; i < (ssize_t) server_info->number_hosts; i++)
        dpc_pool_release(server_info->links[i]);
      server_info->links=(struct dpc_link **) RelinquishMagickMemory(
        server_info->links);
    }
  (void) pthread_mutex_destroy((pthread_mutex_t *) server_info->lock);
  server_info->lock=RelinquishMagickMemory(server_info->lock);
  server_info->signature=(~MagickCoreSignature);
  server_info=(DistributeCacheInfo *) RelinquishMagickMemory(server_info);
  return(server_info);
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
+   D i s t r i b u t e P i x e l C a c h e S e r v e r                       %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  DistributePixelCacheServer() runs magick-dpc's server on the port, on
%  every IPv4 interface as ImageMagick's own server did (-distribute-cache).
%  It replaces the process and returns only when the server cannot start.
%
%  The format of the DistributePixelCacheServer method is:
%
%      void DistributePixelCacheServer(const int port,ExceptionInfo *Exception)
%
%  A description of each parameter follows:
%
%    o port: connect the distributed pixel cache at this port.
%
%    o exception: return any errors or warnings in this structure.
%
*/
MagickExport void DistributePixelCacheServer(const int port,
  ExceptionInfo *exception)
{
  char
    listen[MaxTextExtent],
    *server;

  (void) FormatLocaleString(listen,MaxTextExtent,"0.0.0.0:%d",port);
  server=GetEnvironmentValue("MAGICK_DPC_SERVER");
  if (server == (char *) NULL)
    server=AcquireString("magick-dpc");
  (void) execlp(server,"magick-dpc","serve","--listen",listen,(char *) NULL);
  (void) ThrowMagickException(exception,GetMagickModule(),CacheFatalError,
    "DistributedPixelCache","cannot run '%s' (set MAGICK_DPC_SERVER to its "
    "path): %s",server,strerror(errno));
  server=DestroyString(server);
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
+   G e t D i s t r i b u t e C a c h e F i l e                               %
+   G e t D i s t r i b u t e C a c h e H o s t n a m e                       %
+   G e t D i s t r i b u t e C a c h e P o r t                               %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  These return the first host's socket, the hosts as connected
%  (HOST:PORT,...: the cache's name in cache.c's logs and errors), and the
%  first host's port.
%
*/
MagickPrivate int GetDistributeCacheFile(const DistributeCacheInfo *server_info)
{
  assert(server_info != (DistributeCacheInfo *) NULL);
  assert(server_info->signature == MagickCoreSignature);
  return(server_info->file);
}

MagickPrivate const char *GetDistributeCacheHostname(
  const DistributeCacheInfo *server_info)
{
  assert(server_info != (DistributeCacheInfo *) NULL);
  assert(server_info->signature == MagickCoreSignature);
  return(server_info->hostname);
}

MagickPrivate int GetDistributeCachePort(const DistributeCacheInfo *server_info)
{
  assert(server_info != (DistributeCacheInfo *) NULL);
  assert(server_info->signature == MagickCoreSignature);
  return(server_info->port);
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
+   I s P i x e l C a c h e T i e r                                           %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  IsPixelCacheTier() returns MagickTrue when the tier ("memory",
%  "distributed" or "disk") is in the image's tier order (cache:tiers; by
%  default all three).
%
%  UseDistributePixelCache() returns MagickTrue when OpenPixelCache() should
%  try the distributed tier now: hosts are configured, the tier is enabled,
%  and either the disk tier is unavailable (disk_ok is MagickFalse, the stock
%  rule) or the distributed tier comes before the disk tier.
%
%  The format of these methods is:
%
%      MagickBooleanType IsPixelCacheTier(const Image *image,const char *tier)
%      MagickBooleanType UseDistributePixelCache(const Image *image,
%        const MagickBooleanType disk_ok)
%
*/

static ssize_t TierRank(const char *tiers,const char *tier)
{
  char
    token[MaxTextExtent];

  const char
    *p;

  ssize_t
    rank;

  rank=0;
  for (p=tiers; *p != '\0'; )
  {
    GetNextToken(p,&p,MaxTextExtent,token);
    if (*token == ',')
      continue;
    if (LocaleCompare(token,tier) == 0)
      return(rank);
    rank++;
  }
  return(-1);
}

static ssize_t GetPixelCacheTierRank(const Image *image,const char *tier)
{
  char
    *tiers;

  ssize_t
    rank;

  tiers=GetDistributeCacheSetting(image,"cache:tiers");
  if (tiers == (char *) NULL)
    return(TierRank(DPCDefaultTiers,tier));
  rank=TierRank(tiers,tier);
  tiers=DestroyString(tiers);
  return(rank);
}

MagickPrivate MagickBooleanType IsPixelCacheTier(const Image *image,
  const char *tier)
{
  return(GetPixelCacheTierRank(image,tier) >= 0 ? MagickTrue : MagickFalse);
}

MagickPrivate MagickBooleanType UseDistributePixelCache(const Image *image,
  const MagickBooleanType disk_ok)
{
  char
    *hosts;

  ssize_t
    disk,
    distributed;

  hosts=GetDistributeCacheSetting(image,"cache:hosts");
  if (hosts == (char *) NULL)
    return(MagickFalse);
  hosts=DestroyString(hosts);
  distributed=GetPixelCacheTierRank(image,"distributed");
  if (distributed < 0)
    return(MagickFalse);
  if (disk_ok == MagickFalse)
    return(MagickTrue);
  disk=GetPixelCacheTierRank(image,"disk");
  return(((disk < 0) || (distributed < disk)) ? MagickTrue : MagickFalse);
}

/*
  A setting from the image (-define), the registry, or policy.xml; NULL when
  unset.  The caller destroys the string.
*/
static char *GetDistributeCacheSetting(const Image *image,const char *name)
{
  const char
    *value;

  ExceptionInfo
    *exception;

  value=(const char *) NULL;
  if (image != (const Image *) NULL)
    value=GetImageArtifact(image,name);
  if ((value != (const char *) NULL) && (*value != '\0'))
    return(AcquireString(value));
  exception=AcquireExceptionInfo();
  value=(const char *) GetImageRegistry(StringRegistryType,name,exception);
  exception=DestroyExceptionInfo(exception);
  if (value != (const char *) NULL)
    {
      char
        *copy;

      copy=AcquireString(value);
      value=(const char *) RelinquishMagickMemory((void *) value);
      if (*copy != '\0')
        return(copy);
      return(DestroyString(copy));
    }
  return(GetPolicyValue(name));
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
+   O p e n D i s t r i b u t e P i x e l C a c h e                           %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  OpenDistributePixelCache() connects to every host of cache:hosts, proves
%  the shared secret, and opens the image's pixel cache striped over them.
%  A host that is draining (about to stop) is left out and the cache striped
%  over the others (a -debug cache event).  Errors name the host and the
%  cause, as warnings when the disk tier can still take the cache, else as
%  errors; a host with no room for the cache, or every host draining, is no
%  warning when the disk tier can take it (a -debug cache event).
%
%  The format of the OpenDistributePixelCache method is:
%
%      MagickBooleanType OpenDistributePixelCache(
%        DistributeCacheInfo *server_info,Image *image)
%
%  A description of each parameter follows:
%
%    o server_info: the distributed cache info.
%
%    o image: the image.
%
*/

static ExceptionType DistributeCacheSeverity(const Image *image)
{
  /*
    A failure is only a warning when the disk tier follows.
  */
  if ((IsPixelCacheTier(image,"disk") != MagickFalse) &&
      (GetMagickResourceLimit(DiskResource) != 0))
    return(CacheWarning);
  return(CacheError);
}

/*
  Hosts this process has reported lost: each is named once, however many
  caches lose it.
*/
static pthread_mutex_t
  lost_hosts_lock = PTHREAD_MUTEX_INITIALIZER;

static char
  lost_hosts[DPCMaxHosts][320];

static size_t
  number_lost_hosts = 0;

static void WarnDistributeCacheHostLost(const char *name,const char *why)
{
  size_t
    i;

  (void) pthread_mutex_lock(&lost_hosts_lock);
  for (i=0; i < number_lost_hosts; i++)
    if (strcmp(lost_hosts[i],name) == 0)
      break;
  if (i < number_lost_hosts)
    {
      (void) pthread_mutex_unlock(&lost_hosts_lock);
      return;
    }
  if (number_lost_hosts < DPCMaxHosts)
    (void) CopyMagickString(lost_hosts[number_lost_hosts++],name,
      sizeof(lost_hosts[0]));
  (void) pthread_mutex_unlock(&lost_hosts_lock);
  (void) LogMagickEvent(CacheEvent,GetMagickModule(),"magick-dpc: lost host "
    "%s, going on with the other copies of its tiles",why);
  MagickWarning(CacheWarning,"magick-dpc: a host was lost; the job goes on "
    "with the other copies of its tiles (cache:dpc-replicas)",why);
}

/*
  cache:dpc-replicas: 1 by default; 0, junk, or more than DPCMaxReplicas
  is an error.
*/
static MagickBooleanType GetReplicasSetting(Image *image,size_t *replicas)
{
  char
    error[DPC_ERRLEN],
    *value;

  uint64_t
    n;

  *replicas=1;
  value=GetDistributeCacheSetting(image,"cache:dpc-replicas");
  if (value == (char *) NULL)
    return(MagickTrue);
  if (dpc_parse_u64(value,&n,error,sizeof(error)) < 0)
    {
      (void) ThrowMagickException(&image->exception,GetMagickModule(),
        CacheError,"DistributedPixelCache","cache:dpc-replicas=%s: %s",value,
        error);
      value=DestroyString(value);
      return(MagickFalse);
    }
  if ((n == 0) || (n > DPCMaxReplicas))
    {
      (void) ThrowMagickException(&image->exception,GetMagickModule(),
        CacheError,"DistributedPixelCache","cache:dpc-replicas=%s: the "
        "copies of each tile, from 1 to %d",value,DPCMaxReplicas);
      value=DestroyString(value);
      return(MagickFalse);
    }
  value=DestroyString(value);
  *replicas=(size_t) n;
  return(MagickTrue);
}

/*
  With one copy of each tile over several hosts, a lost host (code: it
  closed, reset, was refused or did not answer) fails the cache; the error
  says what would have gone on without it.
*/
static const char *DistributeCacheReplicasHint(
  const DistributeCacheInfo *server_info,const enum dpc_errcode code)
{
  if ((server_info->replicas > 1) || (server_info->listed_hosts < 2))
    return("");
  if ((code != DPC_E_CLOSED) && (code != DPC_E_TIMEOUT) &&
      (code != DPC_E_IO) && (code != DPC_E_REFUSED))
    return("");
  return("; with one copy of each tile a cache needs every host of "
    "cache:hosts (cache:dpc-replicas=2 goes on without a lost one)");
}

/*
  A host of cache:hosts could not be reached (why: "HOST:PORT: cause"):
  with replicas the other hosts take the cache, so only a warning; else an
  error (a warning when the disk tier follows).
*/
static MagickBooleanType DistributeCacheHostFailed(
  DistributeCacheInfo *server_info,Image *image,const char *name,
  const enum dpc_errcode code,const char *why)
{
  if (server_info->replicas > 1)
    {
      WarnDistributeCacheHostLost(name,why);
      return(MagickTrue);
    }
  (void) ThrowMagickException(&image->exception,GetMagickModule(),
    DistributeCacheSeverity(image),"DistributedPixelCache","%s%s",why,
    DistributeCacheReplicasHint(server_info,code));
  return(MagickFalse);
}

/*
  Adds one host (host:port, dialed at addr when it is one of several
  addresses of a name) to the cache's links.  MagickFalse: give up.
*/
static MagickBooleanType AddDistributeCacheHost(
  DistributeCacheInfo *server_info,Image *image,const char *host,
  const char *addr,const unsigned int port,const uint8_t *key,
  struct dpc_tlsclient *tls,const size_t seconds,size_t *draining)
{
  char
    error[DPC_ERRLEN],
    name[320];

  enum dpc_errcode
    code;

  size_t
    i;

  struct dpc_link
    *link;

  dpc_net_peer_name(name,sizeof(name),host,addr,port);
  link=dpc_pool_acquire_at(host,addr,port,key,tls,(unsigned int) (1000*
    seconds),&code,error,sizeof(error));
  if ((link == (struct dpc_link *) NULL) && (code == DPC_E_DRAINING))
    {
      /*
        A host this process saw draining lately: the other hosts take the
        cache.
      */
      if (server_info->debug != MagickFalse)
        (void) LogMagickEvent(CacheEvent,GetMagickModule(),
          "magick-dpc: %s; left out of %s",error,image->filename);
      (*draining)++;
      return(MagickTrue);
    }
  if (link == (struct dpc_link *) NULL)
    return(DistributeCacheHostFailed(server_info,image,name,code,error));
  for (i=0; i < server_info->number_hosts; i++)
    if (server_info->links[i] == link)
      break;
  if ((i < server_info->number_hosts) && (server_info->replicas > 1))
    {
      /*
        The same host twice: two copies of a tile there would be one.
      */
      if (server_info->debug != MagickFalse)
        (void) LogMagickEvent(CacheEvent,GetMagickModule(),
          "magick-dpc: %s is listed twice in cache:hosts: counted once",name);
      dpc_pool_release(link);
      return(MagickTrue);
    }
  server_info->links[server_info->number_hosts]=link;
  /*
    The cache's name in logs: HOST:PORT,... as connected.
  */
  (void) FormatLocaleString(server_info->hostname+strlen(
    server_info->hostname),MaxTextExtent-strlen(server_info->hostname),
    "%s%s",server_info->number_hosts == 0 ? "" : ",",dpc_link_name(link));
  if (server_info->number_hosts == 0)
    {
      server_info->port=(int) port;
      server_info->file=dpc_link_fd(link);
    }
  server_info->number_hosts++;
  return(MagickTrue);
}

static MagickBooleanType ConnectDistributeCache(
  DistributeCacheInfo *server_info,Image *image,const char *hosts,
  const uint8_t *key,struct dpc_tlsclient *tls,size_t *draining)
{
  char
    (*addresses)[DPC_NET_ADDRLEN],
    error[DPC_ERRLEN],
    host[MaxTextExtent],
    name[320],
    *list,
    *p,
    *q;

  char
    *timeout;

  int
    count,
    i;

  MagickBooleanType
    status;

  size_t
    seconds;

  unsigned int
    port;

  seconds=DPCDefaultTimeout;
  timeout=GetDistributeCacheSetting(image,"cache:dpc-timeout");
  if (timeout != (char *) NULL)
    {
      seconds=(size_t) StringToUnsignedLong(timeout);
      if (seconds == 0)
        seconds=DPCDefaultTimeout;
      timeout=DestroyString(timeout);
    }
  server_info->timeout=seconds;
  if (GetReplicasSetting(image,&server_info->replicas) == MagickFalse)
    return(MagickFalse);
  server_info->links=(struct dpc_link **) AcquireQuantumMemory(DPCMaxHosts,
    sizeof(*server_info->links));
  addresses=(char (*)[DPC_NET_ADDRLEN]) AcquireQuantumMemory(DPCMaxHosts,
    sizeof(*addresses));
  if ((server_info->links == (struct dpc_link **) NULL) ||
      (addresses == (char (*)[DPC_NET_ADDRLEN]) NULL))
    {
      if (addresses != (char (*)[DPC_NET_ADDRLEN]) NULL)
        addresses=(char (*)[DPC_NET_ADDRLEN]) RelinquishMagickMemory(
          addresses);
      return(MagickFalse);
    }
  server_info->listed_hosts=1;
  for (p=strchr(hosts,','); p != (char *) NULL; p=strchr(p+1,','))
    server_info->listed_hosts++;
  list=AcquireString(hosts);
  *server_info->hostname='\0';
  *draining=0;
  *error='\0';
  status=MagickTrue;
  for (p=list; (status != MagickFalse) && (p != (char *) NULL) &&
       (*p != '\0'); p=q)
  {
    q=strchr(p,',');
    if (q != (char *) NULL)
      *q++='\0';
    while (isspace((int) ((unsigned char) *p)) != 0)
      p++;
    if (*p == '\0')
      continue;
    if (dpc_parse_hostport(p,host,sizeof(host),&port,error,sizeof(error)) < 0)
      {
        (void) ThrowMagickException(&image->exception,GetMagickModule(),
          CacheError,"DistributedPixelCache","cache:hosts: %s",error);
        status=MagickFalse;
        break;
      }
    /*
      A name counts as one host per address, resolved for each new cache.
    */
    count=dpc_net_resolve(host,port,addresses,DPCMaxHosts,error,
      sizeof(error));
    dpc_net_peer_name(name,sizeof(name),host,(const char *) NULL,port);
    if (count == 0)
      (void) FormatLocaleString(error,sizeof(error),"%s: no address",name);
    if (count <= 0)
      {
        status=DistributeCacheHostFailed(server_info,image,name,DPC_E_OTHER,
          error);
        continue;
      }
    for (i=0; (i < count) && (status != MagickFalse); i++)
    {
      if (server_info->number_hosts == DPCMaxHosts)
        break;
      status=AddDistributeCacheHost(server_info,image,host,count > 1 ?
        addresses[i] : (const char *) NULL,port,key,tls,seconds,draining);
    }
  }
  list=DestroyString(list);
  addresses=(char (*)[DPC_NET_ADDRLEN]) RelinquishMagickMemory(addresses);
  if (status == MagickFalse)
    return(MagickFalse);
  if ((server_info->number_hosts == 0) && (*draining != 0))
    return(MagickFalse);
  if ((server_info->number_hosts == 0) && (server_info->replicas > 1))
    {
      (void) ThrowMagickException(&image->exception,GetMagickModule(),
        DistributeCacheSeverity(image),"DistributedPixelCache","no host of "
        "cache:hosts could be reached (each is named above)");
      return(MagickFalse);
    }
  if (server_info->number_hosts == 0)
    {
      (void) ThrowMagickException(&image->exception,GetMagickModule(),
        CacheError,"DistributedPixelCache","cache:hosts lists no host");
      return(MagickFalse);
    }
  return(server_info->number_hosts != 0 ? MagickTrue : MagickFalse);
}

static MagickBooleanType GetSharedKey(Image *image,uint8_t *key,
  uint8_t *psk)
{
  char
    reason[DPC_ERRLEN],
    *secret;

  secret=GetPolicyValue("cache:shared-secret");
  if ((secret == (char *) NULL) || (*secret == '\0'))
    {
      if (secret != (char *) NULL)
        secret=DestroyString(secret);
      (void) ThrowMagickException(&image->exception,GetMagickModule(),
        CacheError,"DistributedPixelCache","no shared secret: add <policy "
        "domain=\"cache\" name=\"shared-secret\" value=\"...\" "
        "stealth=\"true\"/> to policy.xml");
      return(MagickFalse);
    }
  if (dpc_parse_secret_check(secret,strlen(secret),reason,sizeof(reason)) < 0)
    {
      /*
        A placeholder (CHANGE-ME) or a short secret is refused here as
        magick-dpc refuses it: anyone could guess it.
      */
      (void) ResetMagickMemory(secret,0,strlen(secret));
      secret=DestroyString(secret);
      (void) ThrowMagickException(&image->exception,GetMagickModule(),
        CacheError,"DistributedPixelCache","%s: set a random one of at least "
        "%d characters in policy.xml (%s)",reason,DPC_SECRET_MIN_LEN,
        DPC_SECRET_HOWTO);
      return(MagickFalse);
    }
  dpc_wire_derive_key(secret,strlen(secret),key);
  if (dpc_tls_derive_psk(secret,strlen(secret),psk,(char *) NULL,0) < 0)
    {
      (void) ResetMagickMemory(secret,0,strlen(secret));
      secret=DestroyString(secret);
      (void) ThrowMagickException(&image->exception,GetMagickModule(),
        CacheError,"DistributedPixelCache","cannot derive the TLS key");
      return(MagickFalse);
    }
  (void) ResetMagickMemory(secret,0,strlen(secret));
  secret=DestroyString(secret);
  return(MagickTrue);
}

static MagickBooleanType GetTLSContext(Image *image,const uint8_t *psk,
  struct dpc_tlsclient **tls)
{
  char
    error[DPC_ERRLEN],
    *value;

  enum dpc_tls_mode
    mode;

  struct dpc_tlsclient_cfg
    cfg;

  /*
    TLS unless cache:dpc-tls says off; a certificate CA, else the PSK.
  */
  *tls=(struct dpc_tlsclient *) NULL;
  mode=DPC_TLS_ON;
  value=GetDistributeCacheSetting(image,"cache:dpc-tls");
  if (value != (char *) NULL)
    {
      /*
        "both", the server's migration setting in a policy.xml both sides
        read, counts as on.
      */
      if (dpc_tls_parse_mode(value,1,&mode,error,sizeof(error)) < 0)
        {
          (void) ThrowMagickException(&image->exception,GetMagickModule(),
            CacheError,"DistributedPixelCache","cache:dpc-tls: %s",error);
          value=DestroyString(value);
          return(MagickFalse);
        }
      value=DestroyString(value);
    }
  if (mode == DPC_TLS_OFF)
    return(MagickTrue);
  (void) memset(&cfg,0,sizeof(cfg));
  (void) memcpy(cfg.psk,psk,DPC_TLS_PSK_LEN);
  cfg.ca=GetDistributeCacheSetting(image,"cache:dpc-tls-ca");
  cfg.cert=GetDistributeCacheSetting(image,"cache:dpc-tls-cert");
  cfg.key=GetDistributeCacheSetting(image,"cache:dpc-tls-key");
  *tls=dpc_tlsclient_get(&cfg,error,sizeof(error));
  (void) ResetMagickMemory(cfg.psk,0,sizeof(cfg.psk));
  if (cfg.ca != (const char *) NULL)
    cfg.ca=DestroyString((char *) cfg.ca);
  if (cfg.cert != (const char *) NULL)
    cfg.cert=DestroyString((char *) cfg.cert);
  if (cfg.key != (const char *) NULL)
    cfg.key=DestroyString((char *) cfg.key);
  if (*tls == (struct dpc_tlsclient *) NULL)
    {
      (void) ThrowMagickException(&image->exception,GetMagickModule(),
        CacheError,"DistributedPixelCache","%s",error);
      return(MagickFalse);
    }
  return(MagickTrue);
}

static void GetTileSettings(const Image *image,MagickSizeType length,
  struct dpc_tiles_cfg *cfg)
{
  char
    *value;

  uint64_t
    size,
    walk;

  cfg->tile_w=DPCDefaultTile;
  cfg->tile_h=DPCDefaultTile;
  value=GetDistributeCacheSetting(image,"cache:dpc-tile");
  if (value != (char *) NULL)
    {
      RectangleInfo
        geometry;

      (void) memset(&geometry,0,sizeof(geometry));
      (void) ParseAbsoluteGeometry(value,&geometry);
      if ((geometry.width > 0) && (geometry.width <= 4096) &&
          (geometry.height > 0) && (geometry.height <= 4096))
        {
          cfg->tile_w=(uint32_t) geometry.width;
          cfg->tile_h=(uint32_t) geometry.height;
        }
      value=DestroyString(value);
    }
  cfg->cache_bytes=(uint64_t) length/8;
  if (cfg->cache_bytes < DPCMinTileCache)
    cfg->cache_bytes=DPCMinTileCache;
  value=GetDistributeCacheSetting(image,"cache:dpc-tile-cache");
  if (value != (char *) NULL)
    {
      if (dpc_parse_size(value,&size,(char *) NULL,0) == 0)
        cfg->cache_bytes=size;
      value=DestroyString(value);
    }
  /*
    Never below the lines of tiles that -rotate's and -distort's walks
    hold: with fewer, every line is fetched again for each column (15-40x
    slower).  Nor, for an image a few pixels thin, above half the cache.
  */
  walk=dpc_tiles_walk_bytes(cfg);
  if (walk > (uint64_t) (length/2))
    walk=(uint64_t) (length/2);
  if (cfg->cache_bytes < walk)
    cfg->cache_bytes=walk;
}

/*
  The tile cache tries a host it lost again (a rolling restart brings it
  back on the same address): a new connection from the pool, the host's
  failure forgotten.  It runs under server_info's lock.
*/
static struct dpc_link *RejoinDistributeCacheHost(void *context,size_t host,
  char *error,size_t length)
{
  DistributeCacheInfo
    *server_info;

  struct dpc_link
    *link;

  server_info=(DistributeCacheInfo *) context;
  link=dpc_pool_reacquire(server_info->links[host],(unsigned int) (1000*
    server_info->timeout),(enum dpc_errcode *) NULL,error,length);
  if ((link != (struct dpc_link *) NULL) &&
      (server_info->debug != MagickFalse))
    (void) LogMagickEvent(CacheEvent,GetMagickModule(),
      "magick-dpc: host %s rejoined the cache on %s; lost copies go there",
      dpc_link_name(link),server_info->hostname);
  return(link);
}

static void UnrefDistributeCacheHost(void *context,struct dpc_link *link)
{
  magick_unreferenced(context);
  dpc_pool_release(link);
}

static void ForgetDistributeCacheHost(DistributeCacheInfo *server_info,
  const size_t host)
{
  char
    *p,
    *q;

  size_t
    i;

  /*
    Drop one host from the cache's list and from its name (HOST:PORT,...):
    its connection goes back to the pool, which closes it when no other
    cache of the process uses it.
  */
  dpc_pool_release(server_info->links[host]);
  for (i=host; (i+1) < server_info->number_hosts; i++)
    server_info->links[i]=server_info->links[i+1];
  server_info->number_hosts--;
  p=server_info->hostname;
  for (i=0; (i < host) && (p != (char *) NULL); i++)
  {
    p=strchr(p,',');
    if (p != (char *) NULL)
      p++;
  }
  if (p == (char *) NULL)
    return;
  q=strchr(p,',');
  if (q != (char *) NULL)
    (void) memmove(p,q+1,strlen(q+1)+1);
  else
    if (p != server_info->hostname)
      *(p-1)='\0';
    else
      *p='\0';
  if (server_info->number_hosts > 0)
    server_info->file=dpc_link_fd(server_info->links[0]);
}

MagickPrivate MagickBooleanType OpenDistributePixelCache(
  DistributeCacheInfo *server_info,Image *image)
{
  char
    *hosts,
    error[DPC_ERRLEN];

  MagickBooleanType
    status;

  MagickSizeType
    length;

  enum dpc_errcode
    code;

  size_t
    draining,
    host;

  struct dpc_tiles_cfg
    cfg;

  struct dpc_tlsclient
    *tls;

  uint8_t
    key[DPC_WIRE_KEY_LEN],
    psk[DPC_TLS_PSK_LEN];

  assert(server_info != (DistributeCacheInfo *) NULL);
  assert(server_info->signature == MagickCoreSignature);
  assert(image != (Image *) NULL);
  assert(image->signature == MagickCoreSignature);
  hosts=GetDistributeCacheSetting(image,"cache:hosts");
  if (hosts == (char *) NULL)
    hosts=AcquireString(DPCHostname);
  if (GetSharedKey(image,key,psk) == MagickFalse)
    {
      hosts=DestroyString(hosts);
      return(MagickFalse);
    }
  status=GetTLSContext(image,psk,&tls);
  (void) ResetMagickMemory(psk,0,sizeof(psk));
  draining=0;
  if (status != MagickFalse)
    status=ConnectDistributeCache(server_info,image,hosts,key,tls,&draining);
  (void) ResetMagickMemory(key,0,sizeof(key));
  hosts=DestroyString(hosts);
  if ((status == MagickFalse) && (draining != 0) &&
      (server_info->number_hosts == 0))
    {
      /*
        Every host is draining: the next tier's cue, as below.
      */
      if (DistributeCacheSeverity(image) == CacheWarning)
        {
          if (server_info->debug != MagickFalse)
            (void) LogMagickEvent(CacheEvent,GetMagickModule(),
              "magick-dpc: every host of cache:hosts is draining; the disk "
              "tier takes %s",image->filename);
          return(MagickFalse);
        }
      (void) ThrowMagickException(&image->exception,GetMagickModule(),
        CacheError,"DistributedPixelCache","every host of cache:hosts is "
        "draining (about to stop)");
      return(MagickFalse);
    }
  if (status == MagickFalse)
    return(MagickFalse);
  (void) memset(&cfg,0,sizeof(cfg));
  cfg.columns=image->columns;
  cfg.rows=image->rows;
  cfg.bpp[0]=(uint32_t) sizeof(PixelPacket);
  if ((image->storage_class == PseudoClass) ||
      (image->colorspace == CMYKColorspace))
    cfg.bpp[1]=(uint32_t) sizeof(IndexPacket);
  length=(MagickSizeType) image->columns*image->rows*(cfg.bpp[0]+cfg.bpp[1]);
  GetTileSettings(image,length,&cfg);
  for ( ; ; )
  {
    cfg.links=server_info->links;
    cfg.nlinks=server_info->number_hosts;
    if (server_info->replicas > server_info->number_hosts)
      {
        if (server_info->debug != MagickFalse)
          (void) LogMagickEvent(CacheEvent,GetMagickModule(),
            "magick-dpc: cache:dpc-replicas=%.20g, but %.20g host(s): %.20g "
            "cop%s of each tile",(double) server_info->replicas,(double)
            server_info->number_hosts,(double) server_info->number_hosts,
            server_info->number_hosts == 1 ? "y" : "ies");
        server_info->replicas=server_info->number_hosts;
      }
    cfg.replicas=(uint32_t) server_info->replicas;
    cfg.rejoin=RejoinDistributeCacheHost;
    cfg.unref=UnrefDistributeCacheHost;
    cfg.rejoin_arg=server_info;
    server_info->tiles=dpc_tiles_open(&cfg,&code,&host,error,sizeof(error));
    if ((server_info->tiles != (struct dpc_tiles *) NULL) ||
        (code != DPC_E_DRAINING) || (host >= server_info->number_hosts))
      break;
    /*
      A draining host serves the caches it has and takes no new one: the
      cache goes on the other hosts.
    */
    if ((server_info->debug != MagickFalse) &&
        (server_info->number_hosts > 1))
      (void) LogMagickEvent(CacheEvent,GetMagickModule(),
        "magick-dpc: %s; %s goes to the %.20g other host(s)",error,
        image->filename,(double) server_info->number_hosts-1);
    dpc_pool_draining(server_info->links[host]);
    ForgetDistributeCacheHost(server_info,host);
    if (server_info->number_hosts == 0)
      break;
  }
  if (server_info->tiles == (struct dpc_tiles *) NULL)
    {
      if (((code == DPC_E_NO_ROOM) || (code == DPC_E_DRAINING)) &&
          (DistributeCacheSeverity(image) == CacheWarning))
        {
          /*
            A server with no room, or every host draining, is the next
            tier's cue, not news (as a spent shared-memory budget is).
          */
          if (server_info->debug != MagickFalse)
            (void) LogMagickEvent(CacheEvent,GetMagickModule(),
              "magick-dpc: %s; the disk tier takes %s",error,
              image->filename);
          return(MagickFalse);
        }
      (void) ThrowMagickException(&image->exception,GetMagickModule(),
        DistributeCacheSeverity(image),"DistributedPixelCache","%s%s",error,
        DistributeCacheReplicasHint(server_info,code));
      return(MagickFalse);
    }
  if (server_info->debug != MagickFalse)
    (void) LogMagickEvent(CacheEvent,GetMagickModule(),
      "magick-dpc: %.20gx%.20g striped over %.20g host(s) [%s], %.20g "
      "cop%s of each tile, %ux%u tiles, %.20g-byte tile cache",(double)
      image->columns,(double) image->rows,(double) server_info->number_hosts,
      server_info->hostname,(double) server_info->replicas,
      server_info->replicas == 1 ? "y" : "ies",cfg.tile_w,cfg.tile_h,(double)
      dpc_tiles_cache_bytes(server_info->tiles));
  return(MagickTrue);
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
+   R e a d D i s t r i b u t e P i x e l C a c h e P i x e l s               %
+   R e a d D i s t r i b u t e P i x e l C a c h e I n d e x e s             %
+   W r i t e D i s t r i b u t e P i x e l C a c h e P i x e l s             %
+   W r i t e D i s t r i b u t e P i x e l C a c h e I n d e x e s           %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  These copy a region of pixels or indexes out of or into the distributed
%  cache, through the local tile cache.  They return the bytes moved, or -1
%  with an error in exception naming the host and the cause.  A host lost
%  while the other copies of its tiles (cache:dpc-replicas) carry on is a
%  warning, once per host and process, through ImageMagick's warning
%  handler.
%
%  The format of these methods is:
%
%      MagickOffsetType ReadDistributePixelCachePixels(
%        DistributeCacheInfo *server_info,const RectangleInfo *region,
%        const MagickSizeType length,unsigned char *magick_restrict pixels,
%        ExceptionInfo *exception)
%
%  A description of each parameter follows:
%
%    o server_info: the distributed cache info.
%
%    o region: read (write) the pixels from (to) this region of the image.
%
%    o length: the length in bytes of the region.
%
%    o pixels: read (write) the pixels into (from) this buffer.
%
%    o exception: return any errors or warnings in this structure.
%
*/

/*
  Names each host the tile cache lost since the last look, once per process
  (the caller holds the lock).
*/
static void ReportLostHosts(DistributeCacheInfo *server_info)
{
  char
    why[DPC_ERRLEN];

  size_t
    i;

  struct dpc_tiles_stats
    stats;

  dpc_tiles_get_stats(server_info->tiles,&stats);
  if (stats.hosts_lost == server_info->hosts_lost)
    return;
  server_info->hosts_lost=stats.hosts_lost;
  for (i=0; i < server_info->number_hosts; i++)
    if (dpc_tiles_host_lost(server_info->tiles,i,why,sizeof(why)) != 0)
      WarnDistributeCacheHostLost(dpc_link_name(server_info->links[i]),why);
}

/*
  A failed transfer's error: the host and the cause, in magick-dpc's words,
  and what to change where a setting is the cure.
*/
static void ThrowDistributeCacheError(const DistributeCacheInfo *server_info,
  const int status,const char *error,const MagickBooleanType write,
  ExceptionInfo *exception)
{
  char
    hint[MaxTextExtent];

  *hint='\0';
  if (dpc_errcode_of(status) == DPC_E_TIMEOUT)
    (void) FormatLocaleString(hint,MaxTextExtent,"; raise "
      "cache:dpc-timeout=%.20g if the host is only slow",(double)
      server_info->timeout);
  (void) ThrowMagickException(exception,GetMagickModule(),CacheError,
    write != MagickFalse ? "UnableToWritePixelCache" :
    "UnableToReadPixelCache","`%s%s'",error,hint);
}

/*
  The locked path: a miss, or a write.  Apart, so the lock-free hit path
  keeps a small frame (it runs for millions of one-pixel reads).
*/
static MagickOffsetType LockedTransferDistributeCache(
  DistributeCacheInfo *server_info,const int plane,
  const RectangleInfo *region,const MagickSizeType length,unsigned char *buffer,
  const MagickBooleanType write,ExceptionInfo *exception)
  magick_attribute((__noinline__));

static MagickOffsetType LockedTransferDistributeCache(
  DistributeCacheInfo *server_info,const int plane,
  const RectangleInfo *region,const MagickSizeType length,unsigned char *buffer,
  const MagickBooleanType write,ExceptionInfo *exception)
{
  char
    error[DPC_ERRLEN];

  int
    status;

  (void) pthread_mutex_lock((pthread_mutex_t *) server_info->lock);
  if (write != MagickFalse)
    status=dpc_tiles_write(server_info->tiles,plane,(uint64_t) region->x,
      (uint64_t) region->y,region->width,region->height,buffer,error,
      sizeof(error));
  else
    status=dpc_tiles_read(server_info->tiles,plane,(uint64_t) region->x,
      (uint64_t) region->y,region->width,region->height,buffer,error,
      sizeof(error));
  if (status == 0)
    ReportLostHosts(server_info);
  (void) pthread_mutex_unlock((pthread_mutex_t *) server_info->lock);
  if (status < 0)
    {
      (void) LogMagickEvent(CacheEvent,GetMagickModule(),"magick-dpc: %s",
        error);
      ThrowDistributeCacheError(server_info,status,error,write,exception);
      return(-1);
    }
  return((MagickOffsetType) length);
}

static MagickOffsetType TransferDistributeCache(
  DistributeCacheInfo *server_info,const int plane,
  const RectangleInfo *region,const MagickSizeType length,unsigned char *buffer,
  const MagickBooleanType write,ExceptionInfo *exception)
{
  MagickSizeType
    bytes,
    packet;

  assert(server_info != (DistributeCacheInfo *) NULL);
  assert(server_info->signature == MagickCoreSignature);
  assert(region != (RectangleInfo *) NULL);
  /*
    Nothing to move is a no-op, as for a memory cache (a sync of a region
    that failed to read is one).  Any other mismatch is a failure the
    caller turns into an exception: never an abort.
  */
  if (length == 0)
    return(0);
  packet=plane == 0 ? sizeof(PixelPacket) : sizeof(IndexPacket);
  if ((buffer == (unsigned char *) NULL) ||
      (server_info->tiles == (struct dpc_tiles *) NULL) ||
      (region->x < 0) || (region->y < 0) || (region->width == 0) ||
      (region->height == 0) ||
      ((MagickSizeType) region->height > (MagickSizeType) ~0ULL/
       region->width/packet))
    bytes=0;
  else
    bytes=(MagickSizeType) region->width*region->height*packet;
  if (bytes != length)
    {
      (void) ThrowMagickException(exception,GetMagickModule(),CacheError,
        write != MagickFalse ? "UnableToWritePixelCache" :
        "UnableToReadPixelCache","magick-dpc: bad region %.20gx%.20g%+.20g"
        "%+.20g of %.20g bytes",(double) region->width,(double)
        region->height,(double) region->x,(double) region->y,(double) length);
      return(-1);
    }
  return(LockedTransferDistributeCache(server_info,plane,region,length,buffer,
    write,exception));
}

/*
  Most reads hit the tile cache: those take neither the lock nor the
  checks above (-distort and -rotate make millions of one-pixel reads).
*/
static inline MagickOffsetType ReadDistributeCache(
  DistributeCacheInfo *server_info,const int plane,
  const RectangleInfo *region,const MagickSizeType length,unsigned char *buffer,
  ExceptionInfo *exception)
{
  if ((server_info->tiles != (struct dpc_tiles *) NULL) &&
      (region->x >= 0) && (region->y >= 0) &&
      ((MagickSizeType) region->width*region->height*(plane == 0 ?
        sizeof(PixelPacket) : sizeof(IndexPacket)) == length) &&
      (dpc_tiles_read_hit(server_info->tiles,plane,(uint64_t) region->x,
        (uint64_t) region->y,region->width,region->height,buffer) != 0))
    return((MagickOffsetType) length);
  return(TransferDistributeCache(server_info,plane,region,length,buffer,
    MagickFalse,exception));
}

MagickPrivate MagickOffsetType ReadDistributePixelCacheIndexes(
  DistributeCacheInfo *server_info,const RectangleInfo *region,
  const MagickSizeType length,unsigned char *indexes,ExceptionInfo *exception)
{
  return(ReadDistributeCache(server_info,1,region,length,indexes,exception));
}

MagickPrivate MagickOffsetType ReadDistributePixelCachePixels(
  DistributeCacheInfo *server_info,const RectangleInfo *region,
  const MagickSizeType length,unsigned char *magick_restrict pixels,
  ExceptionInfo *exception)
{
  return(ReadDistributeCache(server_info,0,region,length,pixels,exception));
}

MagickPrivate MagickOffsetType WriteDistributePixelCacheIndexes(
  DistributeCacheInfo *server_info,const RectangleInfo *region,
  const MagickSizeType length,const unsigned char *indexes,
  ExceptionInfo *exception)
{
  return(TransferDistributeCache(server_info,1,region,length,
    (unsigned char *) indexes,MagickTrue,exception));
}

MagickPrivate MagickOffsetType WriteDistributePixelCachePixels(
  DistributeCacheInfo *server_info,const RectangleInfo *region,
  const MagickSizeType length,const unsigned char *magick_restrict pixels,
  ExceptionInfo *exception)
{
  return(TransferDistributeCache(server_info,0,region,length,
    (unsigned char *) pixels,MagickTrue,exception));
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
+   C l o n e D i s t r i b u t e P i x e l C a c h e                         %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  CloneDistributePixelCache() makes clone_info's cache, opened and not yet
%  written, a copy of server_info's on the hosts themselves: no pixel
%  crosses the network (ImageMagick clones a pixel cache before most
%  operations write a new image).  It returns MagickFalse when that cannot
%  be done (other hosts or tiles, a host lost or older than the copy); the
%  caller then copies the pixels row by row as for any other cache.
%
%  The format of the CloneDistributePixelCache method is:
%
%      MagickBooleanType CloneDistributePixelCache(
%        DistributeCacheInfo *clone_info,DistributeCacheInfo *server_info)
%
%  A description of each parameter follows:
%
%    o clone_info: the copy's distributed cache info.
%
%    o server_info: the original's.
%
*/
MagickPrivate MagickBooleanType CloneDistributePixelCache(
  DistributeCacheInfo *clone_info,DistributeCacheInfo *server_info)
{
  char
    error[DPC_ERRLEN];

  int
    status;

  if ((clone_info == (DistributeCacheInfo *) NULL) ||
      (server_info == (DistributeCacheInfo *) NULL) ||
      (clone_info == server_info) ||
      (clone_info->tiles == (struct dpc_tiles *) NULL) ||
      (server_info->tiles == (struct dpc_tiles *) NULL))
    return(MagickFalse);
  (void) pthread_mutex_lock((pthread_mutex_t *) server_info->lock);
  (void) pthread_mutex_lock((pthread_mutex_t *) clone_info->lock);
  status=dpc_tiles_clone(clone_info->tiles,server_info->tiles,error,
    sizeof(error));
  (void) pthread_mutex_unlock((pthread_mutex_t *) clone_info->lock);
  (void) pthread_mutex_unlock((pthread_mutex_t *) server_info->lock);
  if (server_info->debug != MagickFalse)
    (void) LogMagickEvent(CacheEvent,GetMagickModule(),status == 0 ?
      "magick-dpc: cloned on the hosts" : "magick-dpc: clone row by row: %s",
      error);
  return(status == 0 ? MagickTrue : MagickFalse);
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
+   R e l i n q u i s h D i s t r i b u t e P i x e l C a c h e               %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  RelinquishDistributePixelCache() releases the cache on every host; its
%  dirty tiles are dropped with it.
%
%  The format of the RelinquishDistributePixelCache method is:
%
%      MagickBooleanType RelinquishDistributePixelCache(
%        DistributeCacheInfo *server_info)
%
%  A description of each parameter follows:
%
%    o server_info: the distributed cache info.
%
*/
MagickPrivate MagickBooleanType RelinquishDistributePixelCache(
  DistributeCacheInfo *server_info)
{
  char
    error[DPC_ERRLEN];

  int
    status;

  assert(server_info != (DistributeCacheInfo *) NULL);
  assert(server_info->signature == MagickCoreSignature);
  if ((server_info->debug != MagickFalse) &&
      (server_info->tiles != (struct dpc_tiles *) NULL))
    {
      struct dpc_tiles_stats
        stats;

      dpc_tiles_get_stats(server_info->tiles,&stats);
      (void) LogMagickEvent(CacheEvent,GetMagickModule(),
        "magick-dpc: close: %.20g hits, %.20g misses, %.20g fetched, "
        "%.20g written back, %.20g zero-filled, %.20g direct, "
        "%.20g round trips, %.20g host(s) lost, %.20g failovers, "
        "%.20g copies made again in %.3f s, %.20g host(s) rejoined, %.20g "
        "cloned on the hosts",
        (double) stats.hits,(double) stats.misses,(double) stats.fetched,
        (double) stats.written_back,(double) stats.zero_filled,
        (double) stats.direct,(double) stats.round_trips,
        (double) stats.hosts_lost,(double) stats.failovers,
        (double) stats.recopied,stats.recopy_seconds,(double) stats.rejoined,
        (double) stats.cloned);
    }
  status=dpc_tiles_close(server_info->tiles,error,sizeof(error));
  server_info->tiles=(struct dpc_tiles *) NULL;
  if ((status < 0) && (server_info->debug != MagickFalse))
    (void) LogMagickEvent(CacheEvent,GetMagickModule(),"magick-dpc: %s",
      error);
  return(status < 0 ? MagickFalse : MagickTrue);
}

/*
  The shared-memory tier, in its own file: one translation unit with this
  one (build.sh compiles only the files the library is built from), so it
  shares GetDistributeCacheSetting() and the tier order.
*/
#include "magick/shared-cache.c"
