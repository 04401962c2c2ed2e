#!/usr/bin/env bash
# replicas.sh: what cache:dpc-replicas=2 and a slower network cost the
# drop-in libMagickCore.  Times the system /usr/bin/convert on one 2000x1500
# image, side by side in one run:
#   memory  its ordinary memory pixel cache,
#   r1      the drop-in striping over three magick-dpc servers on loopback,
#           one copy of each tile,
#   r2      the same with two copies of each tile (every write to two hosts),
#   r1-d    r1 through delay relays (tests/tools/delay-relay, one per
#           server) adding DELAY us each way (default 100: 200 us round trip),
#   r2-d    r2 through the same relays,
#   st-dpc  the stock client (/usr/bin/convert without the drop-in,
#           -define registry:cache:hosts) through a relay to a magick-dpc
#           server,
#   st-im   the stock client through a relay to ImageMagick's own server
#           (convert -distribute-cache),
#   r2-k, r2d-k  (with --loss) r2 and r2-d with server 2 killed (SIGKILL)
#           --loss-after seconds into the job: what losing a host costs a
#           job that survives it (server 2 is started again after each
#           round; through the relays its relay stays, accepting and
#           closing, as a load balancer in front of a dead host does),
# interleaved run by run, a 1 MiB tile cache so pixels really travel (the
# drop-in raises it to three lines of tiles: 2.6 MiB at 2000x1500), every
# output checked against memory's.  Prints medians and the ratios r2/r1 (on
# loopback and through the relays), relay/loopback (r1 and r2), r1/memory
# and stock/memory.  The stock client makes a round trip per row, so its
# variants run only on --stock-ops (resize by default), --stock-repeat times.
# Runs inside a private network namespace that has only loopback, as
# bench/dropin.sh (ImageMagick's server binds every interface).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$SELF")/lib.sh"

COMPARE_CMD=(env -u LD_LIBRARY_PATH "$COMPARE")
# Fixed ports are safe: the namespace is new, so nothing else can hold them.
PORTS=(6721 6722 6723)             # s1-s3: magick-dpc for the drop-in
RELAY_PORTS=(6731 6732 6733)       # d1-d3: relays to s1-s3
SDPC_PORT=6724 SDPC_RELAY_PORT=6734   # sdpc: magick-dpc for the stock client
SIM_PORT=6725 SIM_RELAY_PORT=6735     # sim: convert -distribute-cache
declare -A OP_ARGS=([blur]="-blur 0x2" [resize]="-resize 50%"
                    [rotate]="-rotate 33" [distort]="-distort SRT 30")

usage() {
    cat <<EOF
Usage: bench/replicas.sh [OPTIONS]

Times $CONVERT with its memory cache and with the drop-in libMagickCore on
three magick-dpc servers with one and with two copies of each tile, on
loopback and through delay relays; and the stock client (no drop-in)
through a relay to a magick-dpc server and to ImageMagick's own server.
Interleaved, every output compared with memory's (compare -metric AE).

Options:
  -n, --repeat N        runs per case and variant, median [3]
  -s, --size WxH        input size [2000x1500]
  -o, --ops LIST        blur, resize, rotate, distort [all four]
      --delay-us USEC   the relays' one-way delay [100: 200 us round trip]
      --tile-cache SIZE the drop-in's cache:dpc-tile-cache ('' for its
                        default, 1/8 of the pixel cache; never below three
                        lines of tiles across and down the image) [1MiB]
      --no-stock        skip the stock-client variants
      --loss            also r2 and r2-d with server 2 killed mid-job
      --loss-after SEC  when, after the job starts [0.4]
      --stock-ops LIST  ops the stock variants run on [resize]; "all": -o's
      --stock-repeat N  stock runs per case, median [1]
  -t, --timeout SEC     limit on one drop-in or memory convert [600]
      --stock-timeout SEC  limit on one stock convert [900]
  -k, --keep            keep the work directory
  -h, --help            this message

Environment: MAGICK_DPC (the server), DROPIN_LIB (the drop-in's lib
directory), as for bench/dropin.sh; DELAY_RELAY
[\$top/_build/tests/tools/delay-relay].
Exit status: 0 if every run succeeded and matched memory, 1 otherwise.
EOF
}

