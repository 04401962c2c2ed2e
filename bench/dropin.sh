#!/usr/bin/env bash
# dropin.sh: time the system /usr/bin/convert on one 2000x1500 image with
#   memory     its ordinary memory pixel cache,
#   memory-t1  the same with -limit thread 1,
#   stock      its cache on ImageMagick's own server (convert -distribute-cache),
#   dpc        the drop-in libMagickCore (LD_LIBRARY_PATH) whose distributed
#              cache speaks magick-dpc's native protocol, on magick-dpc,
#   dpc-t1     the same with -limit thread 1,
# check every output against memory's, then measure native streaming
# (native-check stream) against one and against three magick-dpc servers.
#
# ImageMagick's stock server binds 0.0.0.0, so the whole run (servers and
# clients) happens inside a private network namespace whose only interface
# is loopback: the script re-executes itself under `unshare --net`.
# Same approach and safety measures as bench/compare-stock.sh.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$SELF")/lib.sh"      # LC_ALL=C, CONVERT, die, the namespace, the servers ...

COMPARE_CMD=(env -u LD_LIBRARY_PATH "$COMPARE")   # compare without the drop-in

# Fixed ports are safe: the namespace is new, so nothing else can hold them.
STOCK_PORT=6668
DPC_PORT=6671
BASE_PORT=6672                     # --baseline's server
BASE_STREAM_PORTS=(6691 6692 6693) # --baseline's serve --preallocate
STREAM_PORTS=(6681 6682 6683)      # serve --preallocate
FRESH_PORTS=(6684 6685 6686)       # default memory: fresh, reused while warm

# Operations by name; the table shows exactly what convert is asked to do.
declare -A OP_ARGS=([blur]="-blur 0x2" [resize]="-resize 50%"
                    [rotate]="-rotate 33" [distort]="-distort SRT 30")

usage() {
    cat <<EOF
Usage: bench/dropin.sh [OPTIONS]

Times $CONVERT on a generated plasma image with its memory cache, with its
cache on ImageMagick's own server (convert -distribute-cache), and with the
drop-in libMagickCore (LD_LIBRARY_PATH) on magick-dpc; the memory and drop-in
rows also with -limit thread 1. Every output is checked against the memory
cache's with compare -metric AE. Then native-check streams 1 GiB through the
native client to one and to three magick-dpc servers, preallocated (serve
--preallocate) and with default memory. Everything runs inside
a private network namespace (unshare --net) that has only loopback.

Options:
  -n, --repeat N        memory and drop-in runs per case, median [3]
      --stock-repeat N  stock-server runs per case, median [1]
      --no-stock        skip the stock server (its column shows "-")
      --no-stream       skip the native-check streaming part
  -s, --size WxH        input size [2000x1500]
  -o, --ops LIST        comma-separated: blur (-blur 0x2), resize
                        (-resize 50%), rotate (-rotate 33), distort
                        (-distort SRT 30) [blur,resize,rotate,distort]
      --stream-mib N    MiB per native-check stream run [1024]
      --stream-repeat N native-check runs per host count, median [3]
  -t, --timeout SEC     limit on one memory or drop-in convert [600]
      --stock-timeout SEC  limit on one stock-server convert [1200]
      --baseline DIR    also run another built tree of this project (its
                        _install/bin/magick-dpc, _install/lib drop-in and
                        _build/tests/tools/native-check, made by its make
                        check) as variants base and base-t1 and as
                        streaming rows, interleaved with this tree's (the
                        baseline first on even rounds), and print this
                        tree's time (and MB/s) over the baseline's
  -k, --keep            keep the work directory (inputs, outputs, logs)
  -h, --help            this message

Environment:
  MAGICK_DPC            the server [\$top/_install/bin/magick-dpc]
  DROPIN_LIB            directory holding the drop-in
                        libMagickCore-6.Q16.so.6 [\$top/_install/lib]
  NATIVE_CHECK          the streaming tool
                        [\$top/_build/tests/tools/native-check]
  ARTIFACT_WAIT         seconds to wait for an artifact that is missing
                        (being rebuilt) [180]
  TMPDIR                where the work directory goes [/tmp]

Exit status: 0 if every convert succeeded and every output matched,
1 otherwise (a pixel mismatch, a failure, a timeout, a dead server),
2 on bad usage.
EOF
}

