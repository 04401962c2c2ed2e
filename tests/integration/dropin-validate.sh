#!/usr/bin/env bash
# ImageMagick's own validation suite (tests/validate from the same source
# tree, built against the drop-in library) with every pixel cache forced
# onto magick-dpc: each subtest must end as it does on the memory tier of
# the same library, and the server must really have held the caches.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
skip_when_quick
VALIDATE=${VALIDATE:-$TOP_SRCDIR/_build-dropin/obj/tests/.libs/validate}
TREE=$(ls -d "$TOP_SRCDIR"/_build-dropin/source/dl/imagemagick-*/tests 2>/dev/null | head -n 1)
if [ ! -x "$VALIDATE" ] || [ -z "$TREE" ]; then
    echo "SKIP: ImageMagick's tests/validate is not built (MagickCore-ext/dropin/build.sh --also tests/validate)"
    exit 77
fi
make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server
policy_with_tiers() {
    mkdir -p "$WORK/$1"
    sed "s|</policymap>|  <policy domain=\"cache\" name=\"hosts\" value=\"127.0.0.1:$PORT\"/>\n  <policy domain=\"cache\" name=\"tiers\" value=\"$2\"/>\n</policymap>|" \
        "$WORK/etc/policy.xml" > "$WORK/$1/policy.xml"
}
policy_with_tiers memory memory,disk
policy_with_tiers remote distributed

# run_validate SUITE TIER: the per-subtest outcomes, one line each.
# glibc's malloc keeps what the suite frees (no mmap, no trim): else its
# thousands of image buffers, each mapped and unmapped again, cost 34
# million page faults, 115 s of a 136 s run; 22 s with the tunables.
run_validate() {
    (cd "$TREE" && MAGICK_CONFIGURE_PATH=$WORK/$2 LD_LIBRARY_PATH=$DROPIN_LIB \
        GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295 \
        timeout 900 "$VALIDATE" -validate "$1") > "$WORK/$1-$2.log" 2>&1 || true
    grep -E '^  test [0-9]+:' "$WORK/$1-$2.log" | sed 's/ @ .*//' > "$WORK/$1-$2.out"
}

same_as_memory() {
    local before after
    run_validate "$1" memory
    before=$(json_field requests_served)
    run_validate "$1" remote
    after=$(json_field requests_served)
    grep -h 'summary' "$WORK/$1-memory.log" "$WORK/$1-remote.log"
    [ -s "$WORK/$1-remote.out" ]
    grep -q 'pass' "$WORK/$1-remote.out"
    diff "$WORK/$1-memory.out" "$WORK/$1-remote.out"
    # the distributed run went through the server, the memory run did not
    [ "$after" -gt $((before + 100)) ]
}
check "validate formats-memory: every subtest as on the memory tier" \
    same_as_memory formats-memory
check "validate convert: every subtest as on the memory tier" \
    same_as_memory convert
check "no cache left on the server" sh -c \
    "[ \"\$('$MAGICK_DPC' status --host 127.0.0.1:$PORT | sed -n 's/.*\"caches_open\":\([0-9]*\).*/\1/p')\" = 0 ]"
check_stops
finish
