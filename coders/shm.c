/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
%                          SSSSS  H   H  M   M                                %
%                          SS     H   H  MM MM                                %
%                           SSS   HHHHH  M M M                                %
%                             SS  H   H  M   M                                %
%                          SSSSS  H   H  M   M                                %
%                                                                             %
%                                                                             %
%        Hand Images Between Processes Through magick-dpc Shared Memory       %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  "convert in.png -resize 50% shm:stage1" publishes the image under a name:
%  its pixels, laid out as a memory pixel cache, in a sealed segment the
%  local magick-dpc holds, with what rebuilds the Image (geometry, class,
%  colorspace, matte, depth, resolution, colormap, profiles, properties).
%  "convert shm:stage1 ..." attaches it: no decoding, and on the drop-in
%  libMagickCore no copy either (AttachSharedPixelCache maps the pixels
%  privately, so only pages the reader changes are ever copied); on a stock
%  libMagickCore the pixels are copied once.  Names are per owner; another
%  owner's image is "shm:OWNER/NAME" (a user name or uid).  Readers get
%  read-only segments.  -define shm:ttl=DURATION (e.g. 10m) gives the name a
%  time to live; -define cache:dpc-socket=PATH names the server's socket,
%  -define cache:dpc-server-user=USER the user it may run as besides root
%  and ourselves (each also read from the image registry, then policy.xml,
%  as the drop-in library reads its cache: settings).
%
%  The segment comes from another process: every offset and length in it is
%  checked (dpc_shmimg_parse) before use, and every attribute against its
%  range, before a pixel is read.
%
*/

/*
  Include declarations.
*/
#include <magick/MagickCore.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dpc_lproto.h"
#include "dpc_parse.h"
#include "dpc_shmclient.h"
#include "dpc_shmimg.h"
#include "dpc_util.h"

/*
  Define declarations.
*/
#define SHMTimeout  10000
#define SHMMin(a,b)  (((a) < (b)) ? (a) : (b))
#define SHMSaveTag  "Save/Images"
#define ThrowSHMWriterException(severity,tag) \
{ \
  (void) ThrowMagickException(&image->exception,GetMagickModule(),severity, \
    tag,"`%s'",image->filename); \
  return(MagickFalse); \
}

/*
  Typedef declarations.
*/
typedef MagickBooleanType
  (*AttachSharedPixelCacheMethod)(Image *,const int,const MagickOffsetType,
    const MagickSizeType,ExceptionInfo *);

/*
  Forward declarations.
*/
static MagickBooleanType
  WriteSHMImage(const ImageInfo *,Image *);

ModuleExport size_t
  RegisterSHMImage(void);

ModuleExport void
  UnregisterSHMImage(void);

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
%   R e a d S H M I m a g e                                                   %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  ReadSHMImage() attaches the image published under image_info->filename.
%
%  The format of the ReadSHMImage method is:
%
%      Image *ReadSHMImage(const ImageInfo *image_info,
%        ExceptionInfo *exception)
%
%  A description of each parameter follows:
%
%    o image_info: the image info.
%
%    o exception: return any errors or warnings in this structure.
%
*/

/*
  A setting of the server's socket or user, in the drop-in library's order:
  the image option (-define), then the image registry (a program's
  SetImageRegistry, e.g. Image::Magick::DPC's configure), then policy.xml.
  The caller destroys the string; NULL when none is set.
*/
static char *GetSHMSetting(const ImageInfo *image_info,const char *name)
{
  char
    *value;

  const char
    *option;

  ExceptionInfo
    *exception;

  option=GetImageOption(image_info,name);
  if (option != (const char *) NULL)
    return(AcquireString(option));
  exception=AcquireExceptionInfo();
  value=(char *) GetImageRegistry(StringRegistryType,name,exception);
  exception=DestroyExceptionInfo(exception);
  if (value != (char *) NULL)
    {
      if (*value != '\0')
        return(value);
      value=DestroyString(value);
    }
  return(GetPolicyValue(name));
}

static struct dpc_shmc *ConnectSHM(const ImageInfo *image_info,
  ExceptionInfo *exception)
{
  char
    error[DPC_ERRLEN],
    path[MaxTextExtent],
    *setting;

  struct dpc_shmc
    *client;

  setting=GetSHMSetting(image_info,"cache:dpc-socket");
  if (setting != (char *) NULL)
    {
      (void) CopyMagickString(path,setting,MaxTextExtent);
      setting=DestroyString(setting);
    }
  else
    if (dpc_shmc_default_path(path,sizeof(path)) < 0)
      *path='\0';
  setting=GetSHMSetting(image_info,"cache:dpc-server-user");
  client=dpc_shmc_connect(path,setting,SHMTimeout,error,sizeof(error));
  if (setting != (char *) NULL)
    setting=DestroyString(setting);
  if (client == (struct dpc_shmc *) NULL)
    (void) ThrowMagickException(exception,GetMagickModule(),CacheError,
      "SharedMemoryUnavailable","`%s'",error);
  return(client);
}

/*
  "NAME" (the caller's own) or "OWNER/NAME", OWNER a user name or uid.
*/
static MagickBooleanType ParseSHMName(const char *filename,
  struct dpc_lp_req *request,ExceptionInfo *exception)
{
  const char
    *name,
    *slash;

