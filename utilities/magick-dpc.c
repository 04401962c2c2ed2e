/*
 * magick-dpc: the pixel cache server and its status client.
 *
 *   magick-dpc serve [options]     serve ImageMagick's distributed cache
 *                                  and the host's shared-memory tier
 *   magick-dpc status [--host H:P | --local | --socket PATH]
 *                                  print a server's status as JSON
 *   magick-dpc drain [--host H:P]  make a server drain (as SIGTERM does),
 *                                  print its status
 *   magick-dpc shm ls | rm NAME    the images published with shm:NAME
 *
 * Settings come from the command line, else policy.xml (domain "cache"),
 * else built-in defaults.  Exit status: 0 ok, 1 runtime failure, 2 usage
 * or configuration error, 3 (serve) a drain ended with caches still open.
 */
#include "config.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <stddef.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <unistd.h>

#include "dpc_log.h"
#include "dpc_parse.h"
#include "dpc_policy.h"
#include "dpc_server.h"
#include "dpc_shmclient.h"
#include "dpc_stockclient.h"
#include "dpc_systemd.h"
#include "dpc_util.h"

#define MAX_LISTEN 16
#define DEFAULT_LISTEN "127.0.0.1:6668"
#define EXIT_USAGE 2
#define EXIT_CUT 3                  /* serve: a drain cut caches short */

static const char usage_head[] =
    "Usage: magick-dpc serve [OPTIONS]\n"
    "       magick-dpc status [--host HOST:PORT] [--im7] [--timeout DUR]\n"
    "       magick-dpc status --local | --socket PATH\n"
    "       magick-dpc drain [--host HOST:PORT] [--im7] [--timeout DUR]\n"
    "       magick-dpc shm ls [--socket PATH]\n"
    "       magick-dpc shm rm NAME [--owner UID] [--socket PATH]\n"
    "       magick-dpc --help | --version\n"
    "\n"
    "A pixel cache server for ImageMagick's distributed cache: unmodified\n"
    "clients use it with\n"
    "  convert -define registry:cache:hosts=HOST:PORT -limit memory 0 \\\n"
    "          -limit map 0 -limit disk 0 ...\n"
    "Both sides need the same policy.xml line:\n"
    "  " DPC_POLICY_SECRET_HINT "\n"
    "\n"
    "serve options (policy.xml name and default in brackets, domain "
    "\"cache\"):\n";

static const char usage_tail[] =
    "\n"
    "SIZE: 512MiB, 8GiB, 10GB, ...  DUR: 30s, 500ms, 5m, 1h.\n"
    "SIGTERM or 'magick-dpc drain' makes the server drain: it refuses new\n"
    "caches (the drop-in places them on other hosts or the next tier; stock\n"
    "clients fail their open), serves the open ones until they close or\n"
    "--drain-timeout passes, then exits (0; 3 when caches were cut).  A\n"
    "second SIGTERM, or SIGINT, stops at once.\n";

struct options {
    struct dpc_listen_spec listen[MAX_LISTEN];
    size_t nlisten;
    struct dpc_server_cfg cfg;
    char *spill_dir;
    char *tls_cert, *tls_key, *tls_ca;
    uint32_t given;                 /* bit i: settings[i] was set */
    int no_tcp;                     /* --listen none */
    int verbosity;                  /* -1 quiet, 0 normal, 1 trace */
};

static int fail_usage(const char *fmt, const char *arg, const char *err)
{
    fprintf(stderr, "magick-dpc: ");
    fprintf(stderr, fmt, arg);
    if (err != NULL)
        fprintf(stderr, ": %s", err);
    fprintf(stderr, "\nTry 'magick-dpc --help'.\n");
    return -1;
}

static int add_listen(struct options *o, const char *list,
                      enum dpc_stock_flavor flavor)
{
    char err[DPC_ERRLEN], *copy = strdup(list), *tok, *save = NULL;
    int rc = 0;

    if (copy == NULL)
        return -1;
    for (tok = strtok_r(copy, ", ", &save); tok && rc == 0;
         tok = strtok_r(NULL, ", ", &save)) {
        struct dpc_listen_spec *l = &o->listen[o->nlisten];

        if (strcmp(tok, "none") == 0)
            o->no_tcp = 1;
        else if (o->nlisten == MAX_LISTEN)
            rc = fail_usage("more than %s listeners", "16", NULL);
        else if (dpc_parse_hostport(tok, l->host, sizeof(l->host), &l->port,
                                    err, sizeof(err)) < 0)
            rc = fail_usage("bad listen address '%s'", tok, err);
        else {
            l->flavor = flavor;
            o->nlisten++;
        }
    }
    free(copy);
    return rc;
}

static int parse_duration(const char *what, const char *text, uint64_t *out)
{
    char err[DPC_ERRLEN];

    if (dpc_parse_duration_ms(text, out, err, sizeof(err)) < 0)
        return fail_usage("bad %s", what, err);
    return 0;
}

/* A comma-separated list of user or group names or numbers. */
static int set_ids(const char *what, const char *list, int groups,
                   uint32_t *ids, size_t *n)
{
    char *copy = strdup(list), *tok, *save = NULL;
    int rc = 0;

    if (copy == NULL)
        return -1;
    *n = 0;
    for (tok = strtok_r(copy, ", ", &save); tok && rc == 0;
         tok = strtok_r(NULL, ", ", &save)) {
        char err[DPC_ERRLEN];
        uint64_t v;

        if (*n == DPC_LOCAL_MAX_IDS) {
            rc = fail_usage("more than 32 %s", what, NULL);
        } else if (dpc_parse_u64(tok, &v, err, sizeof(err)) == 0 &&
                   v < 0xffffffffu) {
            ids[(*n)++] = (uint32_t)v;
        } else if (groups) {
            struct group *g = getgrnam(tok);

            if (g == NULL)
                rc = fail_usage("no such group '%s'", tok, NULL);
            else
                ids[(*n)++] = (uint32_t)g->gr_gid;
        } else {
            struct passwd *pw = getpwnam(tok);

            if (pw == NULL)
                rc = fail_usage("no such user '%s'", tok, NULL);
            else
                ids[(*n)++] = (uint32_t)pw->pw_uid;
        }
    }
    free(copy);
    return rc;
}

