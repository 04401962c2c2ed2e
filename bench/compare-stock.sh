#!/usr/bin/env bash
# compare-stock.sh: time the same stock /usr/bin/convert with
#   (a) its ordinary memory pixel cache,
#   (b) its cache forced onto ImageMagick's own server (convert -distribute-cache),
#   (c) its cache forced onto magick-dpc,
# and check that every output is pixel-identical to (a)'s.
#
# ImageMagick's stock server binds 0.0.0.0, so the whole run (servers and
# clients) happens inside a private network namespace whose only interface
# is loopback: the script re-executes itself under `unshare --net`.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$SELF")/lib.sh"      # LC_ALL=C, CONVERT, die, the namespace, the servers ...

COMPARE_CMD=("$COMPARE")

# Fixed ports are safe: the namespace is new, so nothing else can hold them.
STOCK_PORT=6668                    # the stock server's usual port
DPC_PORT=6671
DPC_BP0_PORT=6672

# Operations by name; the table says exactly what convert is asked to do.
declare -A OP_ARGS=([blur]="-blur 0x2" [resize]="-resize 50%")

usage() {
    cat <<EOF
Usage: bench/compare-stock.sh [OPTIONS]

Times the stock $CONVERT with its memory cache, with its cache on
ImageMagick's own distributed-cache server (convert -distribute-cache) and
with its cache on magick-dpc, and checks every output against the memory
cache's with compare -metric AE. Everything runs inside a private network
namespace (unshare --net) that has only loopback, because the stock server
listens on all interfaces.

Options:
  -n, --repeat N        run each measurement N times, report the median
                        [default 1; the stock server is slow: 300x200 blur
                        takes ~30 s, 600x400 blur ~2 min]
  -s, --sizes LIST      comma-separated WxH input sizes [300x200,600x400]
  -o, --ops LIST        comma-separated operations: blur (-blur 0x2),
                        resize (-resize 50%) [blur,resize]
  -b, --busy-poll-0     also time magick-dpc with --busy-poll 0 (shows
                        what its default busy polling buys)
      --no-stock        skip the stock server (quick runs; no stock ratio)
  -t, --timeout SEC     limit on any one convert [600]
  -k, --keep            keep the work directory (inputs, outputs, logs)
  -h, --help            this message

Environment:
  MAGICK_DPC            the server binary [\$top/_install/bin/magick-dpc,
                        else \$top/_build/utilities/magick-dpc]
  TMPDIR                where the work directory goes [/tmp]

Exit status: 0 if every convert succeeded and every output matched,
1 otherwise, 2 on bad usage.
EOF
}

