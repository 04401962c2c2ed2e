#!/usr/bin/env bash
# The drop-in libMagickCore under the system's convert: which tier takes a
# cache (cache:tiers, cache:hosts from -define, the registry or policy.xml),
# striping over three hosts, and failures that end in a clear error and a
# nonzero exit within seconds: wrong secret, dead host, full server, server
# stopped mid-job.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server -v
mem_convert -seed 5 -size 240x180 plasma:fractal "$WORK/in.miff"
mem_convert "$WORK/in.miff" -blur 0x2 "$WORK/mem.miff"

# dropin ARGS...: the system convert on the drop-in, logging cache events.
dropin() {
    LD_LIBRARY_PATH=$DROPIN_LIB timeout "$STEP_TIMEOUT" "$CONVERT" \
        -debug cache -log '%e' "$@"
}
tier_of() { grep -o 'open [^ ]* ([^)]*)' "$1" | head -n 1; }

default_is_memory() {
    dropin -define cache:hosts=127.0.0.1:"$PORT" "$WORK/in.miff" -blur 0x2 \
        "$WORK/a.miff" 2> "$WORK/log"
    tier_of "$WORK/log" | grep -q 'Memory'
    same_pixels "$WORK/mem.miff" "$WORK/a.miff"
}
check "hosts set, memory allowed: the memory tier first" default_is_memory
remote_before_disk() {
    dropin -define cache:hosts=127.0.0.1:"$PORT" -limit memory 0 -limit map 0 \
        "$WORK/in.miff" -blur 0x2 "$WORK/b.miff" 2> "$WORK/log"
    tier_of "$WORK/log" | grep -q 'Distributed'
    ! grep -q 'Disk' "$WORK/log"
    same_pixels "$WORK/mem.miff" "$WORK/b.miff"
}
check "memory full: distributed before disk" remote_before_disk
stock_way() {
    dropin -define registry:cache:hosts=127.0.0.1:"$PORT" -limit memory 0 \
        -limit map 0 -limit disk 0 "$WORK/in.miff" -blur 0x2 "$WORK/c.miff" \
        2> "$WORK/log"
    tier_of "$WORK/log" | grep -q 'Distributed'
    same_pixels "$WORK/mem.miff" "$WORK/c.miff"
}
check "the stock way (registry, limits 0) lands on the distributed tier" stock_way
policy_hosts() {
    mkdir -p "$WORK/etc2"
    sed "s|</policymap>|  <policy domain=\"cache\" name=\"hosts\" value=\"127.0.0.1:$PORT\"/>\n  <policy domain=\"cache\" name=\"tiers\" value=\"distributed\"/>\n</policymap>|" \
        "$WORK/etc/policy.xml" > "$WORK/etc2/policy.xml"
    MAGICK_CONFIGURE_PATH=$WORK/etc2 dropin "$WORK/in.miff" -blur 0x2 \
        "$WORK/d.miff" 2> "$WORK/log"
    tier_of "$WORK/log" | grep -q 'Distributed'
    same_pixels "$WORK/mem.miff" "$WORK/d.miff"
}
check "hosts and tiers from policy.xml" policy_hosts
disk_only() {
    dropin -define cache:hosts=127.0.0.1:"$PORT" -define cache:tiers=disk \
        "$WORK/in.miff" -blur 0x2 "$WORK/e.miff" 2> "$WORK/log"
    tier_of "$WORK/log" | grep -qE ', (Disk|Map),'  # a mapped file is disk too
    same_pixels "$WORK/mem.miff" "$WORK/e.miff"
}
check "-define cache:tiers=disk skips memory and distributed" disk_only

# Three servers: one cache striped over all of them.
extra_server P2 server2 -v
extra_server P3 server3 -v
striped() {
    mark=$(wc -l < "$WORK/server.log")
    dropin -define cache:hosts=127.0.0.1:$PORT,127.0.0.1:$P2,127.0.0.1:$P3 \
        -define cache:tiers=distributed "$WORK/in.miff" -blur 0x2 \
        "$WORK/f.miff" 2> "$WORK/log"
    same_pixels "$WORK/mem.miff" "$WORK/f.miff"
    grep -q 'striped over 3 host(s)' "$WORK/log"
    # 240x180 in 32x32 tiles: 8x6 = 48 tiles, 16 slots on each host
    tail -n +"$((mark + 1))" "$WORK/server.log" | grep -q 'OPEN 16 x 8192'
    grep -q 'OPEN 16 x 8192' "$WORK/server2.log"
    grep -q 'OPEN 16 x 8192' "$WORK/server3.log"
}
check "three hosts: each holds a third of the cache" striped

