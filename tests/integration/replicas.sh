#!/usr/bin/env bash
# A cache that survives its hosts: the system's convert on the drop-in,
# forced onto the distributed tier over three magick-dpc servers on
# loopback, cache:dpc-replicas=2, a small tile cache so pixels really
# travel, a 2000x1500 image.  One server killed (SIGKILL) or stopped
# (SIGSTOP, cache:dpc-timeout=2) in the middle of the job: the job ends 0
# with the memory cache's pixels, and one warning names the lost host; the
# copies it held are made again, so a second server killed later is
# survived too.  Without replicas the same loss fails the job with an error naming the
# host.  Each host holds its 2/3 of the tiles; a name resolving to two
# addresses counts as two hosts.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
# The client's failover is what this tests; the sanitized suite's server
# has nothing here that drain.sh and dropin-tiers.sh do not run.
skip_when_quick
need_dropin
make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
: > "$WORK/server.log"                  # no main server; record shows its log

mem_convert -seed 5 -size 2000x1500 plasma:fractal "$WORK/in.miff"
OPS=("-blur 0x2" "-resize 50%" "-rotate 33" "-distort SRT 30")
for i in "${!OPS[@]}"; do
    # shellcheck disable=SC2086  # an op is several words
    mem_convert "$WORK/in.miff" ${OPS[$i]} "$WORK/mem$i.miff"
done

# three_servers: three fresh servers (-v: their requests are logged) on
# free loopback ports; sets P1..P3, PID1..PID3, LOG1..LOG3 and HOSTS.
RUN=0
three_servers() {
    local i var
    RUN=$((RUN + 1))
    for i in 1 2 3; do
        var=P$i
        extra_server "$var" "r$RUN-s$i" -v
        printf -v "PID$i" '%s' "$SPAWNED_PID"
        printf -v "LOG$i" '%s' "$WORK/r$RUN-s$i.log"
    done
    HOSTS=127.0.0.1:$P1,127.0.0.1:$P2,127.0.0.1:$P3
}

# dropin ARGS...: convert on the drop-in, the distributed tier only, over
# $HOSTS, a 1 MiB tile cache (the image is 23 MiB).
dropin() {
    LD_LIBRARY_PATH=$DROPIN_LIB timeout "$STEP_TIMEOUT" "$CONVERT" \
        -define cache:hosts="$HOSTS" -define cache:tiers=distributed \
        -define cache:dpc-tile-cache=1MiB "$@"
}

# signal_mid_job LOG SIGNAL PID DELAY: once LOG shows pixels arriving at
# that server (a PUT; at most 20 s on), waits DELAY seconds and sends
# SIGNAL to PID.  Run in the background.
signal_mid_job() {
    local log=$1 sig=$2 pid=$3 delay=$4 i
    for ((i = 0; i < 400; i++)); do
        grep -q ': PUT ' "$log" && break
        sleep 0.05
    done
    sleep "$delay"
    kill -"$sig" "$pid"
}

# survives SIGNAL VICTIM DELAY OP...: a job with replicas 2 while server
# VICTIM (1..3) gets SIGNAL DELAY s after its first PUT: exit 0, the memory
# cache's pixels ($MEM), and exactly one warning, naming the victim.
survives() {
    local sig=$1 victim=$2 delay=$3 rc=0 pid port log signaller
    shift 3
    three_servers
    pid=PID$victim port=P$victim log=LOG$victim
    pid=${!pid} port=${!port} log=${!log}
    signal_mid_job "$log" "$sig" "$pid" "$delay" &
    signaller=$!
    dropin -define cache:dpc-replicas=2 ${TIMEOUT:+-define cache:dpc-timeout=$TIMEOUT} \
        "$WORK/in.miff" "$@" "$WORK/out.miff" 2> "$WORK/err" || rc=$?
    wait "$signaller" || true
    kill -CONT "$pid" 2> /dev/null || true
    kill -KILL "$pid" 2> /dev/null || true
    cat "$WORK/err"
    [ $rc -eq 0 ] || { echo "exit $rc"; return 1; }
    same_pixels "$MEM" "$WORK/out.miff"
    [ "$(grep -c 'a host was lost' "$WORK/err")" -eq 1 ]
    grep 'a host was lost' "$WORK/err" | grep -q "(127\.0\.0\.1:$port: "
    # no other server named
    ! grep 'a host was lost' "$WORK/err" | grep -v "127\.0\.0\.1:$port" |
        grep -q '127\.0\.0\.1:'
}

MEM=$WORK/mem0.miff
check "(a) kill -9 of a server mid-job, replicas 2: exit 0, same pixels, one warning naming it" \
    survives KILL 2 1 -blur 0x2