# ---------------------------------------------------------------- options
REPEAT=1
SIZES=300x200,600x400
OPS=blur,resize
BUSY_POLL_0=0
WITH_STOCK=1
STEP_TIMEOUT=600
KEEP=0

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            -n|--repeat)   [ $# -ge 2 ] || usage_error "$1 needs a value"; REPEAT=$2; shift ;;
            --repeat=*)    REPEAT=${1#*=} ;;
            -s|--sizes)    [ $# -ge 2 ] || usage_error "$1 needs a value"; SIZES=$2; shift ;;
            --sizes=*)     SIZES=${1#*=} ;;
            -o|--ops)      [ $# -ge 2 ] || usage_error "$1 needs a value"; OPS=$2; shift ;;
            --ops=*)       OPS=${1#*=} ;;
            -b|--busy-poll-0) BUSY_POLL_0=1 ;;
            --no-stock)    WITH_STOCK=0 ;;
            -t|--timeout)  [ $# -ge 2 ] || usage_error "$1 needs a value"; STEP_TIMEOUT=$2; shift ;;
            --timeout=*)   STEP_TIMEOUT=${1#*=} ;;
            -k|--keep)     KEEP=1 ;;
            -h|--help)     usage; exit 0 ;;
            *)             usage_error "unknown argument: $1" ;;
        esac
        shift
    done
    need_positive_ints REPEAT STEP_TIMEOUT
    local s o
    IFS=, read -ra SIZE_LIST <<< "$SIZES"
    IFS=, read -ra OP_LIST <<< "$OPS"
    [ ${#SIZE_LIST[@]} -gt 0 ] || usage_error "--sizes is empty"
    [ ${#OP_LIST[@]} -gt 0 ] || usage_error "--ops is empty"
    for s in "${SIZE_LIST[@]}"; do
        [[ $s =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || usage_error "bad size: $s (want WxH)"
    done
    for o in "${OP_LIST[@]}"; do
        [ -n "${OP_ARGS[$o]+set}" ] || usage_error "unknown op: $o (have: ${!OP_ARGS[*]})"
    done
}

# ------------------------------------------------------------ the servers
# server_cmd VARIANT: the server behind VARIANT and its fixed port, for
# start_server (lib.sh).
server_cmd() {
    case $1 in
        stock)
            SERVER_PORT=$STOCK_PORT
            SERVER_CMD=("$CONVERT" -distribute-cache "$SERVER_PORT") ;;
        dpc)
            SERVER_PORT=$DPC_PORT
            SERVER_CMD=("$DPC_BIN" serve --listen "127.0.0.1:$SERVER_PORT" -q) ;;
        dpc-bp0)
            SERVER_PORT=$DPC_BP0_PORT
            SERVER_CMD=("$DPC_BIN" serve --listen "127.0.0.1:$SERVER_PORT" -q
                        --busy-poll 0) ;;
        *) die "internal error: no server for $1" ;;
    esac
}

# ----------------------------------------------------------- measurements
# convert_cmd VARIANT: sets CMD to the convert invocation (without the
# input, operation and output) and STEP_LIMIT to its timeout, for run_convert
# (lib.sh). Server variants force the cache onto the server the stock way:
# no memory, map or disk allowed.
convert_cmd() {
    STEP_LIMIT=$STEP_TIMEOUT
    CMD=("$CONVERT")
    if [ "$1" != memory ]; then
        CMD+=(-define "registry:cache:hosts=127.0.0.1:${PORT_OF[$1]}"
              -limit memory 0 -limit map 0 -limit disk 0)
    fi
}

# bench_case SIZE OP: all variants, REPEAT times, interleaved so slow drift
# (thermal, other load) hits every variant alike; prints the table row.
bench_case() {
    local size=$1 op=$2 rep v
    local in="$WORK/in-$size.png" ref=
    local -a opargs
    read -ra opargs <<< "${OP_ARGS[$op]}"
    local -A times=() bad=()
    for v in "${VARIANTS[@]}"; do times[$v]=""; bad[$v]=""; done

    for rep in $(seq 1 "$REPEAT"); do
        for v in "${VARIANTS[@]}"; do
            local out="$WORK/out-$size-$op-$v-$rep.png"
            printf '  %-8s %-7s %-8s run %d/%d ... ' "$size" "$op" "$v" "$rep" "$REPEAT" >&2
            if run_convert "$v" "$in" "$out" "${opargs[@]}"; then
                times[$v]+=" $ELAPSED"
                printf '%s s' "$ELAPSED" >&2
            else
                bad[$v]="FAILED"
                PROBLEMS+=("$size ${OP_ARGS[$op]}: $v run $rep FAILED (convert exit status, see above)")
                printf '!!! FAILED after %s s\n' "$ELAPSED" >&2
                sed 's/^/    | /' "$WORK/convert.log" >&2
                [ "$v" = memory ] || revive_server "$v"
                continue
            fi
            if [ "$v" = memory ]; then
                [ -n "$ref" ] || ref=$out
                echo >&2
                continue
            fi
            check_output "$size ${OP_ARGS[$op]}" "$v" "$rep" "$ref" "$out" \
                '  !!! PIXEL MISMATCH: AE=%s'
            case $VERDICT in
                UNCHECKED) bad[$v]=${bad[$v]:-"UNCHECKED"} ;;
                MISMATCH)  bad[$v]="MISMATCH" ;;
            esac
        done
    done

    # Medians; a variant with any failed run gets FAIL rather than a
    # median over fewer runs than the others.
    local -A med=()
    for v in "${VARIANTS[@]}"; do
        if [ "${bad[$v]}" = FAILED ] || [ -z "${times[$v]// /}" ]; then
            med[$v]=FAIL
        else
            # shellcheck disable=SC2086  # the list is space-separated numbers
            med[$v]=$(median ${times[$v]})
        fi
    done

    local check="identical" v2
    for v2 in "${VARIANTS[@]}"; do
        [ "$v2" = memory ] && continue
        case ${bad[$v2]} in
            MISMATCH)  check="!!! MISMATCH ($v2)"; break ;;
            FAILED)    check="!!! FAILED ($v2)"; break ;;
            UNCHECKED) check="!!! UNCHECKED ($v2)"; break ;;
        esac
    done

    local row
    row=$(printf '%-8s %-11s %10s' "$size" "${OP_ARGS[$op]}" "${med[memory]}")
    [ "$WITH_STOCK" = 1 ] && row+=$(printf ' %10s' "${med[stock]}")
    row+=$(printf ' %10s' "${med[dpc]}")
    [ "$BUSY_POLL_0" = 1 ] && row+=$(printf ' %10s' "${med[dpc-bp0]}")
    [ "$WITH_STOCK" = 1 ] && row+=$(printf ' %10s' "$(ratio "${med[stock]}" "${med[dpc]}")")
    row+=$(printf ' %10s' "$(ratio "${med[dpc]}" "${med[memory]}")")
    [ "$BUSY_POLL_0" = 1 ] && row+=$(printf ' %10s' "$(ratio "${med[dpc-bp0]}" "${med[dpc]}")")
    row+="  $check"
    ROWS+=("$row")
}