  request->owner=DPC_LP_SELF;
  name=filename;
  slash=strchr(filename,'/');
  if (slash != (const char *) NULL)
    {
      char
        error[DPC_ERRLEN],
        owner[MaxTextExtent];

      struct passwd
        *entry;

      uint64_t
        uid;

      (void) CopyMagickString(owner,filename,SHMMin((size_t) (slash-
        filename)+1,MaxTextExtent));
      name=slash+1;
      if ((dpc_parse_u64(owner,&uid,error,sizeof(error)) == 0) &&
          (uid < DPC_LP_SELF))
        request->owner=(uint32_t) uid;
      else
        {
          entry=getpwnam(owner);
          if (entry == (struct passwd *) NULL)
            {
              (void) ThrowMagickException(exception,GetMagickModule(),
                OptionError,"NoSuchUser","`%s'",owner);
              return(MagickFalse);
            }
          request->owner=(uint32_t) entry->pw_uid;
        }
    }
  if (dpc_lp_valid_name(name,strlen(name)) == 0)
    {
      (void) ThrowMagickException(exception,GetMagickModule(),OptionError,
        "InvalidSharedMemoryName","`%s' (1-%d of A-Z a-z 0-9 . _ -, not "
        "starting with '.')",name,DPC_LP_NAME_MAX);
      return(MagickFalse);
    }
  (void) CopyMagickString(request->name,name,sizeof(request->name));
  return(MagickTrue);
}

static MagickBooleanType CheckSHMOption(const CommandOption option,
  const uint64_t value)
{
  if (value > (uint64_t) SSIZE_MAX)
    return(MagickFalse);
  return(LocaleCompare(CommandOptionToMnemonic(option,(ssize_t) value),
    "Unrecognized") != 0 ? MagickTrue : MagickFalse);
}

static MagickBooleanType SetSHMColor(PixelPacket *color,
  const struct dpc_shmimg_rec *record)
{
  if ((record->type != DPC_SHMIMG_BYTES) ||
      (record->value_len != sizeof(*color)))
    return(MagickFalse);
  (void) memcpy(color,record->value,sizeof(*color));
  return(MagickTrue);
}

static MagickBooleanType SetSHMColormap(Image *image,
  const struct dpc_shmimg_rec *record)
{
  size_t
    colors;

  if ((record->type != DPC_SHMIMG_BYTES) ||
      (record->value_len % sizeof(PixelPacket) != 0))
    return(MagickFalse);
  colors=record->value_len/sizeof(PixelPacket);
  if ((colors == 0) || (colors > MaxColormapSize))
    return(MagickFalse);
  if (AcquireImageColormap(image,colors) == MagickFalse)
    return(MagickFalse);
  (void) memcpy(image->colormap,record->value,record->value_len);
  return(MagickTrue);
}

/*
  Text or bytes of a record as a NUL-terminated string, or NULL.
*/
static char *SHMRecordString(const void *value,const size_t length)
{
  char
    *text;

  text=(char *) AcquireQuantumMemory(length+1,sizeof(*text));
  if (text == (char *) NULL)
    return((char *) NULL);
  (void) memcpy(text,value,length);
  text[length]='\0';
  return(text);
}

static MagickBooleanType SetSHMNamed(Image *image,
  const struct dpc_shmimg_rec *record)
{
  char
    *key,
    *value;

  MagickBooleanType
    status;

  key=SHMRecordString(record->key,record->key_len);
  if (key == (char *) NULL)
    return(MagickFalse);
  status=MagickFalse;
  if ((record->type == DPC_SHMIMG_STR) &&
      (LocaleNCompare(key,"property:",9) == 0))
    {
      value=SHMRecordString(record->value,record->value_len);
      if (value != (char *) NULL)
        {
          status=SetImageProperty(image,key+9,value);
          value=DestroyString(value);
        }
    }
  else
    if ((record->type == DPC_SHMIMG_BYTES) &&
        (LocaleNCompare(key,"profile:",8) == 0) && (key[8] != '\0'))
      {
        StringInfo
          *profile;

        profile=BlobToStringInfo(record->value,record->value_len);
        if (profile != (StringInfo *) NULL)
          {
            status=SetImageProfile(image,key+8,profile);
            profile=DestroyStringInfo(profile);
          }
      }
    else
      status=MagickTrue;  /* a later writer's key: ignored */
  key=DestroyString(key);
  return(status);
}

/*
  One numeric attribute; MagickFalse when its value is out of range.
*/
static MagickBooleanType SetSHMNumber(Image *image,
  const struct dpc_shmimg_rec *record)
{
  double
    d;

  uint64_t
    v;

  v=dpc_shmimg_u64(record);
  d=dpc_shmimg_f64(record);
#define SHMInteger(key)  ((record->type == DPC_SHMIMG_U64) && \
  (dpc_shmimg_is(record,key) != 0))
#define SHMDouble(key)  ((record->type == DPC_SHMIMG_F64) && \
  (dpc_shmimg_is(record,key) != 0))
#define SHMEnum(key,option,field,type)  if (SHMInteger(key)) \
  { \
    if (CheckSHMOption(option,v) == MagickFalse) \
      return(MagickFalse); \
    field=(type) v; \
    return(MagickTrue); \
  }
#define SHMField(key,field,type,limit)  if (SHMInteger(key)) \
  { \
    if (v > (uint64_t) (limit)) \
      return(MagickFalse); \
    field=(type) v; \
    return(MagickTrue); \
  }
#define SHMSigned(key,field,type)  if (SHMInteger(key)) \
  { \
    field=(type) (int64_t) v; \
    return(MagickTrue); \
  }
