#!/usr/bin/env bash
# README.md's settings tables and `magick-dpc --help` name the same
# options, with the same policy.xml names and defaults: every server option
# --help lists is in a table ("| option | policy name | default |"), and
# every row of those tables is in --help.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"

README=$TOP_SRCDIR/README.md
: > "$WORK/server.log"                  # no server here; record shows its log

# help_settings: "OPTION<TAB>POLICY<TAB>DEFAULT" for each option of --help
# (POLICY and DEFAULT empty for an option without a policy name), an entry's
# continuation lines joined to it.
help_settings() {
    "$MAGICK_DPC" --help | awk '
        function flush() {
            if (entry == "") return
            opt = entry; sub(/^ +/, "", opt); sub(/[ ,].*/, "", opt)
            pol = ""; def = ""
            if (match(entry, /\[[a-z0-9-]+; default [^][]*\]$/)) {
                s = substr(entry, RSTART + 1, RLENGTH - 2)
                pol = s; sub(/;.*/, "", pol)
                def = s; sub(/^[^;]*; default /, "", def)
            }
            printf "%s\t%s\t%s\n", opt, pol, def
            entry = ""
        }
        /^  -/ { flush(); entry = $0; next }
        /^    / && entry != "" { line = $0; sub(/^ +/, "", line); entry = entry " " line; next }
        { flush() }
        END { flush() }'
}

# readme_settings: the same from README.md's tables: the first option
# written in the first cell (every one, in a row without a policy name), the first name in backquotes in the second, the
# third cell without its backquotes.
readme_settings() {
    awk '
        /^\| option \| policy name \| default \|$/ { in_table = 1; next }
        in_table && !/^\|/ { in_table = 0 }
        !in_table || /^\|---/ { next }
        {
            line = $0; gsub(/\\\|/, "\001", line)
            n = split(line, cell, "|")
            for (i = 2; i <= 4; i++) {
                gsub(/\001/, "|", cell[i]); sub(/^ +/, "", cell[i]); sub(/ +$/, "", cell[i])
            }
            pol = ""
            if (match(cell[3], /`[^`]*`/)) pol = substr(cell[3], RSTART + 1, RLENGTH - 2)
            def = cell[4]; gsub(/`/, "", def)
            # a row without a policy name may name several options
            rest = cell[2]
            while (match(rest, /`-[-a-z0-9]*/)) {
                printf "%s\t%s\t%s\n", substr(rest, RSTART + 1, RLENGTH - 1), pol, def
                rest = substr(rest, RSTART + RLENGTH)
                if (pol != "") break
            }
        }' "$README"
}

tables_match_help() {
    help_settings | sort -u > "$WORK/help.tsv"
    readme_settings | sort -u > "$WORK/readme.tsv"
    cat "$WORK/help.tsv"
    [ "$(wc -l < "$WORK/help.tsv")" -ge 10 ]
    # "<": only in --help; ">": only in README.md
    diff "$WORK/help.tsv" "$WORK/readme.tsv"
}
check "README.md's settings tables say what --help says" tables_match_help

finish
