/*
 * Unit tests for dpc_shm, the server's registry of sealed memfd segments
 * under one budget and its per-uid and descriptor limits, for
 * dpc_local_fd_room, and for the client's dpc_shm_check_fd,
 * dpc_shmc_check_path, dpc_shmc_server_uid and dpc_shmc_default_path
 * (dpc_shmclient).
 *
 * No mocks: every segment is a real memfd, and what the tests check is
 * what the kernel enforces on the descriptors handed out (seals, a
 * read-only open, copy-on-write private mappings).  Peers are made up:
 * their uids are geteuid() + 1000 and + 2000, so neither is the server's
 * own uid, whatever uid the tests run as.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "dpc_local.h"
#include "dpc_shm.h"
#include "dpc_shmclient.h"

#define KIB 1024ULL
#define SEG (64 * KIB)
#define SEALS_SIZE (F_SEAL_SHRINK | F_SEAL_GROW)

#define assert_contains(hay, needle)                                       \
    do {                                                                   \
        if (strstr((hay), (needle)) == NULL)                               \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));   \
    } while (0)

static uid_t uid_a(void)
{
    return geteuid() + 1000;
}

static uid_t uid_b(void)
{
    return geteuid() + 2000;
}

static struct dpc_shm_peer peer(uint64_t conn, uid_t uid, pid_t pid)
{
    return (struct dpc_shm_peer){ .conn = conn, .uid = uid, .gid = uid,
                                  .pid = pid };
}

static struct dpc_shm_stats stats(const struct dpc_shm *m)
{
    struct dpc_shm_stats st;

    dpc_shm_get_stats(m, &st);
    return st;
}

static struct dpc_shm *new_shm(uint64_t budget)
{
    struct dpc_shm *m = dpc_shm_new(budget);

    assert_non_null(m);
    return m;
}

/* ALLOC (name NULL) or PUBLISH that must succeed; returns the descriptor. */
static int create(struct dpc_shm *m, const struct dpc_shm_peer *p,
                  uint64_t size, const char *name, uint64_t ttl_ms,
                  uint64_t *id)
{
    char err[256] = "";
    int fd = -1;
    enum dpc_lp_status st = dpc_shm_create(m, p, size, name, ttl_ms, 0.0,
                                           &fd, id, err, sizeof(err));

    if (st != DPC_LP_OK)
        fail_msg("create %llu bytes '%s': %s: %s", (unsigned long long)size,
                 name != NULL ? name : "(cache)", dpc_lp_status_name(st),
                 err);
    assert_true(fd >= 0);
    return fd;
}

/* ATTACH that must succeed; returns the descriptor. */
static int attach(struct dpc_shm *m, const struct dpc_shm_peer *p,
                  uint32_t owner, const char *name, uint64_t *id,
                  uint64_t *size)
{
    char err[256] = "";
    int fd = -1;
    enum dpc_lp_status st = dpc_shm_attach(m, p, owner, name, 0.0, &fd, id, size,
                                           err, sizeof(err));

    if (st != DPC_LP_OK)
        fail_msg("attach '%s': %s: %s", name, dpc_lp_status_name(st), err);
    assert_true(fd >= 0);
    return fd;
}

static void commit_ok(struct dpc_shm *m, const struct dpc_shm_peer *p,
                      uint64_t id, double now)
{
    char err[256] = "";
    enum dpc_lp_status st = dpc_shm_commit(m, p, id, now, err, sizeof(err));

    if (st != DPC_LP_OK)
        fail_msg("commit %llu: %s: %s", (unsigned long long)id,
                 dpc_lp_status_name(st), err);
}

/* Fills a writable segment through a shared mapping, then unmaps it. */
static void fill_fd(int fd, uint64_t size, uint8_t byte)
{
    uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

    assert_true(p != MAP_FAILED);
    memset(p, byte, size);
    assert_int_equal(munmap(p, size), 0);
}

/* 1 when all size bytes of fd read through a shared mapping are byte. */
static int fd_holds(int fd, uint64_t size, uint8_t byte)
{
    const uint8_t *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    int ok = 1;

    assert_true(p != MAP_FAILED);
    for (uint64_t i = 0; i < size && ok; i++)
        ok = p[i] == byte;
    assert_int_equal(munmap((void *)p, size), 0);
    return ok;
}

