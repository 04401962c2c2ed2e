# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # globals shared with bench/shm.sh's other parts
# bench/shm/server.sh: the artifacts copied into the work directory, the magick-dpc under test
# (socket only) and the convert commands of each variant.
# Sourced by bench/shm.sh, in its order, after bench/lib.sh; not a script.

# ------------------------------------------------------------- artifacts
# Copies the server, the drop-in and the shm coder into the work directory,
# so a concurrent rebuild of the tree cannot swap one out mid-run; sets
# DPC_BIN, LIB_DIR, CODER_DIR and exports MAGICK_CODER_MODULE_PATH.
find_artifacts() {
    DPC_PATH=${MAGICK_DPC:-$TOP_SRCDIR/_install/bin/magick-dpc}
    LIB_PATH=${DROPIN_LIB:-$TOP_SRCDIR/_install/lib}
    CODER_PATH=${SHM_CODER_DIR:-$LIB_PATH/magick-dpc/coders}
    local lib=$LIB_PATH/libMagickCore-6.Q16.so.6
    wait_artifact "magick-dpc server" "$DPC_PATH"
    wait_artifact "drop-in libMagickCore" "$lib"
    wait_artifact "shm coder" "$CODER_PATH/shm.so"
    wait_artifact "shm coder's .la" "$CODER_PATH/shm.la"
    mkdir -p "$WORK/bin" "$WORK/lib" "$WORK/coders"
    cp "$DPC_PATH" "$WORK/bin/magick-dpc"
    cp -L "$lib" "$WORK/lib/libMagickCore-6.Q16.so.6"
    # shm.la says installed=no, so libltdl loads the shm.so next to it.
    cp -L "$CODER_PATH/shm.so" "$CODER_PATH/shm.la" "$WORK/coders/"
    DPC_BIN=$WORK/bin/magick-dpc
    LIB_DIR=$WORK/lib
    CODER_DIR=$WORK/coders
    local resolved
    resolved=$(LD_LIBRARY_PATH=$LIB_DIR ldd "$CONVERT" |
               awk '/libMagickCore-6\.Q16\.so\.6/ { print $3 }')
    [ "$resolved" = "$LIB_DIR/libMagickCore-6.Q16.so.6" ] ||
        die "with LD_LIBRARY_PATH=$LIB_DIR, $CONVERT loads '$resolved', not the drop-in"
    # The variable replaces ImageMagick's own coder path: name both.
    IM_CODERS=$(env -u LD_LIBRARY_PATH "$CONVERT" -list configure |
                awk '$1 == "CODER_PATH" && !p { print $2; p = 1 }')
    [ -d "$IM_CODERS" ] || die "cannot find ImageMagick's coder directory (convert -list configure: '$IM_CODERS')"
    export MAGICK_CODER_MODULE_PATH=$CODER_DIR:$IM_CODERS
    [ -z "$BASE_DIR" ] || find_base_artifacts
}

# The --baseline tree's server, drop-in and shm coder, copied likewise;
# BASE_CODER_PATH is the coder variants' MAGICK_CODER_MODULE_PATH.
find_base_artifacts() {
    local lib=$BASE_DIR/_install/lib/libMagickCore-6.Q16.so.6
    local coders=$BASE_DIR/_install/lib/magick-dpc/coders
    wait_artifact "baseline magick-dpc server" "$BASE_DIR/_install/bin/magick-dpc"
    wait_artifact "baseline drop-in libMagickCore" "$lib"
    wait_artifact "baseline shm coder" "$coders/shm.so"
    wait_artifact "baseline shm coder's .la" "$coders/shm.la"
    mkdir -p "$WORK/base/bin" "$WORK/base/lib" "$WORK/base/coders"
    cp "$BASE_DIR/_install/bin/magick-dpc" "$WORK/base/bin/magick-dpc"
    cp -L "$lib" "$WORK/base/lib/libMagickCore-6.Q16.so.6"
    cp -L "$coders/shm.so" "$coders/shm.la" "$WORK/base/coders/"
    BASE_DPC_BIN=$WORK/base/bin/magick-dpc
    BASE_LIB_DIR=$WORK/base/lib
    BASE_CODER_PATH=$WORK/base/coders:$IM_CODERS
    local resolved
    resolved=$(LD_LIBRARY_PATH=$BASE_LIB_DIR ldd "$CONVERT" |
               awk '/libMagickCore-6\.Q16\.so\.6/ { print $3 }')
    [ "$resolved" = "$BASE_LIB_DIR/libMagickCore-6.Q16.so.6" ] ||
        die "with LD_LIBRARY_PATH=$BASE_LIB_DIR, $CONVERT loads '$resolved', not the baseline's drop-in"
}

# ------------------------------------------------------------- the server
SOCK=
SERVER_PID=
SERVER_RESTARTS=0

# start_dpc: magick-dpc serve on the socket only; waits for "listening on".
start_dpc() {
    local log=$WORK/server.log
    echo "--- start $(date '+%H:%M:%S')" >> "$log"
    rm -f "$SOCK"
    spawn "$log" "$DPC_BIN" serve --listen none --socket "$SOCK" --shm-budget "$BUDGET"
    SERVER_PID=$SPAWNED_PID
    server_wait "$SERVER_PID" 200 grep -q "listening on $SOCK" "$log" && return 0
    echo "$PROG: magick-dpc did not start listening on $SOCK:" >&2
    sed 's/^/  | /' "$log" >&2
    exit 1
}

