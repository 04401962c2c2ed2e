#!/usr/bin/env bash
# A cache over three hosts on an emulated network: three magick-dpc servers,
# each in its own network namespace, and the system's convert on the
# drop-in in a fourth, reaching each server through a delay-relay that adds
# 100 us each way.  -blur, -resize, -rotate and -distort on a 2000x1500
# image striped over the three must give the memory cache's pixels.  First
# the relay itself: a round trip through a delay D takes at least 2D, and a
# bandwidth cap slows a bulk transfer (lower bounds only: the machine is
# shared and noisy).  Skips unless run as root with network namespaces.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../lib/netns.sh
. "$TOP_SRCDIR/tests/lib/netns.sh"
TOOLS=${TOP_BUILDDIR:-$TOP_SRCDIR/_build}/tests/tools
DELAY_RELAY=${DELAY_RELAY:-$TOOLS/delay-relay}
RTT_PROBE=$TOP_SRCDIR/tests/tools/rtt-probe.py
DELAY_US=100
need_dropin
netns_need

# rtt_at_least DELAY_US: 200 one-byte round trips through a relay with that
# delay; the fastest takes at least twice the delay.
rtt_at_least() {
    local out min
    out=$(timeout 60 python3 "$RTT_PROBE" 200 0 "$DELAY_RELAY" -s 60 \
        -d "$1")
    echo "$out"
    min=$(echo "$out" | sed -n 's/^rtt_min_us //p')
    [ "$min" -ge $((2 * $1)) ]
}
check "relay: round trip with 100 us each way >= 200 us" rtt_at_least 100
sed -n 's/^/  /p' "$WORK/check.log"
check "relay: round trip with 2 ms each way >= 4 ms" rtt_at_least 2000
sed -n 's/^/  /p' "$WORK/check.log"
# 2 MB echoed at 4 MB/s each way: at least 0.5 s.
bandwidth_capped() {
    local out
    out=$(timeout 60 python3 "$RTT_PROBE" 5 2000000 "$DELAY_RELAY" -s 60 \
        -d 100 -b 4000000)
    echo "$out"
    echo "$out" | awk '/^bulk_s/ { exit !($2 >= 0.5) }'
}
check "relay: 2 MB at 4 MB/s takes >= 0.5 s" bandwidth_capped
sed -n 's/^/  /p' "$WORK/check.log"

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
netns_add client 1
HOSTS=
port=                          # set by netns_server
pid=                           # set by netns_spawn
for i in 1 2 3; do
    netns_add "s$i" $((10 + i))
    netns_server port "s$i" "$WORK/s$i.log" -v
    : > "$WORK/relay$i.out"
    netns_spawn pid client "$WORK/relay$i.err" "$DELAY_RELAY" -s 900 \
        -d "$DELAY_US" "$(netns_addr "s$i"):$port" > "$WORK/relay$i.out"
    server_wait "$pid" 100 grep -q '^port ' "$WORK/relay$i.out"
    HOSTS=$HOSTS${HOSTS:+,}127.0.0.1:$(sed -n 's/^port //p' "$WORK/relay$i.out")
done
echo "# hosts (relays in the client namespace): $HOSTS"

mem_convert -seed 11 -size 2000x1500 plasma:fractal "$WORK/in.miff"

# over OP...: the operation on the memory cache and on the three hosts,
# two copies of each tile, a tile cache small enough that pixels travel.
over() {
    local t0 t1
    mem_convert "$WORK/in.miff" "$@" "$WORK/mem.miff"
    t0=$(date +%s.%N)
    netns_exec client env LD_LIBRARY_PATH="$DROPIN_LIB" \
        timeout "$STEP_TIMEOUT" "$CONVERT" -define cache:hosts="$HOSTS" \
        -define cache:tiers=distributed -define cache:dpc-replicas=2 \
        -define cache:dpc-tile-cache=1MiB "$WORK/in.miff" "$@" "$WORK/dpc.miff"
    t1=$(date +%s.%N)
    echo "$* over the relays: $(echo "$t1 - $t0" | bc) s"
    same_pixels "$WORK/mem.miff" "$WORK/dpc.miff"
}
for op in "-blur 0x2" "-resize 50%" "-rotate 33" "-distort SRT 30"; do
    # shellcheck disable=SC2086  # op is words
    check "three namespaced hosts, 100 us away, replicas 2: $op" over $op
    sed -n 's/^/  /p' "$WORK/check.log"
done
came_from_client() {
    local i
    for i in 1 2 3; do
        grep -q 'from 10\.213\.0\.1:' "$WORK/s$i.log"
    done
}
check "every server was reached from the client's namespace" came_from_client
finish
