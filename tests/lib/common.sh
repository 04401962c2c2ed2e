# Shared by the integration tests: a private policy.xml with a generated
# secret, a real magick-dpc on a free loopback port, the system's
# /usr/bin/convert pointed at it, and pass/fail bookkeeping.
# Source it; it sets -eu and cleans up on exit.
set -eu

: "${MAGICK_DPC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/_install/bin/magick-dpc}"
: "${TOP_SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
# shellcheck source-path=SCRIPTDIR source=server.sh
. "$TOP_SRCDIR/tests/lib/server.sh"  # server_spawn, server_wait, server_log_port
CONVERT=/usr/bin/convert
COMPARE=/usr/bin/compare
STEP_TIMEOUT=${STEP_TIMEOUT:-300}     # seconds any one convert may take

WORK=$(mktemp -d "${TMPDIR:-/tmp}/magick-dpc-test.XXXXXX")
SHM_SOCK=$WORK/shm.sock                # start_server's Unix socket
# The shm: coder (installed with the drop-in), then ImageMagick's own
# coders: MAGICK_CODER_MODULE_PATH replaces ImageMagick's path.
SYSTEM_CODERS=$(ls -d /usr/lib/*/ImageMagick-6*/modules-Q16/coders 2>/dev/null |
    head -n 1)
SHM_CODERS=${DROPIN_LIB:-}/magick-dpc/coders:$SYSTEM_CODERS
SERVER_PID=
PORT=
PASSED=0
FAILED=0

