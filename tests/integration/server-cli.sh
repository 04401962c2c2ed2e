#!/usr/bin/env bash
# magick-dpc's command line: help, configuration errors that name their
# fix, policy.xml settings, the status command, IPv6, signals.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
mkdir -p "$WORK/nosecret"
echo '<policymap/>' > "$WORK/nosecret/policy.xml"

help_works() {
    "$MAGICK_DPC" --help > "$WORK/help.txt"
    grep -q -- '--listen HOST:PORT' "$WORK/help.txt"
    grep -q 'magick-dpc status' "$WORK/help.txt"
    "$MAGICK_DPC" serve --help | grep -q -- '--memory SIZE'
    "$MAGICK_DPC" --version | grep -q '^magick-dpc [0-9]'
}
check "--help and --version" help_works

# expect_exit CODE PATTERN CMD...: exit status CODE, stderr matching PATTERN.
expect_exit() {
    local code=$1 pattern=$2 rc=0
    shift 2
    "$@" 2> "$WORK/stderr" || rc=$?
    cat "$WORK/stderr"
    [ "$rc" -eq "$code" ] || { echo "exit $rc, expected $code"; return 1; }
    grep -q -- "$pattern" "$WORK/stderr"
}
check "no secret: exit 2 naming the policy line" env \
    MAGICK_CONFIGURE_PATH="$WORK/nosecret" bash -c "$(declare -f expect_exit); WORK=$WORK \
    expect_exit 2 'name=\"shared-secret\"' '$MAGICK_DPC' serve --listen 127.0.0.1:0"
check "unknown option: exit 2" expect_exit 2 "Try 'magick-dpc --help'" \
    "$MAGICK_DPC" serve --frobnicate
check "bad size: exit 2 naming it" expect_exit 2 "unknown unit 'QB'" \
    "$MAGICK_DPC" serve --memory 12QB
check "bad listen address: exit 2" expect_exit 2 "bad port" \
    "$MAGICK_DPC" serve --listen 127.0.0.1:99999
check "unknown command: exit 2" expect_exit 2 "unknown command 'frob'" \
    "$MAGICK_DPC" frob

# Settings from policy.xml, and the command line over them.
cat > "$WORK/etc/policy.xml" <<XML
<policymap>
  <policy domain="cache" name="shared-secret" value="$SECRET" stealth="true"/>
  <policy domain="cache" name="dpc-memory" value="64MiB"/>
  <policy domain="cache" name="max-dpc-clients" value="7"/>
</policymap>
XML
start_server
check "status prints every field" sh -c "'$MAGICK_DPC' status --host 127.0.0.1:$PORT |
    grep -E '\"caches_open\":0,.*\"bytes_ram\":0,.*\"bytes_spilled\":0,.*\"clients_connected\":1,.*\"requests_served\":[0-9]+,.*\"uptime_seconds\":[0-9.]+'"
check "policy.xml sets the memory budget" \
    sh -c "[ \"\$('$MAGICK_DPC' status --host 127.0.0.1:$PORT | sed -n 's/.*\"memory_budget\":\([0-9]*\).*/\1/p')\" = 67108864 ]"
check "listening address in use: exit 1 naming it" expect_exit 1 \
    "Address already in use" "$MAGICK_DPC" serve --listen 127.0.0.1:"$PORT"
make_policy wrong-secret-of-more-than-16-bytes "$WORK/wrong"
check "status with a wrong secret: exit 1, authentication named" env \
    MAGICK_CONFIGURE_PATH="$WORK/wrong" bash -c "$(declare -f expect_exit); WORK=$WORK \
    expect_exit 1 'authentication failed' '$MAGICK_DPC' status --host 127.0.0.1:$PORT"
check "wrong secret counted, never logged" sh -c \
    "sleep 0.2; '$MAGICK_DPC' status --host 127.0.0.1:$PORT | grep -q '\"auth_failures\":1,' &&
     ! grep -q 'wrong-secret-of' '$WORK/server.log'"
