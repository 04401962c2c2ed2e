/*
 * dpc_tlsclient: see dpc_tlsclient.h.
 */
#include "dpc_tlsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct dpc_tlsclient {
    SSL_CTX *ctx;
    SSL_SESSION *psk;               /* NULL in certificate mode */
    uint8_t key[DPC_TLS_PSK_LEN];
    char ca[512], cert[512], keyfile[512];
};

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dpc_tlsclient *ctxs[DPC_TLSCLIENT_MAX_CTX];
static size_t nctxs;
static int ctx_index = -1;

static const char *str(const char *s)
{
    return s != NULL ? s : "";
}

static int same(const struct dpc_tlsclient *t,
                const struct dpc_tlsclient_cfg *cfg)
{
    return CRYPTO_memcmp(t->key, cfg->psk, DPC_TLS_PSK_LEN) == 0 &&
           strcmp(t->ca, str(cfg->ca)) == 0 &&
           strcmp(t->cert, str(cfg->cert)) == 0 &&
           strcmp(t->keyfile, str(cfg->key)) == 0;
}

/* Offers our PSK identity (the SHA-256 suites only: that is the key's). */
static int use_psk(SSL *ssl, const EVP_MD *md, const unsigned char **id,
                   size_t *idlen, SSL_SESSION **sess)
{
    struct dpc_tlsclient *t =
        SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index);

    *sess = NULL;
    if (t == NULL || t->psk == NULL ||
        (md != NULL && !EVP_MD_is_a(md, "SHA256")))
        return 1;
    if (SSL_SESSION_up_ref(t->psk) != 1)
        return 0;
    *sess = t->psk;
    *id = (const unsigned char *)DPC_TLS_PSK_IDENTITY;
    *idlen = sizeof(DPC_TLS_PSK_IDENTITY) - 1;
    return 1;
}

static void free_ctx(struct dpc_tlsclient *t)
{
    if (t == NULL)
        return;
    SSL_SESSION_free(t->psk);
    SSL_CTX_free(t->ctx);
    OPENSSL_cleanse(t->key, sizeof(t->key));
    free(t);
}

