#!/usr/bin/env bash
# replicas.sh: what cache:dpc-replicas=2 costs the drop-in libMagickCore.
# Times the system /usr/bin/convert on one 2000x1500 image, side by side in
# one run:
#   memory  its ordinary memory pixel cache,
#   r1      the drop-in striping over three magick-dpc servers, one copy of
#           each tile,
#   r2      the same with two copies of each tile (every write to two hosts),
# interleaved run by run, a 1 MiB tile cache so pixels really travel, every
# output checked against memory's.  Prints medians and the ratios r2/r1 and
# r1/memory.  Runs inside a private network namespace that has only
# loopback, as bench/dropin.sh.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$SELF")/lib.sh"

COMPARE_CMD=(env -u LD_LIBRARY_PATH "$COMPARE")
PORTS=(6721 6722 6723)
declare -A OP_ARGS=([blur]="-blur 0x2" [resize]="-resize 50%"
                    [rotate]="-rotate 33" [distort]="-distort SRT 30")
VARIANTS=(memory r1 r2)

usage() {
    cat <<EOF
Usage: bench/replicas.sh [OPTIONS]

Times $CONVERT with its memory cache and with the drop-in libMagickCore on
three magick-dpc servers with one and with two copies of each tile,
interleaved.

Options:
  -n, --repeat N        runs per case and variant, median [3]
  -s, --size WxH        input size [2000x1500]
  -o, --ops LIST        blur, resize, rotate, distort [blur]
  -t, --timeout SEC     limit on one convert [600]
  -k, --keep            keep the work directory
  -h, --help            this message

Environment: MAGICK_DPC (the server), DROPIN_LIB (the drop-in's lib
directory), as for bench/dropin.sh.
Exit status: 0 if every run succeeded and matched memory, 1 otherwise.
EOF
}

REPEAT=3
SIZE=2000x1500
OPS=blur
STEP_TIMEOUT=600
KEEP=0
ORIG_ARGS=("$@")
while [ $# -gt 0 ]; do
    case $1 in
        -n|--repeat)  [ $# -ge 2 ] || usage_error "$1 needs a value"; REPEAT=$2; shift ;;
        -s|--size)    [ $# -ge 2 ] || usage_error "$1 needs a value"; SIZE=$2; shift ;;
        -o|--ops)     [ $# -ge 2 ] || usage_error "$1 needs a value"; OPS=$2; shift ;;
        -t|--timeout) [ $# -ge 2 ] || usage_error "$1 needs a value"; STEP_TIMEOUT=$2; shift ;;
        -k|--keep)    KEEP=1 ;;
        -h|--help)    usage; exit 0 ;;
        *)            usage_error "unknown argument: $1" ;;
    esac
    shift
done
need_positive_ints REPEAT STEP_TIMEOUT
[[ $SIZE =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || usage_error "bad size: $SIZE"
IFS=, read -ra OP_LIST <<< "$OPS"
for o in "${OP_LIST[@]}"; do
    [ -n "${OP_ARGS[$o]:-}" ] || usage_error "unknown operation: $o"
done

: "${MAGICK_DPC:=$TOP_SRCDIR/_install/bin/magick-dpc}"
: "${DROPIN_LIB:=$TOP_SRCDIR/_install/lib}"
[ -x "$MAGICK_DPC" ] || die "no server at $MAGICK_DPC (./quickstart setup)"
[ -e "$DROPIN_LIB/libMagickCore-6.Q16.so.6" ] || die "no drop-in in $DROPIN_LIB"
enter_private_netns "${ORIG_ARGS[@]}"
check_private_netns
check_tools

# server_cmd NAME: server s1, s2 or s3 on its fixed loopback port.
server_cmd() {
    SERVER_PORT=${PORTS[${1#s} - 1]}
    SERVER_CMD=("$MAGICK_DPC" serve --listen "127.0.0.1:$SERVER_PORT"
        --socket none)
}

# convert_cmd VARIANT: memory, or the drop-in with r1 / r2 copies.
convert_cmd() {
    STEP_LIMIT=$STEP_TIMEOUT
    if [ "$1" = memory ]; then
        CMD=(env -u LD_LIBRARY_PATH "$CONVERT")
        return
    fi
    CMD=(env LD_LIBRARY_PATH="$DROPIN_LIB" "$CONVERT"
        -define cache:hosts="127.0.0.1:${PORTS[0]},127.0.0.1:${PORTS[1]},127.0.0.1:${PORTS[2]}"
        -define cache:tiers=distributed -define cache:dpc-tile-cache=1MiB
        -define cache:dpc-replicas="${1#r}")
}

start_work magick-dpc-bench-replicas 30
write_policy
for s in s1 s2 s3; do
    start_server "$s"
done
env -u LD_LIBRARY_PATH "$CONVERT" -seed 5 -size "$SIZE" plasma:fractal \
    "$WORK/in.miff"

declare -A TIMES=()
for op in "${OP_LIST[@]}"; do
    # shellcheck disable=SC2206  # an op is several words
    args=(${OP_ARGS[$op]})
    for ((rep = 1; rep <= REPEAT; rep++)); do
        # alternate who goes first
        order=("${VARIANTS[@]}")
        [ $((rep % 2)) = 0 ] && order=(memory r2 r1)
        for v in "${order[@]}"; do
            out=$WORK/$op-$v.miff
            if run_convert "$v" "$WORK/in.miff" "$out" "${args[@]}"; then
                echo "$op $v run $rep: ${ELAPSED}s" >&2
                TIMES[$op,$v]+="$ELAPSED "
                [ "$v" = memory ] && continue
                check_output "$op" "$v" "$rep" "$WORK/$op-memory.miff" \
                    "$out" "  PIXEL MISMATCH: AE %s"
            else
                echo "$op $v run $rep: FAILED" >&2
                sed 's/^/  | /' "$WORK/convert.log" >&2
                PROBLEMS+=("$op: $v run $rep failed")
            fi
        done
        for s in s1 s2 s3; do
            revive_server "$s"
        done
    done
done

printf '\n%s, %s, 3 servers on loopback, 1 MiB tile cache, median of %s\n' \
    "$SIZE" "${OPS}" "$REPEAT"
printf '%-10s %10s %10s %10s %10s %12s\n' op memory r1 r2 r2/r1 r1/memory
for op in "${OP_LIST[@]}"; do
    # shellcheck disable=SC2086  # the times are words
    m=$(median ${TIMES[$op,memory]:-}) r1=$(median ${TIMES[$op,r1]:-})
    # shellcheck disable=SC2086
    r2=$(median ${TIMES[$op,r2]:-})
    printf '%-10s %9ss %9ss %9ss %10s %12s\n' "$op" "$m" "$r1" "$r2" \
        "$(ratio "$r2" "$r1")" "$(ratio "$r1" "$m")"
done
report_problems "above"
