/*
 * region-diff: drives random pixel regions through a memory pixel cache
 * and a distributed one side by side, and requires the same verdict and
 * the same bytes for each.
 *
 *   region-diff HOST:PORT [--seed N] [--regions N] [--max-side N]
 *
 * Linked against MagickCore; the library the dynamic linker gives it
 * decides which client is tested: the system's libMagickCore (the stock
 * client, one request per row, to the server's stock protocol) or the
 * drop-in (LD_LIBRARY_PATH: the native protocol and its tile cache).  Each
 * image is opened twice, once with the memory resource allowed (memory
 * cache) and once with memory, map and disk limited to 0 and the registry's
 * cache:hosts set (the distributed cache, both libraries); the program
 * checks the second really is distributed.
 *
 * Regions: inside, on every edge and corner, wrapping past the right edge
 * onto the next row, past the end of the cache, negative, starting outside,
 * empty and huge (up to 2^50 on a side: beyond that ImageMagick's own
 * arithmetic overflows).  Operations: GetAuthenticPixels (read),
 * QueueAuthenticPixels + SyncAuthenticPixels (write), Get + change + Sync
 * (read-modify-write), GetVirtualPixels (reads that may lie partly outside
 * the image, served through the virtual-pixel method); with the index plane
 * on a third of the images (CMYK).  After each image's regions, the whole
 * of both caches must be equal.
 *
 * Exit status 0 when every verdict and byte agreed, 1 otherwise, 2 on a
 * usage or set-up error.  Prints the seed so a failure can be replayed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <magick/MagickCore.h>

struct run {
    uint64_t rng;
    unsigned long max_side;
    unsigned long regions, accepted, refused, differ, images, indexed;
};

static uint64_t next(struct run *r)
{
    uint64_t x = r->rng;                /* xorshift64* */

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* A number in [0, n); 0 when n is 0. */
static uint64_t below(struct run *r, uint64_t n)
{
    return n == 0 ? 0 : next(r) % n;
}

static void fill(struct run *r, void *p, size_t n)
{
    unsigned char *q = p;

    for (size_t i = 0; i < n; i++)
        q[i] = (unsigned char)next(r);
}

struct region {
    ssize_t x, y;
    size_t w, h;
    const char *kind;
};

/* One region of a c x rr image, of a random kind. */
static struct region pick(struct run *r, size_t c, size_t rr)
{
    static const size_t huge[] = { (size_t)1 << 31, (size_t)1 << 40,
                                   (size_t)1 << 50 };
    struct region g;
    size_t k = below(r, 10);

    g.x = (ssize_t)below(r, c);
    g.y = (ssize_t)below(r, rr);
    g.w = 1 + below(r, c - (size_t)g.x);
    g.h = 1 + below(r, rr - (size_t)g.y);
    g.kind = "inside";
    switch (k) {
    case 0:
    case 1:
        break;
    case 2:                             /* an edge or corner, or one past */
        g.kind = "edge";
        if (next(r) & 1)
            g.x = (ssize_t)(c - 1 - below(r, c < 3 ? c : 3));
        if (next(r) & 1)
            g.y = (ssize_t)(rr - 1 - below(r, rr < 3 ? rr : 3));
        g.w = c - (size_t)g.x + below(r, 2);
        g.h = rr - (size_t)g.y + below(r, 2);
        if (next(r) & 1) {
            g.x = 0;
            g.w = c + below(r, 2);
        }
        break;
    case 3:                             /* rows that wrap onto the next */
    case 4:
        g.kind = "wrap";
        g.h = 1 + below(r, 3);
        g.w = c - (size_t)g.x + 1 + below(r, 2 * c);
        break;
    case 5:                             /* near the end, likely past it */
        g.kind = "past-end";
        g.y = (ssize_t)(rr - 1 - below(r, rr < 2 ? rr : 2));
        g.h = 1 + below(r, 2);
        g.w = c - (size_t)g.x + below(r, c + 2);
        break;
    case 6:                             /* negative */
        g.kind = "negative";
        if (next(r) & 1)
            g.x = -1 - (ssize_t)below(r, 3);
        else
            g.y = -1 - (ssize_t)below(r, 3);
        break;
    case 7:                             /* first pixel outside, or empty */
        g.kind = "outside";
        switch (below(r, 4)) {
        case 0: g.x = (ssize_t)(c + below(r, 3)); break;
        case 1: g.y = (ssize_t)(rr + below(r, 3)); break;
        case 2: g.w = 0; break;
        default: g.h = 0; break;
        }
        break;
    case 8:                             /* huge */
        g.kind = "huge";
        if (next(r) & 1)
            g.w = huge[below(r, 3)];
        else
            g.h = huge[below(r, 3)];
        break;
    default:                            /* the whole cache as one run */
        g.kind = "whole-run";
        g.x = 0;
        g.y = 0;
        g.h = 1;
        g.w = c * rr + (size_t)below(r, 2);
        if (next(r) & 1)
            g.x = (ssize_t)below(r, 2);
        break;
    }
    return g;
}