# ---------------------------------------------------------------- options
REPEAT=3
STOCK_REPEAT=1
WITH_STOCK=1
WITH_STREAM=1
SIZE=2000x1500
OPS=blur,resize,rotate,distort
STREAM_MIB=1024
STREAM_REPEAT=3
STEP_TIMEOUT=600
STOCK_TIMEOUT=1200
KEEP=0
BASE_DIR=""

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            -n|--repeat)     [ $# -ge 2 ] || usage_error "$1 needs a value"; REPEAT=$2; shift ;;
            --repeat=*)      REPEAT=${1#*=} ;;
            --stock-repeat)  [ $# -ge 2 ] || usage_error "$1 needs a value"; STOCK_REPEAT=$2; shift ;;
            --stock-repeat=*) STOCK_REPEAT=${1#*=} ;;
            --no-stock)      WITH_STOCK=0 ;;
            --no-stream)     WITH_STREAM=0 ;;
            -s|--size)       [ $# -ge 2 ] || usage_error "$1 needs a value"; SIZE=$2; shift ;;
            --size=*)        SIZE=${1#*=} ;;
            -o|--ops)        [ $# -ge 2 ] || usage_error "$1 needs a value"; OPS=$2; shift ;;
            --ops=*)         OPS=${1#*=} ;;
            --stream-mib)    [ $# -ge 2 ] || usage_error "$1 needs a value"; STREAM_MIB=$2; shift ;;
            --stream-mib=*)  STREAM_MIB=${1#*=} ;;
            --stream-repeat) [ $# -ge 2 ] || usage_error "$1 needs a value"; STREAM_REPEAT=$2; shift ;;
            --stream-repeat=*) STREAM_REPEAT=${1#*=} ;;
            -t|--timeout)    [ $# -ge 2 ] || usage_error "$1 needs a value"; STEP_TIMEOUT=$2; shift ;;
            --timeout=*)     STEP_TIMEOUT=${1#*=} ;;
            --stock-timeout) [ $# -ge 2 ] || usage_error "$1 needs a value"; STOCK_TIMEOUT=$2; shift ;;
            --stock-timeout=*) STOCK_TIMEOUT=${1#*=} ;;
            --baseline)      [ $# -ge 2 ] || usage_error "$1 needs a value"; BASE_DIR=$2; shift ;;
            --baseline=*)    BASE_DIR=${1#*=} ;;
            -k|--keep)       KEEP=1 ;;
            -h|--help)       usage; exit 0 ;;
            *)               usage_error "unknown argument: $1" ;;
        esac
        shift
    done
    if [ -n "$BASE_DIR" ]; then
        [ -d "$BASE_DIR" ] || usage_error "--baseline: no directory $BASE_DIR"
        BASE_DIR=$(cd "$BASE_DIR" && pwd)
    fi
    need_positive_ints REPEAT STOCK_REPEAT STREAM_MIB STREAM_REPEAT STEP_TIMEOUT STOCK_TIMEOUT
    [[ $SIZE =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]] || usage_error "bad size: $SIZE (want WxH)"
    IMG_W=${BASH_REMATCH[1]}
    IMG_H=${BASH_REMATCH[2]}
    IFS=, read -ra OP_LIST <<< "$OPS"
    [ ${#OP_LIST[@]} -gt 0 ] || usage_error "--ops is empty"
    local o
    for o in "${OP_LIST[@]}"; do
        [ -n "${OP_ARGS[$o]+set}" ] || usage_error "unknown op: $o (have: ${!OP_ARGS[*]})"
    done
}

# ------------------------------------------------------------- artifacts
# Copies every artifact into the work directory, so a concurrent rebuild of
# the tree cannot swap one out mid-run.
find_artifacts() {
    DPC_PATH=${MAGICK_DPC:-$TOP_SRCDIR/_install/bin/magick-dpc}
    LIB_PATH=${DROPIN_LIB:-$TOP_SRCDIR/_install/lib}
    NC_PATH=${NATIVE_CHECK:-$TOP_SRCDIR/_build/tests/tools/native-check}
    local lib=$LIB_PATH/libMagickCore-6.Q16.so.6
    wait_artifact "magick-dpc server" "$DPC_PATH"
    wait_artifact "drop-in libMagickCore" "$lib"
    [ "$WITH_STREAM" = 1 ] && wait_artifact "native-check" "$NC_PATH"
    mkdir -p "$WORK/bin" "$WORK/lib"
    cp "$DPC_PATH" "$WORK/bin/magick-dpc"
    cp -L "$lib" "$WORK/lib/libMagickCore-6.Q16.so.6"
    [ "$WITH_STREAM" = 1 ] && cp "$NC_PATH" "$WORK/bin/native-check"
    DPC_BIN=$WORK/bin/magick-dpc
    NC_BIN=$WORK/bin/native-check
    LIB_DIR=$WORK/lib
    # The drop-in must really be what convert loads under LD_LIBRARY_PATH.
    local resolved
    resolved=$(LD_LIBRARY_PATH=$LIB_DIR ldd "$CONVERT" |
               awk '/libMagickCore-6\.Q16\.so\.6/ { print $3 }')
    [ "$resolved" = "$LIB_DIR/libMagickCore-6.Q16.so.6" ] ||
        die "with LD_LIBRARY_PATH=$LIB_DIR, $CONVERT loads '$resolved', not the drop-in"
    [ -z "$BASE_DIR" ] || find_base_artifacts
}

# The --baseline tree's server, drop-in and streaming tool, copied likewise.
find_base_artifacts() {
    local lib=$BASE_DIR/_install/lib/libMagickCore-6.Q16.so.6
    wait_artifact "baseline magick-dpc server" "$BASE_DIR/_install/bin/magick-dpc"
    wait_artifact "baseline drop-in libMagickCore" "$lib"
    [ "$WITH_STREAM" = 1 ] &&
        wait_artifact "baseline native-check" "$BASE_DIR/_build/tests/tools/native-check"
    mkdir -p "$WORK/base/bin" "$WORK/base/lib"
    cp "$BASE_DIR/_install/bin/magick-dpc" "$WORK/base/bin/magick-dpc"
    cp -L "$lib" "$WORK/base/lib/libMagickCore-6.Q16.so.6"
    [ "$WITH_STREAM" = 1 ] &&
        cp "$BASE_DIR/_build/tests/tools/native-check" "$WORK/base/bin/native-check"
    BASE_DPC_BIN=$WORK/base/bin/magick-dpc
    BASE_NC_BIN=$WORK/base/bin/native-check
    BASE_LIB_DIR=$WORK/base/lib
}

# ------------------------------------------------------------ the servers
# server_cmd NAME: stock, dpc, streamN or freshN (N an index into
# STREAM_PORTS, FRESH_PORTS): its command and fixed port, for start_server
# (lib.sh).  The streaming servers hold one stream's cache and a little more.
server_cmd() {
    case $1 in
        stock)
            SERVER_PORT=$STOCK_PORT
            SERVER_CMD=(env -u LD_LIBRARY_PATH "$CONVERT" -distribute-cache "$SERVER_PORT") ;;
        dpc)
            SERVER_PORT=$DPC_PORT
            SERVER_CMD=("$DPC_BIN" serve -q --listen "127.0.0.1:$SERVER_PORT") ;;
        base)
            SERVER_PORT=$BASE_PORT
            SERVER_CMD=("$BASE_DPC_BIN" serve -q --listen "127.0.0.1:$SERVER_PORT"
                        --socket none) ;;
        basestream[0-9])
            SERVER_PORT=${BASE_STREAM_PORTS[${1#basestream}]}
            SERVER_CMD=("$BASE_DPC_BIN" serve -q --listen "127.0.0.1:$SERVER_PORT"
                        --socket none --memory "$((STREAM_MIB + 128))MiB"
                        --preallocate) ;;
        stream[0-9])
            SERVER_PORT=${STREAM_PORTS[${1#stream}]}
            SERVER_CMD=("$DPC_BIN" serve -q --listen "127.0.0.1:$SERVER_PORT"
                        --socket none --memory "$((STREAM_MIB + 128))MiB"
                        --preallocate) ;;
        fresh[0-9])
            SERVER_PORT=${FRESH_PORTS[${1#fresh}]}
            SERVER_CMD=("$DPC_BIN" serve -q --listen "127.0.0.1:$SERVER_PORT"
                        --socket none --memory "$((STREAM_MIB + 128))MiB") ;;
        *) die "internal error: no server $1" ;;
    esac
}

# ----------------------------------------------------------- measurements
TILE_DEFINE=()                     # -define cache:dpc-tile-cache=..., if needed

server_of() {
    case $1 in
        stock) echo stock ;; dpc|dpc-t1) echo dpc ;; base|base-t1) echo base ;;
        *) echo "" ;;
    esac
}

# convert_cmd VARIANT: sets CMD to the convert invocation (without the
# input, operation and output) and STEP_LIMIT to its timeout, for run_convert
# (lib.sh) and probe_tiles.
convert_cmd() {
    local variant=$1
    STEP_LIMIT=$STEP_TIMEOUT
    case $variant in
        memory)    CMD=(env -u LD_LIBRARY_PATH "$CONVERT") ;;
        memory-t1) CMD=(env -u LD_LIBRARY_PATH "$CONVERT" -limit thread 1) ;;
        stock)     STEP_LIMIT=$STOCK_TIMEOUT
                   CMD=(env -u LD_LIBRARY_PATH "$CONVERT"
                        -define "registry:cache:hosts=127.0.0.1:${PORT_OF[stock]}"
                        -limit memory 0 -limit map 0 -limit disk 0) ;;
        dpc|dpc-t1) CMD=(env "LD_LIBRARY_PATH=$LIB_DIR" "$CONVERT"
                        -define "cache:hosts=127.0.0.1:${PORT_OF[dpc]}"
                        -define cache:tiers=distributed "${TILE_DEFINE[@]}")
                   [ "$variant" = dpc-t1 ] && CMD+=(-limit thread 1) ;;
        base|base-t1) CMD=(env "LD_LIBRARY_PATH=$BASE_LIB_DIR" "$CONVERT"
                        -define "cache:hosts=127.0.0.1:${PORT_OF[base]}"
                        -define cache:tiers=distributed "${TILE_DEFINE[@]}")
                   [ "$variant" = base-t1 ] && CMD+=(-limit thread 1) ;;
        *) die "internal error: no variant $variant" ;;
    esac
    return 0
}