# The stopped server answers nothing: its requests time out after 2 s.
survives_stop() {
    TIMEOUT=2 survives STOP 1 1 -blur 0x2
    grep -q 'no answer in time (2 s' "$WORK/err"
}
check "(b) SIGSTOP of a server mid-job, replicas 2, cache:dpc-timeout=2: failover after the timeout" \
    survives_stop
for i in "${!OPS[@]}"; do
    MEM=$WORK/mem$i.miff
    # shellcheck disable=SC2086  # an op is several words
    check "(c) ${OPS[$i]}, replicas 2, server $((i % 3 + 1)) killed mid-job: exit 0, same pixels" \
        survives KILL $((i % 3 + 1)) 0.3 ${OPS[$i]}
done

# Two servers killed one after the other (the second once the first
# loss's copies were made again): still exit 0 and the same pixels, both
# named.
two_losses() {
    local rc=0 s1 s2
    three_servers
    signal_mid_job "$LOG1" KILL "$PID1" 0.3 &
    s1=$!
    signal_mid_job "$LOG2" KILL "$PID2" 2 &
    s2=$!
    dropin -define cache:dpc-replicas=2 "$WORK/in.miff" -blur 0x2 \
        -blur 0x2 "$WORK/two.miff" 2> "$WORK/err" || rc=$?
    wait "$s1" "$s2" || true
    cat "$WORK/err"
    [ $rc -eq 0 ] || { echo "exit $rc"; return 1; }
    ! kill -0 "$PID2" 2> /dev/null || { echo "server 2 outlived the job"; return 1; }
    same_pixels "$WORK/mem-twice.miff" "$WORK/two.miff"
    [ "$(grep -c 'a host was lost' "$WORK/err")" -eq 2 ]
    grep -q "(127\.0\.0\.1:$P1: " "$WORK/err"
    grep -q "(127\.0\.0\.1:$P2: " "$WORK/err"
}
mem_convert "$WORK/in.miff" -blur 0x2 -blur 0x2 "$WORK/mem-twice.miff"
check "two servers killed one after the other, replicas 2: the lost copies made again, exit 0, same pixels" \
    two_losses

# (d) Without replicas: the job fails, the error names the host and says
# what would have saved it; nothing claims the job went on.  The job
# changes its one cache in place, so the kill lands on its reads and
# writes, never on the opening of a new cache; a job started after the
# loss meets it at that opening instead, and is told the same.
single_copy_fails() {
    local rc=0 signaller
    three_servers
    signal_mid_job "$LOG3" KILL "$PID3" 0.5 &
    signaller=$!
    # shellcheck disable=SC2046  # -negate, 100 words
    dropin "$WORK/in.miff" $(printf -- '-negate %.0s' {1..100}) \
        "$WORK/d.miff" 2> "$WORK/err" || rc=$?
    wait "$signaller" || true
    cat "$WORK/err"
    [ $rc -ne 0 ] || { echo "exit 0"; return 1; }
    grep -qE "unable to (read|write) pixel cache .127\.0\.0\.1:$P3: the server closed the connection" \
        "$WORK/err"
    grep -q 'cache:dpc-replicas=2' "$WORK/err"
    ! grep -q 'a host was lost\|goes on with' "$WORK/err"
    # the host named once, as HOST:PORT (no stray ":PORT", no other host)
    ! grep -q ":$P3:$P3\|127\.0\.0\.1:$P1\|127\.0\.0\.1:$P2" "$WORK/err"
    ! grep -q 'Connection reset by peer\|Connection timed out' "$WORK/err"
    rc=0
    dropin "$WORK/in.miff" -negate "$WORK/d.miff" 2> "$WORK/err" || rc=$?
    cat "$WORK/err"
    [ $rc -ne 0 ] || { echo "exit 0 after the loss"; return 1; }
    grep -q "127\.0\.0\.1:$P3: .*refused" "$WORK/err"
    grep -q 'cache:dpc-replicas=2 goes on without a lost one' "$WORK/err"
}
check "(d) replicas 1, kill -9 mid-job: exit != 0, the error names the host and the fix; so does a job started after" \
    single_copy_fails