static int report(struct run *r, const struct region *g, const char *op,
                  const char *what)
{
    r->differ++;
    fprintf(stderr, "region-diff: %s %zux%zu%+zd%+zd (%s): %s\n", op, g->w,
            g->h, g->x, g->y, g->kind, what);
    return -1;
}

/* The verdicts and the bytes of one read of both images. */
static int same_read(struct run *r, const struct region *g, const char *op,
                     const PixelPacket *a, const PixelPacket *b,
                     const IndexPacket *ia, const IndexPacket *ib)
{
    size_t n = g->w * g->h;

    if ((a == NULL) != (b == NULL))
        return report(r, g, op, a == NULL ? "memory refused, distributed "
                      "served" : "memory served, distributed refused");
    if (a == NULL) {
        r->refused++;
        return 0;
    }
    r->accepted++;
    if (memcmp(a, b, n * sizeof(*a)) != 0)
        return report(r, g, op, "pixels differ");
    if ((ia == NULL) != (ib == NULL) ||
        (ia != NULL && memcmp(ia, ib, n * sizeof(*ia)) != 0))
        return report(r, g, op, "indexes differ");
    return 0;
}

enum op { OP_GET, OP_QUEUE, OP_MODIFY, OP_VIRTUAL, OP_COUNT };
static const char *const op_names[OP_COUNT] = {
    "get", "queue+sync", "get+change+sync", "virtual"
};

/* Reads that may lie partly outside the image (virtual pixels).  Huge ones
 * would allocate the whole region: not asked. */
static void virtual_read(struct run *r, const struct region *g, Image *a,
                         Image *b, int indexed, ExceptionInfo *ea,
                         ExceptionInfo *eb)
{
    const PixelPacket *va, *vb;

    if (g->w == 0 || g->h == 0 || g->w > ((size_t)1 << 30) ||
        g->h > ((size_t)1 << 30) ||
        g->w * g->h > 4 * a->columns * a->rows + 64) {
        r->regions--;
        return;
    }
    va = GetVirtualPixels(a, g->x, g->y, g->w, g->h, ea);
    vb = GetVirtualPixels(b, g->x, g->y, g->w, g->h, eb);
    (void)same_read(r, g, "virtual", va, vb,
                    indexed && va ? GetVirtualIndexQueue(a) : NULL,
                    indexed && vb ? GetVirtualIndexQueue(b) : NULL);
}

