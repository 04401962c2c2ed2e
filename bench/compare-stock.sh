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
export LC_ALL=C                    # decimal points in $EPOCHREALTIME and printf

SELF=$(readlink -f "${BASH_SOURCE[0]}")
TOP_SRCDIR=$(dirname "$(dirname "$SELF")")

# The real ImageMagick 6, by full path: something else named convert may come
# first in PATH (a stand-in in /usr/local/bin on some machines).
CONVERT=/usr/bin/convert
COMPARE=/usr/bin/compare

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

die() { echo "compare-stock.sh: $*" >&2; exit 1; }
usage_error() { echo "compare-stock.sh: $*" >&2; echo "Try --help." >&2; exit 2; }

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
    [[ $REPEAT =~ ^[1-9][0-9]*$ ]] || usage_error "--repeat wants a positive integer"
    [[ $STEP_TIMEOUT =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout wants whole seconds"
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

# ------------------------------------------------------ network namespace
# enter_private_netns ARGS...: re-executes this script under unshare --net,
# unless already inside. The variable only says "try it"; the interface check
# in check_private_netns is what actually guards the host's network.
enter_private_netns() {
    [ "${DPC_BENCH_IN_NETNS:-}" = 1 ] && return 0
    command -v unshare > /dev/null || die "unshare (util-linux) is needed"
    local uflags=(--net)
    # Without root, a user namespace supplies the capabilities.
    [ "$(id -u)" -eq 0 ] || uflags+=(--map-root-user)
    # Try first, so a refusal gets an explanation rather than a bare EPERM.
    unshare "${uflags[@]}" true 2> /dev/null ||
        die "cannot create a private network namespace (unshare ${uflags[*]});" \
            "refusing to run, because the stock server would listen on every interface"
    export DPC_BENCH_IN_NETNS=1
    exec unshare "${uflags[@]}" -- bash "$SELF" "$@"
}

# check_private_netns: brings lo up and refuses to go on if any interface
# other than lo is visible (e.g. DPC_BENCH_IN_NETNS leaked into a shell on
# the host network).
check_private_netns() {
    command -v ip > /dev/null || die "ip (iproute2) is needed"
    command -v ss > /dev/null || die "ss (iproute2) is needed"
    ip link set lo up || die "cannot bring up lo in the private namespace"
    local ifaces
    ifaces=$(ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort -u | tr '\n' ' ')
    [ "$ifaces" = "lo " ] ||
        die "not in a private network namespace (interfaces: $ifaces); refusing to run"
    NETNS_IFACES=${ifaces% }
}

# ------------------------------------------------------------ the servers
WORK=
declare -a SERVER_PIDS=()
declare -A PORT_OF=()              # variant -> port
declare -A PID_OF=()               # variant -> server pid

cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2> /dev/null || true
    done
    # A short grace period, then nothing survives us.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        local alive=0
        for pid in "${SERVER_PIDS[@]}"; do
            kill -0 "$pid" 2> /dev/null && alive=1
        done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for pid in "${SERVER_PIDS[@]}"; do
        kill -KILL "$pid" 2> /dev/null || true
        wait "$pid" 2> /dev/null || true
    done
    if [ -n "$WORK" ]; then
        if [ "$KEEP" = 1 ]; then
            echo "work directory kept: $WORK" >&2
        else
            rm -rf "$WORK"
        fi
    fi
}

# spawn LOG CMD...: CMD in the background, its stderr in LOG; appends its
# pid to SERVER_PIDS. setpriv's parent-death signal kills it even if this
# script is killed with SIGKILL and never runs its trap.
spawn() {
    local log=$1
    shift
    if command -v setpriv > /dev/null; then
        setpriv --pdeathsig KILL -- "$@" > /dev/null 2>> "$log" &
    else
        "$@" > /dev/null 2>> "$log" &
    fi
    SPAWNED_PID=$!
    SERVER_PIDS+=("$SPAWNED_PID")
}

# wait_listening NAME PORT PID LOG: until something listens on PORT; fails,
# showing the log, if PID dies or 10 s pass. Watches with ss rather than by
# connecting, so the servers see no stray connections.
wait_listening() {
    local name=$1 port=$2 pid=$3 log=$4
    for _ in $(seq 1 200); do
        if [ -n "$(ss -Hltn "sport = :$port")" ]; then
            return 0
        fi
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.05
    done
    echo "compare-stock.sh: $name did not start listening on port $port:" >&2
    sed 's/^/  | /' "$log" >&2
    exit 1
}

# start_server VARIANT: the server behind VARIANT, on its fixed port; waits
# until it listens. Sets PORT_OF and PID_OF.
start_server() {
    local variant=$1 port
    case $variant in
        stock)
            port=$STOCK_PORT
            spawn "$WORK/$variant.log" "$CONVERT" -distribute-cache "$port" ;;
        dpc)
            port=$DPC_PORT
            spawn "$WORK/$variant.log" "$DPC_BIN" serve --listen "127.0.0.1:$port" -q ;;
        dpc-bp0)
            port=$DPC_BP0_PORT
            spawn "$WORK/$variant.log" "$DPC_BIN" serve --listen "127.0.0.1:$port" -q \
                --busy-poll 0 ;;
        *) die "internal error: no server for $variant" ;;
    esac
    wait_listening "$variant server" "$port" "$SPAWNED_PID" "$WORK/$variant.log"
    PORT_OF[$variant]=$port
    PID_OF[$variant]=$SPAWNED_PID
}

