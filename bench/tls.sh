#!/usr/bin/env bash
# tls.sh: what TLS costs the drop-in libMagickCore.  Times the system
# /usr/bin/convert on one 2000x1500 image, side by side in one run:
#   memory  its ordinary memory pixel cache,
#   tls     the drop-in on magick-dpc over TLS 1.3 (the default: PSK from
#           the shared secret, TLS_AES_128_GCM_SHA256),
#   plain   the same drop-in and server with cache:dpc-tls=off,
# interleaved run by run, every output checked against memory's; then
# streams 1 GiB through the native client (native-check stream) with and
# without TLS.  Prints medians and the ratios tls/plain and tls/memory.
# One server (--tls both) takes both kinds of client.  Runs inside a
# private network namespace that has only loopback, as bench/dropin.sh.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$SELF")/lib.sh"

COMPARE_CMD=(env -u LD_LIBRARY_PATH "$COMPARE")
DPC_PORT=6711
STREAM_PORT=6712
declare -A OP_ARGS=([blur]="-blur 0x2" [resize]="-resize 50%"
                    [rotate]="-rotate 33" [distort]="-distort SRT 30")
VARIANTS=(memory tls plain)

usage() {
    cat <<EOF
Usage: bench/tls.sh [OPTIONS]

Times $CONVERT with its memory cache and with the drop-in libMagickCore on
magick-dpc over TLS and in plaintext, interleaved; then native-check
streams through the native client with and without TLS.

Options:
  -n, --repeat N        runs per case and variant, median [3]
  -s, --size WxH        input size [2000x1500]
  -o, --ops LIST        blur, resize, rotate, distort [all four]
      --no-stream       skip streaming
      --stream-mib N    MiB per stream run [1024]
      --stream-repeat N stream runs per mode, median [3]
  -t, --timeout SEC     limit on one convert or stream run [600]
  -k, --keep            keep the work directory
  -h, --help            this message

Environment: MAGICK_DPC, DROPIN_LIB, NATIVE_CHECK as for bench/dropin.sh.
Exit status: 0 if every run succeeded and matched memory, 1 otherwise.
EOF
}

REPEAT=3
SIZE=2000x1500
OPS=blur,resize,rotate,distort
WITH_STREAM=1
STREAM_MIB=1024
STREAM_REPEAT=3
STEP_TIMEOUT=600
KEEP=0
ORIG_ARGS=("$@")
while [ $# -gt 0 ]; do
    case $1 in
        -n|--repeat)     [ $# -ge 2 ] || usage_error "$1 needs a value"; REPEAT=$2; shift ;;
        -s|--size)       [ $# -ge 2 ] || usage_error "$1 needs a value"; SIZE=$2; shift ;;
        -o|--ops)        [ $# -ge 2 ] || usage_error "$1 needs a value"; OPS=$2; shift ;;
        --no-stream)     WITH_STREAM=0 ;;
        --stream-mib)    [ $# -ge 2 ] || usage_error "$1 needs a value"; STREAM_MIB=$2; shift ;;
        --stream-repeat) [ $# -ge 2 ] || usage_error "$1 needs a value"; STREAM_REPEAT=$2; shift ;;
        -t|--timeout)    [ $# -ge 2 ] || usage_error "$1 needs a value"; STEP_TIMEOUT=$2; shift ;;
        -k|--keep)       KEEP=1 ;;
        -h|--help)       usage; exit 0 ;;
        *)               usage_error "unknown argument: $1" ;;
    esac
    shift
done
need_positive_ints REPEAT STREAM_MIB STREAM_REPEAT STEP_TIMEOUT
[[ $SIZE =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || usage_error "bad size: $SIZE"
IFS=, read -ra OP_LIST <<< "$OPS"
for o in "${OP_LIST[@]}"; do
    [ -n "${OP_ARGS[$o]:-}" ] || usage_error "unknown operation: $o"
done

enter_private_netns "${ORIG_ARGS[@]}"
check_private_netns
check_tools

DPC_BIN=${MAGICK_DPC:-$TOP_SRCDIR/_install/bin/magick-dpc}
LIB_DIR=${DROPIN_LIB:-$TOP_SRCDIR/_install/lib}
NC_BIN=${NATIVE_CHECK:-$TOP_SRCDIR/_build/tests/tools/native-check}
wait_artifact "magick-dpc" "$DPC_BIN"
wait_artifact "drop-in libMagickCore" "$LIB_DIR/libMagickCore-6.Q16.so.6"
[ $WITH_STREAM = 0 ] || wait_artifact "native-check" "$NC_BIN"

server_cmd() {
    case $1 in
        dpc)    SERVER_PORT=$DPC_PORT
                SERVER_CMD=("$DPC_BIN" serve -q --listen "127.0.0.1:$SERVER_PORT"
                            --socket none --tls both) ;;
        stream) SERVER_PORT=$STREAM_PORT
                SERVER_CMD=("$DPC_BIN" serve -q --listen "127.0.0.1:$SERVER_PORT"
                            --socket none --tls both --preallocate
                            --memory "$((STREAM_MIB + 128))MiB") ;;
        *) die "internal error: no server $1" ;;
    esac
}

# tls_of VARIANT: the cache:dpc-tls (and NATIVE_CHECK_TLS) value.
tls_of() {
    if [ "$1" = tls ]; then echo on; else echo off; fi
}

