#!/usr/bin/python3
"""Black-box abuse scenarios against a running magick-dpc, driven by
abuse.sh.  One scenario per run; prints TAP-like lines ("ok - ...",
"not ok - ..."), exits 0 when every step passed, 1 otherwise, 2 on usage
errors.  Standard library only; every wait is bounded.

  abuse.py --port P --policy DIR [--port7 P7] SCENARIO [-- CMD ...]

CMD, where a scenario takes one, runs while the scenario holds its abusive
connections open (idle-flood, slow-reader); it must exit 0.
"""

import argparse
import os
import random
import resource
import socket
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True     # leave no __pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import dpcproto as P  # noqa: E402

HOST = "127.0.0.1"
TIMEOUT = 5.0           # per socket operation


class Failed(Exception):
    pass


class Ctx:
    def __init__(self, args):
        self.args = args
        self.port = args.port
        self.port7 = args.port7
        self.secret = P.read_secret(args.policy)
        self.failures = []
        self.rng = random.Random(args.seed)

    # reporting -------------------------------------------------------------
    def ok(self, name):
        print("ok - %s" % name, flush=True)

    def fail(self, name, why):
        self.failures.append("%s: %s" % (name, why))
        print("not ok - %s: %s" % (name, why), flush=True)

    def step(self, name, fn, *a):
        """Runs fn; a Failed or any error marks this step failed."""
        try:
            fn(*a)
        except Failed as e:
            self.fail(name, e)
        except Exception as e:      # a crash of the step is its failure
            self.fail(name, "%s: %s" % (type(e).__name__, e))
        else:
            self.ok(name)

    # helpers ---------------------------------------------------------------
    def client(self, flavor=P.IM6, port=None):
        port = port or (self.port7 if flavor == P.IM7 else self.port)
        return P.connect(HOST, port, self.secret, flavor, TIMEOUT)

    def status(self, port=None):
        """The server-wide status, asked on an IM6 listener (the main
        server's, unless port names another server)."""
        return P.server_status(HOST, port or self.port, self.secret,
                               timeout=TIMEOUT)

    def wait_status(self, pred, within, what, port=None):
        """Polls the status until pred(st) holds; Failed after `within` s."""
        deadline = time.monotonic() + within
        while True:
            st = self.status(port)
            if pred(st):
                return st
            if time.monotonic() >= deadline:
                raise Failed("%s not reached within %.1fs; status %s"
                             % (what, within, st))
            time.sleep(0.1)

    def wait_freed(self, within=3.0, port=None):
        return self.wait_status(
            lambda s: s["caches_open"] == 0 and s["bytes_ram"] == 0 and
            s["bytes_spilled"] == 0, within,
            "caches_open 0 and bytes_ram 0", port)

    def run_during(self):
        cmd = self.args.cmd
        if not cmd:
            return
        t0 = time.monotonic()
        try:
            r = subprocess.run(cmd, timeout=40, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
        except subprocess.TimeoutExpired:
            raise Failed("command timed out after 40s: %s" % " ".join(cmd))
        out = r.stdout.decode(errors="replace").strip()
        if r.returncode != 0:
            raise Failed("command exited %d after %.1fs: %s\n%s"
                         % (r.returncode, time.monotonic() - t0,
                            " ".join(cmd), out))


def rand_bytes(rng, n):
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def expect_fail_close(c, what):
    """The protocol's failure: exactly 4 zero bytes, then a close."""
    try:
        data = c.recv_until_close(timeout=TIMEOUT)
    except socket.timeout:
        raise Failed("%s: no failure reply and no close within %.0fs"
                     % (what, TIMEOUT))
    if data != P.FAIL_REPLY:
        raise Failed("%s: expected 4 zero bytes then close, got %d bytes %r"
                     % (what, len(data), data[:32]))


# --------------------------------------------------------------------------
# an in-memory model of one cache plane, for round trips


class Plane:
    def __init__(self, columns, rows, bpp):
        self.columns, self.rows, self.bpp = columns, rows, bpp
        self.buf = bytearray(columns * rows * bpp)

    def put(self, x, y, w, h, data):
        row = w * self.bpp
        for j in range(h):
            off = ((y + j) * self.columns + x) * self.bpp
            self.buf[off:off + row] = data[j * row:(j + 1) * row]

    def get(self, x, y, w, h):
        row = w * self.bpp
        out = bytearray()
        for j in range(h):
            off = ((y + j) * self.columns + x) * self.bpp
            out += self.buf[off:off + row]
        return bytes(out)


def roundtrip(ctx, c, plane, wcmd, rcmd, label):
    """Full write, full read, sub-rectangle writes (row by row like the
    stock client) and reads; compares every read with the model."""
    rng = ctx.rng
    cols, rows, bpp = plane.columns, plane.rows, plane.bpp
    data = rand_bytes(rng, cols * rows * bpp)
    c.write(wcmd, cols, rows, 0, 0, data)
    plane.put(0, 0, cols, rows, data)
    got = c.read(rcmd, cols, rows, 0, 0, cols * rows * bpp)
    if got != plane.get(0, 0, cols, rows):
        raise Failed("%s: full read differs from what was written" % label)
    # A sub-rectangle read, and one at the far corner.
    for (x, y, w, h) in ((cols // 5, rows // 7, cols // 2, rows // 3),
                         (cols - 3, rows - 2, 3, 2), (0, rows - 1, cols, 1),
                         (cols - 1, 0, 1, rows)):
        got = c.read(rcmd, w, h, x, y, w * h * bpp)
        if got != plane.get(x, y, w, h):
            raise Failed("%s: %dx%d+%d+%d read differs" % (label, w, h, x, y))
    # Sub-rectangle writes, one row per request, then a whole-image read.
    x, y, w, h = cols // 3, rows // 4, cols // 3, rows // 2
    for j in range(h):
        row = rand_bytes(rng, w * bpp)
        c.write(wcmd, w, 1, x, y + j, row)
        plane.put(x, y + j, w, 1, row)
    got = c.read(rcmd, cols, rows, 0, 0, cols * rows * bpp)
    if got != plane.get(0, 0, cols, rows):
        raise Failed("%s: read after sub-rectangle writes differs" % label)


# --------------------------------------------------------------------------
# scenarios


def sc_selftest(ctx):
    ctx.step("SipHash-2-4 and key derivation match the reference vectors",
             P.selftest)


def sc_wrong_secret(ctx):
    def run():
        before = ctx.status()
        c = P.Client(HOST, ctx.port, P.IM6, TIMEOUT)
        with c:
            c.read_nonce()
            c.auth(ctx.secret + "-not")
            try:
                data = c.recv_until_close(timeout=TIMEOUT)
            except socket.timeout:
                raise Failed("server neither replied nor closed in %.0fs"
                             % TIMEOUT)
            if data:
                raise Failed("server sent %d bytes to a wrong proof: %r"
                             % (len(data), data[:16]))
        after = ctx.wait_status(
            lambda s: s["auth_failures"] >= before["auth_failures"] + 1, 3,
            "auth_failures incremented")
        if after["caches_open"] != 0 or after["bytes_ram"] != 0:
            raise Failed("caches stored after a failed handshake: %s" % after)
    ctx.step("a wrong proof is closed on without a byte; auth_failures "
             "counts it; nothing stored", run)

    def commands_after_wrong_proof():
        # A client that ignores the silent close and sends its open anyway
        # must get nothing (no status word, no cache).
        c = P.Client(HOST, ctx.port, P.IM6, TIMEOUT)
        with c:
            c.read_nonce()
            c.key = P.proof(ctx.secret + "x", c.nonce)
            try:
                c.send(c.key + c.header("o") + P.open_im6(64, 48))
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                data = c.recv_until_close(timeout=TIMEOUT)
            except socket.timeout:
                raise Failed("no close within %.0fs" % TIMEOUT)
            if data:
                raise Failed("got %r after a wrong proof" % data[:16])
        ctx.wait_freed()
    ctx.step("a wrong proof followed by an open gets no reply and no cache",
             commands_after_wrong_proof)


# Each malformed case: (name, flavor, setup(c) -> None, bad bytes(c)).
# setup runs valid requests first (checked), then bad(c) is sent whole.

def _open_ok(c, cols=64, rows=48, **kw):
    st = c.open6(cols, rows, **kw)
    if st != 1:
        raise Failed("valid open %dx%d refused (status %d)" % (cols, rows, st))


def _open7_ok(c, cols=64, rows=48, **kw):
    st = c.open7(cols, rows, **kw)
    if st != 1:
        raise Failed("valid IM7 open %dx%d refused (status %d)"
                     % (cols, rows, st))


def _layout(c, bpp=8, cmd="w", cols=64, rows=48):
    """Fixes the cache's bytes per pixel with a valid full write."""
    _open_ok(c, cols, rows)
    c.write(cmd, cols, 1, 0, 0, bytes(cols * bpp))


def _rgn(c, cmd, w, h, x, y, length):
    return c.header(cmd) + P.region(w, h, x, y, length)


MASK = P.MASK64
BIG = (1 << 63) - 1

MALFORMED = {
    "wrong-key": [
        ("open with a wrong session key", P.IM6, None,
         lambda c: c.header("o", bytes(b ^ 1 for b in c.key)) +
         P.open_im6(64, 48)),
        ("read with an all-zero session key after a valid open", P.IM6,
         _open_ok, lambda c: c.header("r", bytes(8)) +
         P.region(1, 1, 0, 0, 8)),
        ("status with the proof of another nonce", P.IM6, None,
         lambda c: c.header("s", P.proof("x", c.nonce))),
    ],
    "unknown-cmd": [
        ("command byte 'x'", P.IM6, None, lambda c: c.header("x")),
        ("command byte 0x00", P.IM6, _open_ok, lambda c: c.header(b"\0")),
        ("command byte 0xff", P.IM6, _open_ok, lambda c: c.header(b"\xff")),
        ("command byte 'O'", P.IM6, None,
         lambda c: c.header("O") + P.open_im6(64, 48)),
    ],
    "before-open": [
        ("'r' before 'o'", P.IM6, None,
         lambda c: _rgn(c, "r", 1, 1, 0, 0, 8)),
        ("'w' before 'o'", P.IM6, None,
         lambda c: _rgn(c, "w", 1, 1, 0, 0, 8) + bytes(8)),
        ("'R' before 'o'", P.IM6, None,
         lambda c: _rgn(c, "R", 1, 1, 0, 0, 2)),
        ("'d' before 'o'", P.IM6, None, lambda c: c.header("d")),
    ],
    "second-open": [
        ("second 'o' on one connection", P.IM6, _open_ok,
         lambda c: c.header("o") + P.open_im6(64, 48)),
        ("second 'o' after data, other size", P.IM6, _layout,
         lambda c: c.header("o") + P.open_im6(8, 8)),
    ],
    "region": [
        # A row may run past the right edge onto the next (ImageMagick's
        # own rule) but not past the end of the cache.
        ("x+width past the cache's end", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 8, 1, 60, 47, 64)),
        ("width past the cache's end", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 64 * 48 + 1, 1, 0, 0, (64 * 48 + 1) * 8)),
        ("wrapping rows, the last past the end", P.IM6, _layout,
         lambda c: _rgn(c, "r", 70, 2, 0, 46, 70 * 2 * 8)),
        ("x = columns", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 1, 1, 64, 0, 8)),
        ("y = rows", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 1, 1, 0, 48, 8)),
        ("y far beyond rows", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 1, 1, 0, 1 << 40, 8)),
        ("y+height > rows", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 64, 2, 0, 47, 64 * 2 * 8)),
        ("negative x", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 1, 1, -1, 0, 8)),
        ("negative y (after layout)", P.IM6, _layout,
         lambda c: _rgn(c, "w", 64, 1, 0, -1, 64 * 8) + bytes(64 * 8)),
        ("x = 2^63-1 (overflow)", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 1, 1, BIG, 0, 8)),
        ("x = 2^63-1, width 2 (overflow)", P.IM6, _layout,
         lambda c: _rgn(c, "r", 2, 1, BIG, 0, 16)),
        ("x = -2^63 (INT64_MIN)", P.IM6, _layout,
         lambda c: _rgn(c, "r", 1, 1, -(1 << 63), 0, 8)),
        ("y = 2^63-1 (overflow)", P.IM6, _layout,
         lambda c: _rgn(c, "r", 1, 1, 0, BIG, 8)),
        ("width 2^64-1", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", MASK, 1, 1, 0, 8)),
        ("width*height wraps to a small length", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 1 << 32, 1 << 32, 0, 0, 8)),
        # (an empty region of length 0 is a no-op, as in a memory cache)
        ("width 0 with a length", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 0, 1, 0, 0, 8)),
        ("height 0 with a length (after layout)", P.IM6, _layout,
         lambda c: _rgn(c, "r", 1, 0, 0, 0, 8)),
    ],
    "length": [
        ("first request: length one more than 8 bytes/pixel", P.IM6,
         _open_ok, lambda c: _rgn(c, "r", 4, 2, 0, 0, 4 * 2 * 8 + 1)),
        ("first request: 3 bytes per pixel", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 4, 2, 0, 0, 4 * 2 * 3)),
        ("first request: 32 bytes per pixel", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 4, 2, 0, 0, 4 * 2 * 32)),
        ("first request: length 0", P.IM6, _open_ok,
         lambda c: _rgn(c, "r", 4, 2, 0, 0, 0)),
        ("after layout: one pixel short", P.IM6, _layout,
         lambda c: _rgn(c, "r", 4, 2, 0, 0, 4 * 2 * 8 - 8)),
        ("after layout: write one byte long", P.IM6, _layout,
         lambda c: _rgn(c, "w", 4, 2, 0, 0, 4 * 2 * 8 + 1)),
        ("after layout: length 2^64-1", P.IM6, _layout,
         lambda c: _rgn(c, "r", 4, 2, 0, 0, MASK)),
        ("after layout: length of the whole image for one pixel", P.IM6,
         _layout, lambda c: _rgn(c, "r", 1, 1, 0, 0, 64 * 48 * 8)),
    ],
    "bpp-change": [
        ("'w' at 8 bytes/pixel, then 'r' at 4", P.IM6, _layout,
         lambda c: _rgn(c, "r", 64, 1, 0, 0, 64 * 4)),
        ("'w' at 4 bytes/pixel, then 'w' at 16", P.IM6,
         lambda c: _layout(c, bpp=4),
         lambda c: _rgn(c, "w", 2, 1, 0, 0, 2 * 16) + bytes(32)),
        ("'r' at 16 bytes/pixel, then 'r' at 8", P.IM6,
         lambda c: (_open_ok(c), c.read("r", 2, 1, 0, 0, 32)),
         lambda c: _rgn(c, "r", 2, 1, 0, 0, 16)),
        ("PseudoClass: 'W' at 2 bytes/index, then 'w' at 4 bytes/pixel",
         P.IM6,
         lambda c: (_open_ok(c, storage_class=P.PSEUDO_CLASS),
                    c.write("W", 64, 1, 0, 0, bytes(128))),
         lambda c: _rgn(c, "w", 64, 1, 0, 0, 64 * 4) + bytes(256)),
        ("PseudoClass: 'w' at 8 bytes/pixel, then 'W' at 4 bytes/index",
         P.IM6,
         lambda c: (_open_ok(c, storage_class=P.PSEUDO_CLASS),
                    c.write("w", 64, 1, 0, 0, bytes(512))),
         lambda c: _rgn(c, "W", 64, 1, 0, 0, 64 * 4) + bytes(256)),
    ],
    "indexes": [
        ("'R' on a DirectClass sRGB image", P.IM6, _layout,
         lambda c: _rgn(c, "R", 64, 1, 0, 0, 64 * 2)),
        ("'R' as the first request on DirectClass sRGB", P.IM6, _open_ok,
         lambda c: _rgn(c, "R", 64, 1, 0, 0, 64 * 2)),
        ("'W' on a DirectClass sRGB image", P.IM6, _layout,
         lambda c: _rgn(c, "W", 64, 1, 0, 0, 64 * 2) + bytes(128)),
    ],
    "open": [
        ("open with zero columns", P.IM6, None,
         lambda c: c.header("o") + P.open_im6(0, 48)),
        ("open with zero rows", P.IM6, None,
         lambda c: c.header("o") + P.open_im6(64, 0)),
        ("open 2^40 x 2^40", P.IM6, None,
         lambda c: c.header("o") + P.open_im6(1 << 40, 1 << 40)),
        ("open 2^64-1 x 1", P.IM6, None,
         lambda c: c.header("o") + P.open_im6(MASK, 1)),
        ("open 2^31 x 2^31 (size overflows)", P.IM6, None,
         lambda c: c.header("o") + P.open_im6(1 << 31, 1 << 31)),
        ("open 2^20 x 2^20 (beyond any memory budget)", P.IM6, None,
         lambda c: c.header("o") + P.open_im6(1 << 20, 1 << 20)),
        ("open with storage class 99", P.IM6, None,
         lambda c: c.header("o") + P.open_im6(64, 48, storage_class=99)),
        ("open with storage class 2^32-1", P.IM6, None,
         lambda c: c.header("o") + P.open_im6(64, 48,
                                              storage_class=0xFFFFFFFF)),
        ("open with colorspace 1000", P.IM6, None,
         lambda c: c.header("o") + P.open_im6(64, 48, colorspace=1000)),
    ],
    "im7": [
        ("IM7: metacontent 'W' before any pixel request", P.IM7,
         lambda c: _open7_ok(c, number_channels=3, metacontent_extent=4),
         lambda c: _rgn(c, "W", 64, 1, 0, 0, 64 * 4) + bytes(256)),
        ("IM7: 'R' on a cache without metacontent", P.IM7,
         lambda c: (_open7_ok(c), c.write("w", 64, 1, 0, 0, bytes(64 * 6))),
         lambda c: _rgn(c, "R", 64, 1, 0, 0, 64 * 4)),
        ("IM7: pixels not a multiple of number_channels", P.IM7,
         lambda c: _open7_ok(c, number_channels=3),
         lambda c: _rgn(c, "r", 4, 1, 0, 0, 4 * 4)),
        ("IM7: metacontent length off by one after layout", P.IM7,
         lambda c: (_open7_ok(c, number_channels=3, metacontent_extent=4),
                    c.write("w", 64, 1, 0, 0, bytes(64 * 6))),
         lambda c: _rgn(c, "R", 64, 1, 0, 0, 64 * 4 + 1)),
        ("IM7: open with 0 channels", P.IM7, None,
         lambda c: c.header("o") + P.open_im7(64, 48, number_channels=0)),
        ("IM7: open with 65 channels", P.IM7, None,
         lambda c: c.header("o") + P.open_im7(64, 48, number_channels=65)),
        ("IM7: open with metacontent_extent 2^64-1", P.IM7, None,
         lambda c: c.header("o") + P.open_im7(64, 48,
                                              metacontent_extent=MASK)),
        ("IM7: open 2^40 x 2^40", P.IM7, None,
         lambda c: c.header("o") + P.open_im7(1 << 40, 1 << 40)),
        ("IM7: open with storage class 99", P.IM7, None,
         lambda c: c.header("o") + P.open_im7(64, 48, storage_class=99)),
    ],
}


