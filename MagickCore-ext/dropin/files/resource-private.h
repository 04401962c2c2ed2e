/*
  MagickCore private resource methods: the declaration Debian's
  8:6.9.11.60+dfsg-1.6+deb12u15 exports from resource.c (as ImageMagick
  6.9.13's magick/resource-private.h does), for the drop-in library's
  policy.c and resource.c.
*/
#ifndef MAGICKCORE_RESOURCE_PRIVATE_H
#define MAGICKCORE_RESOURCE_PRIVATE_H

#if defined(__cplusplus) || defined(c_plusplus)
extern "C" {
#endif

extern MagickExport MagickBooleanType
  IsFileResourceIdentityValid(const char *);

#if defined(__cplusplus) || defined(c_plusplus)
}
#endif

#endif
