/*
 * dpc_parse: strict parsing of numbers and addresses from text (command
 * line, policy.xml).  Empty input, signs, trailing junk and overflow are
 * rejected.  Pure functions; errors go to the caller's buffer.
 */
#ifndef DPC_PARSE_H
#define DPC_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define DPC_DEFAULT_PORT 6668

/* A decimal unsigned integer. */
int dpc_parse_u64(const char *s, uint64_t *out, char *err, size_t errlen);
/* A byte size: digits with an optional suffix B, KiB/MiB/GiB/TiB (or K, M,
 * G, T: powers of 1024), KB/MB/GB/TB (powers of 1000); case-insensitive. */
int dpc_parse_size(const char *s, uint64_t *out, char *err, size_t errlen);
/* A duration in seconds, with an optional suffix ms, s, m or h; out in ms. */
int dpc_parse_duration_ms(const char *s, uint64_t *out, char *err,
                          size_t errlen);
/* HOST:PORT, [V6ADDR]:PORT, or HOST alone (default port).  host gets the
 * name without brackets. */
int dpc_parse_hostport(const char *s, char *host, size_t hostlen,
                       unsigned *port, char *err, size_t errlen);

/* The shortest cache:shared-secret either side accepts, in bytes. */
#define DPC_SECRET_MIN_LEN 16
/* How to make a good one, for error messages. */
#define DPC_SECRET_HOWTO "generate one with: openssl rand -base64 32"

/* Whether a cache:shared-secret of len bytes is fit for use: 0, or
 * -DPC_E_INVALID with the reason in err (never the secret itself) when it
 * is shorter than DPC_SECRET_MIN_LEN or a placeholder (CHANGE-ME,
 * replace-me, your-secret, the README's "a long random string", one
 * character repeated, ...; compared ignoring case and punctuation). */
int dpc_parse_secret_check(const char *secret, size_t len, char *err,
                           size_t errlen);

#endif