static int set_socket(struct options *o, const char *value)
{
    struct dpc_local_cfg *l = &o->cfg.local;

    l->path_is_default = 0;
    if (strcmp(value, "none") == 0) {
        l->path[0] = '\0';
        return 0;
    }
    if (value[0] != '/' || strlen(value) >= sizeof(l->path))
        return fail_usage("bad socket path '%s' (absolute, at most 107 "
                          "bytes)", value, NULL);
    snprintf(l->path, sizeof(l->path), "%s", value);
    return 0;
}

/* ------------------------------------------------------------ settings */

/* One server setting: its command-line option, its policy.xml name, its
 * default and help as --help prints them (README.md's settings tables say
 * the same: tests/integration/settings-doc.sh compares them), and the
 * setter both the command line and policy.xml go through, so both
 * validate alike. */
struct setting;
typedef int (*setting_fn)(struct options *o, const struct setting *s,
                          const char *value);

enum setting_kind {
    SETTING_VALUE,                  /* --option ARG */
    SETTING_FLAG,                   /* --option alone; true|false in policy */
};

struct setting {
    const char *option;             /* --option, without the dashes */
    enum setting_kind kind;
    const char *arg;                /* ARG's name in --help (SETTING_VALUE) */
    const char *policy;             /* policy.xml name, domain "cache" */
    const char *deflt;              /* the default in words */
    int literal;                    /* deflt is a value: set_defaults sets it */
    const char *help;
    setting_fn set;
    const char *what;               /* the setting in error messages */
    size_t field;                   /* offsetof its value in struct options */
};

#define FIELD(f) offsetof(struct options, f)
#define AT(o, s, type) ((type *)((char *)(o) + (s)->field))

static int set_listen6(struct options *o, const struct setting *s,
                       const char *v)
{
    (void)s;
    return add_listen(o, v, DPC_STOCK_IM6);
}

static int set_listen7(struct options *o, const struct setting *s,
                       const char *v)
{
    (void)s;
    return add_listen(o, v, DPC_STOCK_IM7);
}

static int set_size(struct options *o, const struct setting *s, const char *v)
{
    char err[DPC_ERRLEN];

    if (dpc_parse_size(v, AT(o, s, uint64_t), err, sizeof(err)) < 0)
        return fail_usage("bad %s", s->what, err);
    return 0;
}

static int set_duration(struct options *o, const struct setting *s,
                        const char *v)
{
    return parse_duration(s->what, v, AT(o, s, uint64_t));
}

static int set_count(struct options *o, const struct setting *s,
                     const char *v)
{
    char err[DPC_ERRLEN];
    uint64_t n;

    if (dpc_parse_u64(v, &n, err, sizeof(err)) < 0 || n == 0 || n > 1000000)
        return fail_usage("bad %s (a number from 1 to 1000000)", s->what,
                          err[0] ? err : NULL);
    *AT(o, s, unsigned) = (unsigned)n;
    return 0;
}

static int set_bool(struct options *o, const struct setting *s, const char *v)
{
    char fmt[64];

    if (strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0)
        *AT(o, s, int) = 1;
    else if (strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0)
        *AT(o, s, int) = 0;
    else {
        snprintf(fmt, sizeof(fmt), "bad %s '%%s' (true or false)", s->what);
        return fail_usage(fmt, v, NULL);
    }
    return 0;
}

static int set_string(struct options *o, const struct setting *s,
                      const char *v)
{
    char **p = AT(o, s, char *);

    free(*p);
    *p = strdup(v);
    return *p != NULL ? 0 : -1;
}

static int set_tls(struct options *o, const struct setting *s, const char *v)
{
    char err[DPC_ERRLEN];

    if (dpc_tls_parse_mode(v, 1, AT(o, s, enum dpc_tls_mode), err,
                           sizeof(err)) < 0)
        return fail_usage("bad %s", s->what, err);
    return 0;
}

static int set_busy_poll(struct options *o, const struct setting *s,
                         const char *v)
{
    char err[DPC_ERRLEN];
    uint64_t n;

    if (dpc_parse_u64(v, &n, err, sizeof(err)) < 0 || n > 1000000)
        return fail_usage("bad busy poll '%s' (0 to 1000000 us)", v, NULL);
    *AT(o, s, unsigned) = (unsigned)n;
    return 0;
}

/* HOST:PORT with a numeric host and the port written out (the default
 * port is the cache's), or none. */
static int set_metrics(struct options *o, const struct setting *s,
                       const char *v)
{
    struct dpc_listen_spec *m = &o->cfg.metrics;
    char err[DPC_ERRLEN] = "", addr[sizeof(struct in6_addr)];
    const char *last = strrchr(v, ':');

    (void)s;
    m->host[0] = '\0';
    if (strcmp(v, "none") == 0)
        return 0;
    if (last == NULL || (v[0] == '[' && last[-1] != ']') ||
        dpc_parse_hostport(v, m->host, sizeof(m->host), &m->port, err,
                           sizeof(err)) < 0 ||
        (inet_pton(AF_INET, m->host, addr) != 1 &&
         inet_pton(AF_INET6, m->host, addr) != 1)) {
        m->host[0] = '\0';
        return fail_usage("bad metrics address '%s' (a numeric HOST:PORT, "
                          "e.g. 127.0.0.1:9650 or [::1]:9650)", v,
                          err[0] ? err : NULL);
    }
    return 0;
}