/* A memfd of size bytes with the given seals and mode. */
static int test_memfd(uint64_t size, int seals, mode_t mode)
{
    int fd = memfd_create("dpc-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(fchmod(fd, mode), 0);
    if (seals != 0)
        assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
    return fd;
}

/* check_fd must refuse fd with an error containing why. */
static void check_refused(int fd, uint64_t size, enum dpc_shm_kind kind,
                          const char *why)
{
    char err[256] = "";

    if (dpc_shm_check_fd(fd, size, kind, err, sizeof(err)) != -1)
        fail_msg("descriptor accepted as kind %d", (int)kind);
    assert_contains(err, why);
}

static void check_ok(int fd, uint64_t size, enum dpc_shm_kind kind)
{
    char err[256] = "";

    if (dpc_shm_check_fd(fd, size, kind, err, sizeof(err)) != 0)
        fail_msg("descriptor refused as kind %d: %s", (int)kind, err);
}

/* A cache segment: a 0600 memfd of the size asked, sealed against
 * shrinking, growing and further seals; ftruncate fails, writing works. */
static void shm_alloc_sealed_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer p = peer(1, uid_a(), 100);
    char err[256] = "";
    uint64_t id;
    int fd = create(m, &p, SEG, NULL, 0, &id);
    struct stat st;

    assert_true(id != 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, SEG);
    assert_int_equal(fcntl(fd, F_GET_SEALS) &
                     (SEALS_SIZE | F_SEAL_SEAL | F_SEAL_WRITE),
                     SEALS_SIZE | F_SEAL_SEAL);
    check_ok(fd, SEG, DPC_SHM_CACHE);
    assert_int_equal(ftruncate(fd, SEG / 2), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(ftruncate(fd, SEG * 2), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    fill_fd(fd, SEG, 0xab);
    assert_true(fd_holds(fd, SEG, 0xab));
    assert_true(stats(m).used == SEG);
    assert_true(stats(m).segments == 1);
    assert_int_equal(dpc_shm_release(m, &p, id, err, sizeof(err)), DPC_LP_OK);
    assert_true(stats(m).used == 0);
    assert_true(stats(m).segments == 0);
    /* The memory lives on while the client holds it. */
    assert_true(fd_holds(fd, SEG, 0xab));
    close(fd);
    dpc_shm_free(m);
}

/* Past the budget, ALLOC and PUBLISH get DPC_LP_ENOSPC and a reason;
 * used returns to 0 after release and after the connection closes. */
static void shm_budget_refused_test(void **state)
{
    struct dpc_shm *m = new_shm(4 * SEG);
    struct dpc_shm_peer p = peer(1, uid_a(), 100), q = peer(2, uid_b(), 200);
    char err[256] = "";
    uint64_t id1, id2, id3, idx = 77;
    int fd1 = create(m, &p, 2 * SEG, NULL, 0, &id1);
    int fd2 = create(m, &q, SEG, "img", 0, &id2);
    int fd = -1;

    assert_true(stats(m).used == 3 * SEG);
    assert_int_equal(dpc_shm_create(m, &p, 2 * SEG, NULL, 0, 0.0, &fd, &idx,
                                    err, sizeof(err)), DPC_LP_ENOSPC);
    assert_contains(err, "shared-memory budget spent");
    assert_int_equal(fd, -1);
    assert_true(idx == 77);
    assert_int_equal(dpc_shm_create(m, &q, 2 * SEG, "img2", 0, 0.0, &fd, &idx,
                                    err, sizeof(err)), DPC_LP_ENOSPC);
    assert_int_equal(dpc_shm_create(m, &p, UINT64_MAX, NULL, 0, 0.0, &fd,
                                    &idx, err, sizeof(err)), DPC_LP_ENOSPC);
    assert_int_equal(fd, -1);
    assert_true(stats(m).refused == 3);
    assert_true(stats(m).used == 3 * SEG);
    assert_true(stats(m).segments == 2);
    /* Exactly the rest of the budget fits. */
    close(create(m, &p, SEG, NULL, 0, &id3));
    assert_true(stats(m).used == 4 * SEG);
    assert_true(stats(m).peak == 4 * SEG);
    assert_int_equal(dpc_shm_release(m, &p, id1, err, sizeof(err)), DPC_LP_OK);
    assert_true(stats(m).used == 2 * SEG);
    assert_int_equal(dpc_shm_release(m, &q, id2, err, sizeof(err)), DPC_LP_OK);
    assert_true(stats(m).names == 0);
    assert_int_equal(dpc_shm_conn_closed(m, 1), 1);
    assert_true(stats(m).used == 0);
    assert_true(stats(m).segments == 0);
    assert_true(stats(m).peak == 4 * SEG);
    /* The whole budget is usable again. */
    close(create(m, &q, 4 * SEG, NULL, 0, &id3));
    assert_int_equal(dpc_shm_conn_closed(m, 2), 1);
    assert_true(stats(m).used == 0);
    close(fd1);
    close(fd2);
    dpc_shm_free(m);
}

/* Another connection, even of the same uid, cannot release or commit a
 * segment it did not create; a committed one cannot be released. */
static void shm_other_conn_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer p = peer(1, uid_a(), 100);
    struct dpc_shm_peer same = peer(2, uid_a(), 100);
    char err[256] = "";
    uint64_t cache, named;
    int fd1 = create(m, &p, SEG, NULL, 0, &cache);
    int fd2 = create(m, &p, SEG, "img", 0, &named);

    assert_int_equal(dpc_shm_release(m, &same, cache, err, sizeof(err)),
                     DPC_LP_ENOENT);
    assert_contains(err, "is not this connection's");
    assert_int_equal(dpc_shm_release(m, &same, named, err, sizeof(err)),
                     DPC_LP_ENOENT);
    assert_int_equal(dpc_shm_commit(m, &same, named, 0.0, err, sizeof(err)),
                     DPC_LP_ENOENT);
    assert_int_equal(dpc_shm_release(m, &p, 9999, err, sizeof(err)),
                     DPC_LP_ENOENT);
    assert_contains(err, "segment 9999");
    assert_true(stats(m).segments == 2);
    commit_ok(m, &p, named, 0.0);
    /* Committed: the registry's now, not the publisher's. */
    assert_int_equal(dpc_shm_release(m, &p, named, err, sizeof(err)),
                     DPC_LP_ENOENT);
    assert_int_equal(dpc_shm_commit(m, &p, named, 0.0, err, sizeof(err)),
                     DPC_LP_ENOENT);
    assert_int_equal(dpc_shm_release(m, &p, cache, err, sizeof(err)),
                     DPC_LP_OK);
    assert_true(stats(m).segments == 1);
    close(fd1);
    close(fd2);
    dpc_shm_free(m);
}

/* COMMIT of a cache segment is refused: it has no name. */
static void shm_commit_cache_segment_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer p = peer(1, uid_a(), 100);
    char err[256] = "";
    uint64_t id;
    int fd = create(m, &p, SEG, NULL, 0, &id);

    assert_int_equal(dpc_shm_commit(m, &p, id, 0.0, err, sizeof(err)),
                     DPC_LP_EINVAL);
    assert_contains(err, "has no name to publish");
    close(fd);
    dpc_shm_free(m);
}

/* A named segment is writable, resizable by nobody, unsealed for writes
 * until COMMIT; COMMIT fails with EBUSY while the publisher still maps it
 * writable and shared, and succeeds once it is unmapped. */
static void shm_commit_busy_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer p = peer(1, uid_a(), 100);
    char err[256] = "";
    uint64_t id, aid, size;
    int fd = create(m, &p, SEG, "busy", 0, &id), afd = -1;
    uint8_t *w;

    check_ok(fd, SEG, DPC_SHM_PUBLISH);
    assert_int_equal(fcntl(fd, F_GET_SEALS) & (F_SEAL_WRITE | F_SEAL_SEAL), 0);
    assert_int_equal(ftruncate(fd, SEG * 2), -1);
    w = mmap(NULL, SEG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(w != MAP_FAILED);
    memset(w, 0x5c, SEG);
    assert_int_equal(dpc_shm_commit(m, &p, id, 0.0, err, sizeof(err)),
                     DPC_LP_EBUSY);
    assert_contains(err, "still mapped writable");
    assert_contains(err, "busy");
    /* Not published yet. */
    assert_int_equal(dpc_shm_attach(m, &p, DPC_LP_SELF, "busy", 0.0, &afd, &aid,
                                    &size, err, sizeof(err)), DPC_LP_ENOENT);
    assert_int_equal(afd, -1);
    assert_int_equal(munmap(w, SEG), 0);
    commit_ok(m, &p, id, 0.0);
    assert_true((fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE) != 0);
    afd = attach(m, &p, DPC_LP_SELF, "busy", &aid, &size);
    assert_true(aid == id);
    assert_true(size == SEG);
    assert_true(fd_holds(afd, SEG, 0x5c));
    close(afd);
    close(fd);
    dpc_shm_free(m);
}

/* After COMMIT an attached descriptor cannot be written: shared writable
 * mappings and write() fail (the publisher's own descriptor too); a
 * private writable mapping works and its copy-on-write changes are not
 * seen by another attach. */