cleanup() {
    [ -n "$SERVER_PID" ] && kill -KILL "$SERVER_PID" 2>/dev/null || true
    # every process track-ed, from this shell or a check's subshell
    if [ -s "$WORK/pids" ]; then
        # shellcheck disable=SC2046
        kill -KILL $(cat "$WORK/pids") 2>/dev/null || true
        # shellcheck disable=SC2046
        wait $(cat "$WORK/pids") 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# make_policy [SECRET] [DIR]: a policy.xml holding the shared secret.
make_policy() {
    local secret=${1:-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')}
    local dir=${2:-$WORK/etc}
    mkdir -p "$dir"
    cat > "$dir/policy.xml" <<XML
<policymap>
  <policy domain="cache" name="shared-secret" value="$secret" stealth="true"/>
</policymap>
XML
    SECRET=$secret
}

# tier_policy NAME [TIERS]: $WORK/etc-NAME/policy.xml with the secret, the
# server's host and socket, and the tier order (default: NAME); prints the
# directory, for MAGICK_CONFIGURE_PATH.
tier_policy() {
    local dir=$WORK/etc-$1
    mkdir -p "$dir"
    cat > "$dir/policy.xml" <<XML
<policymap>
  <policy domain="cache" name="shared-secret" value="$SECRET" stealth="true"/>
  <policy domain="cache" name="hosts" value="127.0.0.1:$PORT"/>
  <policy domain="cache" name="dpc-socket" value="$SHM_SOCK"/>
  <policy domain="cache" name="tiers" value="${2:-$1}"/>
</policymap>
XML
    echo "$dir"
}

# im7_port_of LOG: the port of the IM7 listener logging to LOG (5 s).
im7_port_of() {
    server_log_port "$1" ' (ImageMagick 7'
}

# port_of LOG: the loopback port of the server logging to LOG (waits up to
# 5 s for its "listening on" line); nothing when it never came.
port_of() {
    server_log_port "$1"
}

# start_server [ARGS...]: magick-dpc on 127.0.0.1, a free port, and on the
# Unix socket $SHM_SOCK; sets PORT.
start_server() {
    : > "$WORK/server.log"
    server_spawn "$WORK/server.log" \
        "$MAGICK_DPC" serve --listen 127.0.0.1:0 --socket "$SHM_SOCK" "$@"
    SERVER_PID=$SPAWNED_PID
    PORT=$(server_log_port "$WORK/server.log" '' "$SERVER_PID")
    [ -n "$PORT" ] && return 0
    echo "magick-dpc did not start:" >&2
    cat "$WORK/server.log" >&2
    return 1
}

# track PID: killed at exit.  A file, not an array, so that processes
# started inside a check (a subshell) are killed too.
track() {
    echo "$1" >> "$WORK/pids"
}

# extra_server VAR NAME [ARGS...]: one more magick-dpc, logging to
# $WORK/NAME.log, killed at exit; sets VAR to its port.
extra_server() {
    local var=$1 name=$2
    shift 2
    : > "$WORK/$name.log"
    server_spawn "$WORK/$name.log" \
        "$MAGICK_DPC" serve --listen 127.0.0.1:0 --socket none "$@"
    track "$SPAWNED_PID"
    printf -v "$var" '%s' \
        "$(server_log_port "$WORK/$name.log" '' "$SPAWNED_PID")"
    [ -n "${!var}" ] || { cat "$WORK/$name.log" >&2; return 1; }
}

# stop_server: SIGTERM; the server must exit 0.
stop_server() {
    local rc=0
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=
    return $rc
}

# dpc_convert ARGS...: the system convert with its pixel cache forced onto
# the server.  DPC_VIA=stock (default): the stock client, the stock way (no
# memory, map or disk allowed).  DPC_VIA=dropin: the system convert on the
# drop-in libMagickCore in $DROPIN_LIB, native protocol, only the
# distributed tier allowed (DPC_TILE_CACHE: its local tile cache's size).
# DPC_VIA=shm: the drop-in, only the shared-memory tier allowed, from the
# server's socket.
dpc_convert() {
    if [ "${DPC_VIA:-stock}" = shm ]; then
        LD_LIBRARY_PATH=$DROPIN_LIB timeout "$STEP_TIMEOUT" "$CONVERT" \
            -define cache:dpc-socket="$SHM_SOCK" \
            -define cache:tiers=shm "$@"
    elif [ "${DPC_VIA:-stock}" = dropin ]; then
        LD_LIBRARY_PATH=$DROPIN_LIB timeout "$STEP_TIMEOUT" "$CONVERT" \
            -define cache:hosts=127.0.0.1:"$PORT" \
            -define cache:tiers=distributed \
            ${DPC_TILE_CACHE:+-define cache:dpc-tile-cache="$DPC_TILE_CACHE"} "$@"
    else
        timeout "$STEP_TIMEOUT" "$CONVERT" \
            -define registry:cache:hosts=127.0.0.1:"$PORT" \
            -limit memory 0 -limit map 0 -limit disk 0 "$@"
    fi
}

# need_dropin: skip (exit 77) unless the drop-in library is built.
# skip_when_quick: a slow test skips itself (exit 77) when the suite runs
# with DPC_SLOW_TESTS=no, as the sanitized suite does.
skip_when_quick() {
    if [ "${DPC_SLOW_TESTS:-yes}" = no ]; then
        echo "SKIP: slow test (DPC_SLOW_TESTS=no)"
        exit 77
    fi
}

need_dropin() {
    if [ -z "${DROPIN_LIB:-}" ] || [ ! -e "$DROPIN_LIB/libMagickCore-6.Q16.so.6" ]; then
        echo "SKIP: no drop-in libMagickCore (DROPIN_LIB=${DROPIN_LIB:-unset})"
        exit 77
    fi
}

# shm_convert ARGS...: the system convert with the shm: coder, on the
# drop-in library (SHM_LIB=stock: on the system's own libMagickCore).
shm_convert() {
    local lib=$DROPIN_LIB
    [ "${SHM_LIB:-dropin}" = stock ] && lib=
    LD_LIBRARY_PATH=$lib MAGICK_CODER_MODULE_PATH=$SHM_CODERS \
        timeout "$STEP_TIMEOUT" "$CONVERT" \
        -define cache:dpc-socket="$SHM_SOCK" "$@"
}

# shm_json: the server's shared-memory status over its socket.
shm_json() {
    "$MAGICK_DPC" status --socket "$SHM_SOCK"
}

# shm_field NAME: a number from shm_json.
shm_field() {
    shm_json | sed -n "s/^{[^[]*\"$1\":\([0-9]*\).*/\1/p"
}

# make_inputs: the conversion matrix's images in $WORK, made with the
# memory cache: rgb, rgba, deep (16-bit), gray, cmyk (.miff), palette and
# anim (.gif, 3 frames).  Small, so stock clients (a round trip per row)
# stay quick under sanitizers.
make_inputs() {
    mem_convert -seed 7 -size 96x64 plasma:fractal "$WORK/rgb.miff"
    mem_convert "$WORK/rgb.miff" -alpha set -channel A -fx 'i/w' +channel \
        "$WORK/rgba.miff"
    mem_convert -size 96x64 gradient:'#102030-#f0e0d0' -depth 16 \
        "$WORK/deep.miff"
    mem_convert "$WORK/rgb.miff" -colorspace Gray "$WORK/gray.miff"
    mem_convert "$WORK/rgb.miff" -colors 16 "$WORK/palette.gif"
    mem_convert "$WORK/rgb.miff" -colorspace CMYK "$WORK/cmyk.miff"
    mem_convert -size 48x32 xc:red xc:lime xc:blue -loop 0 -delay 7 \
        "$WORK/anim.gif"
}

# mem_convert ARGS...: the same convert on its ordinary memory cache.
mem_convert() {
    timeout "$STEP_TIMEOUT" "$CONVERT" "$@"
}

# same_pixels A B: compare -metric AE must print 0.
same_pixels() {
    local ae
    ae=$("$COMPARE" -metric AE "$1" "$2" null: 2>&1) || true
    [ "$ae" = "0" ] || { echo "  $1 vs $2: AE=$ae" >&2; return 1; }
}

# status_json: the server's status, or fails.
status_json() {
    "$MAGICK_DPC" status --host 127.0.0.1:"$PORT"
}

# json_field NAME: a number from status_json.
json_field() {
    status_json | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"
}

# server_alive: still running and answering.
server_alive() {
    kill -0 "$SERVER_PID" 2>/dev/null && status_json > /dev/null
}

# record NAME RC [SECONDS]: counts and reports an outcome (and its time).
record() {
    local took=${3:+ ($3 s)}
    if [ "$2" -eq 0 ]; then
        PASSED=$((PASSED + 1))
        echo "ok - $1$took"
    else
        FAILED=$((FAILED + 1))
        echo "not ok - $1$took"
        sed 's/^/  | /' "$WORK/check.log" | tail -n 20
        echo "  | server log:"
        tail -n 5 "$WORK/server.log" | sed 's/^/  | /'
    fi
}

# check NAME CMD...: runs CMD in a subshell where any failing step fails it
# (not in an `if`, which would switch -e off inside).
# The time each check took is printed after its name, to find slow ones.
check() {
    local name=$1 rc t0 ds
    shift
    t0=$(date +%s%N)
    set +e
    ( set -e; "$@" ) > "$WORK/check.log" 2>&1
    rc=$?
    set -e
    ds=$(( ($(date +%s%N) - t0) / 100000000 ))     # tenths of a second
    record "$name" $rc "$((ds / 10)).$((ds % 10))"
}

# check_stops: the server exits 0 on SIGTERM (in this shell: it is our child).
check_stops() {
    local rc=0
    stop_server > "$WORK/check.log" 2>&1 || rc=$?
    record "server stops cleanly on SIGTERM (exit $rc)" $rc
}

# finish: the closing line, and the exit status automake reads.
finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}
