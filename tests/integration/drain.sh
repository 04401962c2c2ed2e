#!/usr/bin/env bash
# Graceful drain: on SIGTERM or `magick-dpc drain` the server refuses new
# caches and serves the open ones until they close (then exits 0) or until
# --drain-timeout (then exits 3, the caches cut).  The drop-in places a
# refused cache on the other hosts of cache:hosts, else on the disk tier,
# with no error; a stock client's open fails cleanly.  A second signal
# stops a draining server at once.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc

mem_convert -seed 3 -size 2000x1500 plasma:fractal "$WORK/in.miff"
mem_convert "$WORK/in.miff" -blur 0x2 -blur 0x2 -blur 0x2 "$WORK/mem.miff"
mem_convert "$WORK/in.miff" -blur 0x2 "$WORK/mem1.miff"

# spawn VAR NAME [ARGS...]: a server logging (-v) to $WORK/NAME.log, killed
# at exit; sets VAR to its port and VAR_PID to its pid.
spawn() {
    local var=$1 name=$2
    shift 2
    : > "$WORK/$name.log"
    server_spawn "$WORK/$name.log" \
        "$MAGICK_DPC" serve -v --listen 127.0.0.1:0 --socket none "$@"
    track "$SPAWNED_PID"
    printf -v "${var}_PID" '%s' "$SPAWNED_PID"
    printf -v "$var" '%s' \
        "$(server_log_port "$WORK/$name.log" '' "$SPAWNED_PID")"
    [ -n "${!var}" ] || { cat "$WORK/$name.log" >&2; return 1; }
}

# dropin ARGS...: the system convert on the drop-in, logging cache events.
dropin() {
    LD_LIBRARY_PATH=$DROPIN_LIB timeout "$STEP_TIMEOUT" "$CONVERT" \
        -debug cache -log '%e' "$@"
}

# field PORT NAME: a value of that server's status JSON.
field() {
    "$MAGICK_DPC" status --host 127.0.0.1:"$1" |
        sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"
}

