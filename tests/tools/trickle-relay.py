#!/usr/bin/python3
"""A relay that trickles: it forwards what clients send to a real server
at once, and what the server answers first --passthrough bytes at once,
then one byte every --interval seconds.  It prints its port, then serves
until --lifetime seconds are up (every loop bounded by that).

    trickle-relay.py --server 127.0.0.1:PORT [--passthrough N]
                     [--interval S] [--lifetime S]

With --passthrough 72 (the native handshake's 8-byte stock nonce, 32-byte
nonce and 32-byte proof from the server) the handshake completes and every
reply trickles; with 0 the handshake itself trickles.
"""
import argparse
import select
import socket
import sys
import threading
import time


def pipe(src, dst, passthrough, interval, end):
    """Copies src to dst: passthrough bytes at once, then a byte every
    interval seconds, until end (a time.monotonic() value) or a close."""
    sent = 0
    pending = b""
    next_at = 0.0
    try:
        while time.monotonic() < end:
            wait = 0.2
            if pending:
                wait = max(0.0, min(wait, next_at - time.monotonic()))
            r, _, _ = select.select([src], [], [], wait)
            if r:
                chunk = src.recv(65536)
                if not chunk:
                    break
                pending += chunk
            while pending and sent < passthrough:
                k = min(len(pending), passthrough - sent)
                dst.sendall(pending[:k])
                pending = pending[k:]
                sent += k
            if pending and time.monotonic() >= next_at:
                dst.sendall(pending[:1])
                pending = pending[1:]
                sent += 1
                next_at = time.monotonic() + interval
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--passthrough", type=int, default=72)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--lifetime", type=float, default=60)
    a = ap.parse_args()
    host, port = a.server.rsplit(":", 1)
    end = time.monotonic() + a.lifetime
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print(ls.getsockname()[1], flush=True)
    while time.monotonic() < end:
        r, _, _ = select.select([ls], [], [], 0.2)
        if not r:
            continue
        c, _ = ls.accept()
        try:
            s = socket.create_connection((host, int(port)), timeout=5)
        except OSError:
            c.close()
            continue
        s.settimeout(None)
        for src, dst, n, iv in ((c, s, 1 << 62, 0), (s, c, a.passthrough,
                                                     a.interval)):
            threading.Thread(target=pipe, args=(src, dst, n, iv, end),
                             daemon=True).start()
    sys.exit(0)


if __name__ == "__main__":
    main()
