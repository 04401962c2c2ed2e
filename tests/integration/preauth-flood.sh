#!/usr/bin/env bash
# A flood of connections that never authenticate, from one source
# (127.0.0.2), while another source (127.0.0.1) authenticates again and
# again: every legitimate handshake succeeds, and the log stays bounded
# (what happens before authentication is logged within a budget per
# source, not a line per connection).
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
FLOOD=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/tools/preauth-flood.py
SECONDS_OF_FLOOD=8

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server

flood_and_serve() {
    local flood_pid i ok=0 t0 t1
    /usr/bin/python3 "$FLOOD" 127.0.0.1 "$PORT" 127.0.0.2 \
        "$SECONDS_OF_FLOOD" > "$WORK/flood.out" &
    flood_pid=$!
    track $flood_pid
    sleep 1
    t0=$(date +%s)
    for i in $(seq 20); do
        if "$MAGICK_DPC" status --host 127.0.0.1:"$PORT" --timeout 5s \
            > /dev/null 2>> "$WORK/status.err"; then
            ok=$((ok + 1))
        fi
        sleep 0.2
    done
    t1=$(date +%s)
    wait $flood_pid
    cat "$WORK/flood.out" "$WORK/status.err"
    echo "$ok of 20 handshakes from 127.0.0.1 succeeded in $((t1 - t0)) s"
    [ "$ok" = 20 ]
}
check "a flood from 127.0.0.2: every handshake from 127.0.0.1 succeeds" \
    flood_and_serve

bounded_log() {
    local lines
    lines=$(wc -l < "$WORK/server.log")
    grep -c 127.0.0.2 "$WORK/server.log" || true
    echo "$lines lines in the server log"
    # at most 10 lines a second of each kind of pre-authentication event
    # per source, over the flood and the handshake timeout after it
    cat "$WORK/flood.out"; tail -n 5 "$WORK/server.log"
    [ "$lines" -lt 400 ]
}
check "the log stays bounded" bounded_log
check "the server still serves" server_alive
check_stops
finish