static void shm_attach_readonly_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer p = peer(1, uid_a(), 100), r = peer(2, uid_b(), 200);
    uint64_t id, aid, size;
    int fd = create(m, &p, SEG, "ro", 0, &id), afd, afd2;
    uint8_t *priv;

    fill_fd(fd, SEG, 0x11);
    commit_ok(m, &p, id, 0.0);
    afd = attach(m, &r, uid_a(), "ro", &aid, &size);
    assert_true(size == SEG);
    check_ok(afd, SEG, DPC_SHM_ATTACH);
    /* A read-only open file description (when /proc lets it reopen). */
    if (access("/proc/self/fd", R_OK) == 0)
        assert_int_equal(fcntl(afd, F_GETFL) & O_ACCMODE, O_RDONLY);
    assert_true(mmap(NULL, SEG, PROT_READ | PROT_WRITE, MAP_SHARED, afd, 0) ==
                MAP_FAILED);
    assert_int_equal(write(afd, "x", 1), -1);
    assert_int_equal(pwrite(afd, "x", 1, 0), -1);
    assert_int_equal(ftruncate(afd, 0), -1);
    assert_int_equal(fcntl(afd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    /* The publisher's writable descriptor is sealed as well. */
    assert_int_equal(pwrite(fd, "x", 1, 0), -1);
    assert_true(mmap(NULL, SEG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) ==
                MAP_FAILED);
    /* Copy-on-write. */
    priv = mmap(NULL, SEG, PROT_READ | PROT_WRITE, MAP_PRIVATE, afd, 0);
    assert_true(priv != MAP_FAILED);
    assert_int_equal(priv[0], 0x11);
    memset(priv, 0x22, SEG);
    assert_int_equal(priv[SEG - 1], 0x22);
    afd2 = attach(m, &p, DPC_LP_SELF, "ro", &aid, &size);
    assert_true(fd_holds(afd2, SEG, 0x11));
    assert_true(fd_holds(afd, SEG, 0x11));
    assert_int_equal(munmap(priv, SEG), 0);
    close(afd2);
    close(afd);
    close(fd);
    dpc_shm_free(m);
}

/* ATTACH finds names by owner uid: DPC_LP_SELF is the caller's own; an
 * unknown name or another uid's name under SELF is ENOENT. */
static void shm_attach_by_owner_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100), b = peer(2, uid_b(), 200);
    char err[256] = "";
    uint64_t id, aid, size;
    int fd = create(m, &a, SEG, "pic", 0, &id), afd = -1;

    commit_ok(m, &a, id, 0.0);
    assert_int_equal(dpc_shm_attach(m, &b, DPC_LP_SELF, "pic", 0.0, &afd, &aid,
                                    &size, err, sizeof(err)), DPC_LP_ENOENT);
    assert_contains(err, "no image named 'pic' published by uid");
    assert_int_equal(dpc_shm_attach(m, &a, DPC_LP_SELF, "pix", 0.0, &afd, &aid,
                                    &size, err, sizeof(err)), DPC_LP_ENOENT);
    assert_int_equal(dpc_shm_attach(m, &a, (uint32_t)uid_b(), "pic", 0.0, &afd,
                                    &aid, &size, err, sizeof(err)),
                     DPC_LP_ENOENT);
    assert_int_equal(afd, -1);
    afd = attach(m, &b, (uint32_t)uid_a(), "pic", &aid, &size);
    assert_true(aid == id);
    close(afd);
    close(fd);
    dpc_shm_free(m);
}

/* A COMMIT replaces the owner's older segment of that name (whose
 * attached mappings live on); another uid's same name is untouched. */
static void shm_commit_replaces_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100), b = peer(2, uid_b(), 200);
    uint64_t id1, id2, idb, aid, size;
    int fd1 = create(m, &a, SEG, "img", 0, &id1);
    int fdb = create(m, &b, SEG, "img", 0, &idb), fd2, old;
    const uint8_t *oldmap;

    fill_fd(fd1, SEG, 'a');
    commit_ok(m, &a, id1, 0.0);
    fill_fd(fdb, SEG, 'b');
    commit_ok(m, &b, idb, 0.0);
    old = attach(m, &a, DPC_LP_SELF, "img", &aid, &size);
    oldmap = mmap(NULL, SEG, PROT_READ, MAP_SHARED, old, 0);
    assert_true(oldmap != MAP_FAILED);
    fd2 = create(m, &a, 2 * SEG, "img", 0, &id2);
    fill_fd(fd2, 2 * SEG, 'c');
    assert_true(stats(m).names == 3);
    /* Until COMMIT the old one is what ATTACH gives. */
    close(attach(m, &b, (uint32_t)uid_a(), "img", &aid, &size));
    assert_true(aid == id1 && size == SEG);
    commit_ok(m, &a, id2, 0.0);
    assert_true(stats(m).names == 2);
    assert_true(stats(m).segments == 2);
    assert_true(stats(m).used == 3 * SEG);
    close(attach(m, &b, (uint32_t)uid_a(), "img", &aid, &size));
    assert_true(aid == id2 && size == 2 * SEG);
    close(attach(m, &b, DPC_LP_SELF, "img", &aid, &size));
    assert_true(aid == idb && size == SEG);
    assert_int_equal(oldmap[0], 'a');
    assert_int_equal(oldmap[SEG - 1], 'a');
    munmap((void *)oldmap, SEG);
    close(old);
    close(fd1);
    close(fd2);
    close(fdb);
    dpc_shm_free(m);
}

/* REMOVE: the owner may, another uid may not (EPERM), the server's own
 * uid (geteuid) may remove anyone's; unknown names are ENOENT. */
static void shm_remove_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100), b = peer(2, uid_b(), 200);
    struct dpc_shm_peer root = peer(3, geteuid(), 300);
    char err[256] = "";
    uint64_t id1, id2, id3;
    int fd1 = create(m, &a, SEG, "one", 0, &id1);
    int fd2 = create(m, &a, SEG, "two", 0, &id2);
    int fd3 = create(m, &a, SEG, "three", 0, &id3);

    commit_ok(m, &a, id1, 0.0);
    commit_ok(m, &a, id2, 0.0);
    assert_int_equal(dpc_shm_remove(m, &b, (uint32_t)uid_a(), "one", err,
                                    sizeof(err)), DPC_LP_EPERM);
    assert_contains(err, "may not remove");
    assert_int_equal(dpc_shm_remove(m, &b, DPC_LP_SELF, "one", err,
                                    sizeof(err)), DPC_LP_ENOENT);
    assert_true(stats(m).names == 3);
    /* Another connection of the owner's uid may. */
    assert_int_equal(dpc_shm_remove(m, &(struct dpc_shm_peer){ 9, uid_a(),
                                                               0, 999 },
                                    DPC_LP_SELF, "one", err, sizeof(err)),
                     DPC_LP_OK);
    assert_int_equal(dpc_shm_remove(m, &a, (uint32_t)uid_a(), "one", err,
                                    sizeof(err)), DPC_LP_ENOENT);
    assert_contains(err, "no image named 'one'");
    assert_int_equal(dpc_shm_remove(m, &root, (uint32_t)uid_a(), "two", err,
                                    sizeof(err)), DPC_LP_OK);
    /* Not committed: no name to remove yet. */
    assert_int_equal(dpc_shm_remove(m, &a, DPC_LP_SELF, "three", err,
                                    sizeof(err)), DPC_LP_ENOENT);
    assert_true(stats(m).names == 1);
    assert_true(stats(m).used == SEG);
    assert_int_equal(dpc_shm_conn_closed(m, 1), 1);
    assert_true(stats(m).used == 0);
    assert_true(stats(m).names == 0);
    close(fd1);
    close(fd2);
    close(fd3);
    dpc_shm_free(m);
}