NOTES=()                           # odd but not failing (stderr chatter)
LOADS=()                           # 1-minute load average samples

sample_load() { LOADS+=("$(cut -d' ' -f1 /proc/loadavg)"); }

# probe_tiles OP_LABEL OUT OPARGS...: one untimed drop-in run with -debug
# cache; sets PROBE_TILES to "WxH:BYTES ..." from the adapter's open lines.
probe_tiles() {
    local label=$1 in=$2 out=$3 rc=0
    shift 3
    convert_cmd dpc
    timeout --foreground -k 10 "$STEP_TIMEOUT" "${CMD[@]}" -debug cache "$in" "$@" "$out" \
        > "$WORK/probe.log" 2>&1 || rc=$?
    PROBE_TILES=$(sed -n 's/.*magick-dpc: \([0-9]*x[0-9]*\) striped over [0-9]* host(s) .*, \([0-9]*\)-byte tile cache.*/\1:\2/p' \
                  "$WORK/probe.log" | tr '\n' ' ' | sed 's/ *$//')
    if [ $rc -ne 0 ]; then
        PROBLEMS+=("$label: the -debug cache probe run FAILED (status $rc)")
        echo "  !!! probe run failed (status $rc):" >&2
        { grep -v 'magick-dpc:\|^  \|Cache' "$WORK/probe.log" || true; } | tail -n 20 | sed 's/^/    | /' >&2
        revive_server dpc
    fi
    if [ -z "$PROBE_TILES" ]; then
        PROBE_TILES="(no magick-dpc line in -debug cache output)"
        PROBLEMS+=("$label: -debug cache printed no magick-dpc tile-cache line: is the drop-in in use?")
    fi
    return 0
}