#define SHMReal(key,field)  if (SHMDouble(key)) \
  { \
    if (d != d) \
      return(MagickFalse); \
    field=d; \
    return(MagickTrue); \
  }
  if (SHMInteger("class"))
    {
      if ((v != (uint64_t) DirectClass) && (v != (uint64_t) PseudoClass))
        return(MagickFalse);
      image->storage_class=(ClassType) v;
      return(MagickTrue);
    }
  if (SHMInteger("colorspace") && (v == (uint64_t) UndefinedColorspace))
    return(MagickFalse);
  if (SHMInteger("depth") && ((v == 0) || (v > 64)))
    return(MagickFalse);
  SHMField("columns",image->columns,size_t,(uint64_t) INT32_MAX);
  SHMField("rows",image->rows,size_t,(uint64_t) INT32_MAX);
  SHMEnum("colorspace",MagickColorspaceOptions,image->colorspace,
    ColorspaceType);
  SHMField("matte",image->matte,MagickBooleanType,1);
  SHMField("depth",image->depth,size_t,64);
  SHMEnum("units",MagickResolutionOptions,image->units,ResolutionType);
  SHMEnum("compression",MagickCompressOptions,image->compression,
    CompressionType);
  SHMField("quality",image->quality,size_t,100);
  SHMEnum("interlace",MagickInterlaceOptions,image->interlace,
    InterlaceType);
  SHMEnum("dispose",MagickDisposeOptions,image->dispose,DisposeType);
  SHMEnum("intent",MagickIntentOptions,image->rendering_intent,
    RenderingIntent);
  SHMEnum("orientation",MagickOrientationOptions,image->orientation,
    OrientationType);
  SHMEnum("gravity",MagickGravityOptions,image->gravity,GravityType);
  SHMEnum("compose",MagickComposeOptions,image->compose,CompositeOperator);
  SHMEnum("endian",MagickEndianOptions,image->endian,EndianType);
  SHMField("delay",image->delay,size_t,(uint64_t) INT32_MAX);
  SHMSigned("ticks_per_second",image->ticks_per_second,ssize_t);
  SHMField("iterations",image->iterations,size_t,(uint64_t) INT32_MAX);
  SHMField("scene",image->scene,size_t,(uint64_t) INT32_MAX);
  SHMField("page.width",image->page.width,size_t,(uint64_t) INT32_MAX);
  SHMField("page.height",image->page.height,size_t,(uint64_t) INT32_MAX);
  SHMSigned("page.x",image->page.x,ssize_t);
  SHMSigned("page.y",image->page.y,ssize_t);
  SHMReal("x_resolution",image->x_resolution);
  SHMReal("y_resolution",image->y_resolution);
  SHMReal("gamma",image->gamma);
  SHMReal("fuzz",image->fuzz);
  SHMReal("red_primary.x",image->chromaticity.red_primary.x);
  SHMReal("red_primary.y",image->chromaticity.red_primary.y);
  SHMReal("green_primary.x",image->chromaticity.green_primary.x);
  SHMReal("green_primary.y",image->chromaticity.green_primary.y);
  SHMReal("blue_primary.x",image->chromaticity.blue_primary.x);
  SHMReal("blue_primary.y",image->chromaticity.blue_primary.y);
  SHMReal("white_point.x",image->chromaticity.white_point.x);
  SHMReal("white_point.y",image->chromaticity.white_point.y);
  if (SHMInteger("quantum"))
    return(v == MAGICKCORE_QUANTUM_DEPTH ? MagickTrue : MagickFalse);
  if (SHMInteger("hdri"))
    return(v == MAGICKCORE_HDRI_ENABLE ? MagickTrue : MagickFalse);
  if (SHMInteger("packet"))
    return(v == sizeof(PixelPacket) ? MagickTrue : MagickFalse);
  if (SHMInteger("index_packet"))
    return(v == sizeof(IndexPacket) ? MagickTrue : MagickFalse);
  return(MagickTrue);  /* a later writer's key: ignored */
}

static MagickBooleanType SetSHMAttributes(Image *image,const uint8_t *blob,
  const size_t length,ExceptionInfo *exception)
{
  char
    error[DPC_ERRLEN];

  int
    status;

  size_t
    position;

  struct dpc_shmimg_rec
    record;

  unsigned int
    required;

  required=0;
  position=0;
  while ((status=dpc_shmimg_next(blob,length,&position,&record,error,
           sizeof(error))) > 0)
  {
    MagickBooleanType
      valid;

    if (dpc_shmimg_is(&record,"colormap") != 0)
      valid=SetSHMColormap(image,&record);
    else if (dpc_shmimg_is(&record,"background_color") != 0)
      valid=SetSHMColor(&image->background_color,&record);
    else if (dpc_shmimg_is(&record,"border_color") != 0)
      valid=SetSHMColor(&image->border_color,&record);
    else if (dpc_shmimg_is(&record,"matte_color") != 0)
      valid=SetSHMColor(&image->matte_color,&record);
    else if (dpc_shmimg_is(&record,"transparent_color") != 0)
      valid=SetSHMColor(&image->transparent_color,&record);
    else if ((record.type == DPC_SHMIMG_STR) ||
             (record.type == DPC_SHMIMG_BYTES))
      valid=SetSHMNamed(image,&record);
    else
      {
        valid=SetSHMNumber(image,&record);
        if (dpc_shmimg_is(&record,"quantum") != 0)
          required|=1;
        if (dpc_shmimg_is(&record,"packet") != 0)
          required|=2;
        if (dpc_shmimg_is(&record,"columns") != 0)
          required|=4;
        if (dpc_shmimg_is(&record,"rows") != 0)
          required|=8;
        if (dpc_shmimg_is(&record,"class") != 0)
          required|=16;
      }
    if (valid == MagickFalse)
      {
        (void) FormatLocaleString(error,sizeof(error),"bad value for '%.*s' "
          "(or another pixel format)",(int) SHMMin(record.key_len,64),
          record.key);
        status=(-1);
        break;
      }
  }
  if ((status == 0) && (required != 31))
    {
      (void) CopyMagickString(error,"columns, rows, class, quantum or packet "
        "missing",sizeof(error));
      status=(-1);
    }
  if ((status == 0) && ((image->columns == 0) || (image->rows == 0) ||
      ((image->storage_class == PseudoClass) && (image->colors == 0))))
    {
      (void) CopyMagickString(error,"no pixels, or a palette image without "
        "colormap",sizeof(error));
      status=(-1);
    }
  if (status < 0)
    {
      (void) ThrowMagickException(exception,GetMagickModule(),CorruptImageError,
        "CorruptSharedMemoryImage","`%s': %s",image->filename,error);
      return(MagickFalse);
    }
  return(MagickTrue);
}