static struct dpc_tlsclient *new_ctx(const struct dpc_tlsclient_cfg *cfg,
                                     char *err, size_t errlen)
{
    struct dpc_tlsclient *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        dpc_errc(err, errlen, DPC_E_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(t->key, cfg->psk, DPC_TLS_PSK_LEN);
    snprintf(t->ca, sizeof(t->ca), "%s", str(cfg->ca));
    snprintf(t->cert, sizeof(t->cert), "%s", str(cfg->cert));
    snprintf(t->keyfile, sizeof(t->keyfile), "%s", str(cfg->key));
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx == NULL || dpc_tls_ctx_tune(t->ctx, err, errlen) < 0)
        goto err;
    if ((cfg->cert == NULL) != (cfg->key == NULL)) {
        dpc_errc(err, errlen, DPC_E_INVALID, "cache:dpc-tls-cert and "
                 "cache:dpc-tls-key go together");
        goto err;
    }
    if (cfg->cert != NULL &&
        (SSL_CTX_use_certificate_chain_file(t->ctx, cfg->cert) != 1 ||
         SSL_CTX_use_PrivateKey_file(t->ctx, cfg->key, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(t->ctx) != 1)) {
        dpc_tls_err(err, errlen, "cache:dpc-tls-cert/cache:dpc-tls-key");
        goto err;
    }
    if (cfg->ca != NULL) {
        if (SSL_CTX_load_verify_locations(t->ctx, cfg->ca, NULL) != 1) {
            dpc_tls_err(err, errlen, "cache:dpc-tls-ca");
            goto err;
        }
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    } else {
        t->psk = dpc_tls_psk_session(cfg->psk);
        if (t->psk == NULL) {
            dpc_tls_err(err, errlen, "TLS PSK");
            goto err;
        }
        SSL_CTX_set_psk_use_session_callback(t->ctx, use_psk);
    }
    SSL_CTX_set_ex_data(t->ctx, ctx_index, t);
    return t;
err:
    free_ctx(t);
    return NULL;
}

struct dpc_tlsclient *dpc_tlsclient_get(const struct dpc_tlsclient_cfg *cfg,
                                        char *err, size_t errlen)
{
    struct dpc_tlsclient *t = NULL;

    pthread_mutex_lock(&ctx_lock);
    if (ctx_index < 0)
        ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    for (size_t i = 0; i < nctxs && t == NULL; i++)
        if (same(ctxs[i], cfg))
            t = ctxs[i];
    if (t == NULL && nctxs == DPC_TLSCLIENT_MAX_CTX)
        dpc_errc(err, errlen, DPC_E_INVALID, "more than %d TLS settings in "
                 "one process", DPC_TLSCLIENT_MAX_CTX);
    else if (t == NULL && ctx_index < 0)
        dpc_errc(err, errlen, DPC_E_NOMEM, "out of memory");
    else if (t == NULL && (t = new_ctx(cfg, err, errlen)) != NULL)
        ctxs[nctxs++] = t;
    pthread_mutex_unlock(&ctx_lock);
    return t;
}

/* The server's name to check its certificate against: an IP address or a
 * DNS name. */
static int set_peer_name(SSL *ssl, const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];

    if (inet_pton(AF_INET, host, buf) == 1 ||
        inet_pton(AF_INET6, host, buf) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(ssl, host) == 1 &&
           SSL_set_tlsext_host_name(ssl, host) == 1;
}

/* Why a handshake failed, from the alert or the verification. */
static int handshake_error(SSL *ssl, const char *name, int rc,
                           enum dpc_errcode *code, char *err, size_t errlen)
{
    unsigned long e = ERR_peek_last_error();
    char why[256];
    int saved = errno;

    if (SSL_get_error(ssl, rc) == SSL_ERROR_SYSCALL && e == 0) {
        ERR_clear_error();
        *code = saved == 0 || saved == ECONNRESET || saved == EPIPE
                    ? DPC_E_CLOSED : DPC_E_IO;
        return dpc_errc(err, errlen, *code, "%s: %s during the TLS "
                        "handshake", name, saved == 0 ? "connection closed"
                                                      : strerror(saved));
    }
    dpc_tls_err(why, sizeof(why), "TLS");
    if (ERR_GET_REASON(e) == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL) {
        *code = DPC_E_REFUSED;
        return dpc_errc(err, errlen, *code, "%s does not accept TLS (the "
                        "server runs with --tls off): set cache:dpc-tls=off, "
                        "or run the server with --tls on or both", name);
    }
    *code = DPC_E_AUTH;
    if (SSL_get_verify_result(ssl) != X509_V_OK)
        return dpc_errc(err, errlen, *code, "%s: the server's certificate "
                        "failed verification (%s): check cache:dpc-tls-ca "
                        "and the server's --tls-cert", name,
                        X509_verify_cert_error_string(
                            SSL_get_verify_result(ssl)));
    return dpc_errc(err, errlen, *code, "%s: authentication failed in the "
                    "TLS handshake (%s): is cache:shared-secret the same on "
                    "both sides (with certificates: do cache:dpc-tls-cert "
                    "and -key match the server's --tls-ca)?", name, why);
}

SSL *dpc_tlsclient_handshake(struct dpc_tlsclient *t, int fd,
                             const char *host, const char *name,
                             unsigned timeout_ms, enum dpc_errcode *code,
                             char *err, size_t errlen)
{
    double deadline = dpc_now() + timeout_ms / 1000.0;
    SSL *ssl = SSL_new(t->ctx);
    int rc;

    ERR_clear_error();
    if (ssl == NULL || dpc_tls_set_fd(ssl, fd) != 0 ||
        (t->psk == NULL && set_peer_name(ssl, host) != 1)) {
        *code = DPC_E_NOMEM;
        dpc_tls_err(err, errlen, name);
        SSL_free(ssl);
        return NULL;
    }
    for (;;) {
        struct pollfd p = { .fd = fd };
        double left;

        errno = 0;
        rc = SSL_connect(ssl);
        if (rc == 1)
            return ssl;
        switch (SSL_get_error(ssl, rc)) {
        case SSL_ERROR_WANT_READ:
            p.events = POLLIN;
            break;
        case SSL_ERROR_WANT_WRITE:
            p.events = POLLOUT;
            break;
        default:
            handshake_error(ssl, name, rc, code, err, errlen);
            SSL_free(ssl);
            return NULL;
        }
        left = (deadline - dpc_now()) * 1000;
        if (left < 1 || (rc = poll(&p, 1, (int)left)) == 0) {
            *code = DPC_E_TIMEOUT;
            dpc_errc(err, errlen, *code, "%s: no answer to the TLS handshake "
                     "in time", name);
            SSL_free(ssl);
            return NULL;
        }
        if (rc < 0 && errno != EINTR) {
            *code = DPC_E_IO;
            dpc_errc(err, errlen, *code, "%s: %s", name, strerror(errno));
            SSL_free(ssl);
            return NULL;
        }
    }
}
