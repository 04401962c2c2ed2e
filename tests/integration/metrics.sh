#!/usr/bin/env bash
# --metrics: Prometheus' text format on /metrics, scraped while the system's
# convert runs through the drop-in (native) and the stock client: every line
# parses, every family has HELP and TYPE, histograms are cumulative and end
# at +Inf equal to _count; counters move between two scrapes; another path
# is 404, a POST is refused; the server serves on after it all.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
PROM="python3 $TOP_SRCDIR/tests/lib/prom.py"
start_server --metrics 127.0.0.1:0
MPORT=$(sed -n 's|.*metrics on http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' \
    "$WORK/server.log")
URL=http://127.0.0.1:$MPORT
mem_convert -seed 7 -size 320x240 plasma:fractal "$WORK/in.miff"
mem_convert "$WORK/in.miff" -blur 0x2 "$WORK/mem.miff"

# scrape NAME [PATH]: the body in $WORK/NAME.prom; fails unless status 200.
scrape() {
    [ "$($PROM get "$URL${2:-/metrics}" "$WORK/$1.prom")" = 200 ]
}
val() { $PROM value "$WORK/$1.prom" "$2"; }

endpoint_logged() { [ -n "$MPORT" ]; }
check "the server logs the metrics address" endpoint_logged

first_scrape() {
    scrape before
    $PROM check "$WORK/before.prom"
    grep -q '^magick_dpc_listener_connections{listener="127.0.0.1:'"$PORT"'",imagemagick="6"} ' \
        "$WORK/before.prom"
}
check "an idle server's scrape is well formed, a listener per line" first_scrape

# A scrape while the drop-in convert runs (up to 40 tries, 0.05 s apart,
# while it lasts), then one after: both well formed, the counters moved.
during_convert() {
    local pid n=0
    # a small tile cache: tiles go to the server and back
    DPC_VIA=dropin DPC_TILE_CACHE=32KiB dpc_convert "$WORK/in.miff" -blur 0x2 \
        "$WORK/out.miff" &
    pid=$!
    track "$pid"
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 40 ]; do
        scrape during
        n=$((n + 1))
        sleep 0.05
    done
    wait "$pid"
    same_pixels "$WORK/mem.miff" "$WORK/out.miff"
    echo "scrapes during the convert: $n"
    [ "$n" -ge 1 ]
    $PROM check "$WORK/during.prom"
    scrape after
    $PROM check "$WORK/after.prom"
    local b a
    b=$(val before magick_dpc_requests_served_total)
    a=$(val after magick_dpc_requests_served_total)
    echo "requests served: $b -> $a"
    [ "${a%.*}" -gt "${b%.*}" ]
    b=$(val before magick_dpc_connections_accepted_total)
    a=$(val after magick_dpc_connections_accepted_total)
    [ "${a%.*}" -gt "${b%.*}" ]
    a=$(val after 'magick_dpc_request_duration_seconds_count{protocol="native",op="open"}')
    [ "${a%.*}" -ge 1 ]
    a=$(val after 'magick_dpc_request_duration_seconds_count{protocol="native",op="put"}')
    [ "${a%.*}" -ge 1 ]
}
check "a scrape during a drop-in convert, another after: well formed, counters moved" \
    during_convert

stock_ops() {
    dpc_convert -size 64x48 gradient: -blur 0x1 "$WORK/stock.miff"
    scrape stock
    $PROM check "$WORK/stock.prom"
    local r
    r=$(val stock 'magick_dpc_request_duration_seconds_count{protocol="stock",op="write"}')
    [ "${r%.*}" -ge 1 ]
    r=$(val stock 'magick_dpc_request_duration_seconds_count{protocol="stock",op="open"}')
    [ "${r%.*}" -ge 1 ]
}
check "a stock convert's requests land in the stock histograms" stock_ops

