# shellcheck shell=bash
# tests/lib/netns.sh: a test bed of hosts, one network namespace each,
# joined by veth pairs to a bridge in a hub namespace of their own.  Every
# address (10.213.0.N/24) lives inside these namespaces only, so the root
# namespace gains no address or route and concurrent runs cannot collide;
# names carry the test's PID.  Source it after tests/lib/common.sh; it
# skips the test (exit 77) unless run as root with `ip netns` and veth and
# bridge links available, and deletes everything it made on exit.
#
#   netns_need                 skip (exit 77) unless namespaces can be made
#   netns_add NAME N           namespace NAME with address 10.213.0.N
#   netns_name NAME            the namespace's real name, for ip netns exec
#   netns_addr NAME            its address
#   netns_exec NAME CMD...     CMD inside the namespace
#   netns_spawn VAR NAME LOG CMD...
#                              CMD in the background inside NAME, stderr to
#                              LOG, killed at exit; sets VAR to its PID
#   netns_server VAR NAME LOG [ARGS...]
#                              magick-dpc serve inside NAME, on its address
#                              and a free port, logging to LOG; sets VAR to
#                              the port

NETNS_PREFIX=dpct$$
NETNS_HUB=${NETNS_PREFIX}hub
NETNS_MADE=()                  # namespaces to delete at exit, hub last

# netns_cleanup: kills what still runs in our namespaces, deletes them.
netns_cleanup() {
    local ns pids
    for ns in "${NETNS_MADE[@]}"; do
        pids=$(ip netns pids "$ns" 2> /dev/null) || true
        # shellcheck disable=SC2086
        [ -z "$pids" ] || kill -KILL $pids 2> /dev/null || true
    done
    for ns in "${NETNS_MADE[@]}"; do
        ip netns del "$ns" 2> /dev/null || true
    done
    NETNS_MADE=()
}
# After common.sh's cleanup, which kills the processes it tracks.
if declare -F cleanup > /dev/null; then
    trap 'cleanup; netns_cleanup' EXIT
else
    trap netns_cleanup EXIT
fi

netns_skip() {
    echo "SKIP: $1"
    exit 77
}

# netns_need: the hub namespace and its bridge, or a skip.
netns_need() {
    [ "$(id -u)" = 0 ] || netns_skip "network namespaces need root"
    command -v ip > /dev/null || netns_skip "no ip(8) (iproute2)"
    ip netns add "$NETNS_HUB" 2> /dev/null ||
        netns_skip "ip netns add failed: no network namespaces here"
    NETNS_MADE+=("$NETNS_HUB")
    ip -n "$NETNS_HUB" link add br0 type bridge 2> /dev/null ||
        netns_skip "cannot make a bridge (no bridge module?)"
    ip -n "$NETNS_HUB" link set br0 up
}

netns_name() {
    echo "$NETNS_PREFIX$1"
}

netns_addr() {
    cat "$WORK/netns-$1.addr"
}

# netns_add NAME N: a namespace with loopback up and eth0 at 10.213.0.N,
# its veth peer on the hub's bridge.
netns_add() {
    local ns=$NETNS_PREFIX$1 n=$2
    ip netns add "$ns"
    NETNS_MADE=("$ns" "${NETNS_MADE[@]}")
    ip -n "$ns" link set lo up
    ip -n "$ns" link add eth0 type veth peer name "p$n" netns "$NETNS_HUB" ||
        netns_skip "cannot make a veth pair"
    ip -n "$ns" addr add "10.213.0.$n/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$NETNS_HUB" link set "p$n" master br0 up
    echo "10.213.0.$n" > "$WORK/netns-$1.addr"
}

netns_exec() {
    local ns=$NETNS_PREFIX$1
    shift
    ip netns exec "$ns" "$@"
}

# netns_spawn VAR NAME LOG CMD...: ip netns exec execs CMD, so the PID is
# CMD's own.
netns_spawn() {
    local var=$1 ns=$NETNS_PREFIX$2 log=$3
    shift 3
    ip netns exec "$ns" "$@" 2>> "$log" &
    printf -v "$var" '%s' "$!"
    track "$!"
}

# netns_server VAR NAME LOG [ARGS...]: waits up to 5 s for the server's
# "listening on ADDR:PORT" line.
netns_server() {
    local var=$1 name=$2 log=$3 addr pid p i
    shift 3
    addr=$(netns_addr "$name")
    : > "$log"
    netns_spawn pid "$name" "$log" \
        "$MAGICK_DPC" serve --listen "$addr:0" --socket none "$@"
    for ((i = 0; i < 100; i++)); do
        p=$(sed -n "s/.*listening on ${addr//./\\.}:\\([0-9]*\\).*/\\1/p" \
            "$log" | head -n 1)
        [ -n "$p" ] && break
        kill -0 "$pid" 2> /dev/null || break
        sleep 0.05
    done
    [ -n "$p" ] || { cat "$log" >&2; return 1; }
    printf -v "$var" '%s' "$p"
}