static int set_socket_path(struct options *o, const struct setting *s,
                           const char *v)
{
    (void)s;
    return set_socket(o, v);
}

static int set_socket_mode(struct options *o, const struct setting *s,
                           const char *v)
{
    if (strcmp(v, "0600") != 0 && strcmp(v, "0660") != 0 &&
        strcmp(v, "600") != 0 && strcmp(v, "660") != 0)
        return fail_usage("bad socket mode '%s' (0600 or 0660)", v, NULL);
    *AT(o, s, unsigned) = strstr(v, "66") != NULL ? 0660 : 0600;
    return 0;
}

static int set_uids(struct options *o, const struct setting *s,
                    const char *v)
{
    (void)s;
    return set_ids("users", v, 0, o->cfg.local.allow_uids,
                   &o->cfg.local.nallow_uids);
}

static int set_gids(struct options *o, const struct setting *s,
                    const char *v)
{
    (void)s;
    return set_ids("groups", v, 1, o->cfg.local.allow_gids,
                   &o->cfg.local.nallow_gids);
}

/* In --help's order.  The listeners come last from policy.xml: only when
 * the command line named none (apply_listen_policy). */
static const struct setting settings[] = {
    { "listen", SETTING_VALUE, "HOST:PORT", "dpc-listen", DEFAULT_LISTEN, 0,
      "listen for ImageMagick 6 clients; repeatable; [IPV6]:PORT for IPv6; "
      "port 0 picks a free one; none: no TCP at all, the Unix socket only "
      "(needs no shared secret); comma-separated in policy.xml",
      set_listen6, "listen address", 0 },
    { "listen-im7", SETTING_VALUE, "HOST:PORT", "dpc-listen-im7", "none", 0,
      "listen for ImageMagick 7 clients; repeatable",
      set_listen7, "listen address", 0 },
    { "socket", SETTING_VALUE, "PATH|none", "dpc-socket",
      "$XDG_RUNTIME_DIR/magick-dpc.sock, else /run/magick-dpc/magick-dpc.sock",
      0, "the Unix socket of the shared-memory tier and the shm: coder",
      set_socket_path, "socket path", 0 },
    { "socket-mode", SETTING_VALUE, "MODE", "dpc-socket-mode", "0600", 1,
      "0600 or 0660",
      set_socket_mode, "socket mode", FIELD(cfg.local.mode) },
    { "allow-uids", SETTING_VALUE, "LIST", "dpc-allow-uids",
      "the server's own uid", 0,
      "users (names or numbers) allowed on the socket",
      set_uids, "users", 0 },
    { "allow-gids", SETTING_VALUE, "LIST", "dpc-allow-gids", "none", 0,
      "groups allowed on the socket",
      set_gids, "groups", 0 },
    { "shm-budget", SETTING_VALUE, "SIZE", "dpc-shm-budget",
      "a quarter of the machine's memory", 0,
      "shared memory across all local clients",
      set_size, "shared memory budget", FIELD(cfg.local.shm_budget) },
    { "shm-uid-bytes", SETTING_VALUE, "SIZE", "dpc-shm-uid-bytes",
      "half of --shm-budget; all of it when only the server's uid is "
      "allowed", 0,
      "shared memory one uid may hold",
      set_size, "shared memory per uid",
      FIELD(cfg.local.shm_limits.uid_bytes) },
    { "shm-uid-segments", SETTING_VALUE, "N", "dpc-shm-uid-segments", "4096",
      1, "segments one uid may hold",
      set_count, "segments per uid",
      FIELD(cfg.local.shm_limits.uid_segments) },
    { "shm-uid-names", SETTING_VALUE, "N", "dpc-shm-uid-names", "512", 1,
      "images one uid may publish with shm:",
      set_count, "names per uid", FIELD(cfg.local.shm_limits.uid_names) },
    { "shm-name-lifetime", SETTING_VALUE, "DUR", "dpc-shm-name-lifetime",
      "24h", 1,
      "the longest a published image lives (a longer or no shm:ttl is cut "
      "to it), 0 no limit",
      set_duration, "name lifetime",
      FIELD(cfg.local.shm_limits.name_lifetime_ms) },
    { "max-local-clients", SETTING_VALUE, "N", "max-dpc-local-clients", "256",
      1, "connections on the socket at once, apart from --max-clients",
      set_count, "max local clients", FIELD(cfg.local.max_clients) },
    { "max-local-clients-per-uid", SETTING_VALUE, "N",
      "max-dpc-local-clients-per-uid", "half of --max-local-clients", 0,
      "of those, from one uid",
      set_count, "max local clients per uid",
      FIELD(cfg.local.max_clients_per_uid) },
    { "local-idle-timeout", SETTING_VALUE, "DUR", "dpc-local-idle-timeout",
      "5m", 1,
      "close socket clients silent this long that hold no segment, 0 never",
      set_duration, "local idle timeout", FIELD(cfg.local.idle_timeout_ms) },
    { "memory", SETTING_VALUE, "SIZE", "dpc-memory",
      "half the machine's memory", 0,
      "RAM for caches, e.g. 8GiB",
      set_size, "memory size", FIELD(cfg.store.mem_budget) },
    { "preallocate", SETTING_FLAG, NULL, "dpc-preallocate", "false", 1,
      "fault the whole --memory in at start and keep it: no page faults "
      "while clients write, and a start that fails instead of a later OOM; "
      "true or false in policy.xml",
      set_bool, "preallocate", FIELD(cfg.store.preallocate) },
    { "spill-dir", SETTING_VALUE, "DIR", "dpc-spill-dir", "no spilling", 0,
      "spill caches that do not fit in RAM to files here",
      set_string, "spill directory", FIELD(spill_dir) },
    { "disk", SETTING_VALUE, "SIZE", "dpc-disk",
      "90% of the spill directory's free space", 0,
      "bytes of spill files",
      set_size, "disk size", FIELD(cfg.store.disk_budget) },
    { "max-clients", SETTING_VALUE, "N", "max-dpc-clients", "256", 1,
      "TCP connections at once (the socket has --max-local-clients)",
      set_count, "max clients", FIELD(cfg.max_clients) },
    { "max-unauthenticated", SETTING_VALUE, "N",
      "max-dpc-unauthenticated-clients", "16", 1,
      "connections in the handshake at once; at N the server stops "
      "accepting and the listen backlog (1024) holds the next clients; none "
      "is dropped",
      set_count, "max unauthenticated", FIELD(cfg.max_unauth) },
    { "max-unauthenticated-per-source", SETTING_VALUE, "N",
      "max-dpc-unauthenticated-per-source", "half of --max-unauthenticated",
      0,
      "of those, from one address (IPv6: one /64); its further connections "
      "wait, and past max-clients/2 not yet authenticated it is refused",
      set_count, "max unauthenticated per source",
      FIELD(cfg.max_unauth_per_source) },
    { "handshake-timeout", SETTING_VALUE, "DUR", "dpc-handshake-timeout",
      "10s", 1, "time to prove the secret",
      set_duration, "handshake timeout", FIELD(cfg.handshake_timeout_ms) },
    { "idle-timeout", SETTING_VALUE, "DUR", "dpc-idle-timeout", "1h", 1,
      "close clients silent this long, 0 never",
      set_duration, "idle timeout", FIELD(cfg.idle_timeout_ms) },
    { "tls", SETTING_VALUE, "on|off|both", "dpc-tls", "on", 1,
      "TLS 1.3 for native clients (the drop-in libMagickCore), keyed from "
      "the shared secret; both: TLS and plaintext native clients, while "
      "they migrate; off: plaintext only, on networks you trust; stock "
      "clients are plaintext either way",
      set_tls, "TLS mode", FIELD(cfg.tls) },
    { "tls-cert", SETTING_VALUE, "FILE", "dpc-tls-cert", "none", 0,
      "PEM certificate (chain) for clients that verify the server with "
      "cache:dpc-tls-ca instead of the shared secret's key",
      set_string, "TLS certificate", FIELD(tls_cert) },
    { "tls-key", SETTING_VALUE, "FILE", "dpc-tls-key", "none", 0,
      "PEM private key of --tls-cert",
      set_string, "TLS key", FIELD(tls_key) },
    { "tls-ca", SETTING_VALUE, "FILE", "dpc-tls-ca", "none", 0,
      "PEM CA certificates: clients that connect with a certificate "
      "handshake must present one it signed (cache:dpc-tls-cert)",
      set_string, "TLS CA", FIELD(tls_ca) },
    { "drain-timeout", SETTING_VALUE, "DUR", "dpc-drain-timeout", "5m", 1,
      "on SIGTERM or 'magick-dpc drain', serve the open caches this long "
      "at most while refusing new ones, then exit; 0: SIGTERM stops at once",
      set_duration, "drain timeout", FIELD(cfg.drain_timeout_ms) },
    { "busy-poll", SETTING_VALUE, "USEC", "dpc-busy-poll", "50", 1,
      "after a reply, poll this many microseconds for the next request "
      "before sleeping; 0 off",
      set_busy_poll, "busy poll", FIELD(cfg.busy_poll_us) },
    { "metrics", SETTING_VALUE, "HOST:PORT", "dpc-metrics", "none", 0,
      "serve Prometheus metrics on http://HOST:PORT/metrics (numeric "
      "address, e.g. 127.0.0.1:9650; no authentication: keep it on "
      "loopback or a trusted network)",
      set_metrics, "metrics address", 0 },
};

