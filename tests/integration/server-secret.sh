#!/usr/bin/env bash
# The shared secret never stays in the server's memory, and the server
# keeps its keys from core files and from other processes of its uid:
# its memory (every readable mapping, through /proc/PID/mem) holds no
# copy of the secret; it is not dumpable (run as nobody, its /proc files
# belong to root) and its core file limit is 0.  It refuses a placeholder
# or a short secret at start, naming cache:shared-secret and how to make
# one.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
MEMSCAN=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/tools/memscan.py

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server

no_secret_in_memory() {
    /usr/bin/python3 "$MEMSCAN" "$SERVER_PID" "$SECRET" "--socket" \
        > "$WORK/scan.out"
    cat "$WORK/scan.out"
    grep -qx -- 'found --socket' "$WORK/scan.out"   # the scan sees memory
    grep -qx -- "absent $SECRET" "$WORK/scan.out"
}
# Clients authenticate, so the keys are in use, then the memory is read.
check "a client authenticates" \
    sh -c "'$MAGICK_DPC' status --host 127.0.0.1:$PORT > /dev/null"
check "the secret is nowhere in the server's memory" no_secret_in_memory
check "core file limit 0" \
    grep -Eq '^Max core file size +0 +0 ' "/proc/$SERVER_PID/limits"

not_dumpable() {
    local pid owner
    chmod 755 "$WORK" "$WORK/etc"
    chmod 644 "$WORK/etc/policy.xml"
    setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
        "$MAGICK_DPC" serve --listen 127.0.0.1:0 --socket none \
        2> "$WORK/nobody.log" &
    pid=$!
    track $pid
    [ -n "$(port_of "$WORK/nobody.log")" ]
    # a process that is not dumpable has its /proc/PID files owned by root
    owner=$(stat -c %u "/proc/$pid/mem")
    kill $pid
    echo "uid of /proc/$pid/mem: $owner"
    [ "$owner" = 0 ]
}
check "not dumpable: running as nobody, its /proc/PID/mem belongs to root" \
    not_dumpable

# refused SECRET PATTERN: serve exits 2 with PATTERN and the policy name.
refused() {
    local dir=$WORK/etc-refused rc=0
    make_policy "$1" "$dir"
    MAGICK_CONFIGURE_PATH=$dir timeout 10 "$MAGICK_DPC" serve --listen 127.0.0.1:0 \
        --socket none 2> "$WORK/refused.err" || rc=$?
    cat "$WORK/refused.err"
    [ "$rc" = 2 ]
    grep -q -- "$2" "$WORK/refused.err"
    grep -q 'cache:shared-secret' "$WORK/refused.err"
    grep -q 'openssl rand -base64 32' "$WORK/refused.err"
}
check "the example policy's CHANGE-ME is refused as a placeholder" \
    refused CHANGE-ME 'placeholder'
check "a secret of 15 characters is refused as too short" \
    refused 0123456789abcde 'too short'

# dropin_refuses SECRET PATTERN: the drop-in library refuses it too.
dropin_refuses() {
    local dir=$WORK/etc-client rc=0
    make_policy "$1" "$dir"
    mem_convert -size 16x16 xc:gray "$WORK/in.miff"
    MAGICK_CONFIGURE_PATH=$dir LD_LIBRARY_PATH=$DROPIN_LIB \
        timeout 60 "$CONVERT" -define cache:hosts=127.0.0.1:"$PORT" \
        -define cache:tiers=distributed "$WORK/in.miff" "$WORK/out.miff" \
        2> "$WORK/client.err" || rc=$?
    cat "$WORK/client.err"
    [ "$rc" -ne 0 ]
    grep -q -- "$2" "$WORK/client.err"
    grep -q 'openssl rand -base64 32' "$WORK/client.err"
}
if [ -n "${DROPIN_LIB:-}" ] && [ -e "$DROPIN_LIB/libMagickCore-6.Q16.so.6" ]; then
    check "the drop-in client refuses CHANGE-ME" \
        dropin_refuses CHANGE-ME 'placeholder'
    check "the drop-in client refuses a short secret" \
        dropin_refuses short-secret 'too short'
fi
check "the server still serves" server_alive
check_stops
finish
