# shellcheck shell=bash
# shellcheck disable=SC2034  # SPAWNED_PID is for the caller
# tests/lib/server.sh: how the integration tests (tests/lib/common.sh) and
# the benchmarks (bench/lib.sh) start a server and wait until it listens.
# Source it; it only defines functions.
#
#   server_spawn LOG CMD...      CMD in the background, stderr appended to LOG
#   server_wait PID TRIES CMD... poll CMD until it succeeds, PID dies, or TRIES
#   server_log_port LOG [SUFFIX [PID]]
#                                the port magick-dpc logged it listens on

# server_spawn LOG CMD...: CMD in the background (a child of the calling
# shell, so it can `wait` for it), its stderr appended to LOG; sets
# SPAWNED_PID.  With SERVER_PDEATHSIG=1 (the benchmarks) CMD runs under
# setpriv's parent-death signal, when there is setpriv: it is killed even if
# the caller is killed with SIGKILL and never runs its traps.
server_spawn() {
    local log=$1
    shift
    if [ "${SERVER_PDEATHSIG:-0}" = 1 ] && command -v setpriv > /dev/null; then
        setpriv --pdeathsig KILL -- "$@" 2>> "$log" &
    else
        "$@" 2>> "$log" &
    fi
    SPAWNED_PID=$!
}

# server_wait PID TRIES CMD...: runs CMD every 0.05 s until it succeeds
# (returns 0); returns 1 once PID (unless empty) is gone or TRIES tries
# have failed.
server_wait() {
    local pid=$1 tries=$2 i
    shift 2
    for ((i = 0; i < tries; i++)); do
        "$@" && return 0
        [ -z "$pid" ] || kill -0 "$pid" 2> /dev/null || return 1
        sleep 0.05
    done
    return 1
}

# server_log_port LOG [SUFFIX [PID]]: prints the port of LOG's first
# "listening on 127.0.0.1:PORT" line (followed by the sed pattern SUFFIX, if
# given), waiting up to 5 s for it, or while PID lives; prints nothing when
# no such line came.
server_log_port() {
    local log=$1 suffix=${2:-} pid=${3:-} p i
    for ((i = 0; i < 100; i++)); do
        p=$(sed -n "s/.*listening on 127\\.0\\.0\\.1:\\([0-9]*\\)$suffix.*/\\1/p" \
            "$log" | head -n 1)
        [ -n "$p" ] && { echo "$p"; return 0; }
        [ -z "$pid" ] || kill -0 "$pid" 2> /dev/null || return 0
        sleep 0.05
    done
}
