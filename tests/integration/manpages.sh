#!/usr/bin/env bash
# The man pages: man renders both without a warning; every option
# `magick-dpc --help` prints is in magick-dpc(1), every policy name it
# prints is in magick-dpc-policy(5).
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
PAGE1=$TOP_SRCDIR/man/magick-dpc.1
PAGE5=$TOP_SRCDIR/man/magick-dpc-policy.5
command -v man > /dev/null || { echo "no man (man-db): skipped"; exit 77; }

# render PAGE OUT: the page as text, wide (no line breaks inside an
# option), ASCII; fails on any warning.
render() {
    LC_ALL=C MANWIDTH=400 man -l "$1" > "$2" 2> "$2.err"
    [ ! -s "$2.err" ] || { cat "$2.err"; return 1; }
}

renders_clean() {
    local page err
    for page in "$PAGE1" "$PAGE5"; do
        err=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 > /dev/null)
        [ -z "$err" ] || { echo "$page: $err"; return 1; }
    done
}
check "man --warnings renders both pages without a warning" renders_clean

every_option() {
    local opt missing=0
    "$MAGICK_DPC" --help > "$WORK/help"
    render "$PAGE1" "$WORK/page1"
    for opt in $(grep -oE '(^|[ |[])--?[a-z][a-z0-9-]*' "$WORK/help" |
                 sed 's/^[ |[]//' | sort -u); do
        grep -qF -- "$opt" "$WORK/page1" ||
            { echo "magick-dpc.1 lacks $opt"; missing=1; }
    done
    [ "$missing" = 0 ]
}
check "every option of --help is in magick-dpc(1)" every_option

every_command() {
    local cmd
    render "$PAGE1" "$WORK/page1"
    for cmd in serve status drain "shm ls" "shm rm"; do
        grep -q "^       $cmd" "$WORK/page1" ||
            { echo "magick-dpc.1 lacks the command $cmd"; return 1; }
    done
    grep -q '^EXAMPLES' "$WORK/page1"
}
check "every command has its entry, and there are examples" every_command

every_policy_name() {
    local name missing=0
    "$MAGICK_DPC" --help > "$WORK/help"
    render "$PAGE5" "$WORK/page5"
    for name in $(sed -n 's/.*\[\([a-z0-9-]*\);.*/\1/p' "$WORK/help" |
                  sort -u) $(tr ' ' '\n' < "$WORK/help" |
                  sed -n 's/^\[\([a-z][a-z0-9-]*\);$/\1/p' | sort -u); do
        grep -qE -- "(^| )$name( |$)" "$WORK/page5" ||
            { echo "magick-dpc-policy.5 lacks $name"; missing=1; }
    done
    [ "$missing" = 0 ]
}
check "every policy name of --help is in magick-dpc-policy(5)" every_policy_name
finish