# Failures: a clear cause, a nonzero exit, within seconds.
fails_with() {
    local pattern=$1 rc=0 t0 t1
    shift
    t0=$(date +%s)
    dropin -define cache:tiers=distributed "$@" "$WORK/in.miff" -blur 0x2 \
        "$WORK/fail.miff" 2> "$WORK/err" || rc=$?
    t1=$(date +%s)
    grep -v '^ ' "$WORK/err" | grep -iv 'cache\[' | tail -n 5
    [ $rc -ne 0 ] || { echo "exit 0"; return 1; }
    [ $((t1 - t0)) -le 15 ] || { echo "took $((t1 - t0)) s"; return 1; }
    grep -q -- "$pattern" "$WORK/err"
}
make_policy wrong-secret-of-more-than-16-bytes "$WORK/wrong"
check "wrong secret: authentication failed, exit != 0" env \
    MAGICK_CONFIGURE_PATH="$WORK/wrong" bash -c "$(declare -f fails_with dropin); \
    WORK=$WORK DROPIN_LIB=$DROPIN_LIB STEP_TIMEOUT=$STEP_TIMEOUT CONVERT=$CONVERT \
    fails_with 'authentication failed' -define cache:hosts=127.0.0.1:$PORT"
DEAD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
check "dead host: connection refused, exit != 0" fails_with \
    "127.0.0.1:$DEAD: Connection refused" -define cache:hosts=127.0.0.1:$DEAD
extra_server PFULL full --memory 64KiB
check "full server: no room, exit != 0" fails_with "no room" \
    -define cache:hosts=127.0.0.1:$PFULL
stopped_mid_job() {
    local pid rc=0
    "$MAGICK_DPC" serve --listen 127.0.0.1:0 2> "$WORK/victim.log" &
    pid=$!
    port=$(port_of "$WORK/victim.log")
    mem_convert -seed 9 -size 1500x1000 plasma:fractal "$WORK/big.miff"
    ( sleep 1; kill -KILL $pid ) &
    t0=$(date +%s)
    dropin -define cache:hosts=127.0.0.1:$port -define cache:tiers=distributed \
        -define cache:dpc-tile-cache=1MiB "$WORK/big.miff" -blur 0x8 -blur 0x8 \
        -blur 0x8 "$WORK/g.miff" 2> "$WORK/err" || rc=$?
    t1=$(date +%s)
    grep -v '^ ' "$WORK/err" | tail -n 3
    [ $rc -ne 0 ]
    [ $((t1 - t0)) -le 30 ]
    grep -qiE 'unable to (read|write) pixel cache|connection' "$WORK/err"
}
check "server killed mid-job: error, exit != 0" stopped_mid_job
# A server that stops answering mid-job: the pixel cache error names that
# host once and says, in magick-dpc's words, that it did not answer in
# cache:dpc-timeout, and which setting to raise; not the system's
# "Connection timed out", nor a reset connection.
hung_mid_job() {
    local pid stopper rc=0
    "$MAGICK_DPC" serve -v --listen 127.0.0.1:0 2> "$WORK/stalled.log" &
    pid=$!
    port=$(port_of "$WORK/stalled.log")
    [ -f "$WORK/big.miff" ] ||
        mem_convert -seed 9 -size 1500x1000 plasma:fractal "$WORK/big.miff"
    # Stopped once pixels flow, at most 20 s on. The job changes its one
    # cache in place (-negate), so no OPEN of a new cache can be the
    # request caught by the stop: that would fail over to the next tier
    # and report the open, not the read or write this check is about.
    ( for _ in $(seq 200); do
          grep -q ': PUT ' "$WORK/stalled.log" && break
          sleep 0.1
      done
      kill -STOP $pid ) &
    stopper=$!
    dropin -define cache:hosts=127.0.0.1:$port -define cache:tiers=distributed \
        -define cache:dpc-timeout=2 -define cache:dpc-tile-cache=1MiB \
        "$WORK/big.miff" $(printf -- '-negate %.0s' $(seq 200)) "$WORK/h.miff" \
        2> "$WORK/err" || rc=$?
    wait $stopper
    kill -CONT $pid
    kill -TERM $pid
    grep -v '^ ' "$WORK/err" | tail -n 3
    [ $rc -ne 0 ]
    grep -qE "unable to (read|write) pixel cache .127\.0\.0\.1:$port: no answer in time \(2 s" \
        "$WORK/err"
    grep -q 'raise cache:dpc-timeout=2' "$WORK/err"
    ! grep -q "127\.0\.0\.1:$port:$port" "$WORK/err"
    ! grep -q 'Connection reset by peer\|Connection timed out' "$WORK/err"
}
check "server hung mid-job: the error says timed out" hung_mid_job
# A hung host (stopped: the kernel still accepts, nothing answers) with the
# disk tier behind it: the first cache waits out cache:dpc-timeout, the
# following ones fail over at once.
hung_host() {
    local pid rc=0 t0 t1
    "$MAGICK_DPC" serve --listen 127.0.0.1:0 2> "$WORK/hung.log" &
    pid=$!
    port=$(port_of "$WORK/hung.log")
    kill -STOP $pid
    t0=$(date +%s)
    dropin -define cache:hosts=127.0.0.1:$port -define cache:dpc-timeout=2 \
        -limit memory 0 "$WORK/in.miff" -blur 0x2 "$WORK/hung.miff" \
        2> "$WORK/err" || rc=$?
    t1=$(date +%s)
    kill -CONT $pid
    kill -TERM $pid
    grep -v '^ ' "$WORK/err" | grep -v 'open \|destroy\|close:' | tail -n 4
    [ $rc -eq 0 ]
    same_pixels "$WORK/mem.miff" "$WORK/hung.miff"
    [ $((t1 - t0)) -le 5 ] || { echo "took $((t1 - t0)) s"; return 1; }
    grep -q 'no answer in time' "$WORK/err"
    grep -q 'not retried' "$WORK/err"
}
check "hung host: one timeout, then the disk tier at once" hung_host
# convert -distribute-cache PORT on the drop-in runs magick-dpc, which then
# listens on every IPv4 interface as ImageMagick's own server did: so only
# inside a private network namespace whose one interface is loopback.
distribute_cache_option() {
    LD_LIBRARY_PATH=$DROPIN_LIB unshare -n bash -c '
        set -e
        ip link set lo up
        export MAGICK_DPC_SERVER=$1 MAGICK_CONFIGURE_PATH=$2
        /usr/bin/convert -distribute-cache 7777 2> "$3/ds.log" &
        pid=$!
        trap "kill $pid 2>/dev/null || true" EXIT
        for _ in $(seq 100); do
            "$1" status --host 127.0.0.1:7777 > /dev/null 2>&1 && break
            sleep 0.05
        done
        grep -q "listening on 0.0.0.0:7777" "$3/ds.log"
        # beyond loopback: the stock protocol'"'"'s risk, said at start
        grep -q "0.0.0.0:7777 is reachable beyond this host: stock" "$3/ds.log"
        /usr/bin/convert -define cache:hosts=127.0.0.1:7777 \
            -define cache:tiers=distributed "$3/in.miff" -blur 0x2 "$3/h.miff"
        grep -q "(native, TLS)" "$3/ds.log"
    ' _ "$MAGICK_DPC" "$MAGICK_CONFIGURE_PATH" "$WORK"
    same_pixels "$WORK/mem.miff" "$WORK/h.miff"
}
if unshare -n true 2> /dev/null; then
    check "convert -distribute-cache PORT runs magick-dpc (private netns)" \
        distribute_cache_option
