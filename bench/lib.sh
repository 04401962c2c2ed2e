# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # globals shared with the sourcing script
# bench/lib.sh: what bench/compare-stock.sh, bench/dropin.sh and bench/shm.sh
# share. Not a script of its own: each of them sources it first thing, after
# `set -euo pipefail` and setting SELF (its own path, readlink -f; the private
# network namespace is entered by re-executing "$SELF").
#
# The sourcing script provides:
#   COMPARE_CMD            the compare command (array), e.g. (env -u VAR "$COMPARE")
#   KEEP                   1 to keep the work directory
#   server_cmd NAME        sets SERVER_PORT and SERVER_CMD (array) for server NAME
#   convert_cmd VARIANT    sets CMD (array: convert and its options, without
#                          input, operation and output) and STEP_LIMIT (seconds)

export LC_ALL=C                    # decimal points in $EPOCHREALTIME and printf

PROG=${SELF##*/}                   # the messages' prefix: compare-stock.sh, dropin.sh
TOP_SRCDIR=$(dirname "$(dirname "$SELF")")
# The integration tests start their servers the same way.
# shellcheck source-path=SCRIPTDIR/../tests/lib source=server.sh
. "$TOP_SRCDIR/tests/lib/server.sh"   # server_spawn, server_wait, server_log_port
SERVER_PDEATHSIG=1                 # servers die with the script, even on SIGKILL

# The real ImageMagick 6, by full path: something else named convert may come
# first in PATH (a stand-in in /usr/local/bin on some machines).
CONVERT=/usr/bin/convert
COMPARE=/usr/bin/compare

die() { echo "$PROG: $*" >&2; exit 1; }
usage_error() { echo "$PROG: $*" >&2; echo "Try --help." >&2; exit 2; }

# need_positive_ints VAR...: each variable holds a positive integer.
need_positive_ints() {
    local v
    for v in "$@"; do
        [[ ${!v} =~ ^[1-9][0-9]*$ ]] || usage_error "$v wants a positive integer (got '${!v}')"
    done
}

# ------------------------------------------------------ network namespace
# enter_private_netns ARGS...: re-executes the script under unshare --net,
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
# the host network). Sets NETNS_IFACES.
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

# check_tools: convert, compare and timeout are there.
check_tools() {
    [ -x "$CONVERT" ] || die "$CONVERT not found (ImageMagick 6 is needed)"
    [ -x "$COMPARE" ] || die "$COMPARE not found"
    command -v timeout > /dev/null || die "timeout (coreutils) is needed"
}

# ------------------------------------------------------- the work directory
WORK=
declare -a SERVER_PIDS=()
declare -A PORT_OF=()              # server name -> port
declare -A PID_OF=()               # server name -> pid
PROBLEMS=()                        # one line per failure, mismatch, dead server

# cleanup GRACE: SIGTERM to every server, up to GRACE tenths of a second for
# them to go, then SIGKILL: nothing survives us. Removes the work directory
# unless KEEP=1.
cleanup() {
    local grace=$1 pid i
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2> /dev/null || true
    done
    for ((i = 0; i < grace; i++)); do
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

# start_work PREFIX GRACE: from here on `cleanup GRACE` runs on exit (INT and
# TERM exit 130 and 143); makes the work directory WORK=$TMPDIR/PREFIX.XXXXXX.
start_work() {
    # shellcheck disable=SC2064  # GRACE is fixed now
    trap "cleanup $2" EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
}

# write_policy: servers and clients must share a secret; a fresh one per run,
# SECRET, in a policy.xml only this run reads (MAGICK_CONFIGURE_PATH).
write_policy() {
    mkdir -p "$WORK/etc"
    SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    cat > "$WORK/etc/policy.xml" <<XML
<policymap>
  <policy domain="cache" name="shared-secret" value="$SECRET" stealth="true"/>
</policymap>
XML
    export MAGICK_CONFIGURE_PATH=$WORK/etc
}

# ------------------------------------------------------------ the servers
# spawn LOG CMD...: CMD in the background, its stdout discarded, its stderr
# in LOG (server_spawn, under setpriv's parent-death signal: it dies even if
# the script is killed with SIGKILL and never runs its trap); its pid in
# SPAWNED_PID and SERVER_PIDS.
spawn() {
    server_spawn "$@" > /dev/null
    SERVER_PIDS+=("$SPAWNED_PID")
}

# listening_on PORT: something listens on TCP PORT.
listening_on() {
    [ -n "$(ss -Hltn "sport = :$1")" ]
}

# wait_listening NAME PORT PID LOG: until something listens on PORT; fails,
# showing the log, if PID dies or 60 s pass. Watches with ss rather than by
# connecting, so the servers see no stray connections.
wait_listening() {
    local name=$1 port=$2 pid=$3 log=$4
    # up to 60 s: a server preallocating its memory listens only after
    server_wait "$pid" 1200 listening_on "$port" && return 0
    echo "$PROG: $name did not start listening on port $port:" >&2
    sed 's/^/  | /' "$log" >&2
    exit 1
}

# start_server NAME: the server server_cmd gives for NAME, on its fixed port,
# stderr in $WORK/NAME.log; waits until it listens. Sets PORT_OF and PID_OF.
start_server() {
    local name=$1
    server_cmd "$name"
    spawn "$WORK/$name.log" "${SERVER_CMD[@]}"
    wait_listening "$name server" "$SERVER_PORT" "$SPAWNED_PID" "$WORK/$name.log"
    PORT_OF[$name]=$SERVER_PORT
    PID_OF[$name]=$SPAWNED_PID
}

# revive_server NAME: after a failure, if the server is gone, records how it
# ended (a crash, or something outside killing it) and starts a fresh one so
# the remaining cases still get measured. Its failed runs stay failed in the
# table.
revive_server() {
    local name=$1 pid=${PID_OF[$1]} rc=0 how
    kill -0 "$pid" 2> /dev/null && return 0
    wait "$pid" 2> /dev/null || rc=$?
    if [ $rc -gt 128 ]; then
        how="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2> /dev/null || echo '?'))"
    else
        how="exited with status $rc"
    fi
    echo "  !!! the $name server (pid $pid) is gone: $how; its log:" >&2
    sed 's/^/    | /' "$WORK/$name.log" | tail -n 20 >&2
    PROBLEMS+=("the $name server (pid $pid) died: $how; restarted")
    start_server "$name"
}

# ----------------------------------------------------------- measurements
# run_convert VARIANT IN OUT OPARGS...: one timed convert (convert_cmd's, under
# timeout STEP_LIMIT); sets ELAPSED (seconds) and TIMED_OUT (0 or 1) and
# returns convert's status; its messages are left in $WORK/convert.log.
run_convert() {
    local variant=$1 in=$2 out=$3
    shift 3
    convert_cmd "$variant"
    local cmd=(timeout --foreground -k 10 "$STEP_LIMIT" "${CMD[@]}" "$in" "$@" "$out")
    local t0 t1 rc=0
    rm -f "$out"
    TIMED_OUT=0
    t0=$EPOCHREALTIME
    "${cmd[@]}" > "$WORK/convert.log" 2>&1 || rc=$?
    t1=$EPOCHREALTIME
    ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        TIMED_OUT=1
        echo "(timed out after ${STEP_LIMIT}s)" >> "$WORK/convert.log"
    fi
    return $rc
}

# pixel_diff A B: prints compare's AE count ("0" when identical), or its
# error message.
pixel_diff() {
    local ae
    ae=$("${COMPARE_CMD[@]}" -metric AE "$1" "$2" null: 2>&1) || true
    echo "$ae" | tr '\n' ' ' | sed 's/ *$//'
}

# check_output LABEL VARIANT REP REF OUT MISMATCH_FMT: checks run REP's OUT
# against the memory cache's REF (none: UNCHECKED). Prints the verdict on
# stderr (on a mismatch MISMATCH_FMT, a printf format for the AE count),
# records any problem in PROBLEMS, and sets VERDICT to "" (identical),
# UNCHECKED or MISMATCH.
check_output() {
    local label=$1 v=$2 rep=$3 ref=$4 out=$5 fmt=$6 ae
    VERDICT=
    if [ -z "$ref" ]; then
        VERDICT=UNCHECKED
        PROBLEMS+=("$label: $v run $rep UNCHECKED (no memory-cache reference)")
        echo "  (no reference to compare with)" >&2
        return 0
    fi
    ae=$(pixel_diff "$ref" "$out")
    if [ "$ae" = 0 ]; then
        echo "  AE 0" >&2
    else
        VERDICT=MISMATCH
        PROBLEMS+=("$label: $v run $rep PIXEL MISMATCH vs memory cache: AE=$ae")
        # shellcheck disable=SC2059  # the format is the caller's, a constant
        printf "$fmt\n" "$ae" >&2
    fi
}

# median V...: the median of the numbers given (mean of the middle two if even).
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2];
              else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B: A/B as "12.34x", or "-" when either is missing or not a number
# (FAIL, FAILED, TIMEOUT, -).
ratio() {
    case "$1" in ''|-|*[!0-9.]*) echo "-"; return ;; esac
    case "$2" in ''|-|*[!0-9.]*) echo "-"; return ;; esac
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'
}