REPEAT=3
SIZE=2000x1500
OPS=blur,resize,rotate,distort
DELAY_US=100
TILE_CACHE=1MiB
WITH_STOCK=1
STOCK_OPS=resize
STOCK_REPEAT=1
WITH_LOSS=0
LOSS_AFTER=0.4
STEP_TIMEOUT=600
STOCK_TIMEOUT=900
KEEP=0
ORIG_ARGS=("$@")
while [ $# -gt 0 ]; do
    case $1 in
        -n|--repeat)     [ $# -ge 2 ] || usage_error "$1 needs a value"; REPEAT=$2; shift ;;
        -s|--size)       [ $# -ge 2 ] || usage_error "$1 needs a value"; SIZE=$2; shift ;;
        -o|--ops)        [ $# -ge 2 ] || usage_error "$1 needs a value"; OPS=$2; shift ;;
        --delay-us)      [ $# -ge 2 ] || usage_error "$1 needs a value"; DELAY_US=$2; shift ;;
        --tile-cache)    [ $# -ge 2 ] || usage_error "$1 needs a value"; TILE_CACHE=$2; shift ;;
        --no-stock)      WITH_STOCK=0 ;;
        --loss)          WITH_LOSS=1 ;;
        --loss-after)    [ $# -ge 2 ] || usage_error "$1 needs a value"; LOSS_AFTER=$2; shift ;;
        --stock-ops)     [ $# -ge 2 ] || usage_error "$1 needs a value"; STOCK_OPS=$2; shift ;;
        --stock-repeat)  [ $# -ge 2 ] || usage_error "$1 needs a value"; STOCK_REPEAT=$2; shift ;;
        -t|--timeout)    [ $# -ge 2 ] || usage_error "$1 needs a value"; STEP_TIMEOUT=$2; shift ;;
        --stock-timeout) [ $# -ge 2 ] || usage_error "$1 needs a value"; STOCK_TIMEOUT=$2; shift ;;
        -k|--keep)       KEEP=1 ;;
        -h|--help)       usage; exit 0 ;;
        *)               usage_error "unknown argument: $1" ;;
    esac
    shift