# round_order REP: ORDER, the variants of round REP. With --baseline, even
# rounds run the baseline's before this tree's, so neither always goes first.
round_order() {
    ORDER=("${VARIANTS[@]}")
    [ -n "$BASE_DIR" ] && [ $(($1 % 2)) = 0 ] || return 0
    local v
    ORDER=()
    for v in "${VARIANTS[@]}"; do
        case $v in dpc|dpc-t1|base|base-t1) ;; *) ORDER+=("$v") ;; esac
    done
    ORDER+=(base base-t1 dpc dpc-t1)
}

# bench_case OP: all variants, interleaved so slow drift hits all alike;
# appends table rows to ROWS.
bench_case() {
    local op=$1 rep v label=${OP_ARGS[$1]}
    local in="$WORK/in.png" ref="" nrep=$REPEAT
    local -a opargs
    read -ra opargs <<< "$label"
    [ "$WITH_STOCK" = 1 ] && [ "$STOCK_REPEAT" -gt "$nrep" ] && nrep=$STOCK_REPEAT
    local -A times=() bad=() stderr_seen=()
    for v in "${VARIANTS[@]}"; do times[$v]=""; bad[$v]=""; done

    for rep in $(seq 1 "$nrep"); do
        sample_load
        round_order "$rep"
        for v in "${ORDER[@]}"; do
            if [ "$v" = stock ]; then
                [ "$rep" -le "$STOCK_REPEAT" ] || continue
            else
                [ "$rep" -le "$REPEAT" ] || continue
            fi
            local out="$WORK/out-$op-$v-$rep.miff" max=$REPEAT
            [ "$v" = stock ] && max=$STOCK_REPEAT
            printf '  %-16s %-9s run %d/%d ... ' "$label" "$v" "$rep" "$max" >&2
            if run_convert "$v" "$in" "$out" "${opargs[@]}"; then
                times[$v]+=" $ELAPSED"
                printf '%8s s' "$ELAPSED" >&2
                if [ -s "$WORK/convert.log" ] && [ -z "${stderr_seen[$v]:-}" ]; then
                    stderr_seen[$v]=1
                    NOTES+=("$label: $v run $rep succeeded but printed: $(head -n 3 "$WORK/convert.log" | tr '\n' ' ')")
                fi
            else
                if [ "$TIMED_OUT" = 1 ]; then
                    bad[$v]="TIMEOUT"
                    PROBLEMS+=("$label: $v run $rep TIMED OUT after ${STEP_LIMIT}s")
                    printf '!!! TIMED OUT after %s s\n' "$ELAPSED" >&2
                else
                    bad[$v]="FAILED"
                    PROBLEMS+=("$label: $v run $rep FAILED (convert's messages in the progress log)")
                    printf '!!! FAILED after %s s\n' "$ELAPSED" >&2
                fi
                sed 's/^/    | /' "$WORK/convert.log" | tail -n 20 >&2
                local srv
                srv=$(server_of "$v")
                [ -z "$srv" ] || revive_server "$srv"
                continue
            fi
            if [ "$v" = memory ] && [ -z "$ref" ]; then
                ref=$out
                echo "  (reference)" >&2
                continue
            fi
            check_output "$label" "$v" "$rep" "$ref" "$out" \
                '  !!!!!!!! PIXEL MISMATCH vs memory: AE=%s !!!!!!!!'
            case $VERDICT in
                UNCHECKED) [ -n "${bad[$v]}" ] || bad[$v]="UNCHECKED"; continue ;;
                MISMATCH)  bad[$v]="MISMATCH" ;;
            esac
            [ "$KEEP" = 1 ] || rm -f "$out"
        done
        # The tile caches the drop-in opened for this operation: once, after
        # the first timed round (so the probe does not warm anything first).
        if [ "$rep" = 1 ] && [ -n "${PORT_OF[dpc]:-}" ]; then
            printf '  %-16s %-9s -debug cache probe (untimed) ... ' "$label" dpc >&2
            probe_tiles "$label" "$in" "$WORK/probe-$op.miff" "${opargs[@]}"
            TILES_OF[$op]=$PROBE_TILES
            echo "$PROBE_TILES" >&2
            if [ -n "$ref" ] && [ -s "$WORK/probe-$op.miff" ]; then
                local pae
                pae=$(pixel_diff "$ref" "$WORK/probe-$op.miff")
                if [ "$pae" != 0 ]; then
                    PROBLEMS+=("$label: dpc -debug cache probe PIXEL MISMATCH vs memory cache: AE=$pae")
                    echo "  !!!!!!!! probe PIXEL MISMATCH vs memory: AE=$pae !!!!!!!!" >&2
                    bad[dpc]="MISMATCH"
                fi
            fi
            rm -f "$WORK/probe-$op.miff"
        fi
    done

    local -A med=()
    for v in "${VARIANTS[@]}"; do
        case ${bad[$v]} in
            FAILED|TIMEOUT) med[$v]=${bad[$v]} ;;
            *) if [ -z "${times[$v]// /}" ]; then med[$v]=FAILED
               else
                   # shellcheck disable=SC2086  # space-separated numbers
                   med[$v]=$(median ${times[$v]})
               fi ;;
        esac
    done
    [ "$WITH_STOCK" = 1 ] || med[stock]="-"

    local check
    local -a shown=(memory memory-t1 stock dpc dpc-t1)
    [ -z "$BASE_DIR" ] || shown+=(base base-t1)
    for v in "${shown[@]}"; do
        local runs=$REPEAT
        [ "$v" = stock ] && runs=$STOCK_REPEAT
        if [ "$v" = stock ] && [ "$WITH_STOCK" = 0 ]; then
            ROWS+=("$(printf '%-16s %-10s %9s %9s %9s %10s  %s' "$label" "$v" "-" "-" "-" "-" "skipped (--no-stock)")")
            continue
        fi
        case ${bad[$v]} in
            MISMATCH)  check="!!! MISMATCH" ;;
            FAILED)    check="!!! FAILED" ;;
            TIMEOUT)   check="!!! TIMEOUT (>$([ "$v" = stock ] && echo "$STOCK_TIMEOUT" || echo "$STEP_TIMEOUT")s)" ;;
            UNCHECKED) check="!!! UNCHECKED" ;;
            *)         if [ "$v" = memory ]; then check="reference"; else check="identical (AE 0)"; fi ;;
        esac
        [ "$v" = memory ] && [ "$runs" -gt 1 ] && [ -z "${bad[$v]}" ] && check="reference (runs 2-$runs AE 0)"
        local same=memory
        case $v in *-t1) same=memory-t1 ;; esac
        case $v in
            dpc) BASE_ROWS+=("$(printf '%-16s %-10s %9s %9s %9s' "$label" dpc "${med[dpc]}" "${med[base]:-}" "$(ratio "${med[dpc]}" "${med[base]:-}")")") ;;
            dpc-t1) BASE_ROWS+=("$(printf '%-16s %-10s %9s %9s %9s' "$label" dpc-t1 "${med[dpc-t1]}" "${med[base-t1]:-}" "$(ratio "${med[dpc-t1]}" "${med[base-t1]:-}")")") ;;
        esac
        local vs_same="-" st="-"
        [ "$same" != memory ] && vs_same=$(ratio "${med[$v]}" "${med[$same]}")
        [ "$v" = stock ] || st=$(ratio "${med[stock]}" "${med[$v]}")
        ROWS+=("$(printf '%-16s %-10s %9s %9s %9s %10s  %s' "$label" "$v" "${med[$v]}" \
            "$(ratio "${med[$v]}" "${med[memory]}")" "$vs_same" "$st" "$check")")
    done
    ROWS+=("")
}