# (e) Placement: each host opens 2/3 of the tiles' slots and receives
# about 2/3 of the tiles written; -debug cache says 2 copies.
placement() {
    local i slots put total=0
    three_servers
    dropin -debug cache -log '%e' -define cache:dpc-replicas=2 \
        "$WORK/in.miff" -blur 0x2 "$WORK/e.miff" 2> "$WORK/log"
    same_pixels "$WORK/mem0.miff" "$WORK/e.miff"
    grep -q 'striped over 3 host(s) .*, 2 copies of each tile' "$WORK/log"
    # 2000x1500 in 32x32 tiles: 63 x 47 = 2961 tiles, 987 primaries a
    # host, 2 x 987 = 1974 slots (2/3 of 2961) on each
    for i in 1 2 3; do
        log=LOG$i
        slots=$(grep -o 'OPEN [0-9]* x' "${!log}" | head -n 1 | awk '{print $2}')
        echo "host $i: OPEN $slots slots"
        [ "$slots" = 1974 ]
    done
    # tiles PUT to each host: each about a third of all copies
    for i in 1 2 3; do
        log=LOG$i
        put=$(sed -n 's/.*: PUT \([0-9]*\) x .*/\1/p' "${!log}" |
            awk '{s += $1} END {print s + 0}')
        printf -v "PUT$i" '%s' "$put"
        total=$((total + put))
    done
    echo "tiles PUT: $PUT1 $PUT2 $PUT3"
    for i in 1 2 3; do
        put=PUT$i
        [ $((${!put} * 100 / total)) -ge 28 ] && [ $((${!put} * 100 / total)) -le 39 ]
    done
}
check "(e) replicas 2 over 3 hosts: each host holds 2/3 of the tiles' slots and a third of the copies" \
    placement

# More replicas than hosts: as many copies as hosts, said in -debug cache;
# 0 or junk: a clear error before anything is opened.
replicas_setting() {
    local rc=0
    three_servers
    mem_convert "$WORK/in.miff" -resize 10% "$WORK/small.miff"
    dropin -debug cache -log '%e' -define cache:dpc-replicas=5 \
        "$WORK/small.miff" -negate "$WORK/s.miff" 2> "$WORK/log"
    mem_convert "$WORK/small.miff" -negate "$WORK/s-mem.miff"
    same_pixels "$WORK/s-mem.miff" "$WORK/s.miff"
    grep -q 'cache:dpc-replicas=5, but 3 host(s): 3 copies of each tile' \
        "$WORK/log"
    for bad in 0 two -1; do
        rc=0
        dropin -define cache:dpc-replicas=$bad "$WORK/small.miff" -negate \
            "$WORK/s.miff" 2> "$WORK/err" || rc=$?
        cat "$WORK/err"
        [ $rc -ne 0 ]
        grep -q "cache:dpc-replicas=$bad: " "$WORK/err"
    done
}
check "cache:dpc-replicas above the hosts: clamped with a note; 0 or junk: an error" \
    replicas_setting

# (f) A name with two addresses (127.0.0.1 and ::1, in a private
# /etc/hosts) and a server on each: two hosts, a copy on each.
dns_two_hosts() {
    local port pa pb
    port=$(python3 -c '
import socket
for _ in range(50):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket(socket.AF_INET6)
    try:
        b.bind(("::1", p)); print(p); break
    except OSError: pass
    finally: a.close(); b.close()')
    server_spawn "$WORK/dns-a.log" "$MAGICK_DPC" serve -v --socket none \
        --listen "127.0.0.1:$port"
    pa=$SPAWNED_PID
    track "$pa"
    server_spawn "$WORK/dns-b.log" "$MAGICK_DPC" serve -v --socket none \
        --listen "[::1]:$port"
    pb=$SPAWNED_PID
    track "$pb"
    server_wait "$pa" 100 "$MAGICK_DPC" status --host "127.0.0.1:$port" > /dev/null
    server_wait "$pb" 100 "$MAGICK_DPC" status --host "[::1]:$port" > /dev/null
    printf '127.0.0.1 dpc-two.test\n::1 dpc-two.test\n' > "$WORK/hosts"
    unshare -rm bash -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' _ \
        "$WORK/hosts" env LD_LIBRARY_PATH="$DROPIN_LIB" timeout "$STEP_TIMEOUT" \
        "$CONVERT" -debug cache -log '%e' \
        -define cache:hosts="dpc-two.test:$port" -define cache:tiers=distributed \
        -define cache:dpc-tile-cache=1MiB -define cache:dpc-replicas=2 \
        "$WORK/in.miff" -blur 0x2 "$WORK/f.miff" 2> "$WORK/log"
    grep 'striped over' "$WORK/log" | head -n 1
    same_pixels "$WORK/mem0.miff" "$WORK/f.miff"
    grep -q "striped over 2 host(s) \[127\.0\.0\.1:$port (dpc-two\.test),\[::1\]:$port (dpc-two\.test)\], 2 copies" \
        "$WORK/log" ||
        grep -q "striped over 2 host(s) \[\[::1\]:$port (dpc-two\.test),127\.0\.0\.1:$port (dpc-two\.test)\], 2 copies" \
            "$WORK/log"
    grep -q ': PUT ' "$WORK/dns-a.log"
    grep -q ': PUT ' "$WORK/dns-b.log"
}
if unshare -rm true 2> /dev/null; then
    check "(f) a name with two addresses, a server on each: two hosts" \
        dns_two_hosts
else
    echo "# no mount namespaces here: a name with two addresses not tested"
fi
finish