#define NSETTINGS (sizeof(settings) / sizeof(*settings))
_Static_assert(NSETTINGS <= 32, "struct options' given has 32 bits");

static const struct setting *find_setting(const char *policy)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(settings[i].policy, policy) == 0)
            return &settings[i];
    return NULL;
}

/* Whether the command line or policy.xml set the setting named policy. */
static int given(const struct options *o, const char *policy)
{
    return (o->given >> (find_setting(policy) - settings)) & 1;
}

static int apply(struct options *o, const struct setting *s,
                 const char *value)
{
    o->given |= UINT32_C(1) << (s - settings);
    return s->set(o, s, value);
}

/* --help: ROW's help text from column 28, wrapped at 78. */
static void print_row(FILE *f, const char *left, const char *text)
{
    int col = fprintf(f, "  %s", left);
    const char *p = text;

    if (col > 26) {
        fputc('\n', f);
        col = 0;
    }
    while (*p != '\0') {
        size_t len = strcspn(p, " ");

        if (col > 28 && col + 1 + (int)len > 78) {
            fputc('\n', f);
            col = 0;
        }
        if (col < 28)
            col += fprintf(f, "%*s", 28 - col, "");
        else
            col += fprintf(f, " ");
        col += fprintf(f, "%.*s", (int)len, p);
        p += len;
        p += strspn(p, " ");
    }
    fputc('\n', f);
}

static void print_usage(FILE *f)
{
    fputs(usage_head, f);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        char left[80], text[1024];

        snprintf(left, sizeof(left), "--%s%s%s", s->option,
                 s->arg != NULL ? " " : "", s->arg != NULL ? s->arg : "");
        snprintf(text, sizeof(text), "%s [%s; default %s]", s->help,
                 s->policy, s->deflt);
        print_row(f, left, text);
    }
    print_row(f, "-v, --verbose", "trace every request");
    print_row(f, "-q, --quiet", "log errors and warnings only");
    fputs(usage_tail, f);
}