def sc_malformed(ctx, group):
    for name, flavor, setup, bad in MALFORMED[group]:
        def run():
            with ctx.client(flavor) as c:
                if setup is not None:
                    setup(c)
                c.send(bad(c))
                expect_fail_close(c, name)
            ctx.wait_freed()
        if flavor == P.IM7 and not ctx.port7:
            ctx.fail(name, "no --port7 given")
            continue
        ctx.step(name, run)


def sc_im6_roundtrip(ctx):
    def run(label, cols, rows, bpp, storage_class=P.DIRECT_CLASS,
            colorspace=P.SRGB, ibpp=0):
        with ctx.client() as c:
            _open_ok(c, cols, rows, storage_class=storage_class,
                     colorspace=colorspace)
            roundtrip(ctx, c, Plane(cols, rows, bpp), "w", "r", label)
            if ibpp:
                roundtrip(ctx, c, Plane(cols, rows, ibpp), "W", "R",
                          label + " indexes")
            st = c.status()
            if st["caches_open"] < 1:
                raise Failed("status shows no open cache: %s" % st)
            if c.destroy() != 1:
                raise Failed("destroy did not answer 1")
            rest = c.recv_until_close(timeout=TIMEOUT)
            if rest:
                raise Failed("bytes after destroy: %r" % rest[:16])
        ctx.wait_freed()
    ctx.step("IM6 DirectClass sRGB 97x61 Q16 (8 bytes/pixel) round trip",
             run, "Q16", 97, 61, 8)
    ctx.step("IM6 DirectClass sRGB 33x17 Q8 (4 bytes/pixel) round trip",
             run, "Q8", 33, 17, 4)
    ctx.step("IM6 DirectClass sRGB 21x13 HDRI (16 bytes/pixel) round trip",
             run, "HDRI", 21, 13, 16)
    ctx.step("IM6 PseudoClass 40x30 Q16 pixels + 2-byte indexes round trip",
             run, "PseudoClass", 40, 30, 8, P.PSEUDO_CLASS, P.SRGB, 2)
    ctx.step("IM6 DirectClass CMYK 25x19 Q16 pixels + black plane round trip",
             run, "CMYK", 25, 19, 8, P.DIRECT_CLASS, P.CMYK, 2)

    def big():
        # One request larger than the server's read chunk and socket
        # buffers: 640x480 Q16, 2.4 MB each way.
        with ctx.client() as c:
            _open_ok(c, 640, 480)
            data = rand_bytes(ctx.rng, 640 * 480 * 8)
            c.write("w", 640, 480, 0, 0, data)
            if c.read("r", 640, 480, 0, 0, len(data)) != data:
                raise Failed("2.4 MB read differs")
            got = c.read("r", 100, 50, 300, 200, 100 * 50 * 8)
            want = b"".join(data[((200 + j) * 640 + 300) * 8:
                                 ((200 + j) * 640 + 400) * 8]
                            for j in range(50))
            if got != want:
                raise Failed("100x50+300+200 read differs")
        ctx.wait_freed()
    ctx.step("IM6 640x480 Q16 full-image write/read (2.4 MB) and sub-read",
             big)

    def pipelined():
        # 100 row writes and 100 row reads sent as one buffer before any
        # reply is read (replies, 51 KB, fit the socket buffers).
        cols, rows, bpp = 64, 100, 8
        model = Plane(cols, rows, bpp)
        with ctx.client() as c:
            _open_ok(c, cols, rows)
            buf = bytearray()
            for y in range(rows):
                row = rand_bytes(ctx.rng, cols * bpp)
                model.put(0, y, cols, 1, row)
                buf += _rgn(c, "w", cols, 1, 0, y, len(row)) + row
            for y in reversed(range(rows)):
                buf += _rgn(c, "r", cols, 1, 0, y, cols * bpp)
            buf += c.header("s")
            c.send(bytes(buf))
            for y in reversed(range(rows)):
                if c.recv_exact(cols * bpp) != model.get(0, y, cols, 1):
                    raise Failed("pipelined read of row %d differs" % y)
            n = struct.unpack("<I", c.recv_exact(4))[0]
            c.recv_exact(n)
            if c.destroy() != 1:
                raise Failed("destroy did not answer 1")
        ctx.wait_freed()
    ctx.step("IM6 pipelined: 100 writes, 100 reads and a status in one "
             "send, replies in order", pipelined)

    def fragmented():
        # Every frame split at odd places, each piece its own segment.
        cols, rows, bpp = 10, 6, 8
        c = P.Client(HOST, ctx.port, P.IM6, TIMEOUT)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def dribble(data, sizes=(1, 3, 2, 7, 5)):
            i = k = 0
            while i < len(data):
                n = sizes[k % len(sizes)]
                c.send(data[i:i + n])
                i += n
                k += 1
                time.sleep(0.002)
        with c:
            c.read_nonce()
            c.key = P.proof(ctx.secret, c.nonce)
            dribble(c.key)
            dribble(c.header("o") + P.open_im6(cols, rows))
            if c.status_word() != 1:
                raise Failed("fragmented open refused")
            data = rand_bytes(ctx.rng, cols * rows * bpp)
            dribble(_rgn(c, "w", cols, rows, 0, 0, len(data)) + data,
                    (1, 40, 9, 17, 333))
            dribble(_rgn(c, "r", 4, 3, 5, 2, 4 * 3 * bpp))
            got = c.recv_exact(4 * 3 * bpp)
            model = Plane(cols, rows, bpp)
            model.put(0, 0, cols, rows, data)
            if got != model.get(5, 2, 4, 3):
                raise Failed("read after fragmented write differs")
        ctx.wait_freed()
    ctx.step("IM6 fragmented frames: proof, open, write and read sent a few "
             "bytes at a time", fragmented)


