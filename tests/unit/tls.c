/*
 * Unit tests for dpc_tls: the PSK derivation (against an independent
 * HKDF-SHA256), the TLS mode setting, ClientHello detection, a
 * session that carries the key, and writes to a peer that is gone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "dpc_tls.h"
#include "dpc_wire.h"

/* HKDF-SHA256 of "a long random string" with our label, as computed by
 * Python's hmac module (RFC 5869, no salt). */
static const uint8_t psk_long[DPC_TLS_PSK_LEN] = {
    0x95, 0x76, 0x1c, 0x67, 0xde, 0x17, 0x33, 0xe4, 0xfa, 0xd1, 0x1d, 0x78,
    0xe9, 0xf4, 0x61, 0x64, 0x46, 0x3b, 0xc4, 0x8c, 0x74, 0xfc, 0xc2, 0x2d,
    0x27, 0xe9, 0x25, 0x4e, 0xdb, 0x50, 0xac, 0xd4,
};
static const uint8_t psk_x[DPC_TLS_PSK_LEN] = {
    0x47, 0xf0, 0x86, 0x04, 0x81, 0x91, 0x4a, 0xfd, 0x48, 0x74, 0x4f, 0x2b,
    0x42, 0xbe, 0x99, 0xeb, 0x71, 0xac, 0xc4, 0x96, 0x62, 0x3f, 0xaf, 0x3f,
    0xdb, 0xd9, 0xab, 0x47, 0x9f, 0x9b, 0x04, 0x67,
};

/* The derivation matches RFC 5869 HKDF-SHA256 with our label. */
static void tls_derive_known_answer_test(void **state)
{
    uint8_t psk[DPC_TLS_PSK_LEN];
    char err[256] = "";

    (void)state;
    assert_int_equal(dpc_tls_derive_psk("a long random string", 20, psk, err,
                                        sizeof(err)), 0);
    assert_memory_equal(psk, psk_long, sizeof(psk));
    assert_int_equal(dpc_tls_derive_psk("x", 1, psk, err, sizeof(err)), 0);
    assert_memory_equal(psk, psk_x, sizeof(psk));
}

/* The PSK is neither the secret nor the native protocol's key. */
static void tls_derive_not_raw_secret_test(void **state)
{
    static const char secret[] = "0123456789abcdef0123456789abcdef";
    uint8_t psk[DPC_TLS_PSK_LEN], wk[DPC_WIRE_KEY_LEN];
    char err[256] = "";

    (void)state;
    assert_int_equal(dpc_tls_derive_psk(secret, 32, psk, err, sizeof(err)), 0);
    assert_memory_not_equal(psk, secret, sizeof(psk));
    dpc_wire_derive_key(secret, 32, wk);
    assert_memory_not_equal(psk, wk, sizeof(psk));
}

/* An empty secret is refused. */
static void tls_derive_empty_refused_test(void **state)
{
    uint8_t psk[DPC_TLS_PSK_LEN];
    char err[256] = "";

    (void)state;
    assert_int_equal(dpc_tls_derive_psk("", 0, psk, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "empty"));
}

/* on/off/both, and both only where allowed. */
static void tls_parse_mode_test(void **state)
{
    enum dpc_tls_mode m;
    char err[256] = "";

    (void)state;
    assert_int_equal(dpc_tls_parse_mode("on", 0, &m, err, sizeof(err)), 0);
    assert_int_equal(m, DPC_TLS_ON);
    assert_int_equal(dpc_tls_parse_mode("false", 0, &m, err, sizeof(err)), 0);
    assert_int_equal(m, DPC_TLS_OFF);
    assert_int_equal(dpc_tls_parse_mode("both", 1, &m, err, sizeof(err)), 0);
    assert_int_equal(m, DPC_TLS_BOTH);
    assert_true(dpc_tls_parse_mode("both", 0, &m, err, sizeof(err)) < 0);
    assert_true(dpc_tls_parse_mode("", 1, &m, err, sizeof(err)) < 0);
    assert_true(dpc_tls_parse_mode("onn", 1, &m, err, sizeof(err)) < 0);
}

/* A real ClientHello header is recognized; the native magic, a prefix
 * that does not fit and inconsistent lengths are not. */
static void tls_client_hello_test(void **state)
{
    static const uint8_t hello[] = { 0x16, 0x03, 0x01, 0x01, 0x2c,
                                     0x01, 0x00, 0x01, 0x28 };
    uint8_t bad[8];

    (void)state;
    assert_int_equal(dpc_tls_is_client_hello(hello, 8), 1);
    assert_int_equal(dpc_tls_is_client_hello(hello, 3), -1);
    assert_int_equal(dpc_tls_is_client_hello(hello, 0), -1);
    assert_int_equal(dpc_tls_is_client_hello((const uint8_t *)DPC_WIRE_MAGIC,
                                             8), 0);
    memcpy(bad, hello, 8);
    bad[7] = 0x02;                      /* handshake length != record - 4 */
    assert_int_equal(dpc_tls_is_client_hello(bad, 8), 0);
    memcpy(bad, hello, 8);
    bad[5] = 0x02;                      /* not a ClientHello */
    assert_int_equal(dpc_tls_is_client_hello(bad, 8), 0);
    memcpy(bad, hello, 8);
    bad[2] = 0x00;
    assert_int_equal(dpc_tls_is_client_hello(bad, 2), -1);
    assert_int_equal(dpc_tls_is_client_hello(bad, 3), 0);
}

/* The session carries the key and TLS_AES_128_GCM_SHA256. */
static void tls_psk_session_test(void **state)
{
    uint8_t key[DPC_TLS_PSK_LEN];
    SSL_SESSION *s = dpc_tls_psk_session(psk_x);

    (void)state;
    assert_non_null(s);
    assert_int_equal(SSL_SESSION_get_master_key(s, key, sizeof(key)),
                     sizeof(key));
    assert_memory_equal(key, psk_x, sizeof(key));
    assert_string_equal(SSL_CIPHER_get_name(SSL_SESSION_get0_cipher(s)),
                        "TLS_AES_128_GCM_SHA256");
    assert_int_equal(SSL_SESSION_get_protocol_version(s), TLS1_3_VERSION);
    SSL_SESSION_free(s);
}

/* A handshake written to a peer that closed: the write fails with EPIPE
 * and SIGPIPE, left at its default here as in ImageMagick's programs, does
 * not end the process. */
static void tls_write_to_closed_peer_test(void **state)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl;
    int sv[2], rc;

    (void)state;
    signal(SIGPIPE, SIG_DFL);
    assert_non_null(ctx);
    ssl = SSL_new(ctx);
    assert_non_null(ssl);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    assert_int_equal(dpc_tls_set_fd(ssl, sv[0]), 0);
    SSL_set_connect_state(ssl);
    errno = 0;
    rc = SSL_do_handshake(ssl);
    assert_true(rc <= 0);
    assert_int_equal(SSL_get_error(ssl, rc), SSL_ERROR_SYSCALL);
    assert_int_equal(errno, EPIPE);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(sv[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_derive_known_answer_test),
        cmocka_unit_test(tls_derive_not_raw_secret_test),
        cmocka_unit_test(tls_derive_empty_refused_test),
        cmocka_unit_test(tls_parse_mode_test),
        cmocka_unit_test(tls_client_hello_test),
        cmocka_unit_test(tls_psk_session_test),
        cmocka_unit_test(tls_write_to_closed_peer_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
