#!/usr/bin/env python3
"""A local client of magick-dpc's Unix socket, for the integration tests
that need what ImageMagick never does: many segments over one connection,
a freed segment's descriptor kept, a connection left idle.  Speaks the local
protocol (MagickCore-ext/proto/dpc_lproto.h).  One line of results on
stdout; errors on stderr.

  shmpeer.py SOCK alloc N SIZE [HOLD]
      N ALLOCs of SIZE bytes on one connection, every descriptor kept;
      prints "granted G refused R" and the first refusal's text, then keeps
      the connection and descriptors HOLD seconds (default 0; the test
      kills it sooner).
  shmpeer.py SOCK free-keep SIZE ROUNDS
      ROUNDS times: ALLOC SIZE bytes, write them all, FREE the segment,
      keep the descriptor; prints "blocks BEFORE AFTER shmem GROWTH" (the
      last memfd's st_blocks while written and once freed, and how many
      bytes /proc/meminfo's Shmem grew with every descriptor still held).
  shmpeer.py SOCK conns N HOLD
      N connections, a STATUS on each; prints "served S refused R: TEXT",
      then keeps them HOLD seconds.
  shmpeer.py SOCK idle LIMIT
      a STATUS, then silence; prints "closed after S" when the server
      closes the connection, or "open after LIMIT".
"""
import mmap
import os
import socket
import struct
import sys
import time

VERSION = 1
ALLOC, FREE, STATUS = 1, 2, 8


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("server closed the connection")
        buf += chunk
    return buf


def call(s, op, body=b""):
    """One request; returns (status, body, descriptors).  A server that
    refuses the connection answers and closes at once: the request may meet
    a closed socket while the reason waits to be read."""
    try:
        s.sendall(struct.pack("<BBBBI", VERSION, op, 0, 0, len(body)) + body)
    except (BrokenPipeError, ConnectionResetError):
        pass
    hdr, fds, _, _ = socket.recv_fds(s, 8, 4)
    if len(hdr) < 8:
        hdr += recv_exact(s, 8 - len(hdr))
    _, _, status, _, n = struct.unpack("<BBBBI", hdr)
    return status, recv_exact(s, n), fds


def alloc(s, size):
    return call(s, ALLOC, struct.pack("<Q", size))


def cmd_alloc(path, count, size, hold=0.0):
    s = connect(path)
    kept, granted, refused, first = [], 0, 0, ""
    for _ in range(count):
        status, body, fds = alloc(s, size)
        if status == 0 and len(fds) == 1:
            granted += 1
            kept.append(fds[0])
        else:
            for fd in fds:
                os.close(fd)
            refused += 1
            if not first:
                first = body.decode(errors="replace")
    print("granted %d refused %d: %s" % (granted, refused, first), flush=True)
    time.sleep(hold)


def shmem():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Shmem:"):
                return int(line.split()[1]) * 1024
    return 0


def cmd_free_keep(path, size, rounds):
    s = connect(path)
    kept, start = [], shmem()
    for _ in range(rounds):
        status, body, fds = alloc(s, size)
        if status != 0 or len(fds) != 1:
            sys.exit("alloc refused: %s" % body.decode(errors="replace"))
        fd = fds[0]
        kept.append(fd)
        seg_id = struct.unpack_from("<Q", body)[0]
        m = mmap.mmap(fd, size)
        m.write(b"\x5a" * size)
        m.close()
        before = os.fstat(fd).st_blocks
        status, body, _ = call(s, FREE, struct.pack("<Q", seg_id))
        if status != 0:
            sys.exit("free refused: %s" % body.decode(errors="replace"))
        after = os.fstat(fd).st_blocks
    print("blocks %d %d shmem %d" % (before, after, shmem() - start),
          flush=True)


def cmd_conns(path, count, hold):
    held, served, refused, first = [], 0, 0, ""
    for _ in range(count):
        s = connect(path)
        try:
            status, body, _ = call(s, STATUS)
        except (EOFError, OSError) as e:
            status, body = -1, str(e).encode()
        if status == 0:
            served += 1
            held.append(s)
        else:
            refused += 1
            first = first or body.decode(errors="replace")
            s.close()
    print("served %d refused %d: %s" % (served, refused, first), flush=True)
    time.sleep(hold)


def cmd_idle(path, limit):
    s = connect(path)
    call(s, STATUS)
    t0 = time.monotonic()
    s.settimeout(limit)
    try:
        if s.recv(1) == b"":
            print("closed after %.1f" % (time.monotonic() - t0))
            return
    except socket.timeout:
        pass
    print("open after %.1f" % (time.monotonic() - t0))


def main(argv):
    path, cmd = argv[1], argv[2]
    if cmd == "alloc":
        cmd_alloc(path, int(argv[3]), int(argv[4]),
                  float(argv[5]) if len(argv) > 5 else 0.0)
    elif cmd == "free-keep":
        cmd_free_keep(path, int(argv[3]), int(argv[4]))
    elif cmd == "conns":
        cmd_conns(path, int(argv[3]), float(argv[4]))
    elif cmd == "idle":
        cmd_idle(path, float(argv[3]))
    else:
        sys.exit("unknown command %s" % cmd)


if __name__ == "__main__":
    main(sys.argv)