shm_per_uid() {
    # An image published with shm: holds a segment until removed.
    shm_convert "$WORK/in.miff" shm:metrics
    scrape shm
    $PROM check "$WORK/shm.prom"
    local b
    b=$(val shm "magick_dpc_shm_uid_bytes{uid=\"$(id -u)\"}")
    [ "${b%.*}" -ge $((320 * 240 * 4)) ]
    b=$(val shm "magick_dpc_shm_uid_segments{uid=\"$(id -u)\"}")
    [ "${b%.*}" -ge 1 ]
}
check "shared memory held per uid" shm_per_uid

not_found() {
    [ "$($PROM get "$URL/other" "$WORK/x")" = 404 ]
    [ "$($PROM get "$URL/" "$WORK/x")" = 404 ]
    [ "$($PROM get "$URL/metrics/x" "$WORK/x")" = 404 ]
}
check "other paths are 404" not_found

post_refused() {
    local code
    code=$(python3 - "$URL/metrics" <<'EOF'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b'x' * 4096,
                                                  method='POST'), timeout=10)
    print(200)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception as e:
    print('closed')
EOF
)
    echo "POST: $code"
    [ "$code" != 200 ]
}
check "a POST with a body is refused" post_refused

# A connection that trickles a header every second is cut at its
# lifetime (10 s), not kept alive by each byte.
trickle_cut() {
    python3 - 127.0.0.1 "$MPORT" <<'EOF'
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
t = time.time()
s.send(b'GET /metrics HTTP/1.1\r\n')
while time.time() - t < 20:
    try:
        if s.recv(100) == b'':
            break
    except socket.timeout:
        try:
            s.send(b'X-Slow: 1\r\n')
        except OSError:
            break
    except OSError:
        break
took = time.time() - t
print('trickling connection ended after %.1f s' % took)
sys.exit(0 if 9 <= took <= 13 else 1)
EOF
}
check "a connection trickling its headers is cut after 10 s" trickle_cut

# More idle connections than the cap (16): the rest wait in the backlog;
# a scrape behind them is answered once the idle ones time out (5 s).
past_the_cap() {
    python3 - 127.0.0.1 "$MPORT" <<'EOF'
import socket, sys, time, urllib.request
host, port = sys.argv[1], int(sys.argv[2])
socks = [socket.create_connection((host, port), timeout=2) for _ in range(20)]
time.sleep(0.3)
t = time.time()
body = urllib.request.urlopen('http://%s:%d/metrics' % (host, port),
                              timeout=15).read()
took = time.time() - t
print('scrape behind 20 idle connections: %.1f s' % took)
for s in socks:
    s.close()
sys.exit(0 if b'magick_dpc_requests_served_total' in body and took > 3
         else 1)
EOF
}
check "past 16 connections the endpoint waits, then answers" past_the_cap

# Idle connections opened and closed at once: the endpoint serves again;
# the server's own clients are not affected.
many_connections() {
    python3 - 127.0.0.1 "$MPORT" <<'EOF'
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
socks = []
for _ in range(40):
    s = socket.socket()
    s.settimeout(0.2)
    try:
        s.connect((host, port))
    except OSError:
        pass
    socks.append(s)
time.sleep(0.1)
for s in socks:
    s.close()
EOF
    server_wait "" 60 scrape again
    $PROM check "$WORK/again.prom"
}
check "40 idle connections at once, then a scrape still answers" many_connections

still_serves() {
    server_alive
    DPC_VIA=dropin dpc_convert "$WORK/in.miff" -blur 0x2 "$WORK/out2.miff"
    same_pixels "$WORK/mem.miff" "$WORK/out2.miff"
}
check "the server still serves" still_serves

bad_addresses() {
    local a rc
    for a in localhost:9650 127.0.0.1 '[::1]' 'not an address'; do
        rc=0
        timeout 10 "$MAGICK_DPC" serve --listen 127.0.0.1:0 --socket none \
            --metrics "$a" 2> "$WORK/bad.log" || rc=$?
        echo "$a: exit $rc"
        [ "$rc" = 2 ]
        grep -q 'bad metrics address' "$WORK/bad.log"
    done
}
check "a host name or a missing port is a usage error (exit 2)" bad_addresses
check_stops
finish
