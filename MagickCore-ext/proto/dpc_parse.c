/*
 * dpc_parse: see dpc_parse.h.
 */
#include "dpc_parse.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "dpc_util.h"

/* Leading digits of s into *out; returns the first non-digit, or NULL on
 * no digits or overflow. */
static const char *digits(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    for (; isdigit((unsigned char)*p); p++) {
        if (dpc_mul_u64(v, 10, &v) < 0 ||
            dpc_add_u64(v, (uint64_t)(*p - '0'), &v) < 0)
            return NULL;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

int dpc_parse_u64(const char *s, uint64_t *out, char *err, size_t errlen)
{
    const char *end = digits(s, out);

    if (end == NULL || *end != '\0')
        return dpc_errf(err, errlen, "'%s' is not a whole number", s);
    return 0;
}

struct unit {
    const char *suffix;
    uint64_t mult;
};

static int apply_unit(const char *s, const char *end, const struct unit *units,
                      size_t n, uint64_t v, uint64_t *out, char *err,
                      size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(end, units[i].suffix) != 0)
            continue;
        if (dpc_mul_u64(v, units[i].mult, out) < 0)
            return dpc_errf(err, errlen, "'%s' is too large", s);
        return 0;
    }
    return dpc_errf(err, errlen, "'%s': unknown unit '%s'", s, end);
}

int dpc_parse_size(const char *s, uint64_t *out, char *err, size_t errlen)
{
    static const struct unit units[] = {
        { "", 1 }, { "B", 1 },
        { "K", 1ULL << 10 }, { "KiB", 1ULL << 10 }, { "KB", 1000ULL },
        { "M", 1ULL << 20 }, { "MiB", 1ULL << 20 }, { "MB", 1000000ULL },
        { "G", 1ULL << 30 }, { "GiB", 1ULL << 30 }, { "GB", 1000000000ULL },
        { "T", 1ULL << 40 }, { "TiB", 1ULL << 40 },
        { "TB", 1000000000000ULL },
    };
    uint64_t v;
    const char *end = digits(s, &v);

    if (end == NULL)
        return dpc_errf(err, errlen, "'%s' is not a size (e.g. 512MiB)", s);
    return apply_unit(s, end, units, sizeof(units) / sizeof(units[0]), v, out,
                      err, errlen);
}

int dpc_parse_duration_ms(const char *s, uint64_t *out, char *err,
                          size_t errlen)
{
    static const struct unit units[] = {
        { "", 1000 }, { "s", 1000 }, { "ms", 1 }, { "m", 60000 },
        { "h", 3600000 },
    };
    uint64_t v;
    const char *end = digits(s, &v);

    if (end == NULL)
        return dpc_errf(err, errlen, "'%s' is not a duration (e.g. 30s)", s);
    return apply_unit(s, end, units, sizeof(units) / sizeof(units[0]), v, out,
                      err, errlen);
}

int dpc_parse_hostport(const char *s, char *host, size_t hostlen,
                       unsigned *port, char *err, size_t errlen)
{
    const char *h = s, *colon, *close;
    size_t n;
    uint64_t v;

    if (*s == '[') {
        close = strchr(s, ']');
        if (close == NULL)
            return dpc_errf(err, errlen, "'%s': missing ']'", s);
        h = s + 1;
        n = (size_t)(close - h);
        colon = close[1] == ':' ? close + 1 : NULL;
        if (close[1] != '\0' && colon == NULL)
            return dpc_errf(err, errlen, "'%s': junk after ']'", s);
    } else {
        colon = strrchr(s, ':');
        if (colon != NULL && strchr(s, ':') != colon)
            return dpc_errf(err, errlen,
                            "'%s': write IPv6 addresses as [ADDR]:PORT", s);
        n = colon != NULL ? (size_t)(colon - s) : strlen(s);
    }
    if (n == 0 || n >= hostlen)
        return dpc_errf(err, errlen, "'%s': bad host", s);
    memcpy(host, h, n);
    host[n] = '\0';
    *port = DPC_DEFAULT_PORT;
    if (colon == NULL)
        return 0;
    if (dpc_parse_u64(colon + 1, &v, NULL, 0) < 0 || v > 65535)
        return dpc_errf(err, errlen, "'%s': bad port", s);
    *port = (unsigned)v;
    return 0;
}

/* Placeholders seen in examples, compared as lower-case letters and
 * digits only: contained anywhere in the secret. */
static const char *const placeholders[] = {
    "changeme", "replaceme", "placeholder", "yoursecret", "mysecret",
    "alongrandomstring", "secrethere", "insertsecret", "putsecret",
};

/* Whole secrets that are placeholders, same comparison. */
static const char *const placeholder_words[] = {
    "secret", "password", "sharedsecret", "cachesharedsecret", "example",
    "test", "default",
};

/* 1 when the normalised secret norm is a placeholder. */
static int is_placeholder(const char *norm)
{
    for (size_t i = 0; i < sizeof(placeholders) / sizeof(*placeholders); i++)
        if (strstr(norm, placeholders[i]) != NULL)
            return 1;
    for (size_t i = 0; i < sizeof(placeholder_words) /
                               sizeof(*placeholder_words); i++)
        if (strcmp(norm, placeholder_words[i]) == 0)
            return 1;
    return 0;
}

int dpc_parse_secret_check(const char *secret, size_t len, char *err,
                           size_t errlen)
{
    char norm[128];
    size_t n = 0, same = 0;
    int bad;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)secret[i];

        same += c == (unsigned char)secret[0];
        if (isalnum(c) && n + 1 < sizeof(norm))
            norm[n++] = (char)tolower(c);
    }
    norm[n] = '\0';
    bad = (len > 1 && same == len) || is_placeholder(norm);
    explicit_bzero(norm, sizeof(norm));
    if (bad)
        return dpc_errc(err, errlen, DPC_E_INVALID, "cache:shared-secret is "
                        "a placeholder, not a secret");
    if (len < DPC_SECRET_MIN_LEN)
        return dpc_errc(err, errlen, DPC_E_INVALID, "cache:shared-secret is "
                        "too short (%zu bytes, at least %d wanted)", len,
                        DPC_SECRET_MIN_LEN);
    return 0;
}