table_header() {
    local h
    h=$(printf '%-16s %-10s %9s %9s %9s %10s  %s' op variant seconds "/memory" "/mem-t1" "stock/this" "pixels vs memory")
    echo "$h"
    echo "${h//?/-}"
}

# ----------------------------------------------------------- streaming
# stream_bench: native-check stream against one and against three servers,
# preallocated and with default memory, STREAM_REPEAT times, interleaved;
# fills SW and SR (MB/s lists) keyed "MODE/HOSTS".
stream_bench() {
    declare -gA SW=() SR=() SBAD=()
    local i rep n mode key out rc
    local -a modes
    for i in "${!STREAM_PORTS[@]}"; do
        start_server "stream$i"
        start_server "fresh$i"
        [ -z "$BASE_DIR" ] || start_server "basestream$i"
    done
    for rep in $(seq 1 "$STREAM_REPEAT"); do
        sample_load
        modes=(prealloc default)
        if [ -n "$BASE_DIR" ]; then
            # the baseline before this tree's on even rounds
            if [ $((rep % 2)) = 0 ]; then modes=(base "${modes[@]}"); else modes+=(base); fi
        fi
        for mode in "${modes[@]}"; do
            for n in 1 3; do
                local -a hosts=()
                for i in $(seq 0 $((n - 1))); do
                    if [ "$mode" = prealloc ]; then
                        hosts+=("127.0.0.1:${STREAM_PORTS[$i]}")
                    elif [ "$mode" = base ]; then
                        hosts+=("127.0.0.1:${BASE_STREAM_PORTS[$i]}")
                    else
                        hosts+=("127.0.0.1:${FRESH_PORTS[$i]}")
                    fi
                done
                key=$mode/$n
                printf '  native-check stream %s MiB, %d host(s), %s, run %d/%d ... ' \
                    "$STREAM_MIB" "$n" "$mode" "$rep" "$STREAM_REPEAT" >&2
                rc=0
                local nc=$NC_BIN
                [ "$mode" = base ] && nc=$BASE_NC_BIN
                out=$(timeout -k 10 "$STEP_TIMEOUT" "$nc" stream "$SECRET" "$STREAM_MIB" "${hosts[@]}" 2>&1) || rc=$?
                if [ $rc -ne 0 ] || ! [[ $out =~ write\ ([0-9.]+)\ MB/s,\ read\ ([0-9.]+)\ MB/s ]]; then
                    SBAD[$key]=1
                    PROBLEMS+=("native-check stream, $n host(s), $mode, run $rep FAILED (status $rc): $(echo "$out" | tr '\n' ' ')")
                    echo "!!! FAILED (status $rc): $out" >&2
                    for i in "${!STREAM_PORTS[@]}"; do
                        revive_server "stream$i"
                        revive_server "fresh$i"
                        [ -z "$BASE_DIR" ] || revive_server "basestream$i"
                    done
                    continue
                fi
                SW[$key]+=" ${BASH_REMATCH[1]}"
                SR[$key]+=" ${BASH_REMATCH[2]}"
                echo "write ${BASH_REMATCH[1]} MB/s, read ${BASH_REMATCH[2]} MB/s" >&2
            done
        done
    done
}