done
need_positive_ints REPEAT STEP_TIMEOUT STOCK_REPEAT STOCK_TIMEOUT
[[ $DELAY_US =~ ^[0-9]+$ ]] || usage_error "bad --delay-us: $DELAY_US"
[[ $LOSS_AFTER =~ ^[0-9]+(\.[0-9]+)?$ ]] || usage_error "bad --loss-after: $LOSS_AFTER"
[[ $SIZE =~ ^[1-9][0-9]*x[1-9][0-9]*$ ]] || usage_error "bad size: $SIZE"
IFS=, read -ra OP_LIST <<< "$OPS"
[ ${#OP_LIST[@]} -gt 0 ] || usage_error "--ops is empty"
for o in "${OP_LIST[@]}"; do
    [ -n "${OP_ARGS[$o]:-}" ] || usage_error "unknown operation: $o"
done
[ "$STOCK_OPS" = all ] && STOCK_OPS=$OPS
IFS=, read -ra STOCK_OP_LIST <<< "$STOCK_OPS"
declare -A STOCK_ON=()
for o in "${STOCK_OP_LIST[@]}"; do
    [ -n "${OP_ARGS[$o]:-}" ] || usage_error "unknown --stock-ops operation: $o"
    STOCK_ON[$o]=1
done

: "${MAGICK_DPC:=$TOP_SRCDIR/_install/bin/magick-dpc}"
: "${DROPIN_LIB:=$TOP_SRCDIR/_install/lib}"
: "${DELAY_RELAY:=$TOP_SRCDIR/_build/tests/tools/delay-relay}"
[ -x "$MAGICK_DPC" ] || die "no server at $MAGICK_DPC (./quickstart setup)"
[ -e "$DROPIN_LIB/libMagickCore-6.Q16.so.6" ] || die "no drop-in in $DROPIN_LIB"
[ -x "$DELAY_RELAY" ] ||
    die "no relay at $DELAY_RELAY (make -C _build tests/tools/delay-relay)"
enter_private_netns "${ORIG_ARGS[@]}"
check_private_netns
check_tools

# A relay lives as long as the longest run could take, at most a day (its
# -s limit); it dies with the script in any case (parent-death signal).
RELAY_LIFE=$(( (REPEAT * 4 * STEP_TIMEOUT + STOCK_REPEAT * 2 * STOCK_TIMEOUT)
               * ${#OP_LIST[@]} + 600 ))
[ "$RELAY_LIFE" -le 86400 ] || RELAY_LIFE=86400

# server_cmd NAME: magick-dpc servers s1-s3 (the drop-in's) and sdpc (the
# stock client's), ImageMagick's server sim, relays d1-d3 (to s1-s3),
# dsdpc and dsim, each on its fixed loopback port.
server_cmd() {
    case $1 in
        s[1-3])
            SERVER_PORT=${PORTS[${1#s} - 1]}
            SERVER_CMD=("$MAGICK_DPC" serve -q --listen "127.0.0.1:$SERVER_PORT"
                        --socket none) ;;
        sdpc)
            SERVER_PORT=$SDPC_PORT
            SERVER_CMD=("$MAGICK_DPC" serve -q --listen "127.0.0.1:$SERVER_PORT"
                        --socket none) ;;
        sim)
            SERVER_PORT=$SIM_PORT
            SERVER_CMD=(env -u LD_LIBRARY_PATH "$CONVERT" -distribute-cache
                        "$SERVER_PORT") ;;
        d[1-3])
            SERVER_PORT=${RELAY_PORTS[${1#d} - 1]}
            relay_cmd "${PORTS[${1#d} - 1]}" ;;
        dsdpc)
            SERVER_PORT=$SDPC_RELAY_PORT
            relay_cmd "$SDPC_PORT" ;;
        dsim)
            SERVER_PORT=$SIM_RELAY_PORT
            relay_cmd "$SIM_PORT" ;;
        *) die "internal error: no server $1" ;;
    esac
}

# relay_cmd TARGET_PORT: a delay relay on SERVER_PORT to TARGET_PORT.
relay_cmd() {
    SERVER_CMD=("$DELAY_RELAY" -l "127.0.0.1:$SERVER_PORT" -d "$DELAY_US"
                -r -s "$RELAY_LIFE" "127.0.0.1:$1")
}

# hosts_of PORT...: "127.0.0.1:P1,127.0.0.1:P2,..."
hosts_of() {
    local p h=
    for p in "$@"; do h+=${h:+,}127.0.0.1:$p; done
    echo "$h"
}

# convert_cmd VARIANT: memory, r1/r2 on loopback, r1-d/r2-d through the
# relays, st-dpc/st-im the stock client through a relay.  The stock client
# is forced onto its server the stock way: no memory, map or disk allowed.
convert_cmd() {
    STEP_LIMIT=$STEP_TIMEOUT
    case $1 in
        memory) CMD=(env -u LD_LIBRARY_PATH "$CONVERT") ;;
        r[12]|r[12]-d|r2-k|r2d-k)
            # rN: N copies; -d or d-k: through the relays
            local hosts n=${1:1:1}
            hosts=$(hosts_of "${PORTS[@]}")
            case $1 in *d|*d-k) hosts=$(hosts_of "${RELAY_PORTS[@]}") ;; esac
            CMD=(env LD_LIBRARY_PATH="$DROPIN_LIB" "$CONVERT"
                 -define cache:hosts="$hosts"
                 -define cache:tiers=distributed
                 ${TILE_CACHE:+-define cache:dpc-tile-cache=$TILE_CACHE}
                 -define cache:dpc-replicas="$n") ;;
        st-dpc|st-im)
            STEP_LIMIT=$STOCK_TIMEOUT
            local port=$SDPC_RELAY_PORT
            [ "$1" = st-im ] && port=$SIM_RELAY_PORT
            CMD=(env -u LD_LIBRARY_PATH "$CONVERT"
                 -define "registry:cache:hosts=127.0.0.1:$port"
                 -limit memory 0 -limit map 0 -limit disk 0) ;;
        *) die "internal error: no variant $1" ;;
    esac
}

# restart_killed PID: waits for the killer PID, then starts server 2 again
# (its loss was meant: not a problem).
restart_killed() {
    wait "$1" || true
    wait "${PID_OF[s2]}" 2> /dev/null || true
    start_server s2
}

LOADS=()
sample_load() { LOADS+=("$(cut -d' ' -f1 /proc/loadavg)"); }

start_work magick-dpc-bench-replicas 30
write_policy
SERVERS=(s1 s2 s3 d1 d2 d3)
[ "$WITH_STOCK" = 1 ] && SERVERS+=(sdpc sim dsdpc dsim)
for s in "${SERVERS[@]}"; do
    start_server "$s"
