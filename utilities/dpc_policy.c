/*
 * dpc_policy: see dpc_policy.h.  The only file of the server that includes
 * MagickCore, and only a child process runs it: ImageMagick keeps every
 * policy value it has read in its policy cache until exit, and frees the
 * file and XML buffers it parsed without clearing them, so a server that
 * read policy.xml itself would hold the shared secret in its memory for
 * its whole life.  The child reads the cache domain's settings and derives
 * the keys; it sends the parent the settings and the keys, never the
 * secret, and exits.  Single-threaded: call dpc_policy_init() before any
 * thread starts.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <magick/MagickCore.h>

#include "dpc_parse.h"
#include "dpc_policy.h"
#include "dpc_util.h"

#define MAX_SETTINGS 1024
#define MAX_RECORD (64 * 1024)

/* Records from the child: a type byte, a 4-byte length, the payload. */
enum record {
    REC_SETTING = 'S',              /* name, NUL, value */
    REC_KEYS = 'K',                 /* the SipHash key, then the native key */
    REC_BAD_SECRET = 'B',           /* why the secret was refused */
};

struct setting {
    char *name, *value;
};

static struct setting settings[MAX_SETTINGS];
static size_t nsettings;
static int have_keys, bad_secret;
static uint8_t sip_key[DPC_SIPHASH_KEYLEN], wire_key[DPC_WIRE_KEY_LEN];
static uint8_t tls_psk[DPC_TLS_PSK_LEN];
static char secret_err[DPC_ERRLEN];

static void clear_keys(void)
{
    explicit_bzero(sip_key, sizeof(sip_key));
    explicit_bzero(wire_key, sizeof(wire_key));
    explicit_bzero(tls_psk, sizeof(tls_psk));
    have_keys = 0;
}

/* Writes (out) or reads exactly n bytes of the pipe to or from the child;
 * -1 on an error or an early end. */