table_header() {
    local h
    h=$(printf '%-8s %-11s %10s' size op memory)
    [ "$WITH_STOCK" = 1 ] && h+=$(printf ' %10s' stock)
    h+=$(printf ' %10s' magick-dpc)
    [ "$BUSY_POLL_0" = 1 ] && h+=$(printf ' %10s' "dpc-bp=0")
    [ "$WITH_STOCK" = 1 ] && h+=$(printf ' %10s' stock/dpc)
    h+=$(printf ' %10s' dpc/mem)
    [ "$BUSY_POLL_0" = 1 ] && h+=$(printf ' %10s' bp0/dpc)
    h+="  pixels vs memory"
    echo "$h"
    echo "${h//?/-}"
}

# -------------------------------------------------------------------- main
# find_dpc: $MAGICK_DPC, else the installed binary, else the build tree's.
# Copies an ELF binary into the work directory so a concurrent rebuild cannot
# swap it out mid-run.
find_dpc() {
    local dpc=${MAGICK_DPC:-}
    if [ -z "$dpc" ]; then
        dpc=$TOP_SRCDIR/_install/bin/magick-dpc
        [ -x "$dpc" ] || dpc=$TOP_SRCDIR/_build/utilities/magick-dpc
    fi
    [ -x "$dpc" ] || die "no magick-dpc binary at $dpc (set MAGICK_DPC)"
    DPC_PATH=$dpc
    if [ "$(head -c 4 "$dpc" | od -An -c | tr -d ' ')" = '177ELF' ]; then
        cp "$dpc" "$WORK/magick-dpc"
        DPC_BIN=$WORK/magick-dpc
    else
        DPC_BIN=$dpc               # e.g. a libtool wrapper: must stay put
    fi
}

main() {
    parse_args "$@"
    enter_private_netns "$@"
    check_private_netns

    check_tools

    start_work magick-dpc-bench 10     # cleanup: servers get 1 s after SIGTERM
    find_dpc
    write_policy

    VARIANTS=(memory)
    [ "$WITH_STOCK" = 1 ] && VARIANTS+=(stock)
    VARIANTS+=(dpc)
    [ "$BUSY_POLL_0" = 1 ] && VARIANTS+=(dpc-bp0)

    echo "magick-dpc vs stock ImageMagick distributed pixel cache"
    echo "date:       $(date '+%Y-%m-%d %H:%M:%S %Z')"
    echo "host:       $(uname -srm), nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "convert:    $("$CONVERT" -version | head -n 1)"
    echo "magick-dpc: $("$DPC_BIN" --version 2>&1 | head -n 1) ($DPC_PATH)"
    echo "network:    private namespace, interfaces: $NETNS_IFACES"
    echo "runs:       median of $REPEAT; per-convert timeout ${STEP_TIMEOUT}s; wall-clock seconds"
    echo "variants:   memory = plain convert; stock = convert -distribute-cache;"
    echo "            magick-dpc = serve -q (default busy-poll)$(
        [ "$BUSY_POLL_0" = 1 ] && echo "; dpc-bp=0 = serve -q --busy-poll 0")"

    local v
    for v in "${VARIANTS[@]}"; do
        [ "$v" = memory ] || start_server "$v"
    done

    local s o
    for s in "${SIZE_LIST[@]}"; do
        "$CONVERT" -seed 1 -size "$s" plasma:fractal "$WORK/in-$s.png" ||
            die "cannot generate the $s input"
    done

    ROWS=()
    echo "progress (stderr):" >&2
    for s in "${SIZE_LIST[@]}"; do
        for o in "${OP_LIST[@]}"; do
            bench_case "$s" "$o"
        done
    done

    echo
    table_header
    printf '%s\n' "${ROWS[@]}"
    echo
    report_problems above
}

main "$@"