# revive_server VARIANT: after a failed convert, if the server is gone,
# records how it ended (a crash, or something outside killing it) and starts
# a fresh one so the remaining cases still get measured. Its failed runs stay
# FAILED in the table.
revive_server() {
    local variant=$1 pid=${PID_OF[$1]} rc=0 how
    kill -0 "$pid" 2> /dev/null && return 0
    wait "$pid" 2> /dev/null || rc=$?
    if [ $rc -gt 128 ]; then
        how="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2> /dev/null || echo '?'))"
    else
        how="exited with status $rc"
    fi
    echo "  !!! the $variant server (pid $pid) is gone: $how; its log:" >&2
    sed 's/^/    | /' "$WORK/$variant.log" | tail -n 20 >&2
    PROBLEMS+=("the $variant server (pid $pid) died: $how; restarted")
    start_server "$variant"
}

# ----------------------------------------------------------- measurements
# run_convert VARIANT IN OUT OPARGS...: one timed convert; sets ELAPSED
# (seconds) and returns convert's status; its messages are left in
# $WORK/convert.log. Server variants force the cache onto the server the
# stock way: no memory, map or disk allowed.
run_convert() {
    local variant=$1 in=$2 out=$3
    shift 3
    local cmd=(timeout --foreground -k 10 "$STEP_TIMEOUT" "$CONVERT")
    if [ "$variant" != memory ]; then
        cmd+=(-define "registry:cache:hosts=127.0.0.1:${PORT_OF[$variant]}"
              -limit memory 0 -limit map 0 -limit disk 0)
    fi
    cmd+=("$in" "$@" "$out")
    local t0 t1 rc=0
    rm -f "$out"
    t0=$EPOCHREALTIME
    "${cmd[@]}" > "$WORK/convert.log" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "(timed out after ${STEP_TIMEOUT}s)" >> "$WORK/convert.log"
    fi
    return $rc
}

# pixel_diff A B: prints compare's AE count ("0" when identical), or its
# error message.
pixel_diff() {
    local ae
    ae=$("$COMPARE" -metric AE "$1" "$2" null: 2>&1) || true
    echo "$ae" | tr '\n' ' ' | sed 's/ *$//'
}

# median V...: the median of the numbers given (mean of the middle two if even).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2];
              else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B: A/B as "12.34x", or "-" when either is missing.
ratio() {
    case "$1/$2" in *-*|*FAIL*) echo "-"; return ;; esac
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'
}

PROBLEMS=()                        # one line per failure or mismatch

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
            if [ -z "$ref" ]; then
                bad[$v]=${bad[$v]:-"UNCHECKED"}
                PROBLEMS+=("$size ${OP_ARGS[$op]}: $v run $rep UNCHECKED (no memory-cache reference)")
                echo "  (no reference to compare with)" >&2
                continue
            fi
            local ae
            ae=$(pixel_diff "$ref" "$out")
            if [ "$ae" = 0 ]; then
                echo "  AE 0" >&2
            else
                bad[$v]="MISMATCH"
                PROBLEMS+=("$size ${OP_ARGS[$op]}: $v run $rep PIXEL MISMATCH vs memory cache: AE=$ae")
                echo "  !!! PIXEL MISMATCH: AE=$ae" >&2
            fi
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

    [ -x "$CONVERT" ] || die "$CONVERT not found (ImageMagick 6 is needed)"
    [ -x "$COMPARE" ] || die "$COMPARE not found"
    command -v timeout > /dev/null || die "timeout (coreutils) is needed"

    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/magick-dpc-bench.XXXXXX")
    find_dpc

    # Servers and clients must share a secret; a fresh one per run, in a
    # policy.xml only this run reads.
    mkdir -p "$WORK/etc"
    local secret
    secret=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    cat > "$WORK/etc/policy.xml" <<XML
<policymap>
  <policy domain="cache" name="shared-secret" value="$secret" stealth="true"/>
</policymap>
XML
    export MAGICK_CONFIGURE_PATH=$WORK/etc

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
    if [ ${#PROBLEMS[@]} -gt 0 ]; then
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "!!! ${#PROBLEMS[@]} PROBLEM(S): see the progress log above"
        printf '!!!   %s\n' "${PROBLEMS[@]}"
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        return 1
    fi
    echo "all outputs pixel-identical to the memory cache's (compare -metric AE = 0)"
}

main "$@"
