#!/usr/bin/python3
"""preauth-flood.py HOST PORT SOURCE SECONDS: floods HOST:PORT from the
local address SOURCE with connections that never authenticate, for SECONDS
(at most 20000 connections): a thread holds 4 open and silent,
another opens one after another, reads the server's nonce and closes.
Prints how many connections it made."""
import socket
import sys
import threading
import time

HOST, PORT, SOURCE, SECONDS = (sys.argv[1], int(sys.argv[2]), sys.argv[3],
                               float(sys.argv[4]))
END = time.monotonic() + SECONDS
MAX_CONNS = 20000
count = [0, 0]


def dial():
    s = socket.socket()
    s.settimeout(1)
    s.bind((SOURCE, 0))
    s.connect((HOST, PORT))
    return s


def churn():
    while time.monotonic() < END and count[0] < MAX_CONNS:
        try:
            s = dial()
            count[0] += 1
            try:
                s.recv(8)
            except OSError:
                pass
            s.close()
        except OSError:
            time.sleep(0.01)


def hold():
    held = []
    while time.monotonic() < END and count[1] < MAX_CONNS:
        if len(held) >= 4:
            time.sleep(0.05)
            continue
        try:
            held.append(dial())
            count[1] += 1
        except OSError:
            time.sleep(0.05)
    for s in held:
        s.close()


threads = [threading.Thread(target=f) for f in (churn, hold)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("flood: %d connections closed after the nonce, %d held" % tuple(count))