static int apply_policy(struct options *o)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        char *v = s->set == set_listen6 || s->set == set_listen7
                      ? NULL : dpc_policy_get(s->policy);
        int rc = v != NULL ? apply(o, s, v) : 0;

        free(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Listeners: the command line's if any, else policy.xml's, else default. */
static int apply_listen_policy(struct options *o)
{
    char *v6 = dpc_policy_get("dpc-listen"), *v7 = dpc_policy_get("dpc-listen-im7");
    int rc = 0;

    if (v6 != NULL)
        rc = add_listen(o, v6, DPC_STOCK_IM6);
    if (rc == 0 && v7 != NULL)
        rc = add_listen(o, v7, DPC_STOCK_IM7);
    if (rc == 0 && o->nlisten == 0 && !o->no_tcp)
        rc = add_listen(o, DEFAULT_LISTEN, DPC_STOCK_IM6);
    free(v6);
    free(v7);
    return rc;
}

/* The built-in defaults: the table's literal ones through their setters,
 * the rest measured. */
static void set_defaults(struct options *o)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);

    memset(o, 0, sizeof(*o));
    for (size_t i = 0; i < NSETTINGS; i++)
        if (settings[i].literal)
            settings[i].set(o, &settings[i], settings[i].deflt);
    o->cfg.store.mem_budget = (uint64_t)pages * (uint64_t)page / 2;
    o->cfg.local.shm_budget = (uint64_t)pages * (uint64_t)page / 4;
    o->cfg.local.path_is_default = 1;
    if (dpc_shmc_default_path(o->cfg.local.path,
                               sizeof(o->cfg.local.path)) < 0)
        o->cfg.local.path[0] = '\0';
}

static int finish_spill(struct options *o)
{
    struct statvfs vfs;

    o->cfg.store.spill_dir = o->spill_dir;
    if (o->spill_dir == NULL || given(o, "dpc-disk"))
        return 0;
    if (statvfs(o->spill_dir, &vfs) < 0) {
        fprintf(stderr, "magick-dpc: spill directory %s: %m\n", o->spill_dir);
        return -1;
    }
    o->cfg.store.disk_budget = (uint64_t)vfs.f_bavail * vfs.f_frsize / 10 * 9;
    return 0;
}

/* getopt_long's table: the settings (val OPT_SETTING + index), then the
 * options of status and shm.  One table for every command, so an option of
 * another command is "unexpected" there, not unknown. */
enum { OPT_SETTING = 256, OPT_OWNER = OPT_SETTING + 64, OPT_LOCAL, OPT_HOST,
       OPT_IM7, OPT_TIMEOUT };

_Static_assert(NSETTINGS < 64, "OPT_OWNER follows the settings' values");

static const struct option other_opts[] = {
    { "owner", required_argument, NULL, OPT_OWNER },
    { "local", no_argument, NULL, OPT_LOCAL },
    { "host", required_argument, NULL, OPT_HOST },
    { "im7", no_argument, NULL, OPT_IM7 },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "verbose", no_argument, NULL, 'v' },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
};

#define NOTHER (sizeof(other_opts) / sizeof(*other_opts))

static struct option long_opts[NSETTINGS + NOTHER + 1];

static void init_long_opts(void)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        long_opts[i].name = settings[i].option;
        long_opts[i].has_arg = settings[i].kind == SETTING_FLAG
                                   ? no_argument : required_argument;
        long_opts[i].flag = NULL;
        long_opts[i].val = OPT_SETTING + (int)i;
    }
    memcpy(long_opts + NSETTINGS, other_opts, sizeof(other_opts));
}

/* The getopt value of --socket, which status and shm take too. */
static int opt_socket(void)
{
    return OPT_SETTING + (int)(find_setting("dpc-socket") - settings);
}

/* A Unix socket systemd passed: the shared-memory tier's, in place of
 * --socket. */
static int take_unix(struct options *o, int fd, const struct sockaddr_un *sun,
                     socklen_t len)
{
    struct dpc_local_cfg *l = &o->cfg.local;
    size_t n = len > offsetof(struct sockaddr_un, sun_path)
                   ? len - offsetof(struct sockaddr_un, sun_path) : 0;

    if (l->activated)
        return fail_usage("socket activation: %s", "more than one Unix "
                          "socket passed", NULL);
    if (n == 0 || sun->sun_path[0] != '/')
        return fail_usage("socket activation: %s", "the Unix socket passed "
                          "has no path (abstract or unnamed)", NULL);
    snprintf(l->path, sizeof(l->path), "%.*s", (int)strnlen(sun->sun_path, n),
             sun->sun_path);
    l->path_is_default = 0;
    l->activated = 1;
    l->fd = fd;
    return 0;
}

/* Sockets systemd passed (LISTEN_FDS): TCP ones replace the listeners of
 * the command line and policy.xml (FileDescriptorName=im7: ImageMagick 7
 * clients, else 6); a Unix one replaces --socket. */
static int take_activated(struct options *o)
{
    struct dpc_systemd_fd fds[DPC_SYSTEMD_MAX_FDS];
    char err[DPC_ERRLEN];
    int n = dpc_systemd_listen_fds(fds, DPC_SYSTEMD_MAX_FDS, err, sizeof(err));
    size_t ntcp = 0;

    if (n < 0)
        return fail_usage("socket activation: %s", err, NULL);
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss), tl = sizeof(int);
        int type = 0;
        struct dpc_listen_spec *l;

        if (getsockname(fds[i].fd, (struct sockaddr *)&ss, &len) < 0 ||
            getsockopt(fds[i].fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
            type != SOCK_STREAM)
            return fail_usage("socket activation: descriptor %s is not a "
                              "stream socket", fds[i].name[0] ? fds[i].name
                                                              : "passed", NULL);
        if (ss.ss_family == AF_UNIX) {
            if (take_unix(o, fds[i].fd, (struct sockaddr_un *)&ss, len) < 0)
                return -1;
            continue;
        }
        if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
            return fail_usage("socket activation: %s", "a passed socket is "
                              "neither TCP nor Unix", NULL);
        if (ntcp++ == 0)
            o->nlisten = 0;         /* systemd's listeners, not ours */
        l = &o->listen[o->nlisten++];
        memset(l, 0, sizeof(*l));
        snprintf(l->host, sizeof(l->host), "socket %d from systemd",
                 fds[i].fd);
        l->flavor = strcmp(fds[i].name, "im7") == 0 ? DPC_STOCK_IM7
                                                     : DPC_STOCK_IM6;
        l->activated = 1;
        l->fd = fds[i].fd;
    }
    if (ntcp != 0)
        o->no_tcp = 0;
    return 0;
}