# start_base_dpc: the --baseline tree's magick-dpc on a socket of its own.
BASE_SOCK=
BASE_PID=
start_base_dpc() {
    local log=$WORK/base-server.log
    echo "--- start $(date '+%H:%M:%S')" >> "$log"
    BASE_SOCK=$WORK/base.sock
    rm -f "$BASE_SOCK"
    spawn "$log" "$BASE_DPC_BIN" serve --listen none --socket "$BASE_SOCK" --shm-budget "$BUDGET"
    BASE_PID=$SPAWNED_PID
    server_wait "$BASE_PID" 200 grep -q "listening on $BASE_SOCK" "$log" && return 0
    echo "$PROG: the baseline magick-dpc did not start listening on $BASE_SOCK:" >&2
    sed 's/^/  | /' "$log" >&2
    exit 1
}

# server_alive WHERE: if the server is gone, records it and starts a fresh
# one (published names are lost: the next round publishes them again).
server_alive() {
    if kill -0 "$SERVER_PID" 2> /dev/null; then
        [ -z "$BASE_DIR" ] || base_alive "$1"
        return 0
    fi
    local rc=0
    wait "$SERVER_PID" 2> /dev/null || rc=$?
    echo "  !!! magick-dpc (pid $SERVER_PID) is gone (status $rc) during $1; its log:" >&2
    tail -n 20 "$WORK/server.log" | sed 's/^/    | /' >&2
    PROBLEMS+=("magick-dpc (pid $SERVER_PID) died during $1 (status $rc); restarted")
    SERVER_RESTARTS=$((SERVER_RESTARTS + 1))
    start_dpc
    [ -z "$BASE_DIR" ] || base_alive "$1"
}

# base_alive WHERE: server_alive for the --baseline server.
base_alive() {
    kill -0 "$BASE_PID" 2> /dev/null && return 0
    local rc=0
    wait "$BASE_PID" 2> /dev/null || rc=$?
    echo "  !!! the baseline magick-dpc (pid $BASE_PID) is gone (status $rc) during $1; its log:" >&2
    tail -n 20 "$WORK/base-server.log" | sed 's/^/    | /' >&2
    PROBLEMS+=("the baseline magick-dpc (pid $BASE_PID) died during $1 (status $rc); restarted")
    SERVER_RESTARTS=$((SERVER_RESTARTS + 1))
    start_base_dpc
}

# dpc_status [base], published NAME [base], unpublish NAME [base]: on this
# tree's server, or with "base" on the --baseline server.
dpc_status() {
    if [ "${1:-}" = base ]; then
        "$BASE_DPC_BIN" status --socket "$BASE_SOCK" 2> /dev/null || echo '{}'
    else
        "$DPC_BIN" status --socket "$SOCK" 2> /dev/null || echo '{}'
    fi
}
# json_num JSON KEY: a top-level number from status's JSON.
json_num() { echo "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"; }
# (No grep -q in a pipe: under pipefail its early exit can fail the pipe.)
published() {
    local ls bin=$DPC_BIN sock=$SOCK
    [ "${2:-}" = base ] && bin=$BASE_DPC_BIN sock=$BASE_SOCK
    ls=$("$bin" shm ls --socket "$sock" 2> /dev/null) || return 1
    [[ $ls == *"\"name\":\"$1\""* ]]
}
unpublish() {
    local bin=$DPC_BIN sock=$SOCK
    [ "${2:-}" = base ] && bin=$BASE_DPC_BIN sock=$BASE_SOCK
    "$bin" shm rm "$1" --socket "$sock" > /dev/null 2>&1 || true
}

# ------------------------------------------------------------ the commands
# convert_cmd VARIANT: CMD (convert and its options, without input,
# operation and output) and STEP_LIMIT, for run_convert (lib.sh).
#   memory, shm  the drop-in with cache:tiers=memory / cache:tiers=shm (A)
#   base-memory, base-shm  the same with --baseline's drop-in and server (A)
#   stock        the system library, nothing else (A)
#   dropin       the drop-in, default tier (memory), the socket named (B, C)
#   stocklib     the system library, the socket named (B, C: the coder)
#   basedropin, basestocklib  dropin, stocklib with --baseline's server,
#                drop-in and shm coder (B)
convert_cmd() {
    STEP_LIMIT=$STEP_TIMEOUT
    case $1 in
        memory|shm) CMD=(env "LD_LIBRARY_PATH=$LIB_DIR" "$CONVERT"
                         -define "cache:tiers=$1" -define "cache:dpc-socket=$SOCK") ;;
        base-memory|base-shm)
                    CMD=(env "LD_LIBRARY_PATH=$BASE_LIB_DIR" "$CONVERT"
                         -define "cache:tiers=${1#base-}" -define "cache:dpc-socket=$BASE_SOCK") ;;
        stock)      CMD=(env -u LD_LIBRARY_PATH "$CONVERT") ;;
        dropin)     CMD=(env "LD_LIBRARY_PATH=$LIB_DIR" "$CONVERT" -define "cache:dpc-socket=$SOCK") ;;
        stocklib)   CMD=(env -u LD_LIBRARY_PATH "$CONVERT" -define "cache:dpc-socket=$SOCK") ;;
        basedropin) CMD=(env "LD_LIBRARY_PATH=$BASE_LIB_DIR" "MAGICK_CODER_MODULE_PATH=$BASE_CODER_PATH"
                         "$CONVERT" -define "cache:dpc-socket=$BASE_SOCK") ;;
        basestocklib) CMD=(env -u LD_LIBRARY_PATH "MAGICK_CODER_MODULE_PATH=$BASE_CODER_PATH"
                         "$CONVERT" -define "cache:dpc-socket=$BASE_SOCK") ;;
        *) die "internal error: no variant $1" ;;
    esac
    return 0
}
