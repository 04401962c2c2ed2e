/*
 * dpc_policy: see dpc_policy.h.  The only file of the server that includes
 * MagickCore.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <magick/MagickCore.h>

#include "dpc_policy.h"

void dpc_policy_init(const char *argv0)
{
    MagickCoreGenesis(argv0, MagickFalse);
}

void dpc_policy_done(void)
{
    MagickCoreTerminus();
}

char *dpc_policy_get(const char *name)
{
    char key[128], *value, *copy;

    snprintf(key, sizeof(key), "cache:%s", name);
    value = GetPolicyValue(key);
    if (value == NULL)
        return NULL;
    copy = strdup(value);
    value = DestroyString(value);
    return copy;
}

int dpc_policy_keys(uint8_t sipkey[DPC_SIPHASH_KEYLEN],
                    uint8_t wirekey[DPC_WIRE_KEY_LEN],
                    uint8_t psk[DPC_TLS_PSK_LEN])
{
    char *secret = GetPolicyValue("cache:shared-secret");
    size_t len;

    if (secret == NULL)
        return -1;
    len = strlen(secret);
    if (len == 0) {
        secret = DestroyString(secret);
        return -1;
    }
    dpc_siphash_key_from_secret(secret, len, sipkey);
    dpc_wire_derive_key(secret, len, wirekey);
    if (psk != NULL && dpc_tls_derive_psk(secret, len, psk, NULL, 0) < 0) {
        explicit_bzero(secret, len);
        secret = DestroyString(secret);
        return -1;
    }
    explicit_bzero(secret, len);
    secret = DestroyString(secret);
    return 0;
}