/* Policy first, then the command line over it. */
static int parse_serve(int argc, char **argv, struct options *o)
{
    int opt;

    set_defaults(o);
    if (apply_policy(o) < 0)
        return -1;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "vqh", long_opts, NULL)) != -1) {
        if (opt >= OPT_SETTING && opt < OPT_SETTING + (int)NSETTINGS) {
            if (apply(o, &settings[opt - OPT_SETTING],
                      optarg != NULL ? optarg : "true") < 0)
                return -1;
        } else if (opt == 'v') {
            o->verbosity = 1;
        } else if (opt == 'q') {
            o->verbosity = -1;
        } else if (opt == 'h') {
            print_usage(stdout);
            exit(0);
        } else {
            return fail_usage("unexpected option for %s", "serve", NULL);
        }
    }
    if (optind < argc)
        return fail_usage("unexpected argument '%s'", argv[optind], NULL);
    if (take_activated(o) < 0)
        return -1;
    if (o->nlisten == 0 && apply_listen_policy(o) < 0)
        return -1;
    if (o->no_tcp && o->nlisten != 0)
        return fail_usage("--listen none %s", "with other listeners", NULL);
    if (o->nlisten == 0 && o->cfg.local.path[0] == '\0')
        return fail_usage("nothing to serve: %s", "no listener, no socket",
                          NULL);
    if (o->cfg.local.max_clients_per_uid == 0)
        o->cfg.local.max_clients_per_uid = (o->cfg.local.max_clients + 1) / 2;
    if ((o->tls_cert == NULL) != (o->tls_key == NULL))
        return fail_usage("%s go together", "--tls-cert and --tls-key", NULL);
    if (o->cfg.tls == DPC_TLS_OFF && (o->tls_cert || o->tls_ca))
        return fail_usage("%s need --tls on or both",
                          "--tls-cert and --tls-ca", NULL);
    o->cfg.tls_cert = o->tls_cert;
    o->cfg.tls_key = o->tls_key;
    o->cfg.tls_ca = o->tls_ca;
    return finish_spill(o);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The number on the first line of path starting with key (NULL: the first
 * line), 0 when absent or not a number ("max"). */
static uint64_t read_u64_line(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    char line[256], err[DPC_ERRLEN];
    uint64_t v = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t klen = key != NULL ? strlen(key) : 0;

        if (key != NULL && strncmp(line, key, klen) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        if (dpc_parse_u64(line + klen, &v, err, sizeof(err)) < 0)
            v = 0;
        break;
    }
    fclose(f);
    return v;
}

/* The memory limit of this process's cgroup (v2 memory.max, v1
 * memory.limit_in_bytes), the lowest if several; 0 when none is known. */
static uint64_t cgroup_memory_limit(void)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[512], path[700];
    uint64_t limit = 0;

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p;
        uint64_t v;

        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "0::", 3) == 0) {
            /* v2: the lowest memory.max of the cgroup and its ancestors */
            for (int m = 0; m < 2; m++) {
                char dir[600], *slash;

                snprintf(dir, sizeof(dir), "%s%s",
                         m == 0 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified",
                         line + 3);
                for (;;) {
                    snprintf(path, sizeof(path), "%s/memory.max", dir);
                    v = read_u64_line(path, NULL);
                    if (v != 0 && (limit == 0 || v < limit))
                        limit = v;
                    slash = strrchr(dir, '/');
                    if (slash == NULL || slash == dir ||
                        strcmp(dir, "/sys/fs/cgroup") == 0)
                        break;
                    *slash = '\0';
                }
            }
        } else if ((p = strstr(line, ":memory:")) != NULL) {
            /* v1: memory.stat's hierarchical limit covers the ancestors */
            snprintf(path, sizeof(path), "/sys/fs/cgroup/memory%s/memory.stat",
                     p + 8);
            v = read_u64_line(path, "hierarchical_memory_limit ");
            if (v != 0 && (limit == 0 || v < limit))
                limit = v;
        }
    }
    fclose(f);
    return limit;
}

/* Segments are reserved in the server's memory cgroup: a budget past its
 * limit would meet the OOM killer instead of a refusal. */
static void fit_shm_budget(struct options *o)
{
    uint64_t limit = cgroup_memory_limit(), fit = limit / 4 * 3;
    uint64_t ram = (uint64_t)sysconf(_SC_PHYS_PAGES) *
                   (uint64_t)sysconf(_SC_PAGESIZE);

    if (o->cfg.local.path[0] == '\0' || limit == 0 || limit >= ram ||
        o->cfg.local.shm_budget <= fit)
        return;
    dpc_log(given(o, "dpc-shm-budget") ? DPC_LOG_WARN : DPC_LOG_INFO,
            "shared-memory budget lowered from %llu to %llu bytes: this "
            "server's memory cgroup allows %llu",
            (unsigned long long)o->cfg.local.shm_budget,
            (unsigned long long)fit, (unsigned long long)limit);
    o->cfg.local.shm_budget = fit;
}

/* A preallocated budget past the memory cgroup's limit would meet the OOM
 * killer while faulting in: refuse it at start, naming the limit. */