done
env -u LD_LIBRARY_PATH "$CONVERT" -seed 5 -size "$SIZE" plasma:fractal \
    "$WORK/in.miff"

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "magick-dpc replicas and network delay: $SIZE plasma, drop-in and stock client"
echo "date:       $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "host:       $(uname -srm), nproc $(nproc), load average $load_start (at start)"
echo "convert:    $("$CONVERT" -version | head -n 1)"
echo "magick-dpc: $("$MAGICK_DPC" --version 2>&1 | head -n 1)"
# The relays stand in for a network: under SCHED_FIFO (-r) their timing
# does not wait for the cores the processes they sit between keep busy.
if chrt -p "${PID_OF[d1]}" 2> /dev/null | grep -q SCHED_FIFO; then
    RELAY_PRIO="SCHED_FIFO"
else
    RELAY_PRIO="normal priority (no CAP_SYS_NICE): round trips run late when the cores are busy"
fi
echo "network:    private namespace, interfaces: $NETNS_IFACES;" \
     "relays: delay-relay -d $DELAY_US -r ($((2 * DELAY_US)) us round trip, $RELAY_PRIO), one per server"
echo "runs:       median of $REPEAT (memory, drop-in), of $STOCK_REPEAT (stock);" \
     "timeout ${STEP_TIMEOUT}s, ${STOCK_TIMEOUT}s stock"
echo "progress (stderr):" >&2