/*
  MagickTrue when a memory cache of the image holds indexes after its pixels.
*/
static MagickBooleanType SHMHasIndexes(const Image *image)
{
  return(((image->storage_class == PseudoClass) ||
    (image->colorspace == CMYKColorspace)) ? MagickTrue : MagickFalse);
}

/*
  The bytes of an image's pixels (and indexes) as a memory cache holds
  them; 0 on overflow.
*/
static MagickSizeType SHMPixelLength(const Image *image)
{
  uint64_t
    length,
    packet;

  packet=sizeof(PixelPacket);
  if (SHMHasIndexes(image) != MagickFalse)
    packet+=sizeof(IndexPacket);
  if ((dpc_mul_u64(image->columns,image->rows,&length) < 0) ||
      (dpc_mul_u64(length,packet,&length) < 0))
    return(0);
  return((MagickSizeType) length);
}

/*
  Copies a frame's pixels into the image's own pixel cache: the fallback
  when the library cannot attach them (a stock libMagickCore).
*/
static MagickBooleanType CopySHMPixels(Image *image,const int file,
  const struct dpc_shmimg_frame *frame,ExceptionInfo *exception)
{
  const IndexPacket
    *indexes;

  const PixelPacket
    *pixels;

  MagickBooleanType
    status;

  ssize_t
    y;

  void
    *map;

  status=SetImageExtent(image,image->columns,image->rows);
  if (status == MagickFalse)
    {
      InheritException(exception,&image->exception);
      return(MagickFalse);
    }
  map=mmap((void *) NULL,(size_t) frame->pix_len,PROT_READ,MAP_SHARED |
    MAP_POPULATE,file,(off_t) frame->pix_off);
  if (map == MAP_FAILED)
    {
      (void) ThrowMagickException(exception,GetMagickModule(),CacheError,
        "UnableToMapSharedMemory","`%s': %s",image->filename,strerror(errno));
      return(MagickFalse);
    }
  pixels=(const PixelPacket *) map;
  indexes=(const IndexPacket *) (pixels+image->columns*image->rows);
  for (y=0; y < (ssize_t) image->rows; y++)
  {
    IndexPacket
      *q_indexes;

    PixelPacket
      *q;

    q=QueueAuthenticPixels(image,0,y,image->columns,1,exception);
    if (q == (PixelPacket *) NULL)
      break;
    (void) memcpy(q,pixels+y*image->columns,image->columns*sizeof(*q));
    q_indexes=GetAuthenticIndexQueue(image);
    if ((q_indexes != (IndexPacket *) NULL) &&
        (SHMHasIndexes(image) != MagickFalse))
      (void) memcpy(q_indexes,indexes+y*image->columns,image->columns*
        sizeof(*q_indexes));
    if (SyncAuthenticPixels(image,exception) == MagickFalse)
      break;
  }
  (void) munmap(map,(size_t) frame->pix_len);
  return(y == (ssize_t) image->rows ? MagickTrue : MagickFalse);
}

static MagickBooleanType AttachSHMPixels(Image *image,const int file,
  const struct dpc_shmimg_frame *frame,ExceptionInfo *exception)
{
  AttachSharedPixelCacheMethod
    attach;

  /*
    The drop-in libMagickCore maps the pixels as the image's cache; a stock
    one has no such entry point, so the pixels are copied.
  */
  attach=(AttachSharedPixelCacheMethod) dlsym(RTLD_DEFAULT,
    "AttachSharedPixelCache");
  if ((attach != (AttachSharedPixelCacheMethod) NULL) &&
      (frame->pix_off % (uint64_t) sysconf(_SC_PAGESIZE) == 0) &&
      (attach(image,file,(MagickOffsetType) frame->pix_off,(MagickSizeType)
        frame->pix_len,exception) != MagickFalse))
    {
      (void) LogMagickEvent(CoderEvent,GetMagickModule(),
        "shm: %s: %.20g bytes attached in place, no copy",image->filename,
        (double) frame->pix_len);
      return(MagickTrue);
    }
  (void) LogMagickEvent(CoderEvent,GetMagickModule(),
    "shm: %s: %.20g bytes copied",image->filename,(double) frame->pix_len);
  return(CopySHMPixels(image,file,frame,exception));
}

