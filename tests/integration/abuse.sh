#!/bin/bash
# Abuse tests: hostile and broken clients against a real magick-dpc.
#
# Each check is one scenario (the protocol work is in abuse.py, which uses
# its own independent client, tests/lib/dpcproto.py).  After every
# scenario the server must still be running and answering, a real
# /usr/bin/convert through it must still produce the same pixels as the
# memory cache, and no cache may be left open.
#
#   MAGICK_DPC=/path/to/magick-dpc bash tests/integration/abuse.sh

: "${TOP_SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
. "$TOP_SRCDIR/tests/lib/common.sh"

PY=/usr/bin/python3
ABUSE=$TOP_SRCDIR/tests/integration/abuse.py
SMALL=(-size 64x48 gradient:red-blue -blur 0x1)
AUX_PID_FILE=$WORK/aux.pid

abuse_cleanup() {
    if [ -s "$AUX_PID_FILE" ]; then
        kill -KILL "$(cat "$AUX_PID_FILE")" 2>/dev/null || true
    fi
    cleanup
}
trap abuse_cleanup EXIT

# The binary may be being rebuilt: wait until it exists and has not changed
# for 2 s, then run a private copy (checked to start and to match the
# original) so a rebuild during the run cannot pull it from under us.
stable_copy() {
    local src=$1 dst=$2 age
    [ -x "$src" ] || return 1
    age=$(( $(date +%s) - $(stat -c %Y "$src") ))
    [ "$age" -ge 2 ] || return 1
    cp "$src" "$dst" && cmp -s "$src" "$dst" &&
        "$dst" --version > /dev/null 2>&1
}
if [ "$(head -c 4 "$MAGICK_DPC" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] ||
    [ ! -e "$MAGICK_DPC" ]; then
    copied=
    for _ in $(seq 1 120); do
        if stable_copy "$MAGICK_DPC" "$WORK/magick-dpc"; then
            copied=1
            break
        fi
        sleep 0.5
    done
    if [ -z "$copied" ]; then
        echo "no stable, runnable magick-dpc at $MAGICK_DPC" >&2
        exit 1
    fi
    MAGICK_DPC=$WORK/magick-dpc
fi

# Two secrets: the server's, and a wrong one for the impostors.
make_policy "wrong-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" \
    "$WORK/etc-wrong"
make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc

start_server --listen-im7 127.0.0.1:0
PORT7=$(im7_port_of "$WORK/server.log")
[ -n "$PORT7" ] || { echo "no IM7 listener:" >&2; cat "$WORK/server.log" >&2; exit 1; }

# The reference every convert through the server must match.
mem_convert "${SMALL[@]}" "$WORK/ref.png"

# abuse [OPTIONS] SCENARIO [-- CMD...]: one abuse.py scenario against the
# main server.
abuse() {
    "$PY" "$ABUSE" --port "$PORT" --port7 "$PORT7" --policy "$WORK/etc" "$@"
}

# A real convert through the main server, as abuse.py runs it (it has no
# shell functions): dpc_convert's arguments.
DPC_CONVERT=(timeout 60 "$CONVERT" -define registry:cache:hosts=127.0.0.1:"$PORT"
    -limit memory 0 -limit map 0 -limit disk 0)

# after_ok: the server survived the scenario and still serves correctly.
after_ok() {
    server_alive || { echo "AFTER: server gone or not answering"; return 1; }
    rm -f "$WORK/after.png"
    dpc_convert "${SMALL[@]}" "$WORK/after.png" ||
        { echo "AFTER: convert through the server failed"; return 1; }
    same_pixels "$WORK/ref.png" "$WORK/after.png" ||
        { echo "AFTER: convert through the server gave other pixels"; return 1; }
    abuse --within 3 wait-freed ||
        { echo "AFTER: caches left open"; return 1; }
}

# scenario NAME [OPTIONS]: one abuse.py scenario.
scenario() {
    local name=$1
    shift
    abuse "$@" "$name"
}

# sane CMD...: runs the scenario CMD, then after_ok whatever CMD gave, so a
# failing scenario still tells whether the server survived it.
sane() {
    local rc=0 mark
    mark=$(wc -l < "$WORK/server.log")
    "$@" || rc=1
    if [ "$rc" -ne 0 ]; then
        echo "server log during the scenario (warnings and errors):"
        tail -n +"$((mark + 1))" "$WORK/server.log" |
            grep -E '\[(warning|error)\]|mid-request' | tail -n 8
    fi
    after_ok || rc=1
    return $rc
}

wrong_secret_convert() {
    local before after t0 t1 ms rc=0
    before=$(json_field auth_failures)
    t0=$(date +%s%N)
    MAGICK_CONFIGURE_PATH=$WORK/etc-wrong timeout 20 "$CONVERT" \
        -define registry:cache:hosts=127.0.0.1:"$PORT" \
        -limit memory 0 -limit map 0 -limit disk 0 "${SMALL[@]}" \
        "$WORK/wrong.png" || rc=$?
    t1=$(date +%s%N)
    ms=$(( (t1 - t0) / 1000000 ))
    echo "convert with the wrong secret: exit $rc after ${ms} ms"
    [ "$rc" -ne 0 ] || { echo "it succeeded"; return 1; }
    [ "$rc" -ne 124 ] || { echo "it hung until timeout(1) killed it"; return 1; }
    [ "$ms" -le 5000 ] || { echo "it took more than 5 s to fail"; return 1; }
    [ ! -e "$WORK/wrong.png" ] || { echo "it wrote an image"; return 1; }
    after=$(json_field auth_failures)
    echo "auth_failures $before -> $after"
    [ "$after" -gt "$before" ] || { echo "auth_failures not incremented"; return 1; }
    abuse --within 3 wait-freed
}

# A real convert sharing the server with a client that never reads its
# 32 MB reply.
slow_reader() {
    rm -f "$WORK/slow.png"
    abuse slow-reader -- "${DPC_CONVERT[@]}" "${SMALL[@]}" "$WORK/slow.png" ||
        return 1
    same_pixels "$WORK/ref.png" "$WORK/slow.png"
}

# A real convert (from 127.0.0.1) while 1000 idle connections from
# 127.0.0.2 are held.
idle_flood() {
    local t0=$SECONDS
    rm -f "$WORK/flood.png"
    abuse --count 1000 idle-flood -- \
        "${DPC_CONVERT[@]}" "${SMALL[@]}" "$WORK/flood.png" || return 1
    same_pixels "$WORK/ref.png" "$WORK/flood.png" || return 1
    [ $((SECONDS - t0)) -lt 60 ] || { echo "took $((SECONDS - t0)) s"; return 1; }
}

# A second server with --handshake-timeout 1s --idle-timeout 2s.
handshake_timeout() {
    local log=$WORK/aux.log port='' pid rc=0 _
    : > "$log"
    "$MAGICK_DPC" serve --listen 127.0.0.1:0 --handshake-timeout 1s \
        --idle-timeout 2s 2>> "$log" &
    pid=$!
    echo "$pid" > "$AUX_PID_FILE"
    for _ in $(seq 1 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' \
            "$log" | head -n 1)
        [ -n "$port" ] && break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        echo "second server did not start:"
        cat "$log"
        kill -KILL "$pid" 2>/dev/null
        return 1
    fi
    "$PY" "$ABUSE" --port "$port" --policy "$WORK/etc" handshake-timeout ||
        rc=1
    "$PY" "$ABUSE" --port "$port" --policy "$WORK/etc" idle-timeout || rc=1
    kill -TERM "$pid"
    wait "$pid" || { echo "second server exited $? on SIGTERM"; rc=1; }
    : > "$AUX_PID_FILE"
    if [ "$rc" -ne 0 ]; then
        echo "second server's log:"
        tail -n 10 "$log"
    fi
    return "$rc"
}

# A real convert killed with SIGKILL in the middle of its work.
killed_client() {
    local pid open
    "$CONVERT" -define registry:cache:hosts=127.0.0.1:"$PORT" \
        -limit memory 0 -limit map 0 -limit disk 0 \
        -size 800x600 gradient:red-blue -blur 0x3 "$WORK/killed.png" \
        2> /dev/null &
    pid=$!
    sleep 1
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "convert ended within 1 s: nothing to kill"
        return 1
    fi
    open=$(json_field caches_open)
    echo "caches_open while convert runs: $open"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    [ "${open:-0}" -gt 0 ] || { echo "no cache was open on the server"; return 1; }
    abuse --within 5 wait-freed
}

check "siphash: dpcproto matches the published and ImageMagick vectors" \
    sane scenario selftest
check "wrong secret: raw client closed on silently, auth_failures counted, nothing stored" \
    sane scenario wrong-secret
check "wrong secret: real convert fails fast, nothing stored" \
    sane wrong_secret_convert
check "malformed: wrong session key -> 4 zero bytes, close" \
    sane scenario malformed-wrong-key
check "malformed: unknown command byte -> 4 zero bytes, close" \
    sane scenario malformed-unknown-cmd
check "malformed: r/w/R/d before o -> 4 zero bytes, close" \
    sane scenario malformed-before-open
check "malformed: second o on one connection -> 4 zero bytes, close" \
    sane scenario malformed-second-open
check "malformed: region outside the cache (past its end, y, negative, 2^63-1, width 0) -> 4 zero bytes, close" \
    sane scenario malformed-region
check "malformed: length != width*height*bpp -> 4 zero bytes, close" \
    sane scenario malformed-length
check "malformed: bytes per pixel changing after the first request -> 4 zero bytes, close" \
    sane scenario malformed-bpp-change
check "malformed: R/W on a DirectClass sRGB image -> 4 zero bytes, close" \
    sane scenario malformed-indexes
check "malformed: open with 0 columns, 2^40x2^40, storage class 99 -> 4 zero bytes, close" \
    sane scenario malformed-open
check "malformed: IM7 opens and metacontent requests -> 4 zero bytes, close" \
    sane scenario malformed-im7
check "truncated frames: half a proof/header/open/region, then close; caches freed" \
    sane scenario truncated
check "round trip: IM6 random pixels and indexes, sub-rectangle reads, pipelined, fragmented" \
    sane scenario im6-roundtrip
check "round trip: IM7 listener, 16-byte nonce, 6 bytes/pixel + 4-byte metacontent" \
    sane scenario im7-roundtrip
check "half write: write header for L bytes, close after L/2; caches freed" \
    sane scenario half-write
check "half close: requests pipelined before the client's FIN are all answered" \
    sane scenario half-close
check "slow reader: 32 MB read never read; others served; caches freed after" \
    sane slow_reader
check "idle flood: a source past its share waits, then is refused; no handshake dropped; 1000 idle connections from one source; convert from another succeeds" \
    sane idle_flood
check "timeouts: a silent handshake closed after 1 s, an idle client after 2 s (cache freed)" \
    sane handshake_timeout
check "killed client: convert SIGKILLed mid-transfer; caches_open 0, bytes_ram 0; next convert ok" \
    sane killed_client

log_clean() {
    if grep -E 'Assertion|AddressSanitizer|runtime error|LeakSanitizer' \
        "$WORK/server.log"; then
        return 1
    fi
}
check "server log: no assertion or sanitizer report" log_clean

STOP_RC=0
stop_server || STOP_RC=$?
check "server exits 0 on SIGTERM after the abuse (exit $STOP_RC)" \
    test "$STOP_RC" -eq 0

finish