stream_table() {
    local n w r mode key
    local -a modes=(prealloc default)
    local -A mw=() mr=()
    [ -z "$BASE_DIR" ] || modes+=(base)
    printf '%-7s %-22s %11s %11s   %s\n' hosts "server memory" "write MB/s" "read MB/s" "all runs (write/read MB/s)"
    printf '%-7s %-22s %11s %11s   %s\n' ------- ---------------------- ----------- ----------- --------------------------
    for mode in "${modes[@]}"; do
        for n in 1 3; do
            key=$mode/$n
            if [ -n "${SBAD[$key]:-}" ] || [ -z "${SW[$key]:-}" ]; then
                w=FAILED; r=FAILED
            else
                # shellcheck disable=SC2086
                w=$(median ${SW[$key]} | awk '{ printf "%.0f", $1 }')
                # shellcheck disable=SC2086
                r=$(median ${SR[$key]} | awk '{ printf "%.0f", $1 }')
            fi
            mw[$key]=$w mr[$key]=$r
            local all="" a b
            # shellcheck disable=SC2206
            local -a wl=(${SW[$key]:-}) rl=(${SR[$key]:-})
            for a in "${!wl[@]}"; do b=${rl[$a]}; all+="${wl[$a]}/$b  "; done
            printf '%-7s %-22s %11s %11s   %s\n' "$n" \
                "$(case $mode in prealloc) echo "--preallocate" ;; base) echo "baseline, --preallocate" ;;
                   *) echo "default (warm reuse)" ;; esac)" \
                "$w" "$r" "${all%  }"
        done
    done
    [ -n "$BASE_DIR" ] || return 0
    echo "this tree's MB/s over the baseline's (both --preallocate; above 1 = this tree faster):"
    for n in 1 3; do
        printf '  %s host(s): write %s, read %s\n' "$n" \
            "$(ratio "${mw[prealloc/$n]}" "${mw[base/$n]}")" "$(ratio "${mr[prealloc/$n]}" "${mr[base/$n]}")"
    done
}

