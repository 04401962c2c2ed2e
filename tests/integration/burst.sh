#!/usr/bin/env bash
# Bursts: many converts started at the same instant against one server with
# its default settings.  The server accepts only as fast as it can run
# handshakes (the rest wait in the kernel's listen backlog or, past their
# source's share, accepted but not yet greeted); no client in its handshake
# is dropped, so every convert succeeds.
#
#  1. BURST_DROPIN (64) drop-in converts and BURST_STOCK (16) stock converts
#     at once, mixed operations on 600x400 images: all exit 0 with the
#     memory cache's pixels, and no cache is left open on the server.
#  2. The same drop-in burst against a server whose --memory holds only a
#     few of their caches, with cache:tiers=distributed,disk: the opens the
#     server refuses move to the disk tier silently (no warning), pixels
#     still identical, and the server logs each refused open as a warning.
#     Drop-in clients only: stock cache.c tries the disk tier before the
#     distributed one, so a stock client cannot fall back to disk after it.
#
# Stock clients make one round trip per row, and per pixel for a column
# (a stock -blur of 600x400 takes many minutes), so they run operations
# that read whole rows; the drop-in clients blur, resize, rotate and more.
# Under sanitizers (DPC_SLOW_TESTS=no) the bursts are a quarter as large.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc

if [ "${DPC_SLOW_TESTS:-yes}" = no ]; then
    : "${BURST_DROPIN:=16}" "${BURST_STOCK:=4}"
else
    : "${BURST_DROPIN:=64}" "${BURST_STOCK:=16}"
fi
# Each client, so each burst, at most: the whole test stays within 180 s.
BURST_SECONDS=${BURST_SECONDS:-75}
DROPIN_OPS=("-blur 0x2" "-resize 70%" "-rotate 33" "-sharpen 0x1"
    "-swirl 90" "-resize 130% -blur 0x1" "-charcoal 1" "-distort SRT 20")
STOCK_OPS=("-negate" "-flip" "-modulate 110,90" "-colorspace Gray"
    "-flop" "-level 10%,90%")
NINPUTS=4

for i in $(seq 0 $((NINPUTS - 1))); do
    mem_convert -seed $((i + 11)) -size 600x400 plasma:fractal "$WORK/in$i.miff"
done

