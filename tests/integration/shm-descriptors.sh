#!/usr/bin/env bash
# Descriptors: every shm segment holds one of the server's.  Under
# `prlimit --nofile=512`, one local client asking 600 one-byte segments gets
# only what the limit leaves once TCP clients and listeners are provided
# for ("no room: descriptors"), while TCP clients are still served and the
# log stays short; and with the descriptors gone all the same (a limit too
# low for the clients allowed), both listeners pause on accept errors
# instead of spinning or filling the log.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"

PEER=$TOP_SRCDIR/tests/lib/shmpeer.py
make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc

# limited_server NOFILE ARGS...: start_server under prlimit (which execs).
limited_server() {
    local nofile=$1
    shift
    : > "$WORK/server.log"
    server_spawn "$WORK/server.log" prlimit --nofile="$nofile" \
        "$MAGICK_DPC" serve --listen 127.0.0.1:0 --socket "$SHM_SOCK" "$@"
    SERVER_PID=$SPAWNED_PID
    PORT=$(server_log_port "$WORK/server.log" '' "$SERVER_PID")
    [ -n "$PORT" ] || { cat "$WORK/server.log" >&2; return 1; }
}

limited_server 512 --max-clients 16 --max-local-clients 8 --shm-budget 64MiB
mem_convert -seed 5 -size 64x48 plasma:fractal "$WORK/in.miff"
mem_convert "$WORK/in.miff" -flip "$WORK/flip.mem.miff"

# 512 less two per TCP client (16 + 16 in the handshake) and per local
# client (8), one per listener (2) and 64 spare.
ROOM=$((512 - (2 * 32 + 2 * 8 + 2 + 64)))

starved() {
    python3 "$PEER" "$SHM_SOCK" alloc 600 1 60 > "$WORK/allocs.out" \
        2> "$WORK/allocs.err" < /dev/null &
    local peer=$! line
    track $peer
    for _ in $(seq 1 200); do
        [ -s "$WORK/allocs.out" ] && break
        sleep 0.05
    done
    line=$(cat "$WORK/allocs.out")
    echo "$line" >&2
    cat "$WORK/allocs.err" >&2
    grep -q "at most $ROOM segments at once" "$WORK/server.log"
    case $line in
    "granted $ROOM refused $((600 - ROOM)): no room: descriptors"*) ;;
    *) return 1 ;;
    esac
    # while they are held: the TCP side, authenticated, still served
    timeout 10 "$MAGICK_DPC" status --host 127.0.0.1:"$PORT" > "$WORK/status.json"
    dpc_convert "$WORK/in.miff" -flip "$WORK/flip.miff"
    same_pixels "$WORK/flip.mem.miff" "$WORK/flip.miff"
    timeout 10 "$MAGICK_DPC" status --socket "$SHM_SOCK" > "$WORK/shm.json"
    grep -q "\"segments\":$ROOM,.*\"max_segments\":$ROOM," "$WORK/shm.json"
    kill "$peer"
    wait "$peer" 2> /dev/null || true
    for _ in $(seq 1 100); do
        [ "$(shm_field segments)" = 0 ] && break
        sleep 0.05
    done
    [ "$(shm_field segments)" = 0 ]
}
check "600 ALLOCs under nofile 512: refused past the room left, TCP clients served" \
    starved
check "the log stays short (refusals within the log budget)" \
    sh -c "[ \$(wc -l < '$WORK/server.log') -lt 60 ]"
check_stops

# A limit too low for the clients allowed: connections run the server out
# of descriptors.  Both listeners pause a second after each accept error.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
paused() {
    local t0 t1 held
    python3 - "$SHM_SOCK" "$PORT" > "$WORK/flood.out" 2>&1 <<'PY' &
import socket, sys, time
held = []
for i in range(60):
    for fam, addr in ((socket.AF_UNIX, sys.argv[1]),
                      (socket.AF_INET, ("127.0.0.1", int(sys.argv[2])))):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(addr)
            held.append(s)
        except OSError as e:
            print("connect:", e)
print("holding", len(held), flush=True)
time.sleep(4)
PY
    held=$!
    track $held
    sleep 1
    t0=$(cpu_ticks "$SERVER_PID")
    sleep 2
    t1=$(cpu_ticks "$SERVER_PID")
    wait "$held" || true
    cat "$WORK/flood.out" >&2
    echo "server cpu: $((t1 - t0)) ticks in 2 s" >&2
    tail -n 20 "$WORK/server.log" >&2
    grep -q "accept on $SHM_SOCK: Too many open files; not accepting for 1 s" \
        "$WORK/server.log"
    grep -q "accept on 127.0.0.1:$PORT: Too many open files; not accepting for 1 s" \
        "$WORK/server.log"
    [ $((t1 - t0)) -lt 50 ]
    [ "$(wc -l < "$WORK/server.log")" -lt 80 ]
    # the clients gone, both are served again
    sleep 1.5
    timeout 10 "$MAGICK_DPC" status --host 127.0.0.1:"$PORT" > /dev/null
    timeout 10 "$MAGICK_DPC" status --socket "$SHM_SOCK" > /dev/null
}
limited_server 48 --max-clients 200 --max-unauthenticated 200 \
    --max-local-clients 200 --shm-budget 64MiB
check "out of descriptors: TCP and Unix listeners pause, no spin, a short log" \
    paused
check_stops
finish