/* A name's time to live counts from COMMIT; dpc_shm_expire drops it once
 * passed, names without one stay; over a year is refused. */
static void shm_expire_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100);
    char err[256] = "", json[512];
    uint64_t id1, id2, aid, size, big = 366ULL * 24 * 3600 * 1000;
    int fd1 = create(m, &a, SEG, "short", 10000, &id1);
    int fd2 = create(m, &a, SEG, "forever", 0, &id2), fd = -1;

    commit_ok(m, &a, id1, 1000.0);
    commit_ok(m, &a, id2, 1000.0);
    assert_int_equal(dpc_shm_expire(m, 1009.5), 0);
    dpc_shm_list_json(m, 1004.0, json, sizeof(json));
    assert_contains(json, "\"name\":\"short\",\"bytes\":65536,"
                          "\"ttl_seconds\":6}");
    assert_contains(json, "\"name\":\"forever\",\"bytes\":65536,"
                          "\"ttl_seconds\":-1}");
    assert_int_equal(dpc_shm_expire(m, 1010.0), 1);
    assert_int_equal(dpc_shm_attach(m, &a, DPC_LP_SELF, "short", 0.0, &fd, &aid,
                                    &size, err, sizeof(err)), DPC_LP_ENOENT);
    assert_true(stats(m).used == SEG);
    assert_true(stats(m).names == 1);
    assert_int_equal(dpc_shm_expire(m, 1e15), 0);
    close(attach(m, &a, DPC_LP_SELF, "forever", &aid, &size));
    assert_int_equal(dpc_shm_create(m, &a, SEG, "long", big + 1, 0.0, &fd,
                                    &aid, err, sizeof(err)), DPC_LP_EINVAL);
    assert_contains(err, "over a year");
    assert_int_equal(fd, -1);
    fd = create(m, &a, SEG, "long", big, &aid);
    close(fd);
    close(fd1);
    close(fd2);
    dpc_shm_free(m);
}

/* When a connection closes its cache and uncommitted segments go; names
 * it committed stay; other connections keep theirs. */
static void shm_conn_closed_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100), b = peer(2, uid_b(), 200);
    uint64_t c1, n1, n2, c2, aid, size;
    int fds[4];

    fds[0] = create(m, &a, SEG, NULL, 0, &c1);
    fds[1] = create(m, &a, SEG, "draft", 0, &n1);
    fds[2] = create(m, &a, 2 * SEG, "final", 0, &n2);
    fds[3] = create(m, &b, SEG, NULL, 0, &c2);
    commit_ok(m, &a, n2, 0.0);
    assert_true(stats(m).used == 5 * SEG);
    assert_int_equal(dpc_shm_conn_closed(m, 1), 2);
    assert_true(stats(m).used == 3 * SEG);
    assert_true(stats(m).segments == 2);
    assert_true(stats(m).names == 1);
    close(attach(m, &b, (uint32_t)uid_a(), "final", &aid, &size));
    assert_true(aid == n2);
    assert_int_equal(dpc_shm_conn_closed(m, 1), 0);
    /* Committed names belong to no connection, not even id 0. */
    assert_int_equal(dpc_shm_conn_closed(m, 0), 0);
    assert_int_equal(dpc_shm_conn_closed(m, 2), 1);
    assert_true(stats(m).used == 2 * SEG);
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    dpc_shm_free(m);
}

/* STATUS JSON: the budget counters and one holder per (uid, pid), with
 * committed names under pid 0; a short buffer is cut, NUL-terminated. */
static void shm_status_json_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100), a2 = peer(2, uid_a(), 101);
    struct dpc_shm_peer b = peer(3, uid_b(), 200);
    char json[1024], want[256], small[40];
    uint64_t id;
    int fds[5];
    size_t n;

    n = dpc_shm_status_json(m, json, sizeof(json));
    assert_int_equal(n, strlen(json));
    assert_string_equal(json, "{\"budget\":1048576,\"used\":0,\"peak\":0,"
                              "\"segments\":0,\"names\":0,\"refused\":0,"
                              "\"pooled\":0,\"pool_reuses\":0,"
                              "\"max_segments\":65536,\"holders\":[]}");
    fds[0] = create(m, &a, SEG, NULL, 0, &id);
    fds[1] = create(m, &a, 2 * SEG, NULL, 0, &id);
    fds[2] = create(m, &a2, SEG, NULL, 0, &id);
    fds[3] = create(m, &b, SEG, "pub", 0, &id);
    commit_ok(m, &b, id, 0.0);
    fds[4] = create(m, &b, 4 * SEG, NULL, 0, &id);
    n = dpc_shm_status_json(m, json, sizeof(json));
    assert_int_equal(n, strlen(json));
    assert_contains(json, "{\"budget\":1048576,\"used\":589824,"
                          "\"peak\":589824,\"segments\":5,\"names\":1,"
                          "\"refused\":0,\"pooled\":0,\"pool_reuses\":0,"
                          "\"max_segments\":65536,\"holders\":[");
    snprintf(want, sizeof(want), "{\"uid\":%u,\"pid\":100,\"segments\":2,"
             "\"bytes\":196608}", (unsigned)uid_a());
    assert_contains(json, want);
    snprintf(want, sizeof(want), "{\"uid\":%u,\"pid\":101,\"segments\":1,"
             "\"bytes\":65536}", (unsigned)uid_a());
    assert_contains(json, want);
    snprintf(want, sizeof(want), "{\"uid\":%u,\"pid\":200,\"segments\":1,"
             "\"bytes\":262144}", (unsigned)uid_b());
    assert_contains(json, want);
    snprintf(want, sizeof(want), "{\"uid\":%u,\"pid\":0,\"segments\":1,"
             "\"bytes\":65536}", (unsigned)uid_b());
    assert_contains(json, want);
    assert_int_equal(json[n - 2], ']');
    assert_int_equal(json[n - 1], '}');
    memset(small, 'x', sizeof(small));
    n = dpc_shm_status_json(m, small, sizeof(small));
    assert_int_equal(n, sizeof(small) - 1);
    assert_int_equal(small[n], '\0');
    assert_memory_equal(small, json, n);
    assert_int_equal(dpc_shm_status_json(m, small, 0), 0);
    assert_int_equal(dpc_shm_status_json(m, small, 1), 0);
    assert_int_equal(small[0], '\0');
    for (int i = 0; i < 5; i++)
        close(fds[i]);
    dpc_shm_free(m);
}

