/*
 * libFuzzer target for dpc_lproto, the local protocol's codec, as the
 * server runs it on what a local client sends.
 *
 * Input: a stream of request frames (8-byte header, then body_len bytes).
 * Each header goes through dpc_lp_parse_hdr; its body, copied into a heap
 * buffer of exactly body_len bytes so an over-read shows, through
 * dpc_lp_parse_req.  A request accepted must re-encode with
 * dpc_lp_encode_req to exactly the bytes received, its name must be valid
 * and NUL-terminated; the same header must be accepted as a reply too.
 * The stream stops at the first refusal (the server closes then) or when
 * a body is cut short.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dpc_lproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One frame at data, its header already accepted; aborts on a broken
 * invariant. */
static void check_request(const uint8_t *frame, const struct dpc_lp_hdr *h,
                          const struct dpc_lp_req *r)
{
    uint8_t out[DPC_LP_HDR + DPC_LP_MAX_REQ];
    size_t namelen = strnlen(r->name, sizeof(r->name)), n;

    if (namelen == sizeof(r->name))
        abort();                            /* not NUL-terminated */
    if ((r->op == DPC_LP_PUBLISH || r->op == DPC_LP_ATTACH ||
         r->op == DPC_LP_REMOVE) != (namelen != 0))
        abort();                            /* a name where none belongs */
    if (namelen != 0 && !dpc_lp_valid_name(r->name, namelen))
        abort();
    if ((r->op == DPC_LP_ALLOC || r->op == DPC_LP_PUBLISH) && r->size == 0)
        abort();
    n = dpc_lp_encode_req(r, out, sizeof(out));
    if (n != DPC_LP_HDR + h->len || memcmp(out, frame, n) != 0)
        abort();                            /* does not round-trip */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;

    while (size - pos >= DPC_LP_HDR) {
        const uint8_t *frame = data + pos;
        struct dpc_lp_hdr h, hr;
        struct dpc_lp_req r;
        char err[256] = "";
        uint8_t *body;
        int rc;

        if (dpc_lp_parse_hdr(frame, 0, &h, err, sizeof(err)) < 0) {
            if (err[0] == '\0')
                abort();                    /* a refusal must say why */
            break;
        }
        if (h.op == DPC_LP_NONE || h.op >= DPC_LP_NOPS || h.status != 0 ||
            h.len > DPC_LP_MAX_REQ)
            abort();
        if (dpc_lp_parse_hdr(frame, 1, &hr, err, sizeof(err)) < 0 ||
            hr.op != h.op || hr.status != h.status || hr.len != h.len)
            abort();                        /* a request header is a reply's */
        if (h.len > size - pos - DPC_LP_HDR)
            break;                          /* body cut short */
        body = malloc(h.len != 0 ? h.len : 1);
        if (body == NULL)
            abort();
        memcpy(body, frame + DPC_LP_HDR, h.len);
        err[0] = '\0';
        rc = dpc_lp_parse_req(&h, body, &r, err, sizeof(err));
        free(body);
        if (rc < 0) {
            if (err[0] == '\0')
                abort();
            break;
        }
        check_request(frame, &h, &r);
        pos += DPC_LP_HDR + h.len;
    }
    return 0;
}
