#!/usr/bin/env bash
# The shm budget bounds memory, and one uid cannot take it all: a client
# that frees segments but keeps their descriptors keeps no memory (the
# server empties a segment before letting it go); bytes and connections
# have a ceiling per uid (two uids here: root and a user made for the
# test); a local connection left idle is closed, one holding a segment is
# not; a published name lives at most dpc-shm-name-lifetime.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin

TEST_USER=dpc-shm-test
MADE_USER=
MIB=$((1024 * 1024))
cleanup_user() {
    [ -n "$MADE_USER" ] && userdel "$TEST_USER" 2>/dev/null || true
    cleanup
}
trap cleanup_user EXIT

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
# a readable copy for the test user
PEER=$WORK/shmpeer.py
cp "$TOP_SRCDIR/tests/lib/shmpeer.py" "$PEER"
chmod 0644 "$PEER"

ALLOW=$(id -u)
if [ "$(id -u)" = 0 ]; then
    if ! id "$TEST_USER" > /dev/null 2>&1; then
        useradd --system --user-group --no-create-home \
            --shell /usr/sbin/nologin "$TEST_USER"
        MADE_USER=1
    fi
    chmod 0711 "$WORK"
    ALLOW=0,$TEST_USER
fi
# 64 MiB: a uid may hold 32 MiB (half); 8 local clients, 4 per uid.
start_server -v --shm-budget 64MiB --max-local-clients 8 \
    --local-idle-timeout 2s --shm-name-lifetime 2s \
    --socket-mode 0660 --allow-uids "$ALLOW"
if [ "$(id -u)" = 0 ]; then
    chgrp "$TEST_USER" "$SHM_SOCK"
fi

as_user() {
    runuser -u "$TEST_USER" -- "$@"
}

# Ten 24 MiB segments written, freed, their descriptors kept: 240 MiB
# against a 64 MiB budget, if freeing left the memory with them.
free_keep() {
    local out before after growth
    out=$(timeout 60 python3 "$PEER" "$SHM_SOCK" free-keep $((24 * MIB)) 10)
    echo "$out" >&2
    read -r _ before after _ growth <<< "$out"
    [ "$before" -ge $((24 * MIB / 512)) ]
    [ "$after" = 0 ]
    [ "$growth" -lt $((64 * MIB)) ]
    [ "$(shm_field used)" = 0 ]
}
check "a freed segment's kept descriptor keeps no memory (st_blocks 0, Shmem flat)" \
    free_keep

# hold NAME SOCK ARGS...: shmpeer in the background (killed at exit),
# waiting until it printed its line into $WORK/NAME.out.
hold() {
    local name=$1
    shift
    "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" < /dev/null &
    track $!
    HELD=$!
    for _ in $(seq 1 200); do
        [ -s "$WORK/$name.out" ] && break
        sleep 0.05
    done
    cat "$WORK/$name.out" "$WORK/$name.err" >&2
}
uid_bytes() {
    hold root python3 "$PEER" "$SHM_SOCK" alloc 2 $((20 * MIB)) 30
    local root=$HELD
    # the other uid still has its own share
    hold user as_user python3 "$PEER" "$SHM_SOCK" alloc 1 $((20 * MIB)) 0
    kill "$root"
    grep -q "^granted 1 refused 1: .*uid 0's share of shared memory spent.*dpc-shm-uid-bytes" \
        "$WORK/root.out"
    grep -q "^granted 1 refused 0" "$WORK/user.out"
}
uid_conns() {
    hold rootc python3 "$PEER" "$SHM_SOCK" conns 5 30
    local root=$HELD
    hold userc as_user python3 "$PEER" "$SHM_SOCK" conns 2 0
    kill "$root"
    grep -q "^served 4 refused 1: .*max-dpc-local-clients-per-uid" \
        "$WORK/rootc.out"
    grep -q "^served 2 refused 0" "$WORK/userc.out"
}
if [ "$(id -u)" = 0 ]; then
    check "a uid holds at most half the budget; another uid is still served" \
        uid_bytes
    check "a uid holds at most half the local connections; another uid is still served" \
        uid_conns
else
    echo "SKIP: the two-uid checks make a user, which needs root"
fi

idle() {
    local out
    hold busy python3 "$PEER" "$SHM_SOCK" alloc 1 4096 5
    out=$(python3 "$PEER" "$SHM_SOCK" idle 10)
    echo "$out" >&2
    case $out in "closed after "[2-3].*) ;; *) return 1 ;; esac
    grep -q "idle (dpc-local-idle-timeout)" "$WORK/server.log"
    # the one holding a segment was not closed for idling
    wait "$HELD" || true
    [ "$(grep -c "idle (dpc-local-idle-timeout)" "$WORK/server.log")" = 1 ]
}
check "an idle local connection is closed after --local-idle-timeout, one holding a segment is not" \
    idle

# A convert on the drop-in whose connection the server closes for idling
# (its only cache freed, it waits on a slow input) reconnects for its next
# cache: no error, not the next tier.
reconnect() {
    local feeder before
    before=$(grep -c "idle (dpc-local-idle-timeout)" "$WORK/server.log" || true)
    mem_convert -size 16x16 xc:blue "$WORK/blue.miff"
    mem_convert "$WORK/blue.miff" -flip "$WORK/blue-flip.mem.miff"
    mkfifo "$WORK/slow.fifo"
    ( sleep 4; cat "$WORK/blue.miff" > "$WORK/slow.fifo" ) &
    feeder=$!
    track $feeder
    DPC_VIA=shm dpc_convert -size 8x8 xc:red +delete miff:"$WORK/slow.fifo" \
        -flip "$WORK/blue-flip.miff" 2> "$WORK/reconnect.err"
    cat "$WORK/reconnect.err" >&2
    [ ! -s "$WORK/reconnect.err" ]
    same_pixels "$WORK/blue-flip.mem.miff" "$WORK/blue-flip.miff"
    # ... and the server did close it for idling meanwhile
    [ "$(grep -c "idle (dpc-local-idle-timeout)" "$WORK/server.log")" -gt "$before" ]
}
check "a drop-in convert idle-closed between caches reconnects for the next" \
    reconnect

lifetime() {
    mem_convert -size 32x32 xc:red "$WORK/red.miff"
    shm_convert "$WORK/red.miff" shm:forever
    "$MAGICK_DPC" shm ls --socket "$SHM_SOCK" > "$WORK/ls.json"
    cat "$WORK/ls.json" >&2
    grep -q '"name":"forever","bytes":[0-9]*,"ttl_seconds":2}' "$WORK/ls.json"
    sleep 3.5
    ! "$MAGICK_DPC" shm ls --socket "$SHM_SOCK" | grep -q '"name":"forever"'
}
check "a name published without a time to live lives --shm-name-lifetime" \
    lifetime

check_stops
finish
