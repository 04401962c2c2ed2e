#!/usr/bin/python3
"""memscan.py PID STRING...: for each STRING, prints "found STRING" or
"absent STRING" after reading every readable mapping of process PID
through /proc/PID/mem (run as root).  Mappings larger than 1 GiB are
skipped (AddressSanitizer's shadow, reservations for pixel caches that no
client has written yet); at most 4 GiB is read in all."""
import re
import sys

LIMIT = 4 << 30
LARGEST = 1 << 30


def main():
    pid = int(sys.argv[1])
    needles = [s.encode() for s in sys.argv[2:]]
    found = set()
    total = 0
    with open("/proc/%d/maps" % pid) as maps, \
            open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            start, end, perms = int(m[1], 16), int(m[2], 16), m[3]
            if (perms[0] != "r" or "[vvar]" in line or total > LIMIT or
                    end - start > LARGEST):
                continue
            # keep an overlap between chunks so nothing straddles unseen
            overlap = max(len(n) for n in needles) if needles else 0
            pos, tail = start, b""
            while pos < end and total <= LIMIT:
                n = min(1 << 20, end - pos)
                try:
                    mem.seek(pos)
                    chunk = mem.read(n)
                except (OSError, ValueError, OverflowError):
                    break
                total += n
                buf = tail + chunk
                for s in needles:
                    if s in buf:
                        found.add(s)
                tail = buf[-overlap:] if overlap else b""
                pos += n
    for s in needles:
        print(("found " if s in found else "absent ") + s.decode())


if __name__ == "__main__":
    main()