/* LIST JSON: committed names only, with owner, bytes and seconds left. */
static void shm_list_json_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100), b = peer(2, uid_b(), 200);
    char json[512], want[256];
    uint64_t id1, id2, id3;
    int fd1, fd2, fd3;
    size_t n;

    n = dpc_shm_list_json(m, 0.0, json, sizeof(json));
    assert_string_equal(json, "[]");
    assert_int_equal(n, 2);
    fd1 = create(m, &a, SEG, "alpha", 0, &id1);
    fd2 = create(m, &b, 2 * SEG, "beta", 60000, &id2);
    fd3 = create(m, &a, SEG, "draft", 0, &id3);
    commit_ok(m, &a, id1, 50.0);
    commit_ok(m, &b, id2, 50.0);
    n = dpc_shm_list_json(m, 80.0, json, sizeof(json));
    assert_int_equal(n, strlen(json));
    snprintf(want, sizeof(want), "{\"owner\":%u,\"name\":\"alpha\","
             "\"bytes\":65536,\"ttl_seconds\":-1}", (unsigned)uid_a());
    assert_contains(json, want);
    snprintf(want, sizeof(want), "{\"owner\":%u,\"name\":\"beta\","
             "\"bytes\":131072,\"ttl_seconds\":30}", (unsigned)uid_b());
    assert_contains(json, want);
    assert_null(strstr(json, "draft"));
    assert_int_equal(json[0], '[');
    assert_int_equal(json[n - 1], ']');
    /* Past its time but not yet expired: 0 seconds left, never negative. */
    dpc_shm_list_json(m, 500.0, json, sizeof(json));
    assert_contains(json, "\"name\":\"beta\",\"bytes\":131072,"
                          "\"ttl_seconds\":0}");
    close(fd1);
    close(fd2);
    close(fd3);
    dpc_shm_free(m);
}

/* A freed cache segment waits in the pool: not in use, not a segment,
 * still under the budget; its uid's next ALLOC of that size gets it back
 * (another uid's or another size does not); a reservation that needs the
 * room evicts it, and so does its time running out. */
static void shm_pool_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100), b = peer(2, uid_b(), 200);
    struct dpc_shm_stats st;
    char err[256] = "";
    uint64_t id, id2;
    int fd;

    (void)state;
    fd = create(m, &a, 64 * KIB, NULL, 0, &id);
    close(fd);
    assert_int_equal(dpc_shm_release(m, &a, id, err, sizeof(err)), DPC_LP_OK);
    st = stats(m);
    assert_int_equal(st.used, 0);
    assert_int_equal(st.segments, 0);
    assert_int_equal(st.pooled, 64 * KIB);
    close(create(m, &b, 64 * KIB, NULL, 0, &id2));    /* another uid */
    assert_int_equal(stats(m).pooled, 64 * KIB);
    fd = create(m, &a, 64 * KIB, NULL, 0, &id2);        /* reused */
    assert_true(id2 != id);
    st = stats(m);
    assert_int_equal(st.pooled, 0);
    assert_int_equal(st.used, 128 * KIB);
    assert_int_equal(dpc_shm_release(m, &a, id2, err, sizeof(err)),
                     DPC_LP_OK);
    close(fd);
    /* 900 KiB more needs the pooled 64 KiB back: evicted, not refused */
    close(create(m, &a, 900 * KIB, NULL, 0, &id));
    st = stats(m);
    assert_int_equal(st.pooled, 0);
    assert_true(st.peak <= 1024 * KIB);
    dpc_shm_conn_closed(m, 1);
    assert_true(stats(m).pooled <= 1024 * KIB / 8);
    dpc_shm_expire(m, 1e12);                            /* long after */
    assert_int_equal(stats(m).pooled, 0);
    dpc_shm_free(m);
}

/* One uid cannot take every name: past DPC_SHM_MAX_NAMES_PER_UID its
 * publishes are refused while another uid's still work; a one-byte
 * segment is charged a whole page. */
static void shm_names_per_uid_test(void **state)
{
    struct dpc_shm *m = new_shm(64ull << 20);
    struct dpc_shm_peer a = peer(1, uid_a(), 100), b = peer(2, uid_b(), 200);
    char name[32], err[256] = "";
    uint64_t id;
    int fd = -1;

    (void)state;
    for (int i = 0; i < DPC_SHM_MAX_NAMES_PER_UID; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        close(create(m, &a, 1, name, 0, &id));
    }
    assert_int_equal(stats(m).used, (uint64_t)DPC_SHM_MAX_NAMES_PER_UID * 4096);
    assert_int_equal(dpc_shm_create(m, &a, 1, "one-more", 0, 0.0, &fd, &id,
                                    err, sizeof(err)), DPC_LP_ENOSPC);
    assert_contains(err, "names");
    assert_int_equal(fd, -1);
    close(create(m, &b, 1, "theirs", 0, &id));
    dpc_shm_free(m);
}

/* fd reopened read-only (fd closed), as the server hands out attaches. */
static int readonly(int fd)
{
    char path[64];
    int ro;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    ro = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(ro >= 0);
    close(fd);
    return ro;
}

/* check_fd: properly sealed memfds of the right size and mode 0600 pass
 * for each kind (read-only for ATTACH); a writable one is refused as an
 * ATTACH. */
static void shm_check_fd_sealed_test(void **state)
{
    int cache = test_memfd(4096, SEALS_SIZE | F_SEAL_SEAL, 0600);
    int pub = test_memfd(4096, SEALS_SIZE, 0600);
    int att = test_memfd(4096, SEALS_SIZE | F_SEAL_WRITE | F_SEAL_SEAL, 0600);
    int att2 = test_memfd(4096, SEALS_SIZE | F_SEAL_WRITE, 0400);

    check_ok(cache, 4096, DPC_SHM_CACHE);
    check_ok(cache, 4096, DPC_SHM_PUBLISH);
    check_ok(pub, 4096, DPC_SHM_PUBLISH);
    check_refused(att, 4096, DPC_SHM_ATTACH, "writable");
    check_ok(att, 4096, DPC_SHM_CACHE);
    att = readonly(att);
    att2 = readonly(att2);
    check_ok(att, 4096, DPC_SHM_ATTACH);
    check_ok(att2, 4096, DPC_SHM_ATTACH);
    close(cache);
    close(pub);
    close(att);
    close(att2);
}