/*
  Maps the segment's header and checks it; NULL with an exception.
*/
static uint8_t *MapSHMHeader(const char *name,const int file,
  const uint64_t size,uint32_t *header_length,
  struct dpc_shmimg_frame **frames,uint32_t *number_frames,
  ExceptionInfo *exception)
{
  char
    error[DPC_ERRLEN];

  int
    status;

  size_t
    length;

  uint8_t
    *header;

  *frames=(struct dpc_shmimg_frame *) NULL;
  length=(size_t) SHMMin(size,DPC_SHMIMG_ALIGN);
  header=(uint8_t *) mmap((void *) NULL,length,PROT_READ,MAP_SHARED,file,0);
  if (header == (uint8_t *) MAP_FAILED)
    header=(uint8_t *) NULL;
  status=(-1);
  (void) CopyMagickString(error,"cannot map the segment",sizeof(error));
  if (header != (uint8_t *) NULL)
    status=dpc_shmimg_parse(header,length,size,header_length,*frames,0,
      number_frames,error,sizeof(error));
  if (status == 1)
    {
      (void) munmap(header,length);
      length=(size_t) *header_length;
      header=(uint8_t *) mmap((void *) NULL,length,PROT_READ,MAP_SHARED,file,
        0);
      *frames=(struct dpc_shmimg_frame *) AcquireQuantumMemory(
        *number_frames,sizeof(**frames));
      status=(-1);
      if ((header == (uint8_t *) MAP_FAILED) ||
          (*frames == (struct dpc_shmimg_frame *) NULL))
        (void) CopyMagickString(error,"cannot map the header",sizeof(error));
      else
        status=dpc_shmimg_parse(header,length,size,header_length,*frames,
          *number_frames,number_frames,error,sizeof(error));
      if (header == (uint8_t *) MAP_FAILED)
        header=(uint8_t *) NULL;
    }
  if (status != 0)
    {
      if (header != (uint8_t *) NULL)
        (void) munmap(header,length);
      if (*frames != (struct dpc_shmimg_frame *) NULL)
        *frames=(struct dpc_shmimg_frame *) RelinquishMagickMemory(*frames);
      (void) ThrowMagickException(exception,GetMagickModule(),
        CorruptImageError,"CorruptSharedMemoryImage","`%s': %s",name,error);
      return((uint8_t *) NULL);
    }
  return(header);
}

