#!/usr/bin/env python3
"""systemd's side of sd_notify(3) for tests/integration/systemd.sh.

  sdnotify.py ADDR OUT LOG [SECONDS]

Binds a Unix datagram socket at ADDR (a path, or '@name' for an abstract
one) and appends each state line received to OUT, flushed at once.  When a
datagram carries READY=1 it also writes, right then, what was true at that
moment: 'ready-connect ok' when the loopback port the server logged in LOG
('listening on 127.0.0.1:PORT') accepted a connection, else
'ready-connect failed', and 'ready-preallocated yes' when LOG already said
'preallocated'.  Exits after SECONDS (default 60) or on STOPPING=1
followed by 2 s of quiet.
"""
import re
import socket
import sys
import time


def at_ready(log, out):
    text = open(log, encoding='utf-8', errors='replace').read()
    m = re.search(r'listening on 127\.0\.0\.1:(\d+)', text)
    ok = False
    if m:
        try:
            socket.create_connection(('127.0.0.1', int(m.group(1))),
                                     timeout=2).close()
            ok = True
        except OSError:
            pass
    out.write('ready-connect %s\n' % ('ok' if ok else 'failed'))
    out.write('ready-preallocated %s\n' %
              ('yes' if 'preallocated' in text else 'no'))


def main():
    addr, path, log = sys.argv[1], sys.argv[2], sys.argv[3]
    limit = float(sys.argv[4]) if len(sys.argv) > 4 else 60
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind('\0' + addr[1:] if addr.startswith('@') else addr)
    deadline = time.time() + limit
    stopping = None
    with open(path, 'a', encoding='utf-8') as out:
        out.write('bound\n')
        out.flush()
        while time.time() < deadline:
            if stopping is not None and time.time() > stopping + 2:
                break
            s.settimeout(0.2)
            try:
                data = s.recv(4096).decode('utf-8', 'replace')
            except socket.timeout:
                continue
            for line in data.split('\n'):
                out.write(line + '\n')
            if 'READY=1' in data.split('\n'):
                at_ready(log, out)
            if 'STOPPING=1' in data.split('\n'):
                stopping = time.time()
            out.flush()


if __name__ == '__main__':
    main()