VARIANTS=(r1 r2 r1-d r2-d)
[ "$WITH_LOSS" = 1 ] && VARIANTS+=(r2-k r2d-k)
declare -A LOST=()
declare -A TIMES=() FAILS=()
for op in "${OP_LIST[@]}"; do
    # shellcheck disable=SC2206  # an op is several words
    args=(${OP_ARGS[$op]})
    nrep=$REPEAT
    stock=0
    if [ "$WITH_STOCK" = 1 ] && [ -n "${STOCK_ON[$op]:-}" ]; then
        stock=1
        [ "$STOCK_REPEAT" -gt "$nrep" ] && nrep=$STOCK_REPEAT
    fi
    for ((rep = 1; rep <= nrep; rep++)); do
        sample_load
        # memory first (the reference), then the others, reversed on even
        # rounds so none always goes first
        order=()
        if [ "$rep" -le "$REPEAT" ]; then order=("${VARIANTS[@]}"); fi
        if [ "$stock" = 1 ] && [ "$rep" -le "$STOCK_REPEAT" ]; then
            order+=(st-dpc st-im)
        fi
        if [ $((rep % 2)) = 0 ]; then
            rev=()
            for ((i = ${#order[@]} - 1; i >= 0; i--)); do rev+=("${order[$i]}"); done
            order=("${rev[@]}")
        fi
        order=(memory "${order[@]}")
        for v in "${order[@]}"; do
            out=$WORK/$op-$v.miff
            killer=
            if [ "$v" = r2-k ] || [ "$v" = r2d-k ]; then
                (sleep "$LOSS_AFTER"; kill -KILL "${PID_OF[s2]}") &
                killer=$!
            fi
            if run_convert "$v" "$WORK/in.miff" "$out" "${args[@]}"; then
                [ -z "$killer" ] || restart_killed "$killer"
                echo "$op $v run $rep: ${ELAPSED}s" >&2
                # a kill that came after the job lost nothing: say so
                ! grep -q 'a host was lost' "$WORK/convert.log" ||
                    LOST[$op,$v]=$(( ${LOST[$op,$v]:-0} + 1 ))
                [ "$v" = memory ] && [ "$rep" -gt "$REPEAT" ] || TIMES[$op,$v]+="$ELAPSED "
                [ "$v" = memory ] && continue
                check_output "$op" "$v" "$rep" "$WORK/$op-memory.miff" \
                    "$out" "  PIXEL MISMATCH: AE %s"
                [ -z "$VERDICT" ] || FAILS[$op,$v]=MISMATCH
            else
                [ -z "$killer" ] || restart_killed "$killer"
                if [ "$TIMED_OUT" = 1 ]; then
                    echo "$op $v run $rep: TIMEOUT (${STEP_LIMIT}s)" >&2
                    FAILS[$op,$v]=TIMEOUT
                    PROBLEMS+=("$op: $v run $rep timed out after ${STEP_LIMIT}s")
                else
                    echo "$op $v run $rep: FAILED" >&2
                    FAILS[$op,$v]=FAILED
                    PROBLEMS+=("$op: $v run $rep failed")
                fi
                sed 's/^/  | /' "$WORK/convert.log" | tail -n 20 >&2
            fi
        done
        for s in "${SERVERS[@]}"; do
            revive_server "$s"
        done
    done
done
sample_load

# med OP VARIANT: the median time, or FAILED/TIMEOUT/MISMATCH, or "-"
med() {
    if [ -n "${FAILS[$1,$2]:-}" ]; then
        echo "${FAILS[$1,$2]}"
    elif [ -n "${TIMES[$1,$2]:-}" ]; then
        # shellcheck disable=SC2086  # the times are words
        median ${TIMES[$1,$2]}
    else
        echo -
    fi
}

echo
printf '%s, 3 magick-dpc servers, tile cache %s, median of %s; seconds\n' \
    "$SIZE" "${TILE_CACHE:-default (1/8 of the pixel cache)}" "$REPEAT"
printf '(-d: through delay relays, %s us round trip; target: r2/r1 within 1.2x,\n' \
    "$((2 * DELAY_US))"
printf ' relay/loopback within 1.5x)\n'
printf '%-8s %8s %8s %8s %8s %8s %7s %7s %7s %7s %7s %7s\n' op memory r1 r2 r1-d r2-d \
    r2/r1 r2d/r1d r1d/r1 r2d/r2 r1/mem r2d/mem
for op in "${OP_LIST[@]}"; do
    m=$(med "$op" memory) a=$(med "$op" r1) b=$(med "$op" r2)
    c=$(med "$op" r1-d) d=$(med "$op" r2-d)
    printf '%-8s %8s %8s %8s %8s %8s %7s %7s %7s %7s %7s %7s\n' "$op" "$m" "$a" "$b" "$c" "$d" \
        "$(ratio "$b" "$a")" "$(ratio "$d" "$c")" "$(ratio "$c" "$a")" \
        "$(ratio "$d" "$b")" "$(ratio "$a" "$m")" "$(ratio "$d" "$m")"
done

if [ "$WITH_LOSS" = 1 ]; then
    echo
    printf 'a host lost mid-job (server 2 killed %ss in), replicas 2; -k: with\n' "$LOSS_AFTER"
    printf 'the loss; lost: runs in which the job saw the loss (of %s)\n' "$REPEAT"
    printf '%-8s %8s %8s %8s %6s %8s %8s %8s %6s\n' op r2 r2-k r2k/r2 lost \
        r2-d r2d-k r2dk/r2d lost
    for op in "${OP_LIST[@]}"; do
        a=$(med "$op" r2) b=$(med "$op" r2-k) c=$(med "$op" r2-d) d=$(med "$op" r2d-k)
        printf '%-8s %8s %8s %8s %6s %8s %8s %8s %6s\n' "$op" "$a" "$b" \
            "$(ratio "$b" "$a")" "${LOST[$op,r2-k]:-0}" "$c" "$d" \
            "$(ratio "$d" "$c")" "${LOST[$op,r2d-k]:-0}"
    done
fi

echo
if [ "$WITH_STOCK" = 0 ]; then
    echo "stock client: skipped (--no-stock)"
else
    printf 'stock client (%s without the drop-in, registry:cache:hosts), through\n' "$CONVERT"
    printf 'one relay (%s us round trip), median of %s; st-dpc: to magick-dpc,\n' \
        "$((2 * DELAY_US))" "$STOCK_REPEAT"
    printf 'st-im: to convert -distribute-cache\n'
    printf '%-8s %8s %9s %9s %10s %10s %10s\n' op memory st-dpc st-im \
        st-dpc/mem st-im/mem st-im/st-dpc
    skipped=()
    for op in "${OP_LIST[@]}"; do
        if [ -z "${STOCK_ON[$op]:-}" ]; then
            skipped+=("$op")
            continue
        fi
        m=$(med "$op" memory) a=$(med "$op" st-dpc) b=$(med "$op" st-im)
        printf '%-8s %8s %9s %9s %10s %10s %10s\n' "$op" "$m" "$a" "$b" \
            "$(ratio "$a" "$m")" "$(ratio "$b" "$m")" "$(ratio "$b" "$a")"
    done
    [ ${#skipped[@]} = 0 ] ||
        echo "stock client skipped on: ${skipped[*]} (--stock-ops $STOCK_OPS)"
fi
echo
echo "load average: $load_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end;" \
     "1-minute samples: ${LOADS[*]}"
report_problems "(stderr)"
