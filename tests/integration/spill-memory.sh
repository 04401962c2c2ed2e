#!/usr/bin/env bash
# Spilled caches do not count as memory: a server with --memory 64MiB and a
# spill directory takes caches totalling several times that (four streams
# of 64 MiB at once, random regions checked byte for byte, a 3000x2500
# convert through the drop-in), and its VmRSS, sampled all along, stays
# below the budget plus SPILL_OVERHEAD_MIB; the pixels read back are
# identical.  Where the cgroup v1 memory controller is mounted, the same
# load runs with the server in a cgroup limited to budget + overhead, and
# the server must not be OOM-killed.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
NATIVE_CHECK=${NATIVE_CHECK:-$(dirname "$MAGICK_DPC")/../tests/tools/native-check}
need_dropin
BUDGET_MIB=64
# README.md, --spill-dir: the server's own footprint (code, libraries,
# connection buffers, some 10 MiB), one batch of spill pages between
# write-backs (4 MiB) and the kernel's read-ahead and fault-around.
SPILL_OVERHEAD_MIB=${SPILL_OVERHEAD_MIB:-32}
LIMIT_KIB=$(((BUDGET_MIB + SPILL_OVERHEAD_MIB) * 1024))
# AddressSanitizer's shadow and quarantine are memory of their own: a
# sanitized server is checked for the bytes only, its RSS is just shown.
SANITIZED=no
ldd "$MAGICK_DPC" 2> /dev/null | grep -q libasan && SANITIZED=yes

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
mkdir -p "$WORK/spill"
mem_convert -seed 3 -size 3000x2500 plasma:fractal "$WORK/in.miff"
mem_convert "$WORK/in.miff" -blur 0x2 "$WORK/mem.miff"

# sample_rss PID FILE: the highest VmRSS (KiB) of PID in FILE, every 0.05 s
# while PID lives; in the background, tracked.
sample_rss() {
    (
        max=0
        while kv=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' \
            "/proc/$1/status" 2> /dev/null) && [ -n "$kv" ]; do
            [ "$kv" -gt "$max" ] && max=$kv && echo "$max" > "$2"
            sleep 0.05
        done
    ) &
    track $!
}

# load: the four streams, random regions and the convert, all at once;
# every one must succeed with the right bytes.
load() {
    local pids=() p rc=0
    # started half a second apart: on a loaded machine (sanitizers, other
    # tests) six TLS handshakes at once can miss native-check's 5 s deadline
    for p in 1 2 3 4; do
        timeout "$STEP_TIMEOUT" "$NATIVE_CHECK" stream "$SECRET" 64 \
            127.0.0.1:"$PORT" > "$WORK/stream$p.out" &
        pids+=($!)
        sleep 0.5
    done
    timeout "$STEP_TIMEOUT" "$NATIVE_CHECK" random1 "$SECRET" 640 480 4 \
        127.0.0.1:"$PORT" > "$WORK/random.out" &
    pids+=($!)
    DPC_VIA=dropin dpc_convert "$WORK/in.miff" -blur 0x2 "$WORK/out.miff" ||
        rc=1
    for p in "${pids[@]}"; do
        wait "$p" || rc=1
    done
    grep -q '^ok' "$WORK/random.out" || rc=1
    same_pixels "$WORK/mem.miff" "$WORK/out.miff" || rc=1
    return $rc
}

start_server --memory ${BUDGET_MIB}MiB --spill-dir "$WORK/spill" -v
sample_rss "$SERVER_PID" "$WORK/rss"
check "several times the budget, spilled: every byte read back" load
spilled_rss() {
    local rss spilled
    rss=$(cat "$WORK/rss")
    spilled=$(grep -c 'in spill\|spill' "$WORK/server.log" || true)
    echo "peak VmRSS ${rss} KiB, limit ${LIMIT_KIB} KiB, spill log lines $spilled"
    [ "$spilled" -gt 0 ]
    [ "$SANITIZED" = yes ] || [ "$rss" -lt "$LIMIT_KIB" ]
}
RSS_NAME="server VmRSS stays below budget + ${SPILL_OVERHEAD_MIB} MiB"
[ "$SANITIZED" = no ] || RSS_NAME="spilled (VmRSS not bounded: sanitized)"
check "$RSS_NAME" spilled_rss
sed -n 's/^/  /p' "$WORK/check.log"
check_stops

# In a memory cgroup (v1) limited to budget + overhead; the server joins
# it before it starts (a wrapper), so all its memory is charged there.
CG=/sys/fs/cgroup/memory/magick-dpc-test-$$
in_cgroup() {
    local oom
    load
    server_alive
    oom=$(sed -n 's/^oom_kill \([0-9]*\)/\1/p' "$CG/memory.oom_control")
    echo "cgroup peak $(cat "$CG/memory.max_usage_in_bytes") bytes," \
        "failcnt $(cat "$CG/memory.failcnt"), oom_kill ${oom:-?}"
    [ "${oom:-0}" = 0 ]
}
if [ "$SANITIZED" = yes ]; then
    echo "# sanitized server: cgroup check skipped"
elif [ -w /sys/fs/cgroup/memory ] && [ "$(id -u)" = 0 ]; then
    # the cgroup goes once the killed server has left it
    trap 'cleanup; for _ in 1 2 3 4 5 6 7 8 9 10; do
        rmdir "$CG" 2> /dev/null && break; sleep 0.1; done' EXIT
    mkdir "$CG"
    echo $((LIMIT_KIB * 1024)) > "$CG/memory.limit_in_bytes"
    printf '#!/bin/sh\necho $$ > %s/cgroup.procs && exec %s "$@"\n' \
        "$CG" "$MAGICK_DPC" > "$WORK/in-cgroup"
    chmod +x "$WORK/in-cgroup"
    REAL_DPC=$MAGICK_DPC
    MAGICK_DPC=$WORK/in-cgroup
    start_server --memory ${BUDGET_MIB}MiB --spill-dir "$WORK/spill" -v
    MAGICK_DPC=$REAL_DPC
    check "in a cgroup of budget + ${SPILL_OVERHEAD_MIB} MiB: not OOM-killed" \
        in_cgroup
    sed -n 's/^/  /p' "$WORK/check.log"
    check_stops
else
    echo "# no writable cgroup v1 memory controller: cgroup check skipped"
fi
finish