def sc_im7_roundtrip(ctx):
    if not ctx.port7:
        ctx.fail("IM7 round trip", "no --port7 given")
        return

    def nonce_len():
        c = P.Client(HOST, ctx.port7, P.IM7, TIMEOUT)
        with c:
            c.sock.settimeout(1.0)
            got = bytearray()
            try:
                while len(got) < 32:
                    chunk = c.sock.recv(32)
                    if not chunk:
                        break
                    got += chunk
            except socket.timeout:
                pass
            if len(got) != 16:
                raise Failed("IM7 listener sent a %d-byte nonce" % len(got))
    ctx.step("IM7 listener sends a 16-byte nonce, then waits", nonce_len)

    def run():
        cols, rows = 50, 40
        with ctx.client(P.IM7) as c:
            _open7_ok(c, cols, rows, number_channels=3, metacontent_extent=4)
            roundtrip(ctx, c, Plane(cols, rows, 6), "w", "r", "IM7 pixels")
            roundtrip(ctx, c, Plane(cols, rows, 4), "W", "R",
                      "IM7 metacontent")
            st = c.status()
            if st["caches_open"] < 1:
                raise Failed("status shows no open cache: %s" % st)
            if c.destroy() != 1:
                raise Failed("destroy did not answer 1")
        ctx.wait_freed()
    ctx.step("IM7 50x40, 3 channels Q16 (6 bytes/pixel) + 4-byte "
             "metacontent round trip", run)

    def im7_float():
        with ctx.client(P.IM7) as c:
            _open7_ok(c, 20, 10, number_channels=5)
            roundtrip(ctx, c, Plane(20, 10, 20), "w", "r", "IM7 HDRI 5ch")
        ctx.wait_freed()
    ctx.step("IM7 20x10, 5 channels HDRI (20 bytes/pixel) round trip",
             im7_float)