static int move_all(int fd, void *buf, size_t n, int out)
{
    char *p = buf;

    while (n > 0) {
        ssize_t k = out ? write(fd, p, n) : read(fd, p, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
    return move_all(fd, (void *)buf, n, 1);
}

static int read_all(int fd, void *buf, size_t n)
{
    return move_all(fd, buf, n, 0);
}

static int send_record(int fd, char type, const void *a, size_t alen,
                       const void *b, size_t blen)
{
    uint32_t len = (uint32_t)(alen + blen);

    if (alen + blen > MAX_RECORD)
        return 0;                   /* not a setting anyone wants */
    return write_all(fd, &type, 1) < 0 || write_all(fd, &len, 4) < 0 ||
                   write_all(fd, a, alen) < 0 || write_all(fd, b, blen) < 0
               ? -1 : 0;
}

/* In the child: the secret's keys, or why it is refused. */
static int child_secret(int fd)
{
    uint8_t keys[DPC_SIPHASH_KEYLEN + DPC_WIRE_KEY_LEN + DPC_TLS_PSK_LEN];
    char *secret = GetPolicyValue("cache:shared-secret"), err[DPC_ERRLEN];
    size_t len;
    int rc;

    if (secret == NULL)
        return 0;
    len = strlen(secret);
    if (dpc_parse_secret_check(secret, len, err, sizeof(err)) < 0) {
        explicit_bzero(secret, len);
        secret = DestroyString(secret);
        return send_record(fd, REC_BAD_SECRET, err, strlen(err), NULL, 0);
    }
    dpc_siphash_key_from_secret(secret, len, keys);
    dpc_wire_derive_key(secret, len, keys + DPC_SIPHASH_KEYLEN);
    rc = dpc_tls_derive_psk(secret, len,
                            keys + DPC_SIPHASH_KEYLEN + DPC_WIRE_KEY_LEN,
                            err, sizeof(err));
    explicit_bzero(secret, len);
    secret = DestroyString(secret);
    if (rc < 0) {
        explicit_bzero(keys, sizeof(keys));
        return send_record(fd, REC_BAD_SECRET, err, strlen(err), NULL, 0);
    }
    rc = send_record(fd, REC_KEYS, keys, sizeof(keys), NULL, 0);
    explicit_bzero(keys, sizeof(keys));
    return rc;
}

/* In the child: every setting of the cache domain (listed ones: the
 * secret is stealth and comes only through child_secret), then the keys. */
static void child(const char *argv0, int fd)
{
    ExceptionInfo *exception;
    char **names, key[MagickPathExtent], *value;
    size_t n = 0;
    int rc = 0;

    MagickCoreGenesis(argv0, MagickFalse);
    exception = AcquireExceptionInfo();
    names = GetPolicyList("*", &n, exception);
    exception = DestroyExceptionInfo(exception);
    for (size_t i = 0; names != NULL && i < n && rc == 0; i++) {
        if (LocaleCompare(names[i], "shared-secret") != 0) {
            (void) FormatLocaleString(key, sizeof(key), "cache:%s", names[i]);
            value = GetPolicyValue(key);
            if (value != NULL) {
                rc = send_record(fd, REC_SETTING, names[i],
                                 strlen(names[i]) + 1, value, strlen(value));
                value = DestroyString(value);
            }
        }
        names[i] = DestroyString(names[i]);
    }
    if (names != NULL)
        names = (char **) RelinquishMagickMemory(names);
    if (rc == 0)
        rc = child_secret(fd);
    _exit(rc == 0 ? 0 : 1);
}

/* In the parent: one record from the child; 1 on one, 0 at the end,
 * -1 on a malformed one. */
static int take_record(int fd)
{
    char type, *buf, *nul;
    uint32_t len;

    if (read_all(fd, &type, 1) < 0)
        return 0;
    if (read_all(fd, &len, 4) < 0 || len > MAX_RECORD ||
        (buf = malloc((size_t)len + 1)) == NULL)
        return -1;
    if (read_all(fd, buf, len) < 0)
        goto bad;
    buf[len] = '\0';
    if (type == REC_KEYS && len == DPC_SIPHASH_KEYLEN + DPC_WIRE_KEY_LEN +
                                       DPC_TLS_PSK_LEN) {
        memcpy(sip_key, buf, DPC_SIPHASH_KEYLEN);
        memcpy(wire_key, buf + DPC_SIPHASH_KEYLEN, DPC_WIRE_KEY_LEN);
        memcpy(tls_psk, buf + DPC_SIPHASH_KEYLEN + DPC_WIRE_KEY_LEN,
               DPC_TLS_PSK_LEN);
        have_keys = 1;
        explicit_bzero(buf, len);
    } else if (type == REC_BAD_SECRET) {
        snprintf(secret_err, sizeof(secret_err), "%s", buf);
        bad_secret = 1;
    } else if (type == REC_SETTING &&
               (nul = memchr(buf, '\0', len)) != NULL) {
        if (nsettings == MAX_SETTINGS)
            goto ignore;            /* past any the program reads */
        settings[nsettings].name = buf;
        settings[nsettings++].value = nul + 1;
        return 1;
    } else {
        goto bad;
    }
ignore:
    free(buf);
    return 1;
bad:
    free(buf);
    return -1;
}

int dpc_policy_init(const char *argv0)
{
    int fds[2], status = 0, rc = 0;
    pid_t pid;

    if (pipe(fds) < 0)
        return -1;
    pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        child(argv0, fds[1]);
    }
    close(fds[1]);
    while ((rc = take_record(fds[0])) > 0)
        ;
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (rc < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        dpc_policy_done();
        return -1;
    }
    return 0;
}

void dpc_policy_done(void)
{
    for (size_t i = 0; i < nsettings; i++)
        free(settings[i].name);
    nsettings = 0;
    clear_keys();
}

char *dpc_policy_get(const char *name)
{
    for (size_t i = 0; i < nsettings; i++)
        if (strcasecmp(settings[i].name, name) == 0)
            return strdup(settings[i].value);
    return NULL;
}

int dpc_policy_keys(uint8_t sipkey[DPC_SIPHASH_KEYLEN],
                    uint8_t wirekey[DPC_WIRE_KEY_LEN],
                    uint8_t psk[DPC_TLS_PSK_LEN], char *err, size_t errlen)
{
    if (bad_secret)
        return dpc_errc(err, errlen, DPC_E_INVALID, "%s", secret_err);
    if (!have_keys)
        return dpc_errc(err, errlen, DPC_E_INVALID, "no shared secret is "
                        "configured");
    memcpy(sipkey, sip_key, DPC_SIPHASH_KEYLEN);
    memcpy(wirekey, wire_key, DPC_WIRE_KEY_LEN);
    if (psk != NULL)
        memcpy(psk, tls_psk, DPC_TLS_PSK_LEN);
    clear_keys();
    return 0;
}