check_stops
check "status of a stopped server: exit 1, refused" expect_exit 1 \
    "Connection refused" "$MAGICK_DPC" status --host 127.0.0.1:"$PORT"

start_server --memory 32MiB
check "command line over policy.xml" \
    sh -c "[ \"\$('$MAGICK_DPC' status --host 127.0.0.1:$PORT | sed -n 's/.*\"memory_budget\":\([0-9]*\).*/\1/p')\" = 33554432 ]"
NATIVE_CHECK=${NATIVE_CHECK:-$(dirname "$MAGICK_DPC")/../tests/tools/native-check}
preallocated() {
    local port secret
    secret=$(sed -n 's/.*name="shared-secret" value="\([^"]*\)".*/\1/p' \
        "$WORK/etc/policy.xml")
    extra_server port prealloc --memory 64MiB --preallocate
    grep -q 'preallocated 64 MiB of memory' "$WORK/prealloc.log"
    "$MAGICK_DPC" status --host 127.0.0.1:"$port" > "$WORK/pre.json"
    grep -q '"bytes_warm":67108864,' "$WORK/pre.json"
    grep -q '"preallocated":true,' "$WORK/pre.json"
    "$NATIVE_CHECK" random1 "$secret" 203 157 4 127.0.0.1:"$port" | grep -q '^ok:'
    "$MAGICK_DPC" status --host 127.0.0.1:"$port" > "$WORK/pre.json"
    cat "$WORK/pre.json"
    # the cache came out of the preallocated memory, which is all back
    grep -Eq '"warm_reuses":[1-9]' "$WORK/pre.json"
    grep -q '"bytes_warm":67108864,' "$WORK/pre.json"
    grep -q '"caches_open":0,' "$WORK/pre.json"
}
check "--preallocate: the budget faulted in at start, caches served from it" \
    preallocated
check "--preallocate past the machine's memory: exit 1 naming --memory" \
    expect_exit 1 "only [0-9]* MiB available (lower --memory" \
    "$MAGICK_DPC" serve --listen 127.0.0.1:0 --socket none \
    --memory 100000GiB --preallocate
mkdir -p "$WORK/badpre"
sed 's|</policymap>|  <policy domain="cache" name="dpc-preallocate" value="maybe"/>\n</policymap>|' \
    "$WORK/etc/policy.xml" > "$WORK/badpre/policy.xml"
check "bad dpc-preallocate in policy.xml: exit 2 naming it" env \
    MAGICK_CONFIGURE_PATH="$WORK/badpre" bash -c "$(declare -f expect_exit); WORK=$WORK \
    expect_exit 2 \"bad preallocate 'maybe'\" '$MAGICK_DPC' serve --listen 127.0.0.1:0"
sigint_stops() {
    kill -INT "$SERVER_PID"
    for _ in $(seq 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    ! kill -0 "$SERVER_PID" 2>/dev/null
    grep -q 'signal 2: stopping' "$WORK/server.log"
    grep -q 'stopped' "$WORK/server.log"
}
check "SIGINT stops the server" sigint_stops
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=

# IPv6 loopback, when the machine has it.
if ip -6 addr show dev lo 2>/dev/null | grep -q '::1'; then
    "$MAGICK_DPC" serve --listen '[::1]:0' 2> "$WORK/v6.log" &
    V6_PID=$!
    ipv6_status() {
        local port=
        for _ in $(seq 100); do
            port=$(sed -n 's/.*listening on \[::1\]:\([0-9]*\).*/\1/p' "$WORK/v6.log")
            [ -n "$port" ] && break
            sleep 0.05
        done
        "$MAGICK_DPC" status --host "[::1]:$port" | grep -q '"clients_connected":1'
    }
    check "IPv6 listener on [::1]" ipv6_status
    kill -TERM "$V6_PID"
    wait "$V6_PID"
else
    echo "# IPv6 loopback not configured: IPv6 listener not tested"
fi
finish