# wait_for TRIES CMD...: CMD every 0.05 s until it succeeds.
wait_for() {
    local tries=$1 i
    shift
    for ((i = 0; i < tries; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    echo "not after $tries tries: $*"
    return 1
}

# hold PORT NAME: a stock client that opens a cache on PORT and holds it
# until $WORK/NAME.release exists (60 s at most), then destroys it; writes
# "held" to $WORK/NAME.state once open, then "released" or "cut".
hold() {
    timeout 90 /usr/bin/python3 -B -c "
import sys, os, time
sys.path.insert(0, '$TOP_SRCDIR/tests/lib')
import dpcproto as P
c = P.connect('127.0.0.1', $1, P.read_secret('$WORK/etc'), timeout=70)
assert c.open6(64, 64) == 1
open('$WORK/$2.state', 'w').write('held')
end = time.monotonic() + 60
c.sock.settimeout(0.05)
while not os.path.exists('$WORK/$2.release') and time.monotonic() < end:
    try:
        closed = c.sock.recv(1, 2) == b''       # MSG_PEEK
    except TimeoutError:
        closed = False
    except OSError:
        closed = True
    if closed:
        open('$WORK/$2.state', 'w').write('cut')
        sys.exit(0)
c.sock.settimeout(5)
try:
    ok = c.destroy() == 1
except P.Closed:
    ok = False
open('$WORK/$2.state', 'w').write('released' if ok else 'cut')
" &
    track $!
    wait_for 100 grep -q . "$WORK/$2.state"
}
state_is() { [ "$(cat "$WORK/$1.state" 2>/dev/null)" = "$2" ]; }
caches_open() { [ "$(field "$1" caches_open)" -ge "${2:-1}" ] 2>/dev/null; }
# gone PID: exited (a zombie not yet waited for counts).
gone() {
    ! kill -0 "$1" 2>/dev/null ||
        [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" = Z ]
}

# wait_exit PID SECONDS: waits up to SECONDS for our child PID; ST is its
# exit status, or 124 when it is still running.
wait_exit() {
    local pid=$1 i
    ST=124
    for ((i = 0; i < $2 * 20; i++)); do
        if gone "$pid"; then
            ST=0
            wait "$pid" || ST=$?
            return 0
        fi
        sleep 0.05
    done
}

# (a) SIGTERM mid-job: the job goes on and ends with the memory cache's
# pixels (its caches opened before the signal stay on the server; those
# opened after go to the disk tier), then the server exits 0.
sigterm_mid_job() {
    local job rc=0
    spawn A a
    dropin -define cache:hosts=127.0.0.1:"$A" \
        -define cache:tiers=distributed,disk -define cache:dpc-tile-cache=1MiB \
        "$WORK/in.miff" -blur 0x2 -blur 0x2 -blur 0x2 "$WORK/a.miff" \
        2> "$WORK/a.err" &
    job=$!
    wait_for 400 caches_open "$A"
    kill -TERM "$A_PID"
    wait "$job" || rc=$?
    grep -v '^ ' "$WORK/a.err" | grep -iE 'warning|error' | head -n 5 || true
    [ $rc -eq 0 ] || { echo "convert exit $rc"; return 1; }
    same_pixels "$WORK/mem.miff" "$WORK/a.miff"
    wait_exit "$A_PID" 10
    [ "$ST" = 0 ] || { echo "server exit $ST"; tail -n 5 "$WORK/a.log"; return 1; }
    # the signal came while the job had caches on the server
    grep -E 'draining \(signal 15\): new caches refused, [1-9][0-9]* open' \
        "$WORK/a.log"
    grep -q 'drained in .* no cache open; stopping' "$WORK/a.log"
    # before the signal on the server; after it on disk
    grep -q '(.*Distributed' "$WORK/a.err"
    grep -qE 'open .*, (Disk|Map),' "$WORK/a.err"
    grep -q 'draining: open the cache elsewhere; the disk tier takes' \
        "$WORK/a.err"
    ! grep -qiE 'warning|error' <(grep -v '^ ' "$WORK/a.err" | grep -v 'magick-dpc:')
}
check "(a) SIGTERM mid-job: job exits 0, same pixels; then server exits 0" \
    sigterm_mid_job

# (b) Two hosts, one draining: a new job's cache goes on the other one.
two_hosts_one_draining() {
    local rc=0
    spawn B1 b1
    spawn B2 b2
    hold "$B1" b1hold
    kill -TERM "$B1_PID"
    wait_for 100 grep -q 'draining (signal 15)' "$WORK/b1.log"
    [ "$(field "$B1" draining)" = true ]
    dropin -define cache:hosts=127.0.0.1:"$B1",127.0.0.1:"$B2" \
        -define cache:tiers=distributed "$WORK/in.miff" -blur 0x2 \
        "$WORK/b.miff" 2> "$WORK/b.err" || rc=$?
    [ $rc -eq 0 ] || { grep -v '^ ' "$WORK/b.err" | tail -n 5; return 1; }
    same_pixels "$WORK/mem1.miff" "$WORK/b.miff"
    grep -q "127.0.0.1:$B1: draining: open the cache elsewhere; .* goes to the 1 other host" \
        "$WORK/b.err"
    grep -q "striped over 1 host(s) \[127.0.0.1:$B2\]" "$WORK/b.err"
    grep -q ': OPEN .* in memory' "$WORK/b2.log"
    ! grep -q ': OPEN .* in memory' "$WORK/b1.log"
    grep -q 'OPEN .* refused: draining' "$WORK/b1.log"
    [ "$(field "$B2" requests_served)" -gt 10 ]
    # B1 still holds the cache it had, then exits 0 once it is given back
    state_is b1hold held
    : > "$WORK/b1hold.release"
    wait_for 100 state_is b1hold released
    wait_exit "$B1_PID" 10
    [ "$ST" = 0 ]
}
check "(b) two hosts, one draining: the job's data lands on the other" \
    two_hosts_one_draining

# (c) The only host draining: the next tier (disk) takes the cache, no
# error; with no tier behind it, the error says draining.
only_host_draining() {
    local rc=0
    spawn C c
    hold "$C" chold
    kill -TERM "$C_PID"
    wait_for 100 grep -q 'draining (signal 15)' "$WORK/c.log"
    dropin -define cache:hosts=127.0.0.1:"$C" \
        -define cache:tiers=distributed,disk "$WORK/in.miff" -blur 0x2 \
        "$WORK/c.miff" 2> "$WORK/c.err" || rc=$?
    [ $rc -eq 0 ] || { grep -v '^ ' "$WORK/c.err" | tail -n 5; return 1; }
    same_pixels "$WORK/mem1.miff" "$WORK/c.miff"
    grep -qE 'open .*, (Disk|Map),' "$WORK/c.err"
    ! grep -q '(.*Distributed' "$WORK/c.err"
    grep -q 'draining: open the cache elsewhere; the disk tier takes' \
        "$WORK/c.err"
    ! grep -qiE 'warning|error' <(grep -v '^ ' "$WORK/c.err" | grep -v 'magick-dpc:')
    rc=0
    dropin -define cache:hosts=127.0.0.1:"$C" -define cache:tiers=distributed \
        "$WORK/in.miff" -blur 0x2 "$WORK/c2.miff" 2> "$WORK/c2.err" || rc=$?
    [ $rc -ne 0 ]
    grep -q "127.0.0.1:$C: draining" "$WORK/c2.err"
    # a stock client (registry:cache:hosts, limits 0) fails its open at once
    rc=0
    timeout 30 "$CONVERT" -define registry:cache:hosts=127.0.0.1:"$C" \
        -limit memory 0 -limit map 0 -limit disk 0 "$WORK/in.miff" \
        -blur 0x2 "$WORK/c3.miff" 2> "$WORK/c3.err" || rc=$?
    cat "$WORK/c3.err"
    [ $rc -ne 0 ] && [ $rc -ne 124 ]
    grep -qi 'pixel cache' "$WORK/c3.err"
    grep -q 'open refused: the server is draining' "$WORK/c.log"
    : > "$WORK/chold.release"
    wait_exit "$C_PID" 10
    [ "$ST" = 0 ]
}
check "(c) only host draining: disk tier, same pixels; stock client fails cleanly" \
    only_host_draining

# (d) A second SIGTERM (or SIGINT) while draining stops at once; the cut
# cache makes the exit status 3.
second_signal() {
    local t0 t1 sig
    for sig in TERM INT; do
        rm -f "$WORK/dhold.state" "$WORK/dhold.release"
        spawn D d
        hold "$D" dhold
        kill -TERM "$D_PID"
        wait_for 100 grep -q 'draining (signal 15)' "$WORK/d.log"
        sleep 0.3
        gone "$D_PID" && { echo "stopped before the second signal"; return 1; }
        t0=$(date +%s%N)
        kill -"$sig" "$D_PID"
        wait_exit "$D_PID" 5
        t1=$(date +%s%N)
        [ "$ST" = 3 ] || { echo "SIG$sig: exit $ST"; return 1; }
        [ $(((t1 - t0) / 1000000)) -lt 1500 ]
        grep -q 'while draining: stopping now, 1 caches cut' "$WORK/d.log"
        wait_for 40 state_is dhold cut
    done
}
check "(d) a second SIGTERM or SIGINT while draining stops at once (exit 3)" \
    second_signal

# (e) --drain-timeout: a cache held past it is cut, the server exits 3 at
# the timeout, not before.
drain_timeout() {
    local t0 t1 ms
    spawn E e --drain-timeout 2s
    hold "$E" ehold
    t0=$(date +%s%N)
    kill -TERM "$E_PID"
    wait_exit "$E_PID" 10
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    echo "exit $ST after $ms ms"
    [ "$ST" = 3 ]
    [ $ms -ge 1900 ] && [ $ms -lt 4000 ]
    grep -q 'drain timeout after 2\.[0-9] s: 1 caches still open' "$WORK/e.log"
    wait_for 40 state_is ehold cut
}
check "(e) --drain-timeout 2s: the held cache is cut, exit 3 at 2 s" \
    drain_timeout

# (f) `magick-dpc drain`: the server drains as on SIGTERM; status says so
# with the time left; a new job goes to disk; giving the cache back ends it.
drain_command() {
    local out left rc=0
    spawn F f --drain-timeout 1m
    [ "$(field "$F" draining)" = false ]
    hold "$F" fhold
    out=$("$MAGICK_DPC" drain --host 127.0.0.1:"$F")
    echo "$out"
    echo "$out" | grep -q '"draining":true'
    grep -q 'drain requested' "$WORK/f.log"
    grep -q 'draining (requested by a client): new caches refused, 1 open served for up to 60 s' \
        "$WORK/f.log"
    [ "$(field "$F" draining)" = true ]
    left=$(field "$F" drain_seconds_left)
    awk -v l="$left" 'BEGIN { exit !(l > 50 && l <= 60) }'
    [ "$(field "$F" caches_open)" = 1 ]
    # a second drain request changes nothing
    "$MAGICK_DPC" drain --host 127.0.0.1:"$F" | grep -q '"draining":true'
    [ "$(grep -c 'draining (' "$WORK/f.log")" = 1 ]
    dropin -define cache:hosts=127.0.0.1:"$F" \
        -define cache:tiers=distributed,disk "$WORK/in.miff" -blur 0x2 \
        "$WORK/f.miff" 2> "$WORK/f.err" || rc=$?
    [ $rc -eq 0 ]
    same_pixels "$WORK/mem1.miff" "$WORK/f.miff"
    gone "$F_PID" && { echo "stopped with a cache open"; return 1; }
    : > "$WORK/fhold.release"
    wait_for 100 state_is fhold released
    wait_exit "$F_PID" 10
    [ "$ST" = 0 ]
    grep -q 'drained in .* no cache open; stopping' "$WORK/f.log"
}
check "(f) magick-dpc drain: status shows draining and time left" drain_command

# An idle server stops on SIGTERM at once, exit 0 (nothing to drain).
idle_sigterm() {
    local t0 t1
    spawn G g
    t0=$(date +%s%N)
    kill -TERM "$G_PID"
    wait_exit "$G_PID" 5
    [ "$ST" = 0 ]
    t1=$(date +%s%N)
    [ $(((t1 - t0) / 1000000)) -lt 1000 ]
}
check "idle server: SIGTERM exits 0 at once" idle_sigterm
finish
