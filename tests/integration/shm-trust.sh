#!/usr/bin/env bash
# Whom a local client trusts: a server running as root, as the client's
# own uid, or as the server user (cache:dpc-server-user), in a socket no
# one else could have put there.  A user made for the test squats a socket
# in a world-writable sticky directory (as /tmp is): root's clients (the
# status command, the shm tier, the shm: coder) refuse it with an error
# naming the cause and the fix; a root server in that directory is refused
# too; the server user setting trusts a server of that user in its own
# directory; the normal path still works.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
if [ "$(id -u)" != 0 ]; then
    echo "SKIP: the squatter is a user made by the test, which needs root"
    exit 77
fi

TEST_USER=dpc-shm-test
MADE_USER=
cleanup_user() {
    [ -n "$MADE_USER" ] && userdel "$TEST_USER" 2>/dev/null || true
    cleanup
}
trap cleanup_user EXIT
if ! id "$TEST_USER" > /dev/null 2>&1; then
    useradd --system --user-group --no-create-home \
        --shell /usr/sbin/nologin "$TEST_USER"
    MADE_USER=1
fi
SQUATTER=$(id -u "$TEST_USER")
chmod 0711 "$WORK"
mkdir -m 1777 "$WORK/sticky"
mkdir -m 0700 "$WORK/own"
chown "$TEST_USER" "$WORK/own"

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server --shm-budget 64MiB
mem_convert -size 32x32 xc:red "$WORK/red.miff"

# user_serve NAME SOCKET: a socket-only magick-dpc run by the test user,
# serving root too (which is to refuse it, or not).
user_serve() {
    : > "$WORK/$1.log"
    # setpriv execs: the pid tracked is the server's
    setpriv --reuid "$TEST_USER" --regid "$TEST_USER" --init-groups \
        "$MAGICK_DPC" serve --listen none --socket "$2" --allow-uids 0 \
        > /dev/null 2>> "$WORK/$1.log" &
    track $!
    for _ in $(seq 1 100); do [ -S "$2" ] && return 0; sleep 0.05; done
    cat "$WORK/$1.log" >&2
    return 1
}
user_serve squat "$WORK/sticky/magick-dpc.sock"
SQUAT=$WORK/sticky/magick-dpc.sock

# refused WHY CMD...: CMD fails, its error naming WHY.
refused() {
    local why=$1 rc=0
    shift
    "$@" > /dev/null 2> "$WORK/refused.err" || rc=$?
    cat "$WORK/refused.err" >&2
    [ "$rc" != 0 ] && grep -q -- "$why" "$WORK/refused.err"
}
NOT_TRUSTED="not trusted: the server is uid $SQUATTER, not root, us or cache:dpc-server-user"

check "the status command refuses a squatter's server" \
    refused "$NOT_TRUSTED" "$MAGICK_DPC" status --socket "$SQUAT"
check "the shm tier refuses a squatter's server" \
    refused "$NOT_TRUSTED" env LD_LIBRARY_PATH="$DROPIN_LIB" "$CONVERT" \
    -define cache:dpc-socket="$SQUAT" -define cache:tiers=shm \
    "$WORK/red.miff" -flip null:
check "the shm: coder refuses a squatter's server" \
    refused "$NOT_TRUSTED" env SHM_SOCK="$SQUAT" bash -c \
    ". '$TOP_SRCDIR/tests/lib/common.sh'; SHM_SOCK='$SQUAT'; shm_convert '$WORK/red.miff' shm:x"

# root's own server, but in the sticky directory: anyone could have been
# first at that path.
root_in_sticky() {
    local port
    extra_server port sticky --socket "$WORK/sticky/root.sock"
    refused "not trusted: others may write to $WORK/sticky (mode 1777)" \
        "$MAGICK_DPC" status --socket "$WORK/sticky/root.sock"
}
check "a socket in a world-writable sticky directory is refused, even root's" \
    root_in_sticky

server_user() {
    user_serve own "$WORK/own/magick-dpc.sock"
    refused "$NOT_TRUSTED" "$MAGICK_DPC" status --socket "$WORK/own/magick-dpc.sock"
    mkdir -p "$WORK/etc-user"
    sed "s|</policymap>|  <policy domain=\"cache\" name=\"dpc-server-user\" value=\"$TEST_USER\"/>\n</policymap>|" \
        "$WORK/etc/policy.xml" > "$WORK/etc-user/policy.xml"
    MAGICK_CONFIGURE_PATH=$WORK/etc-user "$MAGICK_DPC" status \
        --socket "$WORK/own/magick-dpc.sock" > /dev/null
    LD_LIBRARY_PATH=$DROPIN_LIB "$CONVERT" \
        -define cache:dpc-socket="$WORK/own/magick-dpc.sock" \
        -define cache:dpc-server-user="$TEST_USER" \
        -define cache:tiers=shm "$WORK/red.miff" -flip null:
    # ... and not in the sticky directory, server user or not
    MAGICK_CONFIGURE_PATH=$WORK/etc-user refused "others may write to $WORK/sticky (mode 1777)" \
        "$MAGICK_DPC" status --socket "$SQUAT"
}
check "cache:dpc-server-user trusts that user's server in its own directory" \
    server_user

normal() {
    shm_json > /dev/null
    DPC_VIA=shm dpc_convert "$WORK/red.miff" -flip "$WORK/flip.miff"
    same_pixels "$WORK/red.miff" "$WORK/flip.miff"
    shm_convert "$WORK/red.miff" shm:red
    shm_convert shm:red "$WORK/red2.miff"
    same_pixels "$WORK/red.miff" "$WORK/red2.miff"
}
check "root's own server in a private directory still serves" normal

check_stops
finish
