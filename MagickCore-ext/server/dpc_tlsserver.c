/*
 * dpc_tlsserver: see dpc_tlsserver.h.
 */
#include "dpc_tlsserver.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "dpc_util.h"

struct dpc_tlsserver {
    SSL_CTX *ctx;
    SSL_SESSION *psk;
};

static int psk_index = -1;      /* ex_data slot of the ctx: its server */

/* A client offering our identity gets the PSK session; any other identity
 * falls through to a certificate handshake (or fails without one). */
static int find_psk(SSL *ssl, const unsigned char *id, size_t idlen,
                    SSL_SESSION **sess)
{
    struct dpc_tlsserver *t =
        SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_index);

    *sess = NULL;
    if (t == NULL || idlen != sizeof(DPC_TLS_PSK_IDENTITY) - 1 ||
        memcmp(id, DPC_TLS_PSK_IDENTITY, idlen) != 0)
        return 1;
    if (SSL_SESSION_up_ref(t->psk) != 1)
        return 0;
    *sess = t->psk;
    return 1;
}

static int load_certs(struct dpc_tlsserver *t,
                      const struct dpc_tlsserver_cfg *cfg, char *err,
                      size_t errlen)
{
    if ((cfg->cert == NULL) != (cfg->key == NULL))
        return dpc_errc(err, errlen, DPC_E_INVALID, "--tls-cert and "
                        "--tls-key go together");
    if (cfg->cert != NULL &&
        (SSL_CTX_use_certificate_chain_file(t->ctx, cfg->cert) != 1 ||
         SSL_CTX_use_PrivateKey_file(t->ctx, cfg->key, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(t->ctx) != 1)) {
        dpc_tls_err(err, errlen, "--tls-cert/--tls-key");
        return -1;
    }
    if (cfg->ca != NULL) {
        if (SSL_CTX_load_verify_locations(t->ctx, cfg->ca, NULL) != 1) {
            dpc_tls_err(err, errlen, "--tls-ca");
            return -1;
        }
        /* Asked for in certificate handshakes only: a PSK handshake
         * proves the shared secret instead. */
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER |
                                       SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return 0;
}

struct dpc_tlsserver *dpc_tlsserver_new(const struct dpc_tlsserver_cfg *cfg,
                                        char *err, size_t errlen)
{
    struct dpc_tlsserver *t = calloc(1, sizeof(*t));

    if (psk_index < 0)
        psk_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (t == NULL || psk_index < 0) {
        dpc_errc(err, errlen, DPC_E_NOMEM, "out of memory");
        free(t);
        return NULL;
    }
    t->ctx = SSL_CTX_new(TLS_server_method());
    t->psk = dpc_tls_psk_session(cfg->psk);
    if (t->ctx == NULL || t->psk == NULL) {
        dpc_tls_err(err, errlen, "TLS context");
        goto err;
    }
    if (dpc_tls_ctx_tune(t->ctx, err, errlen) < 0 ||
        load_certs(t, cfg, err, errlen) < 0)
        goto err;
    SSL_CTX_set_ex_data(t->ctx, psk_index, t);
    SSL_CTX_set_psk_find_session_callback(t->ctx, find_psk);
    return t;
err:
    dpc_tlsserver_free(t);
    return NULL;
}

void dpc_tlsserver_free(struct dpc_tlsserver *t)
{
    if (t == NULL)
        return;
    SSL_SESSION_free(t->psk);
    SSL_CTX_free(t->ctx);
    free(t);
}

SSL *dpc_tlsserver_accept(struct dpc_tlsserver *t, int fd)
{
    SSL *ssl = SSL_new(t->ctx);

    if (ssl == NULL)
        return NULL;
    if (dpc_tls_set_fd(ssl, fd) != 0) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}
