#!/usr/bin/env bash
# The drop-in client's waits end at cache:dpc-timeout however a host
# trickles its bytes: a relay in front of a real server forwards what the
# server says one byte every 0.5 s, after the handshake (every reply
# trickles) or from the first byte (the handshake trickles).  convert with
# -define cache:dpc-timeout=2 must fail with a timeout within seconds.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
RELAY=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/tools/trickle-relay.py

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server --tls both
mem_convert -size 64x64 xc:gray "$WORK/in.miff"

# trickled PASSTHROUGH TLS: a convert (cache:dpc-tls=TLS) through a relay
# forwarding PASSTHROUGH bytes of the server's at once, then a byte every
# 0.5 s, fails with a timeout in less than 15 s.
trickled() {
    local relay_pid relay_port t0 t1 rc=0
    /usr/bin/python3 "$RELAY" --server 127.0.0.1:"$PORT" \
        --passthrough "$1" --interval 0.5 --lifetime 60 > "$WORK/relay-$1-$2.port" &
    relay_pid=$!
    track $relay_pid
    server_wait $relay_pid 100 test -s "$WORK/relay-$1-$2.port"
    relay_port=$(head -n 1 "$WORK/relay-$1-$2.port")
    t0=$(date +%s.%N)
    LD_LIBRARY_PATH=$DROPIN_LIB timeout 40 "$CONVERT" \
        -define cache:hosts=127.0.0.1:"$relay_port" \
        -define cache:tiers=distributed -define cache:dpc-timeout=2 \
        -define cache:dpc-tls="$2" "$WORK/in.miff" -negate "$WORK/out.miff" 2> "$WORK/convert.err" || rc=$?
    t1=$(date +%s.%N)
    kill $relay_pid
    cat "$WORK/convert.err"
    echo "exit $rc after $(awk "BEGIN{print $t1 - $t0}") s"
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]
    awk "BEGIN{exit !($t1 - $t0 < 15)}"
    grep -qi 'no answer in time\|timed out' "$WORK/convert.err"
}
check "every reply trickled after the handshake: a timeout error within 15 s" \
    trickled 72 off
check "the TLS handshake trickled: a timeout error within 15 s" \
    trickled 0 on
check "the plaintext handshake trickled: a timeout error within 15 s" \
    trickled 0 off
check "the server still serves" server_alive
check_stops
finish