static int check_preallocate(const struct options *o)
{
    uint64_t limit = cgroup_memory_limit();

    if (!o->cfg.store.preallocate || limit == 0 ||
        o->cfg.store.mem_budget <= limit / 4 * 3)
        return 0;
    fprintf(stderr, "magick-dpc: cannot preallocate %llu MiB of memory: this "
            "server's memory cgroup allows %llu MiB (lower --memory / "
            "dpc-memory)\n",
            (unsigned long long)(o->cfg.store.mem_budget >> 20),
            (unsigned long long)(limit >> 20));
    return -1;
}

/* The keys, or the reason there are none and how to make a secret. */
static int need_secret(uint8_t key[DPC_SIPHASH_KEYLEN],
                       uint8_t wirekey[DPC_WIRE_KEY_LEN],
                       uint8_t psk[DPC_TLS_PSK_LEN])
{
    char err[DPC_ERRLEN];

    if (dpc_policy_keys(key, wirekey, psk, err, sizeof(err)) == 0)
        return 0;
    fprintf(stderr,
            "magick-dpc: %s.\n"
            "Set cache:shared-secret in the policy.xml ImageMagick reads (e.g.\n"
            "/etc/ImageMagick-6/policy.xml, or a policy.xml in a directory\n"
            "named by MAGICK_CONFIGURE_PATH), with the same value on the\n"
            "server and on every client: a random string of at least %d\n"
            "characters (%s):\n  %s\n",
            err, DPC_SECRET_MIN_LEN, DPC_SECRET_HOWTO,
            DPC_POLICY_SECRET_HINT);
    return -1;
}

static int cmd_serve(int argc, char **argv)
{
    struct options o;
    struct dpc_server *srv;
    char err[DPC_ERRLEN];
    int rc;

    if (parse_serve(argc, argv, &o) < 0)
        return EXIT_USAGE;
    if (o.nlisten != 0 &&
        need_secret(o.cfg.sipkey, o.cfg.wirekey, o.cfg.tlspsk) < 0)
        return EXIT_USAGE;
    dpc_log_set_level(o.verbosity > 0 ? DPC_LOG_TRACE
                      : o.verbosity < 0 ? DPC_LOG_WARN : DPC_LOG_INFO);
    fit_shm_budget(&o);
    /* Half for each uid when several may connect; a server only its own
     * uid may use shares with no one. */
    if (o.cfg.local.shm_limits.uid_bytes == 0)
        o.cfg.local.shm_limits.uid_bytes =
            o.cfg.local.nallow_uids == 0 && o.cfg.local.nallow_gids == 0
                ? o.cfg.local.shm_budget
                : o.cfg.local.shm_budget / 2;
    if (check_preallocate(&o) < 0)
        return 1;
    o.cfg.listen = o.listen;
    o.cfg.nlisten = o.nlisten;
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    srv = dpc_server_new(&o.cfg, err, sizeof(err));
    explicit_bzero(o.cfg.sipkey, sizeof(o.cfg.sipkey));
    explicit_bzero(o.cfg.wirekey, sizeof(o.cfg.wirekey));
    explicit_bzero(o.cfg.tlspsk, sizeof(o.cfg.tlspsk));
    free(o.tls_cert);
    free(o.tls_key);
    free(o.tls_ca);
    if (srv == NULL) {
        dpc_log(DPC_LOG_ERROR, "%s", err);
        free(o.spill_dir);
        return 1;
    }
    dpc_log(DPC_LOG_INFO, "serving: memory %llu bytes, spill %s (%llu bytes), "
            "max %u clients, %u in the handshake (%u per source)",
            (unsigned long long)o.cfg.store.mem_budget,
            o.spill_dir ? o.spill_dir : "off",
            (unsigned long long)o.cfg.store.disk_budget, o.cfg.max_clients,
            o.cfg.max_unauth, o.cfg.max_unauth_per_source != 0
                                  ? o.cfg.max_unauth_per_source
                                  : (o.cfg.max_unauth + 1) / 2);
    rc = dpc_server_run(srv);
    dpc_server_free(srv);
    free(o.spill_dir);
    dpc_log(DPC_LOG_INFO, "stopped%s", rc == DPC_SERVER_CUT
                                        ? " (drain cut caches short)" : "");
    return rc < 0 ? 1 : rc == DPC_SERVER_CUT ? EXIT_CUT : 0;
}

/* The socket a local command talks to: --socket, else policy.xml's
 * dpc-socket, else the default. */
static int local_path(const char *opt, char *path, size_t len)
{
    char *v = opt == NULL ? dpc_policy_get("dpc-socket") : NULL;
    int rc = 0;

    if (opt != NULL || v != NULL) {
        const char *p = opt != NULL ? opt : v;

        if (p[0] != '/' || strlen(p) >= len)
            rc = -1;
        else
            snprintf(path, len, "%s", p);
    } else
        rc = dpc_shmc_default_path(path, len);
    free(v);
    return rc;
}

/* The local server at path, trusted as policy.xml's dpc-server-user says. */
static struct dpc_shmc *local_connect(const char *path, char *err,
                                      size_t errlen)
{
    char *user = dpc_policy_get("dpc-server-user");
    struct dpc_shmc *c = dpc_shmc_connect(path, user, 5000, err, errlen);

    free(user);
    return c;
}

/* LIST or STATUS over the Unix socket, printed. */
static int local_json(const char *opt, enum dpc_lp_op op)
{
    char path[108], err[DPC_ERRLEN], *json = NULL;
    struct dpc_shmc *c;
    int rc;

    if (local_path(opt, path, sizeof(path)) < 0)
        return fail_usage("socket path %s", "not absolute, or too long",
                          NULL), EXIT_USAGE;
    c = local_connect(path, err, sizeof(err));
    rc = c != NULL ? dpc_shmc_json(c, op, &json, err, sizeof(err)) : -1;
    dpc_shmc_close(c);
    if (rc < 0) {
        fprintf(stderr, "magick-dpc: %s\n", err);
        return 1;
    }
    printf("%s\n", json);
    free(json);
    return 0;
}