# -------------------------------------------------------------------- main
main() {
    parse_args "$@"
    enter_private_netns "$@"
    check_private_netns

    check_tools
    command -v ldd > /dev/null || die "ldd is needed"

    start_work magick-dpc-dropin 20    # cleanup: servers get 2 s after SIGTERM
    find_artifacts
    write_policy                       # sets SECRET (native-check needs it too)

    VARIANTS=(memory memory-t1)
    [ "$WITH_STOCK" = 1 ] && VARIANTS+=(stock)
    VARIANTS+=(dpc dpc-t1)
    [ -z "$BASE_DIR" ] || VARIANTS+=(base base-t1)

    local load_start
    load_start=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "magick-dpc drop-in libMagickCore vs memory and the stock distributed cache"
    echo "date:        $(date '+%Y-%m-%d %H:%M:%S %Z')"
    echo "host:        $(uname -srm), nproc $(nproc), load average $load_start (at start)"
    echo "convert:     $("$CONVERT" -version | head -n 1)"
    echo "magick-dpc:  $("$DPC_BIN" --version 2>&1 | head -n 1) ($DPC_PATH)"
    echo "drop-in:     $LIB_PATH/libMagickCore-6.Q16.so.6 ($(stat -L -c '%s bytes, %y' "$LIB_PATH/libMagickCore-6.Q16.so.6" | cut -d. -f1))"
    [ "$WITH_STREAM" = 1 ] && echo "native-check: $NC_PATH"
    echo "network:     private namespace, interfaces: $NETNS_IFACES"
    echo "input:       $CONVERT -seed 1 -size $SIZE plasma:fractal in.png"
    echo "runs:        median of $REPEAT (memory, drop-in), of $STOCK_REPEAT (stock$(
        [ "$WITH_STOCK" = 1 ] || echo ", skipped")); wall-clock seconds;"
    echo "             timeout ${STEP_TIMEOUT}s per convert, ${STOCK_TIMEOUT}s on the stock server"
    echo "variants:    memory    = convert in.png OP out.miff"
    echo "             memory-t1 = convert -limit thread 1 in.png OP out.miff"
    echo "             stock     = convert -define registry:cache:hosts=127.0.0.1:$STOCK_PORT -limit memory 0"
    echo "                         -limit map 0 -limit disk 0 ...  (server: convert -distribute-cache $STOCK_PORT)"
    echo "             dpc       = LD_LIBRARY_PATH=<drop-in> convert -define cache:hosts=127.0.0.1:$DPC_PORT"
    echo "                         -define cache:tiers=distributed ...  (server: magick-dpc serve -q)"
    echo "             dpc-t1    = dpc with -limit thread 1"
    [ -z "$BASE_DIR" ] ||
        echo "             base, base-t1 = dpc, dpc-t1 with $BASE_DIR's drop-in and server (--baseline)"

    local v
    [ "$WITH_STOCK" = 1 ] && start_server stock
    start_server dpc
    [ -z "$BASE_DIR" ] || start_server base

    env -u LD_LIBRARY_PATH "$CONVERT" -seed 1 -size "$SIZE" plasma:fractal "$WORK/in.png" ||
        die "cannot generate the $SIZE input"

    # The tile cache: the adapter defaults to 1/8 of each pixel cache. Pass
    # cache:dpc-tile-cache = 1/8 of W*H*8 bytes explicitly only if the
    # default for the input image turns out larger than that.
    local want=$((IMG_W * IMG_H)) got
    probe_tiles "tile-cache check" "$WORK/in.png" "$WORK/probe.miff"
    rm -f "$WORK/probe.miff"
    got=$(echo "$PROBE_TILES" | tr ' ' '\n' | sed -n "s/^${IMG_W}x${IMG_H}://p" | head -n 1)
    [ -n "$got" ] || die "could not read the tile cache size from -debug cache: $PROBE_TILES"
    if [ "$got" -gt "$want" ]; then
        TILE_DEFINE=(-define "cache:dpc-tile-cache=$want")
        echo "tile cache:  the default for the ${SIZE} input is $got bytes > 1/8 of ${IMG_W}*${IMG_H}*8 = $want;"
        echo "             passing -define cache:dpc-tile-cache=$want"
    else
        echo "tile cache:  default (1/8 of each pixel cache): $got bytes for the ${SIZE} input"
        echo "             = 1/8 of ${IMG_W}*${IMG_H}*8 = $want, so no cache:dpc-tile-cache define is passed"
    fi

    declare -gA TILES_OF=()
    ROWS=()
    BASE_ROWS=()
    echo "progress (stderr):" >&2
    local o
    for o in "${OP_LIST[@]}"; do
        bench_case "$o"
    done

    if [ "$WITH_STREAM" = 1 ]; then
        stream_bench
    fi
    sample_load

    echo
    echo "pixel-cache operations on $SIZE (seconds = median wall clock; /memory and"
    echo "/mem-t1 = this row's time over memory's / memory-t1's; stock/this = stock's"
    echo "time over this row's):"
    echo
    table_header
    printf '%s\n' "${ROWS[@]}"
    if [ -n "$BASE_DIR" ]; then
        echo "this tree against the baseline ($BASE_DIR, $(git -C "$BASE_DIR" log -1 --format=%h 2>/dev/null || echo '?')):"
        echo
        printf '%-16s %-10s %9s %9s %9s\n' op variant this base this/base
        printf '%-16s %-10s %9s %9s %9s\n' ---------------- ---------- --------- --------- ---------
        printf '%s\n' "${BASE_ROWS[@]}"
        echo
    fi
    echo "tile caches the drop-in opened (from one extra untimed -debug cache run; WxH:bytes):"
    for o in "${OP_LIST[@]}"; do
        printf '  %-16s %s\n' "${OP_ARGS[$o]}" "${TILES_OF[$o]:-?}"
    done
    if [ "$WITH_STREAM" = 1 ]; then
        echo
        echo "native streaming: native-check stream SECRET $STREAM_MIB HOST:PORT... ($STREAM_MIB MiB written"
        echo "then read, 4096-pixel rows, 256x64 tiles, 64 MiB tile cache), median of $STREAM_REPEAT:"
        echo
        stream_table
    fi
    echo
    local max
    max=$(printf '%s\n' "${LOADS[@]}" | sort -g | tail -n 1)
    echo "load average: $load_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end;"
    echo "              1-minute samples during the run: ${LOADS[*]} (max $max)"

    # Anything the servers logged (they run -q: errors and warnings only).
    local f any=0
    for f in "$WORK"/stock.log "$WORK"/dpc.log "$WORK"/base.log "$WORK"/stream*.log "$WORK"/fresh*.log "$WORK"/basestream*.log; do
        [ -s "$f" ] || continue
        [ $any = 0 ] && echo && echo "server logs (not empty):"
        any=1
        echo "  $(basename "$f" .log): $(wc -l < "$f") line(s); last ones:"
        tail -n 10 "$f" | sed 's/^/    | /'
    done
    if [ ${#NOTES[@]} -gt 0 ]; then
        echo
        echo "notes (runs that succeeded but printed something):"
        printf '  %s\n' "${NOTES[@]}"
    fi
    echo
    report_problems "(stderr)"
}

main "$@"
