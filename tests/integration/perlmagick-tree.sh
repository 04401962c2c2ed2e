#!/usr/bin/env bash
# PerlMagick's own test tree (PerlMagick/t of the source the drop-in was
# built from: every .t, the per-delegate directories and t/ttf included),
# run with prove against Debian's installed Image::Magick on the drop-in
# libMagickCore: on the memory tier, the distributed tier and the shm tier,
# chosen by a policy.xml as a Perl program would get it; and once on the
# system's own libMagickCore.  Each run must have the same test files with
# the same plans and the same verdict for every subtest as the drop-in's
# memory tier (tests that fail for a missing delegate fail in every run),
# no test may die by a signal, and the distributed and shm runs must
# really have put their caches on the server.
# DPC_SLOW_TESTS=no: the memory and distributed tiers only.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
perl -MImage::Magick -e 1 2> /dev/null || {
    echo "SKIP: PerlMagick (libimage-magick-perl) is not installed"; exit 77; }
command -v prove > /dev/null || { echo "SKIP: no prove (perl)"; exit 77; }
TREE=$(ls -d "$TOP_SRCDIR"/_build-dropin/source/dl/imagemagick-*/PerlMagick/t \
    2> /dev/null | head -n 1)
if [ -z "$TREE" ]; then
    echo "SKIP: no ImageMagick source tree with PerlMagick/t in _build-dropin"
    exit 77
fi
PROVE_TIMEOUT=${PROVE_TIMEOUT:-600}

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server

TIERS="memory distributed shm system"
[ "${DPC_SLOW_TESTS:-yes}" = no ] && TIERS="memory distributed"

tier_policy memory memory,disk > /dev/null
tier_policy distributed > /dev/null
tier_policy shm > /dev/null

# run_tree TIER: prove -r over a private copy of t/ (the tests write
# files next to their inputs), from the directory the tests expect: they
# require t/subroutines.pl, then chdir into t/.  Without -b or -l, so
# Perl finds the installed Image::Magick.  On the drop-in library, but
# TIER "system": the system's, with the test's plain policy.xml.  Its
# status goes to TIER.rc.
run_tree() {
    local rc=0 lib=$DROPIN_LIB etc=$WORK/etc-$1
    [ "$1" = system ] && lib= etc=$WORK/etc
    mkdir -p "$WORK/$1/tmp"
    cp -r "$TREE" "$WORK/$1/t"
    (cd "$WORK/$1" && MAGICK_CONFIGURE_PATH=$etc \
        MAGICK_TEMPORARY_PATH=$WORK/$1/tmp LD_LIBRARY_PATH=$lib \
        timeout "$PROVE_TIMEOUT" prove -I. -r -v t/) \
        > "$WORK/$1.prove" 2> "$WORK/$1.err" || rc=$?
    echo "$rc" > "$WORK/$1.rc"
}

# verdicts TIER: one line per test file: its plan, each subtest's ok or
# not ok, and how it ended (prove's "Wstat" when it failed).
verdicts() {
    awk '
    /^t\/.*\.t \.+ *$/ { file = $1; order[++n] = file; next }
    file != "" && /^[0-9]+\.\.[0-9]+$/ { plan[file] = $0; next }
    file != "" && /^(not )?ok [0-9]+/ {
        v = ($1 == "not") ? "not-ok " $3 : "ok " $2
        res[file] = res[file] " " v; next }
    /^Test Summary Report/ { file = ""; summary = 1; next }
    summary && /^t\/.*\(Wstat: / {
        w = $0; sub(/^[^(]*\(/, "", w); sub(/ Tests:.*/, "", w)
        end[$1] = w }
    END {
        for (i = 1; i <= n; i++) {
            f = order[i]
            printf "%s: plan %s,%s; %s\n", f, plan[f], res[f],
                (f in end) ? end[f] : "passed"
        } }' "$WORK/$1.prove"
}

REQ_BEFORE=$(json_field requests_served)
START=$(date +%s)
# The tiers in parallel (each prove runs one test at a time; the tiers
# share nothing but the server), each bounded by PROVE_TIMEOUT.
PIDS=()
for tier in $TIERS; do
    run_tree "$tier" &
    PIDS+=($!)
done
wait "${PIDS[@]}"
echo "# the trees ($TIERS) took $(($(date +%s) - START)) s together"
REQ_AFTER=$(json_field requests_served)

ran() {
    local files
    [ -s "$WORK/$1.rc" ]
    grep -E '^(Files=|Result:)' "$WORK/$1.prove"
    [ "$(cat "$WORK/$1.rc")" != 124 ] || { echo "timed out"; return 1; }
    files=$(verdicts "$1" | wc -l)
    echo "$files test files"
    [ "$files" -ge 40 ]
}
no_signal() {
    ! grep -E 'Signal: |wstat [0-9]+, 0x[0-9a-f]+\)' "$WORK/$1.prove" |
        grep -vE 'wstat [0-9]+, 0x[0-9a-f]*00\)'
}
same_verdicts() {
    verdicts memory > "$WORK/memory.verdicts"
    verdicts "$1" > "$WORK/$1.verdicts"
    diff "$WORK/memory.verdicts" "$WORK/$1.verdicts"
}
for tier in $TIERS; do
    check "$tier: prove ran the whole tree" ran "$tier"
    check "$tier: no test died by a signal" no_signal "$tier"
    [ "$tier" = memory ] ||
        check "$tier: every test file and subtest as on the memory tier" \
            same_verdicts "$tier"
done
check "distributed: the server held the caches ($((REQ_AFTER - REQ_BEFORE)) requests)" \
    test "$REQ_AFTER" -gt $((REQ_BEFORE + 1000))
segments_granted() { [ "$(shm_field peak)" -gt 0 ]; }
[[ " $TIERS " != *" shm "* ]] ||
    check "shm: the server granted segments" segments_granted
check "server alive" server_alive
no_cache_left() {
    [ "$(json_field caches_open)" = 0 ] && [ "$(shm_field used)" = 0 ]
}
check "no cache or segment left on the server" no_cache_left
check_stops
finish