static void one_region(struct run *r, Image *a, Image *b, int indexed)
{
    struct region g = pick(r, a->columns, a->rows);
    enum op op = (enum op)below(r, OP_COUNT);
    ExceptionInfo *ea = AcquireExceptionInfo(), *eb = AcquireExceptionInfo();
    const char *name = op_names[op];
    PixelPacket *pa = NULL, *pb = NULL;

    r->regions++;
    if (op == OP_VIRTUAL) {
        virtual_read(r, &g, a, b, indexed, ea, eb);
        goto out;
    }
    if (op == OP_QUEUE) {
        pa = QueueAuthenticPixels(a, g.x, g.y, g.w, g.h, ea);
        pb = QueueAuthenticPixels(b, g.x, g.y, g.w, g.h, eb);
        if ((pa == NULL) != (pb == NULL)) {
            report(r, &g, name, "verdicts differ");
            goto out;
        }
        if (pa == NULL) {
            r->refused++;
            goto out;
        }
        r->accepted++;
    } else {
        pa = GetAuthenticPixels(a, g.x, g.y, g.w, g.h, ea);
        pb = GetAuthenticPixels(b, g.x, g.y, g.w, g.h, eb);
        if (same_read(r, &g, name, pa, pb,
                      indexed && pa ? GetAuthenticIndexQueue(a) : NULL,
                      indexed && pb ? GetAuthenticIndexQueue(b) : NULL) < 0 ||
            pa == NULL || op == OP_GET)
            goto out;
    }
    /* Write: the same new bytes through both, then sync both. */
    {
        size_t n = g.w * g.h;
        uint64_t seed = next(r);

        r->rng = seed;
        fill(r, pa, n * sizeof(*pa));
        r->rng = seed;
        fill(r, pb, n * sizeof(*pb));
        if (indexed) {
            r->rng = seed ^ 0x9e3779b97f4a7c15ULL;
            fill(r, GetAuthenticIndexQueue(a), n * sizeof(IndexPacket));
            r->rng = seed ^ 0x9e3779b97f4a7c15ULL;
            fill(r, GetAuthenticIndexQueue(b), n * sizeof(IndexPacket));
        }
        r->rng = seed + 1;
        if (SyncAuthenticPixels(a, ea) != SyncAuthenticPixels(b, eb))
            report(r, &g, name, "sync verdicts differ");
    }
out:
    DestroyExceptionInfo(ea);
    DestroyExceptionInfo(eb);
}

/* Both caches whole: equal. */
static int same_images(struct run *r, Image *a, Image *b, int indexed)
{
    ExceptionInfo *e = AcquireExceptionInfo();
    struct region g = { 0, 0, a->columns, a->rows, "whole image" };
    const PixelPacket *pa, *pb;
    size_t n = a->columns * a->rows;
    PixelPacket *copy = malloc(n * sizeof(*copy));
    IndexPacket *icopy = malloc(n * sizeof(*icopy));
    int rc = 0;

    pa = GetVirtualPixels(a, 0, 0, a->columns, a->rows, e);
    if (pa == NULL || copy == NULL || icopy == NULL) {
        rc = report(r, &g, "final", "memory cache unreadable");
        goto out;
    }
    memcpy(copy, pa, n * sizeof(*pa));
    if (indexed)
        memcpy(icopy, GetVirtualIndexQueue(a), n * sizeof(*icopy));
    pb = GetVirtualPixels(b, 0, 0, b->columns, b->rows, e);
    if (pb == NULL)
        rc = report(r, &g, "final", "distributed cache unreadable");
    else if (memcmp(copy, pb, n * sizeof(*pb)) != 0)
        rc = report(r, &g, "final", "pixels differ");
    else if (indexed &&
             memcmp(icopy, GetVirtualIndexQueue(b), n * sizeof(*icopy)) != 0)
        rc = report(r, &g, "final", "indexes differ");
out:
    free(copy);
    free(icopy);
    DestroyExceptionInfo(e);
    return rc;
}

/* A c x rr image on a cache of the tier the resource limits allow, filled
 * with the bytes of seed. */
static Image *new_image(ImageInfo *info, size_t c, size_t rr, int indexed,
                        uint64_t seed, struct run *r)
{
    ExceptionInfo *e = AcquireExceptionInfo();
    Image *im = AcquireImage(info);
    PixelPacket *p;

    if (indexed)
        im->colorspace = CMYKColorspace;
    if (SetImageExtent(im, c, rr) == MagickFalse ||
        (p = QueueAuthenticPixels(im, 0, 0, c, rr, e)) == NULL) {
        fprintf(stderr, "region-diff: cannot open a %zux%zu cache: %s\n", c,
                rr, e->reason ? e->reason : "?");
        DestroyExceptionInfo(e);
        return DestroyImage(im);
    }
    r->rng = seed;
    fill(r, p, c * rr * sizeof(*p));
    if (indexed)
        fill(r, GetAuthenticIndexQueue(im), c * rr * sizeof(IndexPacket));
    if (SyncAuthenticPixels(im, e) == MagickFalse) {
        DestroyExceptionInfo(e);
        return DestroyImage(im);
    }
    DestroyExceptionInfo(e);
    return im;
}