/* check_fd: a memfd without seals is refused for every kind. */
static void shm_check_fd_unsealed_test(void **state)
{
    int fd = test_memfd(4096, 0, 0600);

    check_refused(fd, 4096, DPC_SHM_CACHE, "segment is not sealed");
    check_refused(fd, 4096, DPC_SHM_PUBLISH, "its size or contents could "
                  "change under us");
    check_refused(fd, 4096, DPC_SHM_ATTACH, "segment is not sealed");
    close(fd);
    /* Sealed against growing only. */
    fd = test_memfd(4096, F_SEAL_GROW, 0600);
    check_refused(fd, 4096, DPC_SHM_PUBLISH, "not sealed (seals 0x4, "
                  "need 0x6)");
    close(fd);
}

/* check_fd: size seals without F_SEAL_SEAL do for PUBLISH, not CACHE. */
static void shm_check_fd_no_seal_seal_test(void **state)
{
    int fd = test_memfd(4096, SEALS_SIZE, 0600);

    check_refused(fd, 4096, DPC_SHM_CACHE, "not sealed (seals 0x6, "
                  "need 0x7)");
    check_ok(fd, 4096, DPC_SHM_PUBLISH);
    close(fd);
}

/* check_fd: without F_SEAL_WRITE a segment is not one to attach. */
static void shm_check_fd_no_write_seal_test(void **state)
{
    int fd = test_memfd(4096, SEALS_SIZE | F_SEAL_SEAL, 0600);

    check_refused(fd, 4096, DPC_SHM_ATTACH, "not sealed (seals 0x7, "
                  "need 0xe)");
    check_ok(fd, 4096, DPC_SHM_CACHE);
    close(fd);
}

/* check_fd: a size other than the server's is refused, both ways. */
static void shm_check_fd_size_test(void **state)
{
    int fd = test_memfd(8192, SEALS_SIZE | F_SEAL_SEAL, 0600);

    check_refused(fd, 4096, DPC_SHM_CACHE,
                  "segment is 8192 bytes, the server said 4096");
    check_refused(fd, 8193, DPC_SHM_CACHE, "the server said 8193");
    check_refused(fd, 0, DPC_SHM_PUBLISH, "the server said 0");
    check_refused(fd, UINT64_MAX, DPC_SHM_CACHE,
                  "the server said 18446744073709551615");
    close(fd);
}

/* check_fd: group or other permission bits are refused. */
static void shm_check_fd_mode_test(void **state)
{
    int fd = test_memfd(4096, 0, 0644);

    assert_int_equal(fcntl(fd, F_ADD_SEALS, SEALS_SIZE | F_SEAL_SEAL), 0);
    check_refused(fd, 4096, DPC_SHM_CACHE, "segment has mode 0644: others "
                  "may open it");
    assert_int_equal(fchmod(fd, 0660), 0);
    check_refused(fd, 4096, DPC_SHM_CACHE, "mode 0660");
    assert_int_equal(fchmod(fd, 0602), 0);
    check_refused(fd, 4096, DPC_SHM_CACHE, "mode 0602");
    assert_int_equal(fchmod(fd, 0600), 0);
    check_ok(fd, 4096, DPC_SHM_CACHE);
    close(fd);
}

/* check_fd: a regular file that is no memfd (tmpfile) is refused because
 * it cannot carry the seals. */
static void shm_check_fd_regular_file_test(void **state)
{
    FILE *f = tmpfile();
    int fd;

    assert_non_null(f);
    fd = fileno(f);
    assert_int_equal(ftruncate(fd, 4096), 0);
    assert_int_equal(fchmod(fd, 0600), 0);
    /* "cannot be sealed" on most file systems; on tmpfs F_GET_SEALS
     * answers F_SEAL_SEAL alone, "not sealed". */
    check_refused(fd, 4096, DPC_SHM_CACHE, "sealed");
    check_refused(fd, 4096, DPC_SHM_PUBLISH, "sealed");
    check_refused(fd, 4096, DPC_SHM_ATTACH, "sealed");
    fclose(f);
}

/* check_fd: a pipe, and a closed descriptor, are refused. */
static void shm_check_fd_pipe_test(void **state)
{
    int p[2];

    assert_int_equal(pipe(p), 0);
    check_refused(p[0], 0, DPC_SHM_ATTACH, "segment is not a regular file");
    check_refused(p[1], 0, DPC_SHM_CACHE, "not a regular file");
    close(p[0]);
    close(p[1]);
    check_refused(p[0], 0, DPC_SHM_CACHE, "fstat: Bad file descriptor");
}

/* check_fd accepts what dpc_shm hands out, for the kind it is. */
static void shm_check_fd_server_segments_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100);
    uint64_t cid, pid, aid, size;
    int cfd = create(m, &a, 3 * 4096, NULL, 0, &cid);
    int pfd = create(m, &a, 5 * 4096, "x", 0, &pid), afd;

    check_ok(cfd, 3 * 4096, DPC_SHM_CACHE);
    check_ok(pfd, 5 * 4096, DPC_SHM_PUBLISH);
    check_refused(pfd, 5 * 4096, DPC_SHM_CACHE, "not sealed");
    check_refused(pfd, 5 * 4096, DPC_SHM_ATTACH, "not sealed");
    commit_ok(m, &a, pid, 0.0);
    afd = attach(m, &a, DPC_LP_SELF, "x", &aid, &size);
    check_ok(afd, size, DPC_SHM_ATTACH);
    close(afd);
    close(pfd);
    close(cfd);
    dpc_shm_free(m);
}

/* The socket path: $XDG_RUNTIME_DIR/magick-dpc.sock when it is absolute,
 * else the system server's; -1 when the buffer is short. */