def sc_truncated(ctx):
    def case(flavor, send):
        def run():
            port = ctx.port7 if flavor == P.IM7 else ctx.port
            c = P.Client(HOST, port, flavor, TIMEOUT)
            with c:
                send(c)
                time.sleep(0.05)
            ctx.wait_status(lambda s: s["caches_open"] == 0 and
                            s["bytes_ram"] == 0 and
                            s["clients_connected"] == 1, 3,
                            "caches freed, only the status client left")
        return run

    def auth(c):
        c.auth(ctx.secret)

    def opened(c, flavor=P.IM6):
        auth(c)
        if flavor == P.IM7:
            _open7_ok(c, 64, 48, metacontent_extent=4)
        else:
            _open_ok(c)

    steps = [
        ("close before reading the nonce", P.IM6, lambda c: None),
        ("close after the nonce, nothing sent", P.IM6, P.Client.read_nonce),
        ("half a proof, then close", P.IM6,
         lambda c: c.send(P.proof(ctx.secret, c.read_nonce())[:4])),
        ("half a command header, then close", P.IM6,
         lambda c: (auth(c), c.send(c.header("o")[:4]))),
        ("header and half an open payload, then close", P.IM6,
         lambda c: (auth(c), c.send(c.header("o") +
                                    P.open_im6(64, 48)[:16]))),
        ("open, then half a region header, then close", P.IM6,
         lambda c: (opened(c), c.send(_rgn(c, "r", 64, 48, 0, 0,
                                           64 * 48 * 8)[:29]))),
        ("open, then a bare command byte, then close", P.IM6,
         lambda c: (opened(c), c.send(b"w"))),
        ("open, write header without payload, then close", P.IM6,
         lambda c: (opened(c), c.send(_rgn(c, "w", 64, 48, 0, 0,
                                           64 * 48 * 8)))),
        ("IM7: half of the 1072-byte open, then close", P.IM7,
         lambda c: (auth(c), c.send(c.header("o") +
                                    P.open_im7(64, 48)[:536]))),
        ("IM7: open, half a metacontent write header, then close", P.IM7,
         lambda c: (opened(c, P.IM7), c.send(_rgn(c, "w", 64, 1, 0, 0,
                                                  64 * 6)[:20]))),
    ]
    for name, flavor, send in steps:
        if flavor == P.IM7 and not ctx.port7:
            ctx.fail(name, "no --port7 given")
            continue
        ctx.step("truncated: " + name, case(flavor, send))


