#!/usr/bin/env python3
"""A hostile stand-in for magick-dpc's Unix socket: it speaks the local
protocol (MagickCore-ext/proto/dpc_lproto.h) but grants bad segments, so the
tests can show the client refuses them.

  fakeshm.py SOCKET MODE

MODE, for every ALLOC (a cache segment) or ATTACH (a published image):
  unsealed   a memfd of the right size with no seals
  short      a sealed memfd one page shorter than the size it claims
  mode0644   sealed and the right size, but readable by group and others
  badheader  (ATTACH) sealed read-only, its header claiming more pixels
             than the segment holds
  class0     (ATTACH) a well-formed 2x2 image whose class is Undefined
It serves until killed; each grant is logged on stderr.
"""
import fcntl
import os
import socket
import struct
import sys

HDR = struct.Struct("<BBBBI")
ALLOC, FREE, PUBLISH, COMMIT, ATTACH = 1, 2, 3, 4, 5
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


def memfd(size, seals, mode=0o600):
    fd = os.memfd_create("fakeshm", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    os.fchmod(fd, mode)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


def bad_image():
    """A one-frame image header whose pixels run past the segment."""
    size = 8192
    fd = memfd(size, 0)
    hdr = b"MDPCSHM1" + struct.pack("<IIQ", 4096, 1, size)
    hdr += struct.pack("<QQIIQ", 4096, 1 << 20, 0, 0, 0)
    os.pwrite(fd, hdr, 0)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS | fcntl.F_SEAL_WRITE)
    return fd, size


def record(key, value):
    """One U64 metadata record."""
    key = key.encode()
    return struct.pack("<BBHI", 1, 0, len(key), 8) + key + struct.pack("<Q", value)


def class0_image():
    """2x2 Q16 pixels, every record right but class = 0 (Undefined)."""
    size = 8192
    meta = b"".join(record(k, v) for k, v in (
        ("quantum", 16), ("hdri", 0), ("packet", 8), ("index_packet", 2),
        ("columns", 2), ("rows", 2), ("class", 0), ("colorspace", 1)))
    hdr = b"MDPCSHM1" + struct.pack("<IIQ", 4096, 1, size)
    hdr += struct.pack("<QQIIQ", 4096, 32, 56, len(meta), 0)
    fd = memfd(size, 0)
    os.pwrite(fd, hdr + meta, 0)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS | fcntl.F_SEAL_WRITE)
    return fd, size


def readonly(fd):
    """The attach contract: a read-only descriptor."""
    ro = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    os.close(fd)
    return ro


def grant(mode, op, size):
    if op == ATTACH and mode == "badheader":
        fd, size = bad_image()
        return readonly(fd), size
    if op == ATTACH and mode == "class0":
        fd, size = class0_image()
        return readonly(fd), size
    if op == ATTACH:
        size = 8192
    if mode == "unsealed":
        return memfd(size, 0), size
    if mode == "short":
        return memfd(size - 4096 if size > 4096 else 1, SEALS), size
    return memfd(size, SEALS, 0o644), size


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def serve(conn, mode):
    while True:
        version, op, _, _, length = HDR.unpack(recv_exact(conn, HDR.size))
        body = recv_exact(conn, length)
        if op in (ALLOC, PUBLISH, ATTACH):
            size = struct.unpack_from("<Q", body)[0] if op != ATTACH else 0
            fd, claimed = grant(mode, op, size)
            reply = HDR.pack(1, op, 0, 0, 16) + struct.pack("<QQ", 7, claimed)
            socket.send_fds(conn, [reply], [fd])
            os.close(fd)
            print(f"fakeshm: {mode} grant for op {op}", file=sys.stderr,
                  flush=True)
        else:
            conn.sendall(HDR.pack(1, op, 0, 0, 0))


def main():
    path, mode = sys.argv[1], sys.argv[2]
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    print(f"fakeshm: listening on {path}", file=sys.stderr, flush=True)
    while True:
        conn, _ = srv.accept()
        try:
            serve(conn, mode)
        except (EOFError, ConnectionError):
            pass
        conn.close()


if __name__ == "__main__":
    main()