static Image *ReadSHMImage(const ImageInfo *image_info,ExceptionInfo *exception)
{
  char
    error[DPC_ERRLEN];

  Image
    *image;

  int
    file;

  MagickBooleanType
    status;

  ssize_t
    i;

  struct dpc_lp_req
    request;

  struct dpc_shmc
    *client;

  struct dpc_shmimg_frame
    *frames;

  uint32_t
    header_length,
    number_frames;

  uint64_t
    id,
    size;

  uint8_t
    *header;

  assert(image_info != (const ImageInfo *) NULL);
  assert(image_info->signature == MagickCoreSignature);
  assert(exception != (ExceptionInfo *) NULL);
  assert(exception->signature == MagickCoreSignature);
  if (image_info->debug != MagickFalse)
    (void) LogMagickEvent(TraceEvent,GetMagickModule(),"%s",
      image_info->filename);
  (void) memset(&request,0,sizeof(request));
  request.op=DPC_LP_ATTACH;
  if (ParseSHMName(image_info->filename,&request,exception) == MagickFalse)
    return((Image *) NULL);
  client=ConnectSHM(image_info,exception);
  if (client == (struct dpc_shmc *) NULL)
    return((Image *) NULL);
  file=(-1);
  if (dpc_shmc_grant(client,&request,&file,&id,&size,error,sizeof(error)) < 0)
    (void) ThrowMagickException(exception,GetMagickModule(),
      dpc_shmc_last_status(client) == DPC_LP_ENOENT ? FileOpenError :
      CacheError,"UnableToAttachSharedMemory","`%s': %s",image_info->filename,
      error);
  dpc_shmc_close(client);
  if (file < 0)
    return((Image *) NULL);
  header=MapSHMHeader(image_info->filename,file,size,&header_length,&frames,
    &number_frames,exception);
  if (header == (uint8_t *) NULL)
    {
      (void) close(file);
      return((Image *) NULL);
    }
  image=AcquireImage(image_info);
  status=MagickTrue;
  for (i=0; i < (ssize_t) number_frames; i++)
  {
    if (i != 0)
      {
        AcquireNextImage(image_info,image);
        if (GetNextImageInList(image) == (Image *) NULL)
          {
            status=MagickFalse;
            break;
          }
        image=SyncNextImageInList(image);
      }
    status=SetSHMAttributes(image,header+frames[i].meta_off,
      frames[i].meta_len,exception);
    if ((status != MagickFalse) &&
        (SHMPixelLength(image) != (MagickSizeType) frames[i].pix_len))
      {
        (void) ThrowMagickException(exception,GetMagickModule(),
          CorruptImageError,"CorruptSharedMemoryImage","`%s': frame %.20g "
          "holds %.20g bytes of pixels, its geometry needs %.20g",
          image_info->filename,(double) i,(double) frames[i].pix_len,(double)
          SHMPixelLength(image));
        status=MagickFalse;
      }
    if ((status != MagickFalse) && (image_info->ping == MagickFalse))
      status=AttachSHMPixels(image,file,frames+i,exception);
    if (status == MagickFalse)
      break;
  }
  (void) munmap(header,header_length);
  frames=(struct dpc_shmimg_frame *) RelinquishMagickMemory(frames);
  (void) close(file);
  if (status == MagickFalse)
    return(DestroyImageList(GetFirstImageInList(image)));
  return(GetFirstImageInList(image));
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
%   R e g i s t e r S H M I m a g e                                           %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  RegisterSHMImage() adds attributes for the SHM image format to the list of
%  supported formats.
%
%  The format of the RegisterSHMImage method is:
%
%      size_t RegisterSHMImage(void)
%
*/
ModuleExport size_t RegisterSHMImage(void)
{
  MagickInfo
    *entry;

  entry=SetMagickInfo("SHM");
  entry->decoder=(DecodeImageHandler *) ReadSHMImage;
  entry->encoder=(EncodeImageHandler *) WriteSHMImage;
  entry->adjoin=MagickTrue;
  entry->blob_support=MagickFalse;
  entry->seekable_stream=MagickFalse;
  entry->format_type=ImplicitFormatType;
  entry->description=ConstantString(
    "Image handed between processes in magick-dpc shared memory");
  entry->module=ConstantString("SHM");
  (void) RegisterMagickInfo(entry);
  return(MagickImageCoderSignature);
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
%   U n r e g i s t e r S H M I m a g e                                       %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  UnregisterSHMImage() removes format registrations made by the SHM module
%  from the list of supported formats.
%
%  The format of the UnregisterSHMImage method is:
%
%      UnregisterSHMImage(void)
%
*/
ModuleExport void UnregisterSHMImage(void)
{
  (void) UnregisterMagickInfo("SHM");
}

/*
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%                                                                             %
%                                                                             %
%                                                                             %
%   W r i t e S H M I m a g e                                                 %
%                                                                             %
%                                                                             %
%                                                                             %
%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%
%
%  WriteSHMImage() publishes an image (every frame, unless +adjoin) under
%  image_info->filename, replacing the owner's earlier image of that name.
%
%  The format of the WriteSHMImage method is:
%
%      MagickBooleanType WriteSHMImage(const ImageInfo *image_info,
%        Image *image)
%
%  A description of each parameter follows.
%
%    o image_info: the image info.
%
%    o image:  The image.
%
*/

static void AddSHMColor(struct dpc_shmimg_blob *blob,const char *key,
  const PixelPacket *color)
{
  dpc_shmimg_add(blob,DPC_SHMIMG_BYTES,key,color,sizeof(*color));
}

static void AddSHMAttributes(struct dpc_shmimg_blob *blob,Image *image)
{
  char
    key[MaxTextExtent];

  const char
    *name;

  dpc_shmimg_add_u64(blob,"quantum",MAGICKCORE_QUANTUM_DEPTH);
  dpc_shmimg_add_u64(blob,"hdri",MAGICKCORE_HDRI_ENABLE);
  dpc_shmimg_add_u64(blob,"packet",sizeof(PixelPacket));
  dpc_shmimg_add_u64(blob,"index_packet",sizeof(IndexPacket));
  dpc_shmimg_add_u64(blob,"columns",image->columns);
  dpc_shmimg_add_u64(blob,"rows",image->rows);
  dpc_shmimg_add_u64(blob,"class",(uint64_t) image->storage_class);
  dpc_shmimg_add_u64(blob,"colorspace",(uint64_t) image->colorspace);
  dpc_shmimg_add_u64(blob,"matte",(uint64_t) image->matte);
  dpc_shmimg_add_u64(blob,"depth",image->depth);
  dpc_shmimg_add_u64(blob,"units",(uint64_t) image->units);
  dpc_shmimg_add_u64(blob,"compression",(uint64_t) image->compression);
  dpc_shmimg_add_u64(blob,"quality",image->quality);
  dpc_shmimg_add_u64(blob,"interlace",(uint64_t) image->interlace);
  dpc_shmimg_add_u64(blob,"dispose",(uint64_t) image->dispose);
  dpc_shmimg_add_u64(blob,"intent",(uint64_t) image->rendering_intent);
  dpc_shmimg_add_u64(blob,"orientation",(uint64_t) image->orientation);
  dpc_shmimg_add_u64(blob,"gravity",(uint64_t) image->gravity);
  dpc_shmimg_add_u64(blob,"compose",(uint64_t) image->compose);
  dpc_shmimg_add_u64(blob,"endian",(uint64_t) image->endian);
  dpc_shmimg_add_u64(blob,"delay",image->delay);
  dpc_shmimg_add_u64(blob,"ticks_per_second",(uint64_t) (int64_t)
    image->ticks_per_second);
  dpc_shmimg_add_u64(blob,"iterations",image->iterations);
  dpc_shmimg_add_u64(blob,"scene",image->scene);
  dpc_shmimg_add_u64(blob,"page.width",image->page.width);
  dpc_shmimg_add_u64(blob,"page.height",image->page.height);
  dpc_shmimg_add_u64(blob,"page.x",(uint64_t) (int64_t) image->page.x);
  dpc_shmimg_add_u64(blob,"page.y",(uint64_t) (int64_t) image->page.y);
  dpc_shmimg_add_f64(blob,"x_resolution",image->x_resolution);
  dpc_shmimg_add_f64(blob,"y_resolution",image->y_resolution);
  dpc_shmimg_add_f64(blob,"gamma",image->gamma);
  dpc_shmimg_add_f64(blob,"fuzz",image->fuzz);
  dpc_shmimg_add_f64(blob,"red_primary.x",image->chromaticity.red_primary.x);
  dpc_shmimg_add_f64(blob,"red_primary.y",image->chromaticity.red_primary.y);
  dpc_shmimg_add_f64(blob,"green_primary.x",
    image->chromaticity.green_primary.x);
  dpc_shmimg_add_f64(blob,"green_primary.y",
    image->chromaticity.green_primary.y);
  dpc_shmimg_add_f64(blob,"blue_primary.x",image->chromaticity.blue_primary.x);
  dpc_shmimg_add_f64(blob,"blue_primary.y",image->chromaticity.blue_primary.y);
  dpc_shmimg_add_f64(blob,"white_point.x",image->chromaticity.white_point.x);
  dpc_shmimg_add_f64(blob,"white_point.y",image->chromaticity.white_point.y);
  AddSHMColor(blob,"background_color",&image->background_color);
  AddSHMColor(blob,"border_color",&image->border_color);
  AddSHMColor(blob,"matte_color",&image->matte_color);
  AddSHMColor(blob,"transparent_color",&image->transparent_color);
  if ((image->storage_class == PseudoClass) && (image->colors != 0))
    dpc_shmimg_add(blob,DPC_SHMIMG_BYTES,"colormap",image->colormap,
      image->colors*sizeof(*image->colormap));
  ResetImagePropertyIterator(image);
  for (name=GetNextImageProperty(image); name != (const char *) NULL;
       name=GetNextImageProperty(image))
  {
    const char
      *value;

    value=GetImageProperty(image,name);
    if (value == (const char *) NULL)
      continue;
    (void) FormatLocaleString(key,MaxTextExtent,"property:%s",name);
    dpc_shmimg_add(blob,DPC_SHMIMG_STR,key,value,strlen(value));
  }
  ResetImageProfileIterator(image);
  for (name=GetNextImageProfile(image); name != (const char *) NULL;
       name=GetNextImageProfile(image))
  {
    const StringInfo
      *profile;

    profile=GetImageProfile(image,name);
    if (profile == (const StringInfo *) NULL)
      continue;
    (void) FormatLocaleString(key,MaxTextExtent,"profile:%s",name);
    dpc_shmimg_add(blob,DPC_SHMIMG_BYTES,key,GetStringInfoDatum(profile),
      GetStringInfoLength(profile));
  }
}

static MagickBooleanType CopySHMFrame(Image *image,uint8_t *target)
{
  IndexPacket
    *indexes;

  PixelPacket
    *pixels;

  ssize_t
    y;

  pixels=(PixelPacket *) target;
  indexes=(IndexPacket *) (pixels+image->columns*image->rows);
  for (y=0; y < (ssize_t) image->rows; y++)
  {
    const IndexPacket
      *p_indexes;

    const PixelPacket
      *p;

    p=GetVirtualPixels(image,0,y,image->columns,1,&image->exception);
    if (p == (const PixelPacket *) NULL)
      return(MagickFalse);
    (void) memcpy(pixels+y*image->columns,p,image->columns*sizeof(*p));
    if (SHMHasIndexes(image) != MagickFalse)
      {
        p_indexes=GetVirtualIndexQueue(image);
        if (p_indexes == (const IndexPacket *) NULL)
          return(MagickFalse);
        (void) memcpy(indexes+y*image->columns,p_indexes,image->columns*
          sizeof(*p_indexes));
      }
  }
  return(MagickTrue);
}

static MagickBooleanType PublishSHMImage(const ImageInfo *image_info,
  Image *image,struct dpc_shmc *client,struct dpc_lp_req *request,
  struct dpc_shmimg_blob *blobs,const uint32_t number_frames)
{
  char
    error[DPC_ERRLEN];

  Image
    *next;

  int
    file;

  MagickBooleanType
    status;

  struct dpc_shmimg_frame
    *frames;

  uint32_t
    header_length,
    *meta_lengths;

  uint64_t
    id,
    *pixel_lengths,
    size;

  uint8_t
    *map;

  ssize_t
    i;

  frames=(struct dpc_shmimg_frame *) AcquireQuantumMemory(number_frames,
    sizeof(*frames));
  meta_lengths=(uint32_t *) AcquireQuantumMemory(number_frames,
    sizeof(*meta_lengths));
  pixel_lengths=(uint64_t *) AcquireQuantumMemory(number_frames,
    sizeof(*pixel_lengths));
  status=MagickFalse;
  (void) CopyMagickString(error,"out of memory",sizeof(error));
  if ((frames == (struct dpc_shmimg_frame *) NULL) ||
      (meta_lengths == (uint32_t *) NULL) || (pixel_lengths == (uint64_t *) NULL))
    goto done;
  for (next=image, i=0; i < (ssize_t) number_frames; next=GetNextImageInList(next), i++)
  {
    meta_lengths[i]=(uint32_t) blobs[i].len;
    pixel_lengths[i]=(uint64_t) SHMPixelLength(next);
  }
  if (dpc_shmimg_layout(number_frames,meta_lengths,pixel_lengths,frames,
      &header_length,&request->size,error,sizeof(error)) < 0)
    goto done;
  request->op=DPC_LP_PUBLISH;
  if (dpc_shmc_grant(client,request,&file,&id,&size,error,sizeof(error)) < 0)
    goto done;
  map=(uint8_t *) mmap((void *) NULL,(size_t) size,PROT_READ | PROT_WRITE,
    MAP_SHARED | MAP_POPULATE,file,0);  /* reserved: map every page at once */
  (void) close(file);
  if (map == (uint8_t *) MAP_FAILED)
    {
      (void) FormatLocaleString(error,sizeof(error),"mmap: %s",
        strerror(errno));
      goto done;
    }
  dpc_shmimg_put_header(map,header_length,size,frames,number_frames);
  status=MagickTrue;
  for (next=image, i=0; i < (ssize_t) number_frames; next=GetNextImageInList(next), i++)
  {
    (void) memcpy(map+frames[i].meta_off,blobs[i].data,blobs[i].len);
    if (CopySHMFrame(next,map+frames[i].pix_off) == MagickFalse)
      status=MagickFalse;
    if (SetImageProgress(image,SHMSaveTag,i,number_frames) == MagickFalse)
      status=MagickFalse;
  }
  (void) munmap(map,(size_t) size);
  /*
    Unmapped, the server can seal it read-only and give it its name.
  */
  request->op=status != MagickFalse ? DPC_LP_COMMIT : DPC_LP_FREE;
  request->id=id;
  if (dpc_shmc_simple(client,request,error,sizeof(error)) < 0)
    status=MagickFalse;
  else
    if (status == MagickFalse)
      (void) CopyMagickString(error,"cannot read the image's pixels",
        sizeof(error));
done:
  if (status == MagickFalse)
    (void) ThrowMagickException(&image->exception,GetMagickModule(),
      CacheError,"UnableToPublishSharedMemory","`%s': %s",
      image_info->filename,error);
  if (frames != (struct dpc_shmimg_frame *) NULL)
    frames=(struct dpc_shmimg_frame *) RelinquishMagickMemory(frames);
  if (meta_lengths != (uint32_t *) NULL)
    meta_lengths=(uint32_t *) RelinquishMagickMemory(meta_lengths);
  if (pixel_lengths != (uint64_t *) NULL)
    pixel_lengths=(uint64_t *) RelinquishMagickMemory(pixel_lengths);
  return(status);
}

static MagickBooleanType WriteSHMImage(const ImageInfo *image_info,
  Image *image)
{
  char
    error[DPC_ERRLEN];

  const char
    *option;

  Image
    *next;

  MagickBooleanType
    status;

  size_t
    number_frames;

  ssize_t
    i;

  struct dpc_lp_req
    request;

  struct dpc_shmc
    *client;

  struct dpc_shmimg_blob
    *blobs;

  assert(image_info != (const ImageInfo *) NULL);
  assert(image_info->signature == MagickCoreSignature);
  assert(image != (Image *) NULL);
  assert(image->signature == MagickCoreSignature);
  if (image->debug != MagickFalse)
    (void) LogMagickEvent(TraceEvent,GetMagickModule(),"%s",image->filename);
  (void) memset(&request,0,sizeof(request));
  if (ParseSHMName(image_info->filename,&request,&image->exception) ==
      MagickFalse)
    return(MagickFalse);
  if (request.owner != DPC_LP_SELF)
    ThrowSHMWriterException(OptionError,"PublishOnlyUnderYourOwnName");
  option=GetImageOption(image_info,"shm:ttl");
  if ((option != (const char *) NULL) &&
      (dpc_parse_duration_ms(option,&request.ttl_ms,error,sizeof(error)) < 0))
    {
      (void) ThrowMagickException(&image->exception,GetMagickModule(),
        OptionError,"InvalidArgument","shm:ttl: %s",error);
      return(MagickFalse);
    }
  number_frames=image_info->adjoin != MagickFalse ?
    GetImageListLength(image) : 1;
  if (number_frames > DPC_SHMIMG_MAX_FRAMES)
    ThrowSHMWriterException(ImageError,"TooManyFrames");
  blobs=(struct dpc_shmimg_blob *) AcquireQuantumMemory(number_frames,
    sizeof(*blobs));
  if (blobs == (struct dpc_shmimg_blob *) NULL)
    ThrowSHMWriterException(ResourceLimitError,"MemoryAllocationFailed");
  (void) memset(blobs,0,number_frames*sizeof(*blobs));
  status=MagickTrue;
  for (next=image, i=0; i < (ssize_t) number_frames; next=GetNextImageInList(next), i++)
  {
    AddSHMAttributes(blobs+i,next);
    if ((blobs[i].failed != 0) || (blobs[i].len > UINT32_MAX))
      status=MagickFalse;
  }
  client=(struct dpc_shmc *) NULL;
  if (status == MagickFalse)
    (void) ThrowMagickException(&image->exception,GetMagickModule(),
      ResourceLimitError,"MemoryAllocationFailed","`%s'",image->filename);
  else
    {
      client=ConnectSHM(image_info,&image->exception);
      status=client != (struct dpc_shmc *) NULL ? PublishSHMImage(image_info,
        image,client,&request,blobs,(uint32_t) number_frames) : MagickFalse;
      dpc_shmc_close(client);
    }
  for (i=0; i < (ssize_t) number_frames; i++)
    dpc_shmimg_blob_free(blobs+i);
  blobs=(struct dpc_shmimg_blob *) RelinquishMagickMemory(blobs);
  return(status);
}
