#!/usr/bin/env bash
# The shared-memory tier: the system convert on the drop-in library, its
# pixel caches sealed memfd segments from magick-dpc's Unix socket.  The
# host budget under 16 concurrent converts, a killed client's segments,
# peers told apart by the kernel (another uid, made here), and segments a
# hostile server hands out (tests/lib/fakeshm.py) refused by the client.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin

BUDGET=$((48 * 1024 * 1024))
TEST_USER=dpc-shm-test
MADE_USER=

cleanup_user() {
    [ -n "$MADE_USER" ] && userdel "$TEST_USER" 2>/dev/null || true
    cleanup
}
trap cleanup_user EXIT

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server -v --shm-budget "$BUDGET"

# 1200x900 at 8 bytes a pixel: 8.6 MB a cache, so 16 converts at once ask
# several times the 48 MiB budget.
mem_convert -seed 3 -size 1200x900 plasma:fractal "$WORK/big.miff"
mem_convert "$WORK/big.miff" -resize 25% "$WORK/small.miff"
mem_convert "$WORK/big.miff" -blur 0x1 "$WORK/big-blur.mem.miff"

tier_logged() {
    DPC_VIA=shm dpc_convert -debug cache "$WORK/small.miff" -flip \
        "$WORK/flip.miff" 2> "$WORK/debug.log"
    grep -q 'magick-dpc: shm tier: .*segment [0-9]*' "$WORK/debug.log"
}
check "-debug cache names the shm tier and the segment" tier_logged

# concurrent N: N converts at once, shm tier first, memory when it is spent.
concurrent() {
    local pids=() i rc=0
    for i in $(seq 1 "$1"); do
        LD_LIBRARY_PATH=$DROPIN_LIB timeout "$STEP_TIMEOUT" "$CONVERT" \
            -define cache:dpc-socket="$SHM_SOCK" \
            -define cache:tiers=shm,memory "$WORK/big.miff" -blur 0x1 \
            "$WORK/c$i.miff" 2> "$WORK/c$i.err" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { echo "convert $((i + 1)) failed" >&2; rc=1; }
    done
    [ "$rc" = 0 ]
    for i in $(seq 1 "$1"); do
        same_pixels "$WORK/big-blur.mem.miff" "$WORK/c$i.miff"
        # a spent budget is the next tier's cue, not a warning
        [ ! -s "$WORK/c$i.err" ] || { cat "$WORK/c$i.err" >&2; return 1; }
    done
    shm_json >&2
    local peak refused
    peak=$(shm_field peak)
    refused=$(shm_field refused)
    [ "$peak" -le "$BUDGET" ] && [ "$peak" -gt 0 ] && [ "$refused" -gt 0 ]
    [ "$(shm_field used)" = 0 ] && [ "$(shm_field segments)" = 0 ]
}
check "16 concurrent converts: the budget holds, the rest go to memory, all identical" \
    concurrent 16

# A convert killed in the middle: its segments go with its connection.
killed_client() {
    LD_LIBRARY_PATH=$DROPIN_LIB "$CONVERT" -define cache:dpc-socket="$SHM_SOCK" \
        -define cache:tiers=shm "$WORK/big.miff" -blur 0x80 null: &
    local pid=$! seen=
    for _ in $(seq 1 200); do
        if shm_json | grep -q "\"uid\":$(id -u),\"pid\":$pid,"; then
            seen=1
            break
        fi
        sleep 0.05
    done
    shm_json >&2
    kill -KILL "$pid"
    wait "$pid" 2> /dev/null || true
    [ -n "$seen" ] || { echo "status never listed pid $pid" >&2; return 1; }
    for _ in $(seq 1 100); do
        [ "$(shm_field used)" = 0 ] && break
        sleep 0.05
    done
    [ "$(shm_field used)" = 0 ] && [ "$(shm_field segments)" = 0 ]
    grep -q "pid $pid uid .*segments\? freed" "$WORK/server.log"
}
check "status lists a running convert's segments by uid and pid; SIGKILL frees them" \
    killed_client
check "the server still serves" server_alive

# A user made for the test, and a server whose socket it may open (mode
# 0660, group of the user) but whose policy may or may not admit it.
make_user() {
    if ! id "$TEST_USER" > /dev/null 2>&1; then
        useradd --system --user-group --no-create-home \
            --shell /usr/sbin/nologin "$TEST_USER"
        MADE_USER=1
    fi
    chmod 0711 "$WORK"
}
# user_server NAME [ARGS...]: sets SOCK to its socket.
user_server() {
    local name=$1 port
    shift
    SOCK=$WORK/$name.sock
    extra_server port "$name" -v --socket "$SOCK" --socket-mode 0660 "$@"
    chgrp "$TEST_USER" "$SOCK"
}
as_user() {
    runuser -u "$TEST_USER" -- env LD_LIBRARY_PATH="$DROPIN_LIB" \
        MAGICK_CONFIGURE_PATH=/nonexistent "$@"
}

