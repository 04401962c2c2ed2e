#!/usr/bin/env python3
"""rtt-probe: round trips and a bulk transfer through a relay to an echo.

    rtt-probe.py COUNT BULK_BYTES RELAY [RELAY_ARGS...]

Starts a TCP echo on 127.0.0.1:0, runs RELAY_ARGS... with the echo's
address appended (the relay prints "port N"), then times COUNT one-byte
round trips and one echo of BULK_BYTES (0: none) through it.  Prints
"rtt_min_us N", "rtt_median_us N" and "bulk_s S".  Bounded: every socket
has a 30 s timeout.
"""
import socket
import subprocess
import sys
import threading
import time


def echo(listener):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=echo_one, args=(conn,), daemon=True).start()


def echo_one(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


def recv_exactly(sock, n):
    got = 0
    while got < n:
        data = sock.recv(min(65536, n - got))
        if not data:
            raise EOFError("relay closed early")
        got += len(data)


def main():
    count, bulk = int(sys.argv[1]), int(sys.argv[2])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    threading.Thread(target=echo, args=(listener,), daemon=True).start()
    target = "127.0.0.1:%d" % listener.getsockname()[1]
    relay = subprocess.Popen(sys.argv[3:] + [target], stdout=subprocess.PIPE)
    try:
        port = int(relay.stdout.readline().split()[1])
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(count):
            t0 = time.perf_counter_ns()
            sock.sendall(b"x")
            recv_exactly(sock, 1)
            times.append((time.perf_counter_ns() - t0) // 1000)
        times.sort()
        print("rtt_min_us", times[0])
        print("rtt_median_us", times[len(times) // 2])
        if bulk > 0:
            t0 = time.perf_counter()
            sender = threading.Thread(target=sock.sendall,
                                      args=(b"y" * bulk,))
            sender.start()
            recv_exactly(sock, bulk)
            sender.join()
            print("bulk_s %.3f" % (time.perf_counter() - t0))
        sock.close()
    finally:
        relay.kill()
        relay.wait()


main()