else
    echo "# no network namespaces here: -distribute-cache not tested"
fi
# The cache is named by its hosts as connected, each HOST:PORT once (in
# -debug cache and in every error about it).
cache_name() {
    extra_server PORT_B name-b
    dropin -define cache:hosts="127.0.0.1:$PORT, 127.0.0.1:$PORT_B" \
        -define cache:tiers=distributed "$WORK/in.miff" -blur 0x2 \
        "$WORK/n.miff" 2> "$WORK/log"
    grep -q "(127\.0\.0\.1:$PORT,127\.0\.0\.1:$PORT_B\[" "$WORK/log"
    ! grep -q ":$PORT_B:$PORT_B" "$WORK/log"
}
check "the cache is named HOST:PORT,HOST:PORT in -debug cache" cache_name
# A cache:dpc-tile-cache smaller than three lines of tiles across and down
# the image is raised to them (-debug cache says so), so -rotate's column
# walks do not fetch every line again for each column; same pixels.
small_tile_cache() {
    [ -f "$WORK/big.miff" ] ||
        mem_convert -seed 9 -size 1500x1000 plasma:fractal "$WORK/big.miff"
    mem_convert "$WORK/big.miff" -rotate 33 "$WORK/rot-mem.miff"
    dropin -define cache:hosts=127.0.0.1:$PORT -define cache:tiers=distributed \
        -define cache:dpc-tile-cache=64KiB "$WORK/big.miff" -rotate 33 \
        "$WORK/rot.miff" 2> "$WORK/log"
    same_pixels "$WORK/rot-mem.miff" "$WORK/rot.miff"
    # 3 x (47 + 32) tiles of 32x32 Q16 pixels (8 bytes)
    grep -q "1500x1000 striped .* $((3 * (47 + 32) * 32 * 32 * 8))-byte tile cache" \
        "$WORK/log"
}
check "a tile cache below three lines of tiles is raised to them" \
    small_tile_cache
check "first server still serving" server_alive
check_stops
finish