# report_problems WHERE: the PROBLEMS banner ("see the progress log WHERE")
# and status 1, or the all-identical line and status 0.
report_problems() {
    if [ ${#PROBLEMS[@]} -gt 0 ]; then
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "!!! ${#PROBLEMS[@]} PROBLEM(S): see the progress log $1"
        printf '!!!   %s\n' "${PROBLEMS[@]}"
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        return 1
    fi
    echo "all outputs pixel-identical to the memory cache's (compare -metric AE = 0)"
}

# ------------------------------------------------------------- artifacts
# wait_artifact DESC PATH: PATH must exist, be non-empty and not have changed
# for 2 s (a rebuild may be writing it); waits up to ARTIFACT_WAIT seconds.
wait_artifact() {
    local desc=$1 path=$2 waited=0 limit=${ARTIFACT_WAIT:-180} s1 s2
    while :; do
        if [ -s "$path" ]; then
            s1=$(stat -L -c '%s %Y' "$path" 2> /dev/null || true)
            sleep 2
            s2=$(stat -L -c '%s %Y' "$path" 2> /dev/null || true)
            [ -n "$s1" ] && [ "$s1" = "$s2" ] && [ -s "$path" ] && return 0
            waited=$((waited + 2))
        else
            sleep 2
            waited=$((waited + 2))
        fi
        [ $waited -ge "$limit" ] && die "no usable $desc at $path after ${limit}s"
        [ $((waited % 20)) = 0 ] && echo "  waiting for $desc at $path ($waited s) ..." >&2
    done
}