static void shm_default_path_test(void **state)
{
    const char *old = getenv("XDG_RUNTIME_DIR");
    char *saved = old != NULL ? strdup(old) : NULL;
    char buf[128];

    assert_int_equal(setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1), 0);
    assert_int_equal(dpc_shmc_default_path(buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/run/user/4242/magick-dpc.sock");
    assert_int_equal(dpc_shmc_default_path(buf, 30), -1);
    assert_int_equal(dpc_shmc_default_path(buf, 31), 0);
    assert_string_equal(buf, "/run/user/4242/magick-dpc.sock");
    assert_int_equal(setenv("XDG_RUNTIME_DIR", "relative/dir", 1), 0);
    assert_int_equal(dpc_shmc_default_path(buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/run/magick-dpc/magick-dpc.sock");
    assert_int_equal(setenv("XDG_RUNTIME_DIR", "", 1), 0);
    assert_int_equal(dpc_shmc_default_path(buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/run/magick-dpc/magick-dpc.sock");
    assert_int_equal(unsetenv("XDG_RUNTIME_DIR"), 0);
    assert_int_equal(dpc_shmc_default_path(buf, sizeof(buf)), 0);
    assert_string_equal(buf, "/run/magick-dpc/magick-dpc.sock");
    assert_int_equal(dpc_shmc_default_path(buf, 10), -1);
    if (saved != NULL) {
        setenv("XDG_RUNTIME_DIR", saved, 1);
        free(saved);
    }
}

/* Blocks of memory the file behind fd holds. */
static long long blocks_of(int fd)
{
    struct stat st;

    assert_int_equal(fstat(fd, &st), 0);
    return (long long)st.st_blocks;
}

/* A client that frees a segment (or closes its connection) but keeps its
 * descriptor keeps no memory: the server empties the segment first.  The
 * size stays, the bytes read zero. */
static void shm_free_empties_test(void **state)
{
    struct dpc_shm *m = new_shm(4096 * KIB);        /* pool: 512 KiB */
    struct dpc_shm_peer a = peer(1, uid_a(), 100);
    char err[256] = "";
    uint64_t id1, id2;
    int fd1 = create(m, &a, 1024 * KIB, NULL, 0, &id1);
    int fd2 = create(m, &a, 1024 * KIB, NULL, 0, &id2);

    (void)state;
    fill_fd(fd1, 1024 * KIB, 0x5a);
    fill_fd(fd2, 1024 * KIB, 0xa5);
    assert_true(blocks_of(fd1) >= 2048);
    assert_int_equal(dpc_shm_release(m, &a, id1, err, sizeof(err)),
                     DPC_LP_OK);
    assert_int_equal(blocks_of(fd1), 0);
    assert_true(fd_holds(fd1, 1024 * KIB, 0));
    assert_int_equal(dpc_shm_conn_closed(m, 1), 1);
    assert_int_equal(blocks_of(fd2), 0);
    assert_int_equal(stats(m).used, 0);
    assert_int_equal(stats(m).pooled, 0);
    close(fd1);
    close(fd2);
    dpc_shm_free(m);
}

/* Per uid: its bytes, segments and names have a ceiling each, named in the
 * refusal; another uid is not held back by the first one's. */
static void shm_uid_limits_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100), a2 = peer(3, uid_a(), 101);
    struct dpc_shm_peer b = peer(2, uid_b(), 200);
    char err[256] = "";
    uint64_t id;
    int fd = -1;

    (void)state;
    dpc_shm_set_limits(m, &(struct dpc_shm_limits){
        .uid_bytes = 4 * SEG, .uid_segments = 2, .uid_names = 1 });
    close(create(m, &a, 3 * SEG, NULL, 0, &id));
    /* a second connection of the same uid shares the uid's bytes */
    assert_int_equal(dpc_shm_create(m, &a2, 2 * SEG, NULL, 0, 0.0, &fd, &id,
                                    err, sizeof(err)), DPC_LP_ENOSPC);
    assert_contains(err, "dpc-shm-uid-bytes");
    assert_int_equal(fd, -1);
    close(create(m, &b, 3 * SEG, NULL, 0, &id));      /* b has its own */
    close(create(m, &a2, 1, "one", 0, &id));
    assert_int_equal(dpc_shm_create(m, &a, 1, NULL, 0, 0.0, &fd, &id, err,
                                    sizeof(err)), DPC_LP_ENOSPC);
    assert_contains(err, "dpc-shm-uid-segments");
    assert_int_equal(dpc_shm_conn_closed(m, 1), 1);
    assert_int_equal(dpc_shm_create(m, &a, 1, "two", 0, 0.0, &fd, &id, err,
                                    sizeof(err)), DPC_LP_ENOSPC);
    assert_contains(err, "dpc-shm-uid-names");
    close(create(m, &b, 1, "two", 0, &id));
    dpc_shm_free(m);
}

/* Publishing a name the uid already publishes replaces it: at the uid's
 * last name (dpc-shm-uid-names 1) the same name is taken again, a new one
 * is still refused. */
static void shm_uid_names_replace_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100);
    char err[256] = "";
    uint64_t id;
    int fd = -1;

    (void)state;
    dpc_shm_set_limits(m, &(struct dpc_shm_limits){ .uid_names = 1 });
    close(create(m, &a, 1, "only", 0, &id));
    commit_ok(m, &a, id, 0.0);
    close(create(m, &a, 2, "only", 0, &id));
    commit_ok(m, &a, id, 0.0);
    assert_int_equal(stats(m).names, 1);
    assert_int_equal(dpc_shm_create(m, &a, 1, "other", 0, 0.0, &fd, &id, err,
                                    sizeof(err)), DPC_LP_ENOSPC);
    assert_contains(err, "dpc-shm-uid-names");
    assert_int_equal(fd, -1);
    dpc_shm_free(m);
}

/* Segments hold a server descriptor each: past the room RLIMIT_NOFILE
 * leaves them, pooled ones go first, then requests are refused. */
static void shm_max_fds_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100), b = peer(2, uid_b(), 200);
    char err[256] = "";
    uint64_t id, id1;
    int fd = -1;

    (void)state;
    dpc_shm_set_max_fds(m, 3);
    close(create(m, &a, SEG, NULL, 0, &id1));
    close(create(m, &a, SEG, NULL, 0, &id));
    close(create(m, &b, 1, "img", 0, &id));
    assert_int_equal(dpc_shm_create(m, &b, 1, NULL, 0, 0.0, &fd, &id, err,
                                    sizeof(err)), DPC_LP_ENOSPC);
    assert_contains(err, "no room: descriptors");
    assert_int_equal(fd, -1);
    assert_int_equal(dpc_shm_release(m, &a, id1, err, sizeof(err)),
                     DPC_LP_OK);
    assert_int_equal(stats(m).pooled, SEG);
    close(create(m, &b, 2 * SEG, NULL, 0, &id));       /* evicts it */
    assert_int_equal(stats(m).pooled, 0);
    dpc_shm_set_max_fds(m, 0);
    assert_int_equal(dpc_shm_create(m, &a, 1, NULL, 0, 0.0, &fd, &id, err,
                                    sizeof(err)), DPC_LP_ENOSPC);
    assert_contains(err, "no room: descriptors");
    dpc_shm_free(m);
}

/* A name lives at most the lifetime, whatever time to live (or none) its
 * publisher asked; a shorter one is kept. */
