#!/usr/bin/env bash
# The native protocol end to end: the client core (dpc_link, dpc_tiles)
# against real servers on loopback, every byte checked against a local copy
# under heavy tile eviction; striping over three hosts; the mutual proof;
# clear errors for a wrong secret and a dead host.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
NATIVE_CHECK=${NATIVE_CHECK:-$(dirname "$MAGICK_DPC")/../tests/tools/native-check}

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server
P1=$PORT
# two more servers for striping
extra_server P2 server2
extra_server P3 server3

check "one host: random regions, both planes, eviction" \
    "$NATIVE_CHECK" random "$SECRET" 203 157 1 127.0.0.1:"$P1"
one_plane() {
    local seed
    for seed in 1 2 3; do
        "$NATIVE_CHECK" random1 "$SECRET" 203 157 "$seed" 127.0.0.1:"$P1" \
            127.0.0.1:"$P2" > "$WORK/one-plane.out"
        cat "$WORK/one-plane.out"
        # whole tiles of large regions moved past the tile cache, and
        # still every byte right
        grep -Eq '^ok: .* [1-9][0-9]* direct,' "$WORK/one-plane.out"
    done
}
check "pixels only: large regions bypass the tile cache, bytes identical" \
    one_plane
refused_put() {
    "$NATIVE_CHECK" refuse "$SECRET" 127.0.0.1:"$P1" > "$WORK/refuse.out"
    cat "$WORK/refuse.out"
    grep -q "^ok: 127.0.0.1:$P1: .*slot 99 of a 4-slot cache" "$WORK/refuse.out"
}
check "a refused write: that wait, later waits and later requests all fail with the reason" \
    refused_put
three_hosts() {
    "$NATIVE_CHECK" random "$SECRET" 211 149 2 127.0.0.1:"$P1" \
        127.0.0.1:"$P2" 127.0.0.1:"$P3" > "$WORK/three.out"
    cat "$WORK/three.out"
    grep -q '^ok:' "$WORK/three.out"
    # each host holds about a third: 14x10 tiles of 16x16 -> 47 slots each
    for h in 0 1 2; do
        ram=$(sed -n "s/^host $h: .*\"bytes_ram\":\([0-9]*\).*/\1/p" "$WORK/three.out")
        caches=$(sed -n "s/^host $h: .*\"caches_open\":\([0-9]*\).*/\1/p" "$WORK/three.out")
        [ "$caches" = 1 ]
        [ "$ram" -ge $((46 * 16 * 16 * 10)) ] && [ "$ram" -le $((47 * 16 * 16 * 10)) ]
    done
}
check "three hosts: striped, a third on each, identical bytes" three_hosts
check "caches freed on every host" sh -c "
    for p in $P1 $P2 $P3; do
        '$MAGICK_DPC' status --host 127.0.0.1:\$p | grep -q '\"caches_open\":0,' || exit 1
    done"
wrong_secret() {
    ! "$NATIVE_CHECK" random "not-$SECRET" 16 16 1 127.0.0.1:"$P1" 2> "$WORK/err"
    cat "$WORK/err"
    grep -q 'authentication failed' "$WORK/err"
    grep -q 'authentication failed' "$WORK/server.log"
}
check "wrong secret: refused, named on both sides" wrong_secret
dead_host() {
    local dead
    dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    ! timeout 20 "$NATIVE_CHECK" random "$SECRET" 16 16 1 127.0.0.1:"$P1" \
        127.0.0.1:"$dead" 2> "$WORK/err"
    cat "$WORK/err"
    grep -q "127.0.0.1:$dead: Connection refused" "$WORK/err"
}
check "dead host: connection refused, named" dead_host
check "stock clients still served on the same port" sh -c \
    "$(declare -f dpc_convert); PORT=$P1 STEP_TIMEOUT=$STEP_TIMEOUT CONVERT=$CONVERT;
     dpc_convert -size 40x30 gradient: '$WORK/g.miff'"
check "servers alive" server_alive
check_stops
finish
