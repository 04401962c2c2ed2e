/*
 * dpc_tls: see dpc_tls.h.
 */
#include "dpc_tls.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>

#include "dpc_util.h"

#define WRITE_PACK (16 * 1024)  /* small iovecs packed into one record */
#define WRITE_SMALL 4096        /* an iovec shorter than this is packed */
#define READ_BOUNCE (16 * 1024) /* runs shorter than WRITE_SMALL are read
                                   through this, a record at a time */
/* A session's default lifetime is 304 s, after which OpenSSL no longer
 * accepts it: the PSK's lasts as long as the process (10 years). */
#define DPC_TLS_SID_CTX "magick-dpc"
#define DPC_TLS_SID_LEN (sizeof(DPC_TLS_SID_CTX) - 1)
#define DPC_TLS_PSK_LIFETIME (10L * 365 * 24 * 3600)

int dpc_tls_parse_mode(const char *s, int allow_both, enum dpc_tls_mode *mode,
                       char *err, size_t errlen)
{
    static const char *const on[] = { "on", "true", "yes", "1" };
    static const char *const off[] = { "off", "false", "no", "0" };

    for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
        if (strcasecmp(s, on[i]) == 0) {
            *mode = DPC_TLS_ON;
            return 0;
        }
        if (strcasecmp(s, off[i]) == 0) {
            *mode = DPC_TLS_OFF;
            return 0;
        }
    }
    if (allow_both && strcasecmp(s, "both") == 0) {
        *mode = DPC_TLS_BOTH;
        return 0;
    }
    return dpc_errc(err, errlen, DPC_E_INVALID, "'%s' is not %s", s,
                    allow_both ? "on, off or both" : "on or off");
}

const char *dpc_tls_mode_name(enum dpc_tls_mode mode)
{
    return mode == DPC_TLS_ON ? "on" : mode == DPC_TLS_BOTH ? "both" : "off";
}

int dpc_tls_derive_psk(const char *secret, size_t len,
                       uint8_t psk[DPC_TLS_PSK_LEN], char *err,
                       size_t errlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[4];
    int rc = -1;

    if (len == 0) {
        dpc_errc(err, errlen, DPC_E_INVALID, "empty shared secret");
        goto out;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                  (void *)secret, len);
    params[2] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_INFO, (void *)DPC_TLS_PSK_LABEL,
        sizeof(DPC_TLS_PSK_LABEL) - 1);
    params[3] = OSSL_PARAM_construct_end();
    if (kctx == NULL || EVP_KDF_derive(kctx, psk, DPC_TLS_PSK_LEN, params) <= 0)
        dpc_tls_err(err, errlen, "HKDF");
    else
        rc = 0;
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

int dpc_tls_is_client_hello(const uint8_t *p, size_t n)
{
    unsigned rec, hs;

    /* Each byte we have must fit; with fewer than 8, we cannot tell. */
    if ((n > 0 && p[0] != 0x16) || (n > 1 && p[1] != 0x03) ||
        (n > 2 && (p[2] < 0x01 || p[2] > 0x04)) || (n > 5 && p[5] != 0x01) ||
        (n > 6 && p[6] != 0x00))
        return 0;
    if (n < 8)
        return -1;
    /* record: type, version (2), length (2); then the handshake message:
     * type 1 (ClientHello), a 24-bit length of record length - 4. */
    rec = (unsigned)p[3] << 8 | p[4];
    if (rec < 4 + 38 || rec > 16384)
        return 0;
    hs = rec - 4;
    return p[7] == (hs >> 8) ? 1 : 0;
}

int dpc_tls_ctx_tune(SSL_CTX *ctx, char *err, size_t errlen)
{
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_ciphersuites(ctx, DPC_TLS_CIPHERSUITES) != 1 ||
        SSL_CTX_set1_groups_list(ctx, DPC_TLS_GROUPS) != 1) {
        dpc_tls_err(err, errlen, "TLS settings");
        return -1;
    }
    /* No session tickets (each connection is a full PSK-DHE or certificate
     * handshake); a peer closing without close_notify is a plain EOF, as
     * on a plaintext link (the native protocol frames every reply). */
    SSL_CTX_set_num_tickets(ctx, 0);
    /* required once client certificates are verified */
    if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)
                                       DPC_TLS_SID_CTX, DPC_TLS_SID_LEN) != 1) {
        dpc_tls_err(err, errlen, "TLS settings");
        return -1;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_NO_DHE_KEX);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* read many records per read(2), not a header and a body each */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, DPC_TLS_READ_BUF);
    return 0;
}

