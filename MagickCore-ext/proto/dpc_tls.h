/*
 * dpc_tls: what both sides of the native protocol's TLS share.  The
 * pre-shared key derived from the shared secret, the TLS 1.3 settings
 * both contexts get, the session that carries the key into OpenSSL's
 * external-PSK callbacks, how a ClientHello is told from a stock client's
 * first bytes, the server's "TLS required" answer to a plaintext client,
 * and non-blocking iovec wrappers over SSL_read_ex / SSL_write_ex.
 *
 * Nothing here opens, polls or owns a socket: the wrappers move bytes
 * through an SSL the caller owns, on the caller's non-blocking socket.
 * No state; safe from any thread (each SSL on one thread at a time).
 *
 * On the wire (the native protocol, dpc_wire.h, is unchanged inside):
 *   server -> nonce (as to every client)
 *   client -> TLS ClientHello (0x16 0x03 ...) instead of the native magic;
 *             TLS 1.3 only, external PSK "magick-dpc psk v1" with
 *             psk_dhe_ke (X25519), or the server's certificate
 *   then, inside TLS, the native session from its challenge (Ns) on.
 * A plaintext native client to a server that requires TLS reads
 * DPC_TLS_REQUIRED_MARK where Ns would be, then the server closes.
 */
#ifndef DPC_TLS_H
#define DPC_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_session_st SSL_SESSION;

#define DPC_TLS_PSK_LEN 32
#define DPC_TLS_PSK_LABEL "magick-dpc tls13 psk v1"
#define DPC_TLS_PSK_IDENTITY "magick-dpc psk v1"
#define DPC_TLS_CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:" \
                             "TLS_CHACHA20_POLY1305_SHA256"
#define DPC_TLS_GROUPS "X25519:P-256"
/* In place of the native challenge: 32 bytes no random Ns equals. */
#define DPC_TLS_REQUIRED_MARK "MDPC:server requires TLS\0\0\0\0\0\0\0"
#define DPC_TLS_REQUIRED_LEN 32

/* How a side uses TLS: off (plaintext native only), on (TLS only), both
 * (a server accepting either, while clients migrate). */
enum dpc_tls_mode {
    DPC_TLS_OFF = 0,
    DPC_TLS_ON,
    DPC_TLS_BOTH,
};

/* Parses "on", "off" (also "true"/"false", "yes"/"no", "1"/"0") and, when
 * allow_both, "both".  0, or -1 with the reason in err. */
int dpc_tls_parse_mode(const char *s, int allow_both, enum dpc_tls_mode *mode,
                       char *err, size_t errlen);
const char *dpc_tls_mode_name(enum dpc_tls_mode mode);

/* psk = HKDF-SHA256(ikm = secret, salt = none, info = DPC_TLS_PSK_LABEL),
 * 32 bytes: the secret itself never reaches TLS.  0, or -1 with the
 * reason in err. */
int dpc_tls_derive_psk(const char *secret, size_t len,
                       uint8_t psk[DPC_TLS_PSK_LEN], char *err,
                       size_t errlen);

/* Whether the n bytes a connection sent first begin a TLS ClientHello:
 * 1 yes, 0 no, -1 too few bytes to tell (fewer than 8).  Eight bytes of
 * record and handshake header are checked against each other (content
 * type, version, handshake type, lengths), so a stock client's random
 * 8-byte SipHash passes for one with probability below 2^-40. */
int dpc_tls_is_client_hello(const uint8_t *p, size_t n);

/* Restricts ctx to TLS 1.3, our cipher suites and groups, no tickets, no
 * renegotiation, partial writes.  0, or -1 with the reason in err. */
int dpc_tls_ctx_tune(SSL_CTX *ctx, char *err, size_t errlen);

/* A session carrying psk for TLS_AES_128_GCM_SHA256, for the external-PSK
 * callbacks; the caller owns it (SSL_SESSION_free).  NULL on failure. */
SSL_SESSION *dpc_tls_psk_session(const uint8_t psk[DPC_TLS_PSK_LEN]);

/* Bytes OpenSSL may read ahead of what it has decrypted (a connection's
 * read buffer): a receiver's SO_RCVLOWAT must leave this much slack. */
#define DPC_TLS_READ_BUF (128 * 1024)
/* Records are written into a buffer this large, flushed by
 * dpc_tls_flush: one send for many 16 KiB records. */
#define DPC_TLS_WRITE_BUF (256 * 1024)

/* Puts ssl on the socket fd (borrowed), its records written through a
 * DPC_TLS_WRITE_BUF buffer.  0, or -1 (out of memory). */
int dpc_tls_set_fd(SSL *ssl, int fd);
/* Sends what the write buffer holds: 1 all sent, 0 the socket is full
 * (wait for POLLOUT), -1 on error (errno). */
int dpc_tls_flush(SSL *ssl);

/* OpenSSL's queued errors as one line in err (and the queue cleared);
 * what is prefixed. */
void dpc_tls_err(char *err, size_t errlen, const char *what);

/* Non-blocking transfers through ssl, recvmsg/sendmsg-like: the bytes
 * moved (> 0), 0 when the peer closed (read only), or -1 with errno:
 * EAGAIN (retry with the same or a longer iov once *want -- POLLIN or
 * POLLOUT -- is ready), ECONNRESET (TLS failure: the reason, if err, in
 * err), or the socket's error.  The writer packs runs of small iovecs
 * into one record; what it wrote may wait in the write buffer until
 * dpc_tls_flush. */
ssize_t dpc_tls_readv(SSL *ssl, const struct iovec *iov, int n, short *want,
                      char *err, size_t errlen);
ssize_t dpc_tls_writev(SSL *ssl, const struct iovec *iov, int n, short *want,
                       char *err, size_t errlen);

#endif
