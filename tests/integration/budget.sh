#!/usr/bin/env bash
# Stores and budgets: caches beyond the memory budget spill to files; past
# both budgets an open is refused and convert reports "cache resources
# exhausted"; every cache is freed when its client is done.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
mem_convert -seed 3 -size 200x150 plasma:fractal "$WORK/in.miff"
mem_convert "$WORK/in.miff" -blur 0x1 "$WORK/mem.miff"

caches_free() {
    [ "$(json_field caches_open)" = 0 ] && [ "$(json_field bytes_ram)" = 0 ] &&
        [ "$(json_field bytes_spilled)" = 0 ]
}

# 200x150 needs 600 KB reserved (20 bytes a pixel until the client's
# quantum is known), so 256 KiB refuses it.
start_server --memory 256KiB -v
refused() {
    local rc=0
    dpc_convert "$WORK/in.miff" -blur 0x1 "$WORK/out.miff" 2> "$WORK/err" || rc=$?
    cat "$WORK/err"
    [ $rc -ne 0 ]
    grep -q 'cache resources exhausted' "$WORK/err"
    grep -q 'no room for' "$WORK/server.log"
    [ "$(json_field opens_refused)" -gt 0 ]
}
check "memory budget full, no spill: open refused" refused
check "refused open leaves nothing behind" caches_free
check "server still serves small images" sh -c \
    "$(declare -f dpc_convert); PORT=$PORT STEP_TIMEOUT=$STEP_TIMEOUT CONVERT=$CONVERT;
     dpc_convert -size 16x16 xc:red '$WORK/small.miff'"
check_stops

mkdir -p "$WORK/spill"
start_server --memory 256KiB --spill-dir "$WORK/spill" --disk 64MiB -v
spilled() {
    dpc_convert "$WORK/in.miff" -blur 0x1 "$WORK/spill.miff"
    same_pixels "$WORK/mem.miff" "$WORK/spill.miff"
    grep -q 'bytes in spill' "$WORK/server.log"
}
check "past the memory budget: spilled to disk, identical" spilled
check "spill files leave nothing behind" sh -c \
    "[ -z \"\$(ls -A '$WORK/spill')\" ]"
check "spilled caches freed" caches_free
check_stops

start_server --memory 256KiB --spill-dir "$WORK/spill" --disk 256KiB
check "both budgets full: open refused" refused
check "server alive after refusals" server_alive
check_stops
finish