/* A socket BIO whose writes never raise SIGPIPE: a peer gone mid-write
 * is an EPIPE error for the caller, not the death of the process (the
 * client runs inside ImageMagick programs that keep SIGPIPE's default). */
static int nosig_write(BIO *b, const char *buf, int n)
{
    int fd = -1;
    ssize_t k;

    BIO_get_fd(b, &fd);
    BIO_clear_retry_flags(b);
    k = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
    if (k < 0 && BIO_sock_should_retry((int)k))
        BIO_set_retry_write(b);
    return (int)k;
}

static BIO_METHOD *nosig_method;

static void nosig_init(void)
{
    const BIO_METHOD *base = BIO_s_socket();
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOCKET, "socket, no SIGPIPE");

    if (m == NULL)
        return;
    if (BIO_meth_set_write(m, nosig_write) != 1 ||
        BIO_meth_set_read(m, BIO_meth_get_read(base)) != 1 ||
        BIO_meth_set_puts(m, BIO_meth_get_puts(base)) != 1 ||
        BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(base)) != 1 ||
        BIO_meth_set_create(m, BIO_meth_get_create(base)) != 1 ||
        BIO_meth_set_destroy(m, BIO_meth_get_destroy(base)) != 1) {
        BIO_meth_free(m);
        return;
    }
    nosig_method = m;
}

int dpc_tls_set_fd(SSL *ssl, int fd)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    BIO *sock, *buf;

    pthread_once(&once, nosig_init);
    if (nosig_method == NULL)
        return -1;
    sock = BIO_new(nosig_method);
    buf = BIO_new(BIO_f_buffer());
    if (sock == NULL || buf == NULL ||
        BIO_set_write_buffer_size(buf, DPC_TLS_WRITE_BUF) != 1 ||
        BIO_up_ref(sock) != 1) {
        BIO_free(sock);
        BIO_free(buf);
        return -1;
    }
    BIO_set_fd(sock, fd, BIO_NOCLOSE);
    /* the socket BIO is the SSL's rbio and, below the buffer, its wbio:
     * one reference each */
    BIO_push(buf, sock);
    SSL_set_bio(ssl, sock, buf);
    return 0;
}

int dpc_tls_flush(SSL *ssl)
{
    BIO *w = SSL_get_wbio(ssl);

    if (BIO_wpending(w) == 0)
        return 1;
    errno = 0;
    if (BIO_flush(w) > 0 && BIO_wpending(w) == 0)
        return 1;
    if (BIO_should_retry(w) || errno == EAGAIN || errno == EINTR)
        return 0;
    if (errno == 0)
        errno = EPIPE;
    return -1;
}

SSL_SESSION *dpc_tls_psk_session(const uint8_t psk[DPC_TLS_PSK_LEN])
{
    static const unsigned char aes128[] = { 0x13, 0x01 };
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
    const SSL_CIPHER *cipher = ssl != NULL
                                   ? SSL_CIPHER_find(ssl, aes128) : NULL;
    SSL_SESSION *sess = cipher != NULL ? SSL_SESSION_new() : NULL;

    if (sess != NULL &&
        (SSL_SESSION_set1_master_key(sess, psk, DPC_TLS_PSK_LEN) != 1 ||
         SSL_SESSION_set_cipher(sess, cipher) != 1 ||
         SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION) != 1 ||
         SSL_SESSION_set_timeout(sess, DPC_TLS_PSK_LIFETIME) == 0 ||
         SSL_SESSION_set1_id_context(sess, (const unsigned char *)
                                     DPC_TLS_SID_CTX, DPC_TLS_SID_LEN) != 1)) {
        SSL_SESSION_free(sess);
        sess = NULL;
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return sess;
}

void dpc_tls_err(char *err, size_t errlen, const char *what)
{
    char buf[256] = "";
    unsigned long e, last = 0;

    while ((e = ERR_get_error()) != 0)
        last = e;               /* the last queued error says the most */
    if (last != 0)
        ERR_error_string_n(last, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "%s", errno != 0 ? strerror(errno)
                                                      : "unknown error");
    dpc_errf(err, errlen, "%s: %s", what, buf);
}