# op_of KIND N: client N's operation; in_of N: its input; ref_of KIND N:
# the memory cache's output for the same.
ops_of() {
    if [ "$1" = stock ]; then echo ${#STOCK_OPS[@]}; else echo ${#DROPIN_OPS[@]}; fi
}
op_of() {
    if [ "$1" = stock ]; then
        echo "${STOCK_OPS[$2 % ${#STOCK_OPS[@]}]}"
    else
        echo "${DROPIN_OPS[$2 % ${#DROPIN_OPS[@]}]}"
    fi
}
in_of() { echo "$WORK/in$(($1 % NINPUTS)).miff"; }
ref_of() {
    echo "$WORK/ref-$1-$(($2 % NINPUTS))-$(($2 % $(ops_of "$1"))).miff"
}

# make_refs KIND COUNT: the references clients 0..COUNT-1 need.
make_refs() {
    local n
    for n in $(seq 0 $(($2 - 1))); do
        [ -e "$(ref_of "$1" "$n")" ] && continue
        # shellcheck disable=SC2046
        mem_convert "$(in_of "$n")" $(op_of "$1" "$n") "$(ref_of "$1" "$n")"
    done
}
make_refs dropin "$BURST_DROPIN"
make_refs stock "$BURST_STOCK"

# one KIND N DIR [DEFINES...]: client N, started when $DIR/go opens; its
# exit status in DIR/rc.N, stderr in DIR/err.N.
one() {
    local kind=$1 n=$2 dir=$3 rc=0
    shift 3
    cat "$dir/go" > /dev/null      # the starting gun: all wait on the FIFO
    # shellcheck disable=SC2046
    if [ "$kind" = stock ]; then
        timeout "$BURST_SECONDS" "$CONVERT" \
            -define registry:cache:hosts=127.0.0.1:"$PORT" \
            -limit memory 0 -limit map 0 -limit disk 0 \
            "$(in_of "$n")" $(op_of stock "$n") "$dir/out-$kind-$n.miff" \
            2> "$dir/err.$kind.$n" || rc=$?
    else
        LD_LIBRARY_PATH=$DROPIN_LIB timeout "$BURST_SECONDS" "$CONVERT" \
            -define cache:hosts=127.0.0.1:"$PORT" "$@" \
            "$(in_of "$n")" $(op_of dropin "$n") "$dir/out-$kind-$n.miff" \
            2> "$dir/err.$kind.$n" || rc=$?
    fi
    echo "$rc" > "$dir/rc.$kind.$n"
}

# burst DIR NDROPIN NSTOCK [DEFINES...]: starts every client, fires them
# together, waits for all (bounded), and reports how they ended.
burst() {
    local dir=$1 ndrop=$2 nstock=$3 pids=() n t0 t1 failed=0 kind
    local -A lost=([dropin]=0 [stock]=0)
    shift 3
    rm -rf "$dir" && mkdir -p "$dir" && mkfifo "$dir/go"
    for n in $(seq 0 $((ndrop - 1))); do
        one dropin "$n" "$dir" "$@" &
        pids+=($!)
        track $!
    done
    for n in $(seq 0 $((nstock - 1))); do
        one stock "$n" "$dir" &
        pids+=($!)
        track $!
    done
    sleep 0.5                       # all of them blocked on the FIFO
    t0=$(date +%s.%N)
    # opening the FIFO for writing releases every reader
    timeout 10 sh -c ': > "$1"' _ "$dir/go"
    wait "${pids[@]}" || true
    t1=$(date +%s.%N)
    for kind in dropin stock; do
        for f in "$dir"/rc.$kind.*; do
            [ -e "$f" ] || continue
            [ "$(cat "$f")" = 0 ] && continue
            failed=$((failed + 1))
            lost[$kind]=$((lost[$kind] + 1))
            n=${f##*.}
            [ $failed -le 5 ] && echo "  $kind client $n exited $(cat "$f"):" \
                "$(grep -v '^ ' "$dir/err.$kind.$n" | head -n 2 | tr '\n' ' ')"
        done
    done
    n=$(ls "$dir"/rc.* 2> /dev/null | wc -l)
    echo "$((ndrop + nstock)) clients ($ndrop drop-in, $nstock stock):" \
        "$failed failed (${lost[dropin]} drop-in, ${lost[stock]} stock)," \
        "$((ndrop + nstock - n)) without a status," \
        "$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s; server:" \
        "$(status_json | tr ',' '\n' | grep -E 'accepted|refused|wait|pauses|timeouts' |
            tr -d '"{}' | tr '\n' ' ')" | tee "$dir/summary"
    [ "$failed" -eq 0 ] && [ "$n" -eq $((ndrop + nstock)) ]
}

# same_as_memory DIR NDROPIN NSTOCK: every output has the memory's pixels.
same_as_memory() {
    local dir=$1 n bad=0
    for n in $(seq 0 $(($2 - 1))); do
        same_pixels "$(ref_of dropin "$n")" "$dir/out-dropin-$n.miff" ||
            bad=$((bad + 1))
    done
    for n in $(seq 0 $(($3 - 1))); do
        same_pixels "$(ref_of stock "$n")" "$dir/out-stock-$n.miff" ||
            bad=$((bad + 1))
    done
    echo "$bad output(s) differ from the memory cache's"
    [ "$bad" -eq 0 ]
}

# caches_closed: caches_open 0 within 5 s.
caches_closed() {
    local open
    for _ in $(seq 50); do
        open=$(json_field caches_open)
        [ "$open" = 0 ] && return 0
        sleep 0.1
    done
    echo "  caches_open $open after 5 s"
    return 1
}

# nothing_dropped: the server closed no client before its handshake ended.
nothing_dropped() {
    if grep -E '\[(warning|error)\]|dropped|evicted' "$WORK/server.log" |
        head -n 5 | grep .; then
        return 1
    fi
}

start_server
check "burst: $BURST_DROPIN drop-in and $BURST_STOCK stock converts at once all succeed" \
    burst "$WORK/b1" "$BURST_DROPIN" "$BURST_STOCK" -define cache:tiers=distributed
sed 's/^/# /' "$WORK/b1/summary" 2> /dev/null || true
check "burst: every output identical to the memory cache's" \
    same_as_memory "$WORK/b1" "$BURST_DROPIN" "$BURST_STOCK"
check "burst: no cache left open on the server" caches_closed
check "burst: no connection dropped or refused by the server" nothing_dropped
check_stops

# Room for about a sixth of the burst's caches (a 600x400 Q16 cache takes
# 1.9 MB on the server; a client holds one to three at once).
start_server --memory 24MiB
# silent_fallback DIR: the refused opens went to disk without a word.
silent_fallback() {
    local dir=$1 noisy
    noisy=$(grep -l -iE 'no room|warning|distributed' "$dir"/err.* 2> /dev/null |
        wc -l)
    [ "$noisy" -eq 0 ] || {
        echo "  $noisy client(s) said something:"
        grep -h -iE 'no room|warning|distributed' "$dir"/err.* | head -n 3
        return 1
    }
}
refusals_logged() {
    local n
    n=$(grep -c '\[warning\].*open refused: no room' "$WORK/server.log" || true)
    echo "  $n refused opens logged as warnings; opens_refused" \
        "$(json_field opens_refused)"
    [ "$n" -gt 0 ]
    [ "$(json_field opens_refused)" -gt 0 ]
}
check "full server, tiers distributed,disk: $BURST_DROPIN drop-in converts at once all succeed" \
    burst "$WORK/b2" "$BURST_DROPIN" 0 -define cache:tiers=distributed,disk
sed 's/^/# /' "$WORK/b2/summary" 2> /dev/null || true
check "full server: every output identical to the memory cache's" \
    same_as_memory "$WORK/b2" "$BURST_DROPIN" 0
check "full server: refused opens moved to disk silently" silent_fallback "$WORK/b2"
check "full server: refused opens logged as warnings" refusals_logged
check "full server: no cache left open" caches_closed
check_stops
finish
