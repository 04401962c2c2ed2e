#!/usr/bin/env bash
# ImageMagick's own region rule, held by a differential test: random
# regions (inside, on every edge, wrapping past the right edge, past the
# end, negative, empty, huge) through a memory cache and a distributed
# cache side by side, with the same verdict and the same bytes required of
# each (tests/tools/region-diff.c).  Once on the system's libMagickCore
# (the stock client and the server's stock protocol) and once on the
# drop-in (the native protocol and its tile cache).
#
#   region-diff.sh [--long]     --long: 50x the regions, several seeds
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
REGION_DIFF=${REGION_DIFF:-$(dirname "$MAGICK_DPC")/../tests/tools/region-diff}
[ -x "$REGION_DIFF" ] || { echo "SKIP: no $REGION_DIFF"; exit 77; }
make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server

stock_n=1500 dropin_n=20000 seeds=${DPC_REGION_SEED:-$(date +%s)}
if [ "${DPC_SLOW_TESTS:-yes}" = no ]; then
    stock_n=300 dropin_n=4000
fi
if [ "${1:-}" = --long ]; then
    stock_n=$((stock_n * 50)) dropin_n=$((dropin_n * 50))
    seeds="$seeds $((seeds + 1)) $((seeds + 2))"
fi

for seed in $seeds; do
    stock() {
        # Under the sanitizers: the system library's own leaks are not
        # ours (the drop-in's, below, are).
        LSAN_OPTIONS=suppressions=$TOP_SRCDIR/tests/lib/lsan-magickcore.supp \
            timeout 1200 "$REGION_DIFF" 127.0.0.1:"$PORT" --seed "$seed" \
            --regions "$stock_n" --max-side 64
    }
    check "stock client, stock protocol: $stock_n regions, seed $seed" stock
    grep 'regions on' "$WORK/check.log" | sed 's/^/  /'
    dropin() {
        LD_LIBRARY_PATH=$DROPIN_LIB timeout 1200 "$REGION_DIFF" \
            127.0.0.1:"$PORT" --seed "$seed" --regions "$dropin_n" \
            --max-side 200
    }
    check "drop-in, native protocol: $dropin_n regions, seed $seed" dropin
    grep 'regions on' "$WORK/check.log" | sed 's/^/  /'
done
no_cache_left() {
    for _ in $(seq 50); do
        [ "$(json_field caches_open)" = 0 ] && return 0
        sleep 0.1
    done
    status_json
    return 1
}
check "the server is left with no cache open" no_cache_left
check_stops
finish
