#!/usr/bin/env bash
# systemd: readiness (READY=1 only once the port accepts connections, and
# with --preallocate once memory is faulted in; STATUS=; STOPPING=1 on
# SIGTERM) to a notify socket of the test's own, by path and abstract; and
# socket activation: a launcher binds the sockets, execs magick-dpc with
# LISTEN_FDS, and a convert runs through them.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
NOTIFY="python3 $TOP_SRCDIR/tests/lib/sdnotify.py"
ACTIVATE="python3 $TOP_SRCDIR/tests/lib/sdactivate.py"

# notified NAME ADDR [ARGS...]: a notify listener on ADDR, then magick-dpc
# with NOTIFY_SOCKET=ADDR and ARGS, logging to $WORK/NAME.log, its state
# lines in $WORK/NAME.notify; sets NPID (the server) and LPID (listener).
notified() {
    local name=$1 addr=$2
    shift 2
    : > "$WORK/$name.log"
    $NOTIFY "$addr" "$WORK/$name.notify" "$WORK/$name.log" 60 &
    LPID=$!
    track "$LPID"
    server_wait "$LPID" 100 grep -q bound "$WORK/$name.notify" 2> /dev/null
    NOTIFY_SOCKET=$addr server_spawn "$WORK/$name.log" "$MAGICK_DPC" serve \
        --listen 127.0.0.1:0 --socket none "$@"
    NPID=$SPAWNED_PID
    track "$NPID"
}
has() { grep -qx -- "$2" "$WORK/$1.notify"; }

ready_after_listening() {
    notified path "$WORK/notify.sock"
    server_wait "$NPID" 100 has path READY=1
    server_wait "" 20 has path 'ready-connect ok'
    has path 'ready-connect ok'
    grep -q '^STATUS=serving 0 clients, 0 caches open$' "$WORK/path.notify"
    ! grep -q STOPPING "$WORK/path.notify"
    kill -TERM "$NPID"
    wait "$NPID"
    server_wait "" 60 has path STOPPING=1
    # READY before STOPPING
    [ "$(grep -n -x READY=1 "$WORK/path.notify" | cut -d: -f1)" -lt \
      "$(grep -n -x STOPPING=1 "$WORK/path.notify" | head -n 1 | cut -d: -f1)" ]
}
check "READY=1 once the port accepts connections, STATUS=, STOPPING=1 on SIGTERM" \
    ready_after_listening

abstract_socket() {
    local addr="@magick-dpc-test-$$-$RANDOM"
    notified abstract "$addr"
    server_wait "$NPID" 100 has abstract READY=1
    kill -INT "$NPID"
    wait "$NPID"
}
check "an abstract NOTIFY_SOCKET (@name)" abstract_socket

ready_after_preallocation() {
    notified prealloc "$WORK/notify2.sock" --memory 64MiB --preallocate
    server_wait "$NPID" 200 has prealloc READY=1
    server_wait "" 20 has prealloc 'ready-preallocated yes'
    has prealloc 'ready-connect ok'
    kill -INT "$NPID"
    wait "$NPID"
}
check "with --preallocate, READY=1 after the memory is faulted in" \
    ready_after_preallocation

draining_stops() {
    # A client connected: the drain says STOPPING=1 and a draining
    # STATUS= before the server exits.
    notified drain "$WORK/notify3.sock" --drain-timeout 30s
    server_wait "$NPID" 100 has drain READY=1
    local port
    port=$(server_log_port "$WORK/drain.log" '' "$NPID")
    python3 - "$port" "$WORK/drain.connected" <<'EOF' &
import socket, sys, time
# Opens no cache: a connection alone does not hold a drain.  The check is
# that STOPPING=1 comes when the drain starts, before the exit.
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
open(sys.argv[2], 'w').write('connected\n')
time.sleep(3)
s.close()
EOF
    track $!
    server_wait "" 100 test -s "$WORK/drain.connected"
    sleep 0.3       # the server's accept of it
    kill -TERM "$NPID"
    wait "$NPID"
    server_wait "" 60 has drain STOPPING=1
    grep -qx 'STATUS=draining: 1 clients, 0 caches open' "$WORK/drain.notify"
}
check "a drain sends STOPPING=1" draining_stops

no_notify_socket() {
    # Outside systemd: nothing changes.
    extra_server plain plain
    grep -q 'listening on 127.0.0.1' "$WORK/plain.log"
    ! grep -q 'systemd' "$WORK/plain.log"
}
check "without NOTIFY_SOCKET the server runs as before" no_notify_socket

socket_activation() {
    : > "$WORK/act.log"
    server_spawn "$WORK/act.log" $ACTIVATE "$WORK/act.port" \
        "$WORK/act.sock" "$MAGICK_DPC" serve --listen 127.0.0.1:1 \
        --socket "$WORK/unused.sock"
    APID=$SPAWNED_PID
    track "$APID"
    server_wait "$APID" 100 test -s "$WORK/act.port"
    PORT=$(cat "$WORK/act.port")
    server_wait "$APID" 100 grep -q 'passed by systemd' "$WORK/act.log"
    grep -q "listening on 127.0.0.1:$PORT (ImageMagick 6 clients, passed by systemd)" \
        "$WORK/act.log"
    grep -q "listening on $WORK/act.sock (passed by systemd" "$WORK/act.log"
    [ ! -e "$WORK/unused.sock" ]
    mem_convert -size 64x48 gradient: -blur 0x1 "$WORK/mem.miff"
    dpc_convert -size 64x48 gradient: -blur 0x1 "$WORK/act.miff"
    same_pixels "$WORK/mem.miff" "$WORK/act.miff"
    "$MAGICK_DPC" status --socket "$WORK/act.sock" | grep -q '"budget"'
    kill -TERM "$APID"
    wait "$APID"
    # the passed Unix socket is systemd's to remove
    [ -e "$WORK/act.sock" ]
}
check "socket activation: a TCP and a Unix socket passed, a convert through them" \
    socket_activation

activation_dropin() {
    [ -n "${DROPIN_LIB:-}" ] && [ -e "$DROPIN_LIB/libMagickCore-6.Q16.so.6" ] ||
        { echo "no drop-in: skipped"; return 0; }
    : > "$WORK/act2.log"
    server_spawn "$WORK/act2.log" $ACTIVATE "$WORK/act2.port" - \
        "$MAGICK_DPC" serve --socket none
    APID=$SPAWNED_PID
    track "$APID"
    server_wait "$APID" 100 test -s "$WORK/act2.port"
    PORT=$(cat "$WORK/act2.port")
    server_wait "$APID" 100 grep -q 'passed by systemd' "$WORK/act2.log"
    mem_convert -seed 3 -size 160x120 plasma:fractal "$WORK/in.miff"
    mem_convert "$WORK/in.miff" -blur 0x2 "$WORK/mem2.miff"
    DPC_VIA=dropin dpc_convert "$WORK/in.miff" -blur 0x2 "$WORK/act2.miff"
    same_pixels "$WORK/mem2.miff" "$WORK/act2.miff"
    kill -TERM "$APID"
    wait "$APID"
}
check "socket activation: the drop-in's convert (native, TLS) through it" \
    activation_dropin

not_ours() {
    # LISTEN_PID of another process: the sockets are not ours; bind as usual.
    LISTEN_PID=1 LISTEN_FDS=1 extra_server other other
    ! grep -q 'passed by systemd' "$WORK/other.log"
}
check "LISTEN_PID of another process is ignored" not_ours
finish