other_uid_refused() {
    user_server strict
    local uid rc=0
    uid=$(id -u "$TEST_USER")
    as_user "$CONVERT" -define cache:dpc-socket="$SOCK" \
        -define cache:tiers=shm "$WORK/small.miff" -flip null: \
        2> "$WORK/user.err" || rc=$?
    cat "$WORK/user.err" >&2
    [ "$rc" != 0 ]
    grep -q "refused uid $uid" "$WORK/user.err"
    grep -q "refused pid [0-9]* uid $uid gid" "$WORK/strict.log"
    ! as_user "$MAGICK_DPC" status --socket "$SOCK"
    # ... while the server's own uid is still served there
    "$MAGICK_DPC" status --socket "$SOCK" > /dev/null
}
allowed_served() {
    local uid
    uid=$(id -u "$TEST_USER")
    user_server "allow-$1" "--allow-$1" "$TEST_USER"
    as_user "$CONVERT" -define cache:dpc-socket="$SOCK" \
        -define cache:tiers=shm "$WORK/small.miff" -flip null:
    grep -q "local [0-9]* (pid [0-9]* uid $uid): alloc [0-9]* bytes" \
        "$WORK/allow-$1.log"
}
if [ "$(id -u)" = 0 ]; then
    check "a test user exists" make_user
    check "another uid is refused by its kernel credentials, and logged" \
        other_uid_refused
    check "a uid in dpc-allow-uids is served" allowed_served uids
    check "a member of a group in dpc-allow-gids is served" allowed_served gids
else
    echo "SKIP: the other-uid checks make a user, which needs root"
fi

# wait_socket PATH: up to 5 s for a socket to appear.
wait_socket() {
    for _ in $(seq 1 100); do [ -S "$1" ] && return 0; sleep 0.05; done
    echo "no socket at $1" >&2
    return 1
}

# start_fake MODE: tests/lib/fakeshm.py on $WORK/fake-MODE.sock (logging
# to $WORK/fake-MODE.log); sets FAKE_SOCK.
start_fake() {
    FAKE_SOCK=$WORK/fake-$1.sock
    python3 "$TOP_SRCDIR/tests/lib/fakeshm.py" "$FAKE_SOCK" "$1" \
        2> "$WORK/fake-$1.log" &
    track $!
    wait_socket "$FAKE_SOCK"
}

# fake MODE: convert on a hostile server's segment must fail, naming why;
# with the memory tier after it, the cache goes there (a warning).
fake() {
    local mode=$1 why=$2 rc=0 sock
    start_fake "$mode"
    sock=$FAKE_SOCK
    LD_LIBRARY_PATH=$DROPIN_LIB "$CONVERT" -define cache:dpc-socket="$sock" \
        -define cache:tiers=shm "$WORK/small.miff" -flip null: \
        2> "$WORK/fake.err" || rc=$?
    cat "$WORK/fake.err" >&2
    [ "$rc" != 0 ]
    grep -q "refusing the segment .*$why" "$WORK/fake.err"
    grep -q "fakeshm: $mode grant" "$WORK/fake-$mode.log"
    LD_LIBRARY_PATH=$DROPIN_LIB "$CONVERT" -define cache:dpc-socket="$sock" \
        -define cache:tiers=shm,memory "$WORK/small.miff" -flip \
        "$WORK/fake-$mode.miff" 2> "$WORK/fake.err"
    grep -q "SharedPixelCache" "$WORK/fake.err"
    mem_convert "$WORK/small.miff" -flip "$WORK/flip.mem.miff"
    same_pixels "$WORK/flip.mem.miff" "$WORK/fake-$mode.miff"
}
check "a segment without seals is refused by the client" fake unsealed "not sealed"
check "a segment shorter than granted is refused by the client" fake short \
    "the server said"
check "a segment others may open is refused by the client" fake mode0644 \
    "mode 0644"

bad_header() {
    local rc=0
    start_fake badheader
    SHM_SOCK=$FAKE_SOCK shm_convert shm:forged null: 2> "$WORK/bad.err" || rc=$?
    cat "$WORK/bad.err" >&2
    [ "$rc" != 0 ]
    grep -q "CorruptSharedMemoryImage.*outside the segment" "$WORK/bad.err"
}
check "a published image whose header overruns its segment is refused" \
    bad_header

class0() {
    local rc=0
    start_fake class0
    SHM_SOCK=$FAKE_SOCK shm_convert shm:forged miff:"$WORK/class0.miff" \
        2> "$WORK/class0.err" || rc=$?
    cat "$WORK/class0.err" >&2
    [ "$rc" = 1 ]
    grep -q "CorruptSharedMemoryImage.*bad value for 'class'" "$WORK/class0.err"
}
check "a published image of class Undefined is refused, not crashed on" class0