def sc_half_write(ctx):
    def run(cols, rows, frac, linger):
        length = cols * rows * 8
        c = ctx.client()
        with c:
            _open_ok(c, cols, rows)
            sent = int(length * frac)
            c.send(_rgn(c, "w", cols, rows, 0, 0, length) +
                   rand_bytes(ctx.rng, sent))
            if linger:
                # While the write hangs half done, others are served.
                with ctx.client() as d:
                    _open_ok(d, 16, 16)
                    roundtrip(ctx, d, Plane(16, 16, 8), "w", "r", "other")
                ctx.wait_status(lambda s: s["caches_open"] == 1, 2,
                                "just the half-written cache open")
        ctx.wait_freed()
    ctx.step("write announcing 480000 bytes, closed after 240000", run,
             300, 200, 0.5, False)
    ctx.step("write announcing 3.84 MB, 1.92 MB sent, another client served "
             "meanwhile, then closed", run, 800, 600, 0.5, True)
    ctx.step("write announcing 480000 bytes, closed after 1 byte", run,
             300, 200, 1 / 480000, False)


def sc_slow_reader(ctx):
    cols = rows = 2000
    length = cols * rows * 8            # Q16: 32 MB

    def run():
        slow = P.Client(HOST, ctx.port, P.IM6, TIMEOUT)
        try:
            slow.auth(ctx.secret)
            _open_ok(slow, cols, rows)
            slow.send(_rgn(slow, "r", cols, rows, 0, 0, length))
            # Read a little so the reply has surely started, then stop.
            first = slow.recv_exact(1024)
            if len(first) != 1024:
                raise Failed("slow client got no reply at all")
            time.sleep(0.5)
            t0 = time.monotonic()
            with ctx.client() as d:
                _open_ok(d, 120, 90)
                roundtrip(ctx, d, Plane(120, 90, 8), "w", "r",
                          "client next to a stalled reader")
            took = time.monotonic() - t0
            if took > 3:
                raise Failed("normal client took %.1fs beside a stalled "
                             "reader" % took)
            ctx.wait_status(lambda s: s["caches_open"] == 1, 2,
                            "only the stalled cache open")
            ctx.run_during()
            # The stalled reply may still be read to the end afterwards.
            rest = slow.recv_exact(4 << 20)
            if len(rest) != 4 << 20:
                raise Failed("could not resume the stalled read")
        finally:
            slow.close()
        ctx.wait_freed(within=5)
    ctx.step("a client that never reads a 32 MB reply does not stop a "
             "normal client (Python and real convert); closing it frees "
             "its cache", run)


