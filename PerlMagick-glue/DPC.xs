/*
  DPC.xs: the part of Image::Magick::DPC that Perl cannot reach through
  Image::Magick: the image registry (string entries only), where the drop-in
  libMagickCore and the shm: coder look for cache: settings after an
  image's own -define, and two facts about the libMagickCore loaded in this
  process.  It links the libMagickCore Image::Magick loaded (the same
  soname), so the registry is the one Image::Magick's images see.
  MagickCore is started by Image::Magick, which DPC.pm loads first.
*/
#define PERL_NO_GET_CONTEXT
#include "EXTERN.h"
#include "perl.h"
#include "XSUB.h"

#include <dlfcn.h>
/* magick-config.h defines MAGICKCORE_CODER_PATH only when it is set. */
#define MAGICKCORE_POSIX_SUPPORT
#include <magick/MagickCore.h>

MODULE = Image::Magick::DPC  PACKAGE = Image::Magick::DPC  PREFIX = dpc_

PROTOTYPES: DISABLE

void
dpc__registry_set(key,value)
    const char *key
    const char *value
  PREINIT:
    ExceptionInfo
      *exception;

    MagickBooleanType
      status;
  CODE:
    exception=AcquireExceptionInfo();
    status=SetImageRegistry(StringRegistryType,key,value,exception);
    exception=DestroyExceptionInfo(exception);
    if (status == MagickFalse)
      croak("Image::Magick::DPC: cannot set %s in the image registry",key);

SV *
dpc__registry_get(key)
    const char *key
  PREINIT:
    char
      *value;

    ExceptionInfo
      *exception;
  CODE:
    exception=AcquireExceptionInfo();
    value=(char *) GetImageRegistry(StringRegistryType,key,exception);
    exception=DestroyExceptionInfo(exception);
    if (value == (char *) NULL)
      XSRETURN_UNDEF;
    RETVAL=newSVpv(value,0);
    value=DestroyString(value);
  OUTPUT:
    RETVAL

void
dpc__registry_delete(key)
    const char *key
  CODE:
    (void) DeleteImageRegistry(key);

const char *
dpc__system_coder_path()
  CODE:
    RETVAL=MAGICKCORE_CODER_PATH;
  OUTPUT:
    RETVAL

SV *
dpc__library()
  PREINIT:
    Dl_info
      info;
  CODE:
    if ((dladdr((void *) GetMagickVersion,&info) == 0) ||
        (info.dli_fname == (const char *) NULL))
      XSRETURN_UNDEF;
    RETVAL=newSVpv(info.dli_fname,0);
  OUTPUT:
    RETVAL