# A client pipelining 2000 requests without reading, then reading them all:
# every reply comes, and its connection closes when it goes.
pipelined() {
    python3 - "$SHM_SOCK" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(struct.pack("<BBBBI", 1, 8, 0, 0, 0) * 2000)
got, buf = 0, b""
s.settimeout(10)
while got < 2000:
    chunk = s.recv(1 << 16)
    if not chunk:
        sys.exit("closed after %d replies" % got)
    buf += chunk
    while len(buf) >= 8:
        n = struct.unpack_from("<I", buf, 4)[0]
        if len(buf) < 8 + n:
            break
        buf = buf[8 + n:]
        got += 1
print("replies:", got)
PY
    server_alive
}
check "2000 pipelined requests: every reply, the server still serving" pipelined

live_socket_kept() {
    local rc=0
    "$MAGICK_DPC" serve --listen none --socket "$SHM_SOCK" \
        2> "$WORK/second.log" || rc=$?
    cat "$WORK/second.log" >&2
    [ "$rc" = 1 ] && grep -q "another magick-dpc serves $SHM_SOCK" "$WORK/second.log"
    server_alive
}
stale_socket_replaced() {
    local sock=$WORK/stale.sock port
    python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$sock"
    [ -S "$sock" ]
    extra_server port stale --socket "$sock"
    "$MAGICK_DPC" status --socket "$sock" > /dev/null
}
check "a socket a live server answers on is not taken over" live_socket_kept
check "a stale socket file is replaced" stale_socket_replaced
# A reservation the kernel refuses (a server in a memory cgroup of 64 MiB,
# its OOM killer off, asked for 240 MB) fails at posix_fallocate in the
# server: a clear error in the client, no SIGBUS later, the server serving.
CGROUP=
cleanup_cgroup() {
    if [ -n "$CGROUP" ]; then
        kill -KILL $(cat "$CGROUP/cgroup.procs" 2>/dev/null) 2>/dev/null || true
        sleep 0.2
        rmdir "$CGROUP" 2>/dev/null || true
    fi
    cleanup_user
}
trap cleanup_cgroup EXIT
# in_cgroup NAME ARGS...: a socket-only server in $CGROUP, socket
# $WORK/NAME.sock, log $WORK/NAME.log.
in_cgroup() {
    local name=$1 sock=$WORK/$1.sock
    shift
    sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$CGROUP" \
        "$MAGICK_DPC" serve --listen none --socket "$sock" "$@" \
        2> "$WORK/$name.log" &
    track $!
    wait_socket "$sock"
}
kernel_refuses() {
    local rc=0
    # started unlimited, then limited: the budget no longer fits
    in_cgroup cg --shm-budget 1GiB
    # 32 MiB over what it uses now: room to serve, not for 240 MB (with the
    # OOM killer off, a task past the limit would wait, not die)
    echo $(($(cat "$CGROUP/memory.usage_in_bytes") + 32 * 1024 * 1024)) \
        > "$CGROUP/memory.limit_in_bytes"
    echo 1 > "$CGROUP/memory.oom_control"
    LD_LIBRARY_PATH=$DROPIN_LIB timeout 30 "$CONVERT" \
        -define cache:dpc-socket="$WORK/cg.sock" -define cache:tiers=shm \
        -size 6000x5000 xc:red null: 2> "$WORK/cg.err" || rc=$?
    cat "$WORK/cg.err" "$WORK/cg.log" >&2
    [ "$rc" != 0 ]
    grep -q "out of shared memory: cannot reserve 240000000 bytes" "$WORK/cg.err"
    "$MAGICK_DPC" status --socket "$WORK/cg.sock" | grep -q '"used":0'
}
budget_fitted() {
    local limit fit
    limit=$(cat "$CGROUP/memory.limit_in_bytes")
    fit=$((limit / 4 * 3))
    in_cgroup cg2 --shm-budget 1GiB
    cat "$WORK/cg2.log" >&2
    grep -q "budget lowered from 1073741824 to $fit bytes: this server's memory cgroup allows $limit" \
        "$WORK/cg2.log"
    "$MAGICK_DPC" status --socket "$WORK/cg2.sock" | grep -q "\"budget\":$fit,"
}
if [ "$(id -u)" = 0 ] && [ -w /sys/fs/cgroup/memory ] &&
    CGROUP=/sys/fs/cgroup/memory/magick-dpc-test.$$ && mkdir "$CGROUP" 2>/dev/null; then
    check "a reservation the kernel refuses fails in posix_fallocate: clear error, server lives" \
        kernel_refuses
    check "a budget past the server's memory cgroup is lowered to fit, with a warning" \
        budget_fitted
else
    CGROUP=
    echo "SKIP: no writable cgroup v1 memory controller for the kernel-refusal check"
fi

check "no secret in the server log" sh -c "! grep -qF '$SECRET' '$WORK/server.log'"
check_stops
check "the socket file is removed at stop" sh -c "[ ! -e '$SHM_SOCK' ]"
finish