/* Maps a failed SSL call to the dpc_tls_readv/writev convention. */
static ssize_t failed(SSL *ssl, int rc, short *want, char *err,
                      size_t errlen)
{
    int e = SSL_get_error(ssl, rc);
    int saved = errno;

    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = POLLIN;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *want = POLLOUT;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (saved == 0)
            return 0;           /* EOF */
        errno = saved;
        return -1;
    default:
        dpc_tls_err(err, errlen, "TLS");
        errno = ECONNRESET;
        return -1;
    }
}

/* Copies k bytes from src into iov[*i] at *off on, advancing both. */
static void scatter(const struct iovec *iov, int *i, size_t *off,
                    const uint8_t *src, size_t k)
{
    while (k > 0) {
        size_t room = iov[*i].iov_len - *off, c = room < k ? room : k;

        memcpy((uint8_t *)iov[*i].iov_base + *off, src, c);
        src += c;
        k -= c;
        *off += c;
        if (*off == iov[*i].iov_len) {
            (*i)++;
            *off = 0;
        }
    }
}

ssize_t dpc_tls_readv(SSL *ssl, const struct iovec *iov, int n, short *want,
                      char *err, size_t errlen)
{
    uint8_t bounce[READ_BOUNCE];
    size_t total = 0, off = 0, k, len;
    int i = 0;

    *want = POLLIN;
    while (i < n) {
        uint8_t *p;

        if (iov[i].iov_len == 0) {
            i++;
            continue;
        }
        if (iov[i].iov_len - off >= WRITE_SMALL) {
            /* a large run: straight into place */
            p = (uint8_t *)iov[i].iov_base + off;
            len = iov[i].iov_len - off;
        } else {
            /* small runs (rows of a tile): one read for many, never past
             * what the iovecs hold (later bytes are another reply's) */
            len = 0;
            for (int j = i; j < n && len < sizeof(bounce); j++)
                len += j == i ? iov[j].iov_len - off : iov[j].iov_len;
            if (len > sizeof(bounce))
                len = sizeof(bounce);
            p = bounce;
        }
        errno = 0;
        if (SSL_read_ex(ssl, p, len, &k) != 1) {
            ssize_t rc = failed(ssl, 0, want, err, errlen);

            /* bytes already moved are reported first; an error recurs on
             * the next call */
            return total > 0 ? (ssize_t)total : rc;
        }
        total += k;
        if (p == bounce) {
            scatter(iov, &i, &off, bounce, k);
        } else {
            off += k;
            if (off == iov[i].iov_len) {
                i++;
                off = 0;
            }
        }
    }
    return (ssize_t)total;
}

ssize_t dpc_tls_writev(SSL *ssl, const struct iovec *iov, int n, short *want,
                       char *err, size_t errlen)
{
    uint8_t pack[WRITE_PACK];
    size_t total = 0, k, len, off;
    const uint8_t *p;
    ssize_t rc;
    int i = 0;

    *want = POLLOUT;
    while (i < n) {
        if (iov[i].iov_len >= WRITE_SMALL || i + 1 == n ||
            iov[i + 1].iov_len >= WRITE_PACK - iov[i].iov_len) {
            p = iov[i].iov_base;
            len = iov[i].iov_len;
            i++;
        } else {
            /* a run of small ones, deterministically from iov[i], so a
             * retry after EAGAIN presents the same bytes first */
            for (len = 0; i < n && iov[i].iov_len < WRITE_SMALL &&
                          len + iov[i].iov_len <= WRITE_PACK; i++) {
                memcpy(pack + len, iov[i].iov_base, iov[i].iov_len);
                len += iov[i].iov_len;
            }
            p = pack;
        }
        for (off = 0; off < len; off += k) {
            errno = 0;
            if (SSL_write_ex(ssl, p + off, len - off, &k) != 1) {
                rc = failed(ssl, 0, want, err, errlen);
                if (rc == 0) {          /* no "closed" for a writer */
                    errno = EPIPE;
                    rc = -1;
                }
                return total > 0 ? (ssize_t)total : rc;
            }
            total += k;
        }
    }
    return (ssize_t)total;
}