def sc_half_close(ctx):
    """The stock server (one blocking thread per client) answers every
    request it received before the client's FIN; so must magick-dpc."""
    def pipeline(c, n, first=b""):
        buf = bytearray(first)
        for i in range(n):
            buf += _rgn(c, "w", 1, 1, i % 64, (i // 64) % 48, 8)
            buf += struct.pack("<Q", i)
        buf += c.header("d")
        return bytes(buf)

    def expect_destroyed(c, n):
        try:
            data = c.recv_until_close(timeout=TIMEOUT)
        except socket.timeout:
            raise Failed("no reply and no close within %.0fs" % TIMEOUT)
        if data != struct.pack("<I", 1):
            raise Failed("%d one-pixel writes + 'd' sent, then "
                         "shutdown(SHUT_WR): expected the destroy status "
                         "01 00 00 00, got %r" % (n, data))

    def simple(n):
        with ctx.client() as c:
            _open_ok(c)
            c.send(pipeline(c, n))
            c.sock.shutdown(socket.SHUT_WR)
            expect_destroyed(c, n)
        ctx.wait_freed()
    ctx.step("10 pipelined writes and 'd', then a half-close: 'd' still "
             "answered", simple, 10)

    def behind_big_read(n):
        # A 32 MB read first: the server stops reading while that reply
        # is blocked, so the writes, the 'd' and the FIN are all waiting
        # in its socket when it gets back to reading -- deterministically.
        cols = rows = 2000
        big = cols * rows * 8
        with ctx.client() as c:
            _open_ok(c, cols, rows)
            data = pipeline(c, n, _rgn(c, "r", cols, rows, 0, 0, big))
            err = []

            def sender():
                try:
                    c.sock.sendall(data)
                    c.sock.shutdown(socket.SHUT_WR)
                except OSError as e:
                    err.append(e)
            t = threading.Thread(target=sender, daemon=True)
            t.start()
            time.sleep(0.3)
            if len(c.recv_exact(big)) != big:
                raise Failed("short big read")
            t.join(TIMEOUT)
            if t.is_alive() or err:
                raise Failed("could not send the pipeline: %s" % err)
            expect_destroyed(c, n)
        ctx.wait_freed()
    ctx.step("32 MB read + 3000 pipelined writes + 'd', then a half-close: "
             "'d' still answered", behind_big_read, 3000)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        want = hard if hard != resource.RLIM_INFINITY else 1 << 20
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# The server's defaults: handshakes at once (--max-unauthenticated), the
# share of one source (--max-unauthenticated-per-source), and what one
# source may hold not yet authenticated (--max-clients / 2).
HANDSHAKES = 16
PER_SOURCE = 8
PENDING = 128


def peek(sock):
    """'open' (nothing to read yet), 'data' or 'closed', without waiting."""
    sock.setblocking(False)
    try:
        got = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return "open"
    except OSError:
        return "closed"
    finally:
        sock.settimeout(TIMEOUT)
    return "data" if got else "closed"


def greeted_within(c, seconds):
    """True once c's nonce arrives within seconds, False if nothing came;
    Failed if the server closed it instead."""
    c.sock.settimeout(seconds)
    try:
        got = c.sock.recv(1, socket.MSG_PEEK)
    except socket.timeout:
        return False
    except OSError:
        got = b""
    finally:
        c.sock.settimeout(TIMEOUT)
    if not got:
        raise Failed("the server closed a connection waiting for its "
                     "handshake")
    return True


def sc_idle_flood(ctx):
    count = ctx.args.count

    def fair_share():
        # One source (127.0.0.2) runs its share of handshakes; its next
        # connection waits, is never dropped, and is greeted once one of
        # those ends; another source is served meanwhile.  With every slot
        # taken the server stops accepting (the next client waits in the
        # listen backlog) and drops nothing.
        socks = []
        try:
            base = ctx.status()
            a = []
            for _ in range(PER_SOURCE):
                a.append(P.Client(HOST, ctx.port, P.IM6, TIMEOUT, "127.0.0.2"))
                socks.append(a[-1])
                a[-1].read_nonce()
            extra = P.Client(HOST, ctx.port, P.IM6, TIMEOUT, "127.0.0.2")
            socks.append(extra)
            if greeted_within(extra, 0.5):
                raise Failed("handshake %d from one source started at once "
                             "(its share is %d)" % (PER_SOURCE + 1,
                                                    PER_SOURCE))
            with P.connect(HOST, ctx.port, ctx.secret, P.IM6, TIMEOUT,
                           "127.0.0.3") as other:
                st = other.status()
            if (st["unauthenticated_clients"] != PER_SOURCE or
                    st["clients_waiting"] != 1):
                raise Failed("expected %d in the handshake and 1 waiting: %s"
                             % (PER_SOURCE, st))
            a[0].close()
            if not greeted_within(extra, 3):
                raise Failed("the waiting connection was not greeted after "
                             "one of its source's handshakes ended")
            extra.read_nonce()
            b = []
            for _ in range(HANDSHAKES - PER_SOURCE):
                b.append(P.Client(HOST, ctx.port, P.IM6, TIMEOUT, "127.0.0.3"))
                socks.append(b[-1])
                b[-1].read_nonce()
            late = P.Client(HOST, ctx.port, P.IM6, TIMEOUT, "127.0.0.4")
            socks.append(late)
            if greeted_within(late, 0.5):
                raise Failed("greeted past %d handshakes at once" % HANDSHAKES)
            for c in a[1:] + [extra] + b:
                if peek(c.sock) != "open":
                    raise Failed("a connection in its handshake was closed")
            b[0].close()
            if not greeted_within(late, 3):
                raise Failed("the next client was not greeted after a "
                             "handshake slot came free")
        finally:
            for c in socks:
                c.close()
        st = ctx.wait_status(lambda s: s["unauthenticated_clients"] == 0 and
                             s["clients_waiting"] == 0, 3,
                             "no connection in or waiting for a handshake")
        if st["accept_pauses"] <= base["accept_pauses"]:
            raise Failed("accept_pauses not counted: %s" % st)
        if st["connections_waited"] <= base["connections_waited"]:
            raise Failed("connections_waited not counted: %s" % st)
        if st["handshake_timeouts"] != base["handshake_timeouts"]:
            raise Failed("a handshake timed out: %s" % st)
    ctx.step("one source past its share of handshakes waits, others are "
             "served, all slots taken stops accepting; nothing is dropped",
             fair_share)

    def run():
        limit = raise_nofile()
        if limit < count + 64:
            raise Failed("RLIMIT_NOFILE %d is too low for %d sockets"
                         % (limit, count))
        socks = []
        t0 = time.monotonic()
        deadline = t0 + 30
        base = ctx.status()
        # An authenticated client with data in its cache, connected before
        # the flood, must come through it untouched.
        keeper = ctx.client()
        model = Plane(40, 30, 8)
        try:
            _open_ok(keeper, 40, 30)
            data = rand_bytes(ctx.rng, 40 * 30 * 8)
            keeper.write("w", 40, 30, 0, 0, data)
            model.put(0, 0, 40, 30, data)
            for _ in range(count):
                if time.monotonic() > deadline:
                    raise Failed("only %d connections in 30s" % len(socks))
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.settimeout(TIMEOUT)
                s.bind(("127.0.0.2", 0))
                s.connect((HOST, ctx.port))
            print("# %d idle connections opened from 127.0.0.2 in %.1fs"
                  % (len(socks), time.monotonic() - t0), flush=True)
            want = base["connections_refused"] + count - PENDING
            st = ctx.wait_status(lambda s: s["connections_refused"] >= want,
                                 10, "the flood's source refused past %d "
                                 "connections" % PENDING)
            print("# status while held: %s" % st, flush=True)
            if st["unauthenticated_clients"] > PER_SOURCE:
                raise Failed("%d unauthenticated clients held (the source's "
                             "share is %d)" % (st["unauthenticated_clients"],
                                               PER_SOURCE))
            if st["clients_waiting"] > PENDING - PER_SOURCE:
                raise Failed("%d connections waiting (at most %d)"
                             % (st["clients_waiting"], PENDING - PER_SOURCE))
            with ctx.client() as d:
                _open_ok(d, 32, 24)
                roundtrip(ctx, d, Plane(32, 24, 8), "w", "r",
                          "client during the flood")
            ctx.run_during()
            if keeper.read("r", 40, 30, 0, 0, 40 * 30 * 8) != model.buf:
                raise Failed("the authenticated client's cache changed "
                             "during the flood")
        finally:
            keeper.close()
            for s in socks:
                s.close()
        ctx.wait_status(lambda s: s["clients_connected"] == 1 and
                        s["unauthenticated_clients"] == 0 and
                        s["clients_waiting"] == 0, 5,
                        "all idle connections gone")
        ctx.wait_freed()
        if time.monotonic() - t0 > 55:
            raise Failed("took %.0fs" % (time.monotonic() - t0))
    ctx.step("%d idle connections from one source: it keeps its share, the "
             "rest are refused; a client and the real convert from another "
             "source are served" % count, run)


def sc_handshake_timeout(ctx):
    def run():
        silent = P.Client(HOST, ctx.port, P.IM6, TIMEOUT)
        trickle = P.Client(HOST, ctx.port, P.IM6, TIMEOUT)
        t0 = time.monotonic()
        with silent, trickle:
            silent.read_nonce()
            nonce = trickle.read_nonce()
            trickle.send(P.proof(ctx.secret, nonce)[:4])
            for name, c in (("silent", silent), ("half proof", trickle)):
                try:
                    data = c.recv_until_close(timeout=6)
                except socket.timeout:
                    raise Failed("%s connection still open after %.1fs"
                                 % (name, time.monotonic() - t0))
                took = time.monotonic() - t0
                if data:
                    raise Failed("%s connection got %r" % (name, data[:16]))
                if took > 3.0:
                    raise Failed("%s connection closed only after %.1fs"
                                 % (name, took))
                if took < 0.9:
                    raise Failed("%s connection closed after %.2fs, before "
                                 "the 1s timeout" % (name, took))
                print("# %s connection closed after %.2fs" % (name, took),
                      flush=True)
        st = ctx.status()
        if st["unauthenticated_clients"] != 0:
            raise Failed("unauthenticated clients left: %s" % st)
    ctx.step("with --handshake-timeout 1s, a silent and a half-proof "
             "connection are closed within 3s", run)


def sc_idle_timeout(ctx):
    def run():
        t0 = time.monotonic()
        with P.connect(HOST, ctx.port, ctx.secret, P.IM6, TIMEOUT) as c:
            if c.open6(32, 32) != 1:
                raise Failed("open refused")
            if ctx.status()["caches_open"] != 1:
                raise Failed("the cache is not open")
            try:
                data = c.recv_until_close(timeout=8)
            except socket.timeout:
                raise Failed("idle connection still open after %.1fs"
                             % (time.monotonic() - t0))
            took = time.monotonic() - t0
            if data:
                raise Failed("idle connection got %r" % data[:16])
            if not 1.9 <= took <= 4.5:
                raise Failed("idle connection closed after %.2fs, expected "
                             "2s to 4.5s" % took)
            print("# idle connection closed after %.2fs" % took, flush=True)
        st = ctx.status()
        if st["caches_open"] != 0 or st["bytes_ram"] != 0:
            raise Failed("the idle client's cache was not freed: %s" % st)
    ctx.step("with --idle-timeout 2s, an authenticated client that goes "
             "silent is closed after about 2s and its cache freed", run)


def sc_wait_freed(ctx):
    within = ctx.args.within

    def run():
        ctx.wait_freed(within=within)
    ctx.step("caches_open 0 and bytes_ram 0 within %.0fs" % within, run)


def sc_status(ctx):
    def run():
        print("# %s" % ctx.status(), flush=True)
    ctx.step("status", run)


SCENARIOS = {
    "selftest": sc_selftest,
    "wrong-secret": sc_wrong_secret,
    "im6-roundtrip": sc_im6_roundtrip,
    "im7-roundtrip": sc_im7_roundtrip,
    "truncated": sc_truncated,
    "half-write": sc_half_write,
    "half-close": sc_half_close,
    "slow-reader": sc_slow_reader,
    "idle-flood": sc_idle_flood,
    "handshake-timeout": sc_handshake_timeout,
    "idle-timeout": sc_idle_timeout,
    "wait-freed": sc_wait_freed,
    "status": sc_status,
}
for _g in MALFORMED:
    SCENARIOS["malformed-" + _g] = (lambda g: lambda ctx: sc_malformed(ctx, g))(_g)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--port7", type=int, default=0)
    ap.add_argument("--policy", required=True,
                    help="directory holding the right policy.xml")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--within", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.cmd and args.cmd[0] == "--":
        args.cmd = args.cmd[1:]
    ctx = Ctx(args)
    SCENARIOS[args.scenario](ctx)
    if ctx.failures:
        print("# %s: %d step(s) failed:" % (args.scenario, len(ctx.failures)))
        for f in ctx.failures:
            print("#   %s" % f)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