static void shm_name_lifetime_test(void **state)
{
    struct dpc_shm *m = new_shm(1024 * KIB);
    struct dpc_shm_peer a = peer(1, uid_a(), 100);
    char json[512];
    uint64_t id1, id2, id3;

    (void)state;
    dpc_shm_set_limits(m, &(struct dpc_shm_limits){
        .name_lifetime_ms = 60000 });
    close(create(m, &a, 1, "forever", 0, &id1));
    close(create(m, &a, 1, "long", 3600000, &id2));
    close(create(m, &a, 1, "short", 10000, &id3));
    commit_ok(m, &a, id1, 100.0);
    commit_ok(m, &a, id2, 100.0);
    commit_ok(m, &a, id3, 100.0);
    dpc_shm_list_json(m, 100.0, json, sizeof(json));
    assert_contains(json, "\"name\":\"forever\",\"bytes\":1,"
                          "\"ttl_seconds\":60}");
    assert_contains(json, "\"name\":\"long\",\"bytes\":1,"
                          "\"ttl_seconds\":60}");
    assert_contains(json, "\"name\":\"short\",\"bytes\":1,"
                          "\"ttl_seconds\":10}");
    assert_int_equal(dpc_shm_expire(m, 160.0), 3);
    assert_int_equal(stats(m).names, 0);
    dpc_shm_free(m);
}

/* The descriptors left to segments: the limit less two per client, one
 * per listener and the slack; none when they take it all; never more
 * than the registry holds. */
static void local_fd_room_test(void **state)
{
    (void)state;
    assert_int_equal(dpc_local_fd_room(512, 16, 2, 8),
                     512 - (32 + 2 + 16 + DPC_LOCAL_FD_SLACK));
    assert_int_equal(dpc_local_fd_room(512, 256, 2, 256), 0);
    assert_int_equal(dpc_local_fd_room(64, 0, 1, 0), 0);
    assert_int_equal(dpc_local_fd_room(UINT64_MAX, 256, 2, 256),
                     DPC_SHM_MAX_SEGMENTS);
}

/* A socket bound at dir/name (dir made); returns its descriptor. */
static int bind_at(const char *path)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    return fd;
}

static void path_refused(const char *path, const char *why)
{
    char err[512] = "";

    if (dpc_shmc_check_path(path, DPC_SHMC_NO_UID, err, sizeof(err)) != -1)
        fail_msg("%s trusted", path);
    assert_contains(err, why);
}

static void path_ok(const char *path)
{
    char err[512] = "";

    if (dpc_shmc_check_path(path, DPC_SHMC_NO_UID, err, sizeof(err)) != 0)
        fail_msg("%s refused: %s", path, err);
}

/* A socket is trusted only where no one else could have put it: its own
 * directory writable by its owner alone (a sticky one as /tmp is not
 * enough), directories above writable by others only when sticky. */
static void shmc_check_path_test(void **state)
{
    char top[] = "/tmp/dpc-path-XXXXXX", dir[128], sock[160], file[160];
    int fd1, fd2, f;

    (void)state;
    assert_non_null(mkdtemp(top));
    snprintf(sock, sizeof(sock), "%s/s.sock", top);
    fd1 = bind_at(sock);
    path_ok(sock);
    assert_int_equal(chmod(top, 01777), 0);
    path_refused(sock, "others may write to");
    assert_int_equal(chmod(top, 0770), 0);
    path_refused(sock, "(mode 0770), so anyone");
    /* a private directory under a sticky one: trusted */
    assert_int_equal(chmod(top, 01777), 0);
    snprintf(dir, sizeof(dir), "%s/private", top);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(sock, sizeof(sock), "%s/s.sock", dir);
    fd2 = bind_at(sock);
    path_ok(sock);
    /* ... but not under one others may write without the sticky bit */
    assert_int_equal(chmod(top, 0777), 0);
    path_refused(sock, "others may write to");
    assert_int_equal(chmod(top, 0700), 0);
    path_refused("relative/s.sock", "not absolute");
    snprintf(file, sizeof(file), "%s/plain", dir);
    f = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(f >= 0);
    close(f);
    path_refused(file, "is not a socket");
    unlink(file);
    unlink(sock);
    snprintf(sock, sizeof(sock), "%s/s.sock", top);
    unlink(sock);
    rmdir(dir);
    rmdir(top);
    close(fd1);
    close(fd2);
}

/* The server user: a number as is; a name that is no user an error; the
 * default name missing is no error, just no third uid. */
static void shmc_server_uid_test(void **state)
{
    char err[256] = "";
    uid_t uid = 7;

    (void)state;
    assert_int_equal(dpc_shmc_server_uid("4321", &uid, err, sizeof(err)), 0);
    assert_int_equal(uid, 4321);
    assert_int_equal(dpc_shmc_server_uid("root", &uid, err, sizeof(err)), 0);
    assert_int_equal(uid, 0);
    assert_int_equal(dpc_shmc_server_uid("no-such-user-dpc", &uid, err,
                                         sizeof(err)), -1);
    assert_contains(err, "cache:dpc-server-user: no user 'no-such-user-dpc'");
    assert_int_equal(dpc_shmc_server_uid("12x", &uid, err, sizeof(err)), -1);
    assert_int_equal(dpc_shmc_server_uid(NULL, &uid, err, sizeof(err)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shm_alloc_sealed_test),
        cmocka_unit_test(shm_names_per_uid_test),
        cmocka_unit_test(shm_pool_test),
        cmocka_unit_test(shm_budget_refused_test),
        cmocka_unit_test(shm_other_conn_test),
        cmocka_unit_test(shm_commit_cache_segment_test),
        cmocka_unit_test(shm_commit_busy_test),
        cmocka_unit_test(shm_attach_readonly_test),
        cmocka_unit_test(shm_attach_by_owner_test),
        cmocka_unit_test(shm_commit_replaces_test),
        cmocka_unit_test(shm_remove_test),
        cmocka_unit_test(shm_expire_test),
        cmocka_unit_test(shm_conn_closed_test),
        cmocka_unit_test(shm_status_json_test),
        cmocka_unit_test(shm_list_json_test),
        cmocka_unit_test(shm_check_fd_sealed_test),
        cmocka_unit_test(shm_check_fd_unsealed_test),
        cmocka_unit_test(shm_check_fd_no_seal_seal_test),
        cmocka_unit_test(shm_check_fd_no_write_seal_test),
        cmocka_unit_test(shm_check_fd_size_test),
        cmocka_unit_test(shm_check_fd_mode_test),
        cmocka_unit_test(shm_check_fd_regular_file_test),
        cmocka_unit_test(shm_check_fd_pipe_test),
        cmocka_unit_test(shm_check_fd_server_segments_test),
        cmocka_unit_test(shm_default_path_test),
        cmocka_unit_test(shm_free_empties_test),
        cmocka_unit_test(shm_uid_limits_test),
        cmocka_unit_test(shm_uid_names_replace_test),
        cmocka_unit_test(shm_max_fds_test),
        cmocka_unit_test(shm_name_lifetime_test),
        cmocka_unit_test(local_fd_room_test),
        cmocka_unit_test(shmc_check_path_test),
        cmocka_unit_test(shmc_server_uid_test),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