convert_cmd() {
    STEP_LIMIT=$STEP_TIMEOUT
    case $1 in
        memory) CMD=(env -u LD_LIBRARY_PATH "$CONVERT") ;;
        tls|plain)
            CMD=(env "LD_LIBRARY_PATH=$LIB_DIR" "$CONVERT"
                 -define "cache:hosts=127.0.0.1:${PORT_OF[dpc]}"
                 -define cache:tiers=distributed
                 -define "cache:dpc-tls=$(tls_of "$1")") ;;
        *) die "internal error: no variant $1" ;;
    esac
}

start_work magick-dpc-bench-tls 50
write_policy
start_server dpc
echo "input: $SIZE plasma; $REPEAT runs per case, interleaved" >&2
env -u LD_LIBRARY_PATH "$CONVERT" -seed 42 -size "$SIZE" plasma:fractal "$WORK/in.miff"

declare -A TIMES=()
for op in "${OP_LIST[@]}"; do
    read -ra oparg <<< "${OP_ARGS[$op]}"
    for ((rep = 1; rep <= REPEAT; rep++)); do
        for v in "${VARIANTS[@]}"; do
            printf '  %-8s %-6s run %d/%d ... ' "$op" "$v" "$rep" "$REPEAT" >&2
            out=$WORK/$op-$v.miff
            if run_convert "$v" "$WORK/in.miff" "$out" "${oparg[@]}"; then
                printf '%s s' "$ELAPSED" >&2
                TIMES[$op/$v]+=" $ELAPSED"
                if [ "$v" = memory ]; then
                    cp "$out" "$WORK/$op-ref.miff"
                    echo >&2
                else
                    check_output "$op" "$v" "$rep" "$WORK/$op-ref.miff" "$out" \
                        "  PIXEL MISMATCH: AE=%s"
                fi
            else
                echo "FAILED: $(tr '\n' ' ' < "$WORK/convert.log")" >&2
                PROBLEMS+=("$op: $v run $rep FAILED: $(tr '\n' ' ' < "$WORK/convert.log")")
                revive_server dpc
            fi
        done
    done
done

declare -A SW=() SR=()
if [ $WITH_STREAM = 1 ]; then
    start_server stream
    for ((rep = 1; rep <= STREAM_REPEAT; rep++)); do
        for mode in tls plain; do
            printf '  native-check stream %s MiB, %s, run %d/%d ... ' \
                "$STREAM_MIB" "$mode" "$rep" "$STREAM_REPEAT" >&2
            rc=0
            out=$(NATIVE_CHECK_TLS=$(tls_of "$mode") \
                timeout -k 10 "$STEP_TIMEOUT" "$NC_BIN" stream "$SECRET" \
                "$STREAM_MIB" "127.0.0.1:$STREAM_PORT" 2>&1) || rc=$?
            if [ $rc -ne 0 ] || ! [[ $out =~ write\ ([0-9.]+)\ MB/s,\ read\ ([0-9.]+)\ MB/s ]]; then
                echo "FAILED (status $rc): $out" >&2
                PROBLEMS+=("stream $mode run $rep FAILED (status $rc): $(echo "$out" | tr '\n' ' ')")
                revive_server stream
                continue
            fi
            SW[$mode]+=" ${BASH_REMATCH[1]}"
            SR[$mode]+=" ${BASH_REMATCH[2]}"
            echo "write ${BASH_REMATCH[1]} MB/s, read ${BASH_REMATCH[2]} MB/s" >&2
        done
    done
fi

# med KEY: the median of TIMES[KEY], or "-".
med() {
    local v=${TIMES[$1]:-}
    # shellcheck disable=SC2086
    if [ -n "$v" ]; then median $v; else echo -; fi
}

# smed MAP MODE: the median of SW or SR for MODE, or "-".
smed() {
    local -n map=$1
    local v=${map[$2]:-}
    # shellcheck disable=SC2086
    if [ -n "$v" ]; then median $v; else echo -; fi
}

echo
echo "convert on a $SIZE image, seconds (median of $REPEAT), drop-in on magick-dpc --tls both"
printf '%-22s %8s %8s %8s %10s %10s %12s\n' operation memory tls plain \
    tls/plain tls/memory plain/memory
for op in "${OP_LIST[@]}"; do
    m=$(med "$op/memory")
    t=$(med "$op/tls")
    p=$(med "$op/plain")
    printf '%-22s %8s %8s %8s %10s %10s %12s\n' "${OP_ARGS[$op]}" "$m" "$t" "$p" \
        "$(ratio "$t" "$p")" "$(ratio "$t" "$m")" "$(ratio "$p" "$m")"
done
if [ $WITH_STREAM = 1 ]; then
    echo
    echo "native-check stream $STREAM_MIB MiB to one preallocated server, MB/s (median of $STREAM_REPEAT)"
    printf '%-8s %10s %10s\n' mode write read
    for mode in tls plain; do
        printf '%-8s %10s %10s\n' "$mode" "$(smed SW "$mode")" "$(smed SR "$mode")"
    done
    printf 'tls/plain: write %s, read %s\n' \
        "$(ratio "$(smed SW tls)" "$(smed SW plain)")" \
        "$(ratio "$(smed SR tls)" "$(smed SR plain)")"
fi
echo
report_problems "above (stderr)"
