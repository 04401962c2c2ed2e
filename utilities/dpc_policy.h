/*
 * dpc_policy: reads magick-dpc's settings from ImageMagick's policy.xml
 * through MagickCore's own policy API, so the server finds the same files
 * ImageMagick does (MAGICK_CONFIGURE_PATH, /etc/ImageMagick-6, the user's
 * config directory).  Call dpc_policy_init() once before any lookup.
 */
#ifndef DPC_POLICY_H
#define DPC_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "dpc_siphash.h"
#include "dpc_tls.h"
#include "dpc_wire.h"

/* Reads every setting of the cache domain and derives the keys from
 * cache:shared-secret, all in a child process (see dpc_policy.c): the
 * secret never enters this process.  0, or -1 when the child failed. */
int dpc_policy_init(const char *argv0);
void dpc_policy_done(void);

/* The value of <policy domain="cache" name=NAME value=.../> (not marked
 * stealth), malloc'd, or NULL when unset. */
char *dpc_policy_get(const char *name);

/* Hands over the stock (SipHash) and native keys and the TLS PSK (psk
 * may be NULL) derived from cache:shared-secret, once (its own copies are
 * then cleared).  A negative dpc_errcode with the reason in err when no
 * secret is configured or it is unfit (dpc_parse_secret_check: too short,
 * a placeholder). */
int dpc_policy_keys(uint8_t sipkey[DPC_SIPHASH_KEYLEN],
                    uint8_t wirekey[DPC_WIRE_KEY_LEN],
                    uint8_t psk[DPC_TLS_PSK_LEN], char *err, size_t errlen);

/* The line an operator adds to policy.xml to set the secret. */
#define DPC_POLICY_SECRET_HINT                                              \
    "<policy domain=\"cache\" name=\"shared-secret\" value=\"SECRET\" "    \
    "stealth=\"true\"/>"

#endif
