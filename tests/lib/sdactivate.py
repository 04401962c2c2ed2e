#!/usr/bin/env python3
"""systemd's side of socket activation for tests/integration/systemd.sh.

  sdactivate.py PORTFILE UNIXPATH|- PROGRAM ARGS...

Binds and listens on 127.0.0.1 (a free port, written to PORTFILE) and, when
UNIXPATH is not '-', on a Unix stream socket there; puts them at
descriptors 3 (and 4), sets LISTEN_FDS, LISTEN_PID (this process, which
PROGRAM replaces) and LISTEN_FDNAMES, and execs PROGRAM, as systemd does.
"""
import os
import socket
import sys


def main():
    portfile, unixpath, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    socks = []
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(('127.0.0.1', 0))
    tcp.listen(64)
    socks.append(tcp)
    names = ['dpc']
    if unixpath != '-':
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        u.bind(unixpath)
        os.chmod(unixpath, 0o600)
        u.listen(64)
        socks.append(u)
        names.append('shm')
    # out of the way of 3 and 4 first, then into place
    high = [os.dup(s.fileno()) for s in socks]
    for i, fd in enumerate(high):
        os.dup2(fd, 3 + i, inheritable=True)
    with open(portfile + '.tmp', 'w', encoding='utf-8') as f:
        f.write('%d\n' % tcp.getsockname()[1])
    os.rename(portfile + '.tmp', portfile)
    env = dict(os.environ)
    env['LISTEN_FDS'] = str(len(socks))
    env['LISTEN_PID'] = str(os.getpid())
    env['LISTEN_FDNAMES'] = ':'.join(names)
    os.execve(argv[0], argv, env)


if __name__ == '__main__':
    main()