static int one_image(struct run *r, ImageInfo *info, unsigned long regions)
{
    MagickSizeType memory = GetMagickResourceLimit(MemoryResource);
    MagickSizeType map = GetMagickResourceLimit(MapResource);
    MagickSizeType disk = GetMagickResourceLimit(DiskResource);
    size_t c = 1 + below(r, r->max_side), rr = 1 + below(r, r->max_side);
    int indexed = below(r, 3) == 0;
    uint64_t seed = next(r), after;
    Image *a, *b;
    int rc = 0;

    a = new_image(info, c, rr, indexed, seed, r);
    SetMagickResourceLimit(MemoryResource, 0);
    SetMagickResourceLimit(MapResource, 0);
    SetMagickResourceLimit(DiskResource, 0);
    b = new_image(info, c, rr, indexed, seed, r);
    SetMagickResourceLimit(MemoryResource, memory);
    SetMagickResourceLimit(MapResource, map);
    SetMagickResourceLimit(DiskResource, disk);
    after = next(r);
    if (a == NULL || b == NULL) {
        rc = 2;
        goto out;
    }
    if (GetImagePixelCacheType(b) != DistributedCache ||
        GetImagePixelCacheType(a) != MemoryCache) {
        fprintf(stderr, "region-diff: caches are %s and %s, not memory and "
                "distributed\n",
                CommandOptionToMnemonic(MagickCacheOptions,
                                        GetImagePixelCacheType(a)),
                CommandOptionToMnemonic(MagickCacheOptions,
                                        GetImagePixelCacheType(b)));
        rc = 2;
        goto out;
    }
    r->rng = after;
    r->images++;
    r->indexed += indexed;
    for (unsigned long i = 0; i < regions; i++)
        one_region(r, a, b, indexed);
    if (same_images(r, a, b, indexed) < 0)
        rc = 1;
out:
    if (a != NULL)
        DestroyImage(a);
    if (b != NULL)
        DestroyImage(b);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: region-diff HOST:PORT [--seed N] [--regions N] "
                    "[--max-side N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct run r = { 0 };
    unsigned long total = 2000, per_image = 100;
    uint64_t seed = (uint64_t)time(NULL);
    ExceptionInfo *e;
    ImageInfo *info;
    int rc = 0;

    r.max_side = 96;
    if (argc < 2 || argv[1][0] == '-')
        return usage();
    for (int i = 2; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--seed") == 0)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--regions") == 0)
            total = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--max-side") == 0)
            r.max_side = strtoul(argv[++i], NULL, 10);
        else
            return usage();
    }
    if (r.max_side == 0)
        return usage();
    r.rng = seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
    if (r.rng == 0)                     /* xorshift's one fixed point */
        r.rng = 1;
    printf("region-diff: seed %" PRIu64 ", %lu regions, images up to %lux%lu"
           "\n", seed, total, r.max_side, r.max_side);
    fflush(stdout);
    MagickCoreGenesis(argv[0], MagickFalse);
    e = AcquireExceptionInfo();
    SetImageRegistry(StringRegistryType, "cache:hosts", argv[1], e);
    info = AcquireImageInfo();
    while (r.regions < total && rc != 2) {
        unsigned long n = total - r.regions < per_image ? total - r.regions
                                                        : per_image;
        int k = one_image(&r, info, n);

        if (k > rc)
            rc = k;
    }
    printf("region-diff: %lu regions on %lu images (%lu with indexes): "
           "%lu served, %lu refused by both, %lu differences\n",
           r.regions, r.images, r.indexed, r.accepted, r.refused, r.differ);
    DestroyImageInfo(info);
    DestroyExceptionInfo(e);
    MagickCoreTerminus();
    if (rc == 0 && r.differ > 0)
        rc = 1;
    return rc;
}