static int cmd_shm(int argc, char **argv)
{
    const char *socket_opt = NULL;
    struct dpc_lp_req r = { .op = DPC_LP_REMOVE, .owner = DPC_LP_SELF };
    char path[108], err[DPC_ERRLEN];
    struct dpc_shmc *c;
    uint32_t owner[DPC_LOCAL_MAX_IDS];
    size_t n = 0;
    int opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (opt == opt_socket())
            socket_opt = optarg;
        else if (opt == OPT_OWNER) {
            if (set_ids("owners", optarg, 0, owner, &n) < 0)
                return EXIT_USAGE;
            if (n != 1)
                return fail_usage("--owner takes one user, not '%s'", optarg,
                                  NULL), EXIT_USAGE;
            r.owner = owner[0];
        } else
            return fail_usage("unexpected option for %s", "shm", NULL),
                   EXIT_USAGE;
    }
    if (optind < argc && strcmp(argv[optind], "ls") == 0 && optind + 1 == argc)
        return local_json(socket_opt, DPC_LP_LIST);
    if (!(optind + 2 == argc && strcmp(argv[optind], "rm") == 0))
        return fail_usage("usage: magick-dpc shm %s", "ls | rm NAME", NULL),
               EXIT_USAGE;
    if (!dpc_lp_valid_name(argv[optind + 1], strlen(argv[optind + 1])))
        return fail_usage("bad name '%s'", argv[optind + 1], NULL),
               EXIT_USAGE;
    snprintf(r.name, sizeof(r.name), "%s", argv[optind + 1]);
    if (local_path(socket_opt, path, sizeof(path)) < 0)
        return fail_usage("socket path %s", "not absolute, or too long",
                          NULL), EXIT_USAGE;
    c = local_connect(path, err, sizeof(err));
    rc = c != NULL ? dpc_shmc_simple(c, &r, err, sizeof(err)) : -1;
    dpc_shmc_close(c);
    if (rc < 0) {
        fprintf(stderr, "magick-dpc: shm rm %s: %s\n", r.name, err);
        return 1;
    }
    return 0;
}

/* status (drain 0) or drain over the stock protocol, printed. */
static int remote_json(const char *cmd, int drain, int argc, char **argv)
{
    char host[256] = "127.0.0.1", err[DPC_ERRLEN], *json = NULL;
    unsigned port = DPC_DEFAULT_PORT;
    uint64_t timeout = 5000;
    enum dpc_stock_flavor flavor = DPC_STOCK_IM6;
    uint8_t key[DPC_SIPHASH_KEYLEN], wirekey[DPC_WIRE_KEY_LEN];
    struct dpc_stockclient *c;
    int opt, rc;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (opt == OPT_HOST && dpc_parse_hostport(optarg, host, sizeof(host),
                                                  &port, err, sizeof(err)) < 0)
            return fail_usage("bad host '%s'", optarg, err), EXIT_USAGE;
        else if (opt == OPT_IM7)
            flavor = DPC_STOCK_IM7;
        else if (opt == OPT_TIMEOUT &&
                 parse_duration("timeout", optarg, &timeout) < 0)
            return EXIT_USAGE;
        else if (!drain && (opt == opt_socket() || opt == OPT_LOCAL))
            return local_json(opt == opt_socket() ? optarg : NULL,
                              DPC_LP_STATUS);
        else if (opt != OPT_HOST && opt != OPT_IM7 && opt != OPT_TIMEOUT)
            return fail_usage("unexpected option for %s", cmd, NULL),
                   EXIT_USAGE;
    }
    if (need_secret(key, wirekey, NULL) < 0)
        return EXIT_USAGE;
    explicit_bzero(wirekey, sizeof(wirekey));
    c = dpc_stockclient_connect(host, port, flavor, key, (unsigned)timeout,
                                err, sizeof(err));
    explicit_bzero(key, sizeof(key));
    rc = c == NULL ? -1
         : drain ? dpc_stockclient_drain(c, &json, err, sizeof(err))
                 : dpc_stockclient_status(c, &json, err, sizeof(err));
    dpc_stockclient_close(c);
    if (rc < 0) {
        fprintf(stderr, "magick-dpc: %s: %s\n", cmd, err);
        return 1;
    }
    printf("%s\n", json);
    free(json);
    return 0;
}

/* Keys derived from the shared secret live in this process: no core
 * file, and not dumpable (no ptrace or /proc/PID/mem by the same uid). */
static void harden_process(void)
{
    struct rlimit none = { 0, 0 };

    if (setrlimit(RLIMIT_CORE, &none) < 0)
        perror("magick-dpc: setrlimit(RLIMIT_CORE)");
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        perror("magick-dpc: prctl(PR_SET_DUMPABLE)");
}

int main(int argc, char **argv)
{
    int rc;

    init_long_opts();
    if (argc < 2) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("magick-dpc %s\n", PACKAGE_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "serve") != 0 && strcmp(argv[1], "status") != 0 &&
        strcmp(argv[1], "drain") != 0 && strcmp(argv[1], "shm") != 0)
        return fail_usage("unknown command '%s'", argv[1], NULL), EXIT_USAGE;
    harden_process();
    if (dpc_policy_init(argv[0]) < 0) {
        fprintf(stderr, "magick-dpc: could not read policy.xml\n");
        return 1;
    }
    if (strcmp(argv[1], "serve") == 0)
        rc = cmd_serve(argc - 1, argv + 1);
    else if (strcmp(argv[1], "status") == 0)
        rc = remote_json("status", 0, argc - 1, argv + 1);
    else if (strcmp(argv[1], "drain") == 0)
        rc = remote_json("drain", 1, argc - 1, argv + 1);
    else
        rc = cmd_shm(argc - 1, argv + 1);
    dpc_policy_done();
    return rc;
}
