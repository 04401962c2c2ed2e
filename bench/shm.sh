#!/usr/bin/env bash
# shm.sh: the shared-memory tier and the shm: coder, side by side in one run:
#   A. one convert on a 2000x1500 image, -blur 0x2 and -resize 50%, with the
#      drop-in libMagickCore's shm tier (cache:tiers=shm) against its memory
#      tier (cache:tiers=memory), and the system library as a third row;
#   B. an image handed from one convert to the next
#      (convert in.png -resize 50% X; convert X -sharpen 0x1 out.png) through
#      shm:NAME (drop-in: attached in place; system library: copied), MPC,
#      MIFF and PNG files in /dev/shm, plus an attach-only read of X;
#   C. no pixel copy on attach: peak RSS and minor page faults of reading a
#      big (8000x6000, 384 MB of pixels) image from shm: and from MPC.
#
# Only a Unix socket is used (magick-dpc serve --listen none): nothing
# listens on the network, so unlike compare-stock.sh and dropin.sh this
# script needs no private network namespace.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$SELF")/lib.sh"      # LC_ALL=C, CONVERT, die, cleanup, spawn, median ...

COMPARE_CMD=(env -u LD_LIBRARY_PATH "$COMPARE")   # compare without the drop-in

usage() {
    cat <<EOF
Usage: bench/shm.sh [OPTIONS]

Starts its own magick-dpc (serve --listen none: a Unix socket in the work
directory, no TCP) and measures, all in one run with the variants
interleaved:

  A. convert in.png OP out.miff for OP = -blur 0x2 and -resize 50% on a
     generated 2000x1500 plasma image: the drop-in libMagickCore with
     -define cache:tiers=shm against the same library with
     cache:tiers=memory (target: within 1.05x), and the system library;
  B. handing the image from one convert to the next,
       convert in.png -resize 50% X;  convert X -sharpen 0x1 out.png
     with X = shm:NAME (drop-in library: attached in place; system
     library: copied), an MPC file, a MIFF file and a PNG file in $SHM_DIR_DEFAULT,
     plus an attach-only read (convert X -format %wx%h info:) of each;
     (target: no slower than MPC on tmpfs);
  C. no pixel copy on attach: one big image (8000x6000: 384 MB of Q16
     pixels) published once, then read through shm: (drop-in and system
     library) and MPC: wall time, peak RSS and minor page faults, for an
     attach-only read and for one that reads every pixel (%[mean]).

Every output of A and B is checked with compare -metric AE (it must print
0); in C, every variant must print the same pixel signature (-format %#).

Options:
  -n, --repeat N        runs per variant, median [5]
      --quick           -n 1 and --big 4000x3000 (about 1 minute)
  -s, --size WxH        input size for A and B [2000x1500]
      --big WxH         image size for C [8000x6000]
      --no-big          skip C
      --no-stock        skip the system-library row in A
      --budget SIZE     the server's --shm-budget [4GiB]
  -t, --timeout SEC     limit on one convert [600]
  -k, --keep            keep the work directory (inputs, outputs, logs) and
                        the small hand-off files (also KEEP=1)
  -h, --help            this message

Environment:
  MAGICK_DPC            the server [\$top/_install/bin/magick-dpc]
  DROPIN_LIB            directory holding the drop-in
                        libMagickCore-6.Q16.so.6 [\$top/_install/lib]
  SHM_CODER_DIR         directory holding shm.so and shm.la
                        [\$DROPIN_LIB/magick-dpc/coders]
  SHM_DIR               tmpfs directory for the MPC/MIFF/PNG hand-off files
                        [$SHM_DIR_DEFAULT]
  ARTIFACT_WAIT         seconds to wait for an artifact that is missing
                        (being rebuilt) [180]
  TMPDIR                where the work directory goes [/tmp]
  KEEP                  1: as --keep

Exit status: 0 if every convert succeeded and every output matched,
1 otherwise (a pixel mismatch, a failure, a timeout, a dead server, a
name that was not published), 2 on bad usage.
EOF
}

# ---------------------------------------------------------------- options
SHM_DIR_DEFAULT=/dev/shm
REPEAT=5
SIZE=2000x1500
BIG=8000x6000
WITH_BIG=1
WITH_STOCK=1
BUDGET=4GiB
STEP_TIMEOUT=600
KEEP=${KEEP:-0}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            -n|--repeat)  [ $# -ge 2 ] || usage_error "$1 needs a value"; REPEAT=$2; shift ;;
            --repeat=*)   REPEAT=${1#*=} ;;
            --quick)      REPEAT=1; BIG=4000x3000 ;;
            -s|--size)    [ $# -ge 2 ] || usage_error "$1 needs a value"; SIZE=$2; shift ;;
            --size=*)     SIZE=${1#*=} ;;
            --big)        [ $# -ge 2 ] || usage_error "$1 needs a value"; BIG=$2; shift ;;
            --big=*)      BIG=${1#*=} ;;
            --no-big)     WITH_BIG=0 ;;
            --no-stock)   WITH_STOCK=0 ;;
            --budget)     [ $# -ge 2 ] || usage_error "$1 needs a value"; BUDGET=$2; shift ;;
            --budget=*)   BUDGET=${1#*=} ;;
            -t|--timeout) [ $# -ge 2 ] || usage_error "$1 needs a value"; STEP_TIMEOUT=$2; shift ;;
            --timeout=*)  STEP_TIMEOUT=${1#*=} ;;
            -k|--keep)    KEEP=1 ;;
            -h|--help)    usage; exit 0 ;;
            *)            usage_error "unknown argument: $1" ;;
        esac
        shift
    done
    need_positive_ints REPEAT STEP_TIMEOUT
    [[ $SIZE =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]] || usage_error "bad size: $SIZE (want WxH)"
    [[ $BIG =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]] || usage_error "bad --big: $BIG (want WxH)"
    BIG_W=${BASH_REMATCH[1]} BIG_H=${BASH_REMATCH[2]}
    [[ $BUDGET =~ ^[0-9]+([KMGT]i?B|B)?$ ]] || usage_error "bad --budget: $BUDGET (e.g. 4GiB)"
    [ "$KEEP" = 1 ] || KEEP=0
}

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

# server_alive WHERE: if the server is gone, records it and starts a fresh
# one (published names are lost: the next round publishes them again).
server_alive() {
    kill -0 "$SERVER_PID" 2> /dev/null && return 0
    local rc=0
    wait "$SERVER_PID" 2> /dev/null || rc=$?
    echo "  !!! magick-dpc (pid $SERVER_PID) is gone (status $rc) during $1; its log:" >&2
    tail -n 20 "$WORK/server.log" | sed 's/^/    | /' >&2
    PROBLEMS+=("magick-dpc (pid $SERVER_PID) died during $1 (status $rc); restarted")
    SERVER_RESTARTS=$((SERVER_RESTARTS + 1))
    start_dpc
}

dpc_status() { "$DPC_BIN" status --socket "$SOCK" 2> /dev/null || echo '{}'; }
# json_num JSON KEY: a top-level number from status's JSON.
json_num() { echo "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"; }
# (No grep -q in a pipe: under pipefail its early exit can fail the pipe.)
published() {
    local ls
    ls=$("$DPC_BIN" shm ls --socket "$SOCK" 2> /dev/null) || return 1
    [[ $ls == *"\"name\":\"$1\""* ]]
}
unpublish() { "$DPC_BIN" shm rm "$1" --socket "$SOCK" > /dev/null 2>&1 || true; }

# ------------------------------------------------------------ the commands
# convert_cmd VARIANT: CMD (convert and its options, without input,
# operation and output) and STEP_LIMIT, for run_convert (lib.sh).
#   memory, shm  the drop-in with cache:tiers=memory / cache:tiers=shm (A)
#   stock        the system library, nothing else (A)
#   dropin       the drop-in, default tier (memory), the socket named (B, C)
#   stocklib     the system library, the socket named (B, C: the coder)
convert_cmd() {
    STEP_LIMIT=$STEP_TIMEOUT
    case $1 in
        memory|shm) CMD=(env "LD_LIBRARY_PATH=$LIB_DIR" "$CONVERT"
                         -define "cache:tiers=$1" -define "cache:dpc-socket=$SOCK") ;;
        stock)      CMD=(env -u LD_LIBRARY_PATH "$CONVERT") ;;
        dropin)     CMD=(env "LD_LIBRARY_PATH=$LIB_DIR" "$CONVERT" -define "cache:dpc-socket=$SOCK") ;;
        stocklib)   CMD=(env -u LD_LIBRARY_PATH "$CONVERT" -define "cache:dpc-socket=$SOCK") ;;
        *) die "internal error: no variant $1" ;;
    esac
    return 0
}

NOTES=()
LOADS=()
sample_load() { LOADS+=("$(cut -d' ' -f1 /proc/loadavg)"); }

# rotated N REP ITEM...: the items rotated left by (REP-1) mod N, so every
# variant takes every position in turn; result in ROT.
rotated() {
    local n=$1 rep=$2
    shift 2
    local k=$(((rep - 1) % n)) i
    ROT=()
    for ((i = 0; i < n; i++)); do ROT+=("${@:$(((k + i) % n + 1)):1}"); done
}

# fail_run LABEL: records the failure of the last run_convert.
fail_run() {
    if [ "$TIMED_OUT" = 1 ]; then
        PROBLEMS+=("$1 TIMED OUT after ${STEP_LIMIT}s")
        printf '!!! TIMED OUT after %s s\n' "$ELAPSED" >&2
    else
        PROBLEMS+=("$1 FAILED (convert's messages in the progress log)")
        printf '!!! FAILED after %s s\n' "$ELAPSED" >&2
    fi
    sed 's/^/    | /' "$WORK/convert.log" | tail -n 20 >&2
    server_alive "$1"
}

# med_or LIST BAD: the median of LIST, or BAD if set, or FAILED if empty.
med_or() {
    if [ -n "$2" ]; then echo "$2"
    elif [ -z "${1// /}" ]; then echo FAILED
    else
        # shellcheck disable=SC2086  # space-separated numbers
        median $1
    fi
}

# range LIST: "fastest-slowest".
range() {
    [ -n "${1// /}" ] || { echo "-"; return; }
    # shellcheck disable=SC2086
    printf '%s\n' $1 | sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { printf "%.2f-%.2f", a, b }'
}

# later_runs: "run 2" or "runs 2-N", the runs checked against the first.
later_runs() { if [ "$REPEAT" = 2 ]; then echo "run 2"; else echo "runs 2-$REPEAT"; fi; }

# target RATIO LIMIT: "met" if RATIO (e.g. 1.03x) <= LIMIT, else "NOT MET".
target() {
    case $1 in *x) ;; *) echo "not measured"; return ;; esac
    awk -v r="${1%x}" -v l="$2" 'BEGIN { print (r <= l + 1e-9) ? "met" : "NOT MET" }'
}

# ============================================ A. the shm tier against memory
declare -A OP_ARGS=([blur]="-blur 0x2" [resize]="-resize 50%")
A_ROWS=()
A_TARGETS=()
A_SEGMENTS=()

# segments_of LABEL OPARGS...: one untimed -debug cache run on the shm tier;
# SEGS = "N segment(s) of B1 B2 ... bytes" from the tier's lines.
segments_of() {
    local label=$1 rc=0
    shift
    convert_cmd shm
    timeout --foreground -k 10 "$STEP_TIMEOUT" "${CMD[@]}" -debug cache "$WORK/in.png" "$@" null: \
        > "$WORK/probe.log" 2>&1 || rc=$?
    local sizes
    sizes=$(sed -n 's/.*magick-dpc: shm tier: .*: segment [0-9]*, \([0-9]*\) bytes.*/\1/p' "$WORK/probe.log" |
            tr '\n' ' ' | sed 's/ *$//')
    if [ $rc -ne 0 ]; then
        PROBLEMS+=("$label: the -debug cache probe run FAILED (status $rc)")
        server_alive "$label probe"
    fi
    if [ -z "$sizes" ]; then
        SEGS="(no 'magick-dpc: shm tier' line: is the shm tier in use?)"
        PROBLEMS+=("$label: -debug cache printed no 'magick-dpc: shm tier' line")
    else
        # shellcheck disable=SC2086
        set -- $sizes
        SEGS="$# segment(s): $sizes bytes"
    fi
}

bench_tier() {
    local op=$1 label=${OP_ARGS[$1]} rep v ref=""
    local -a opargs variants=(memory shm)
    read -ra opargs <<< "$label"
    [ "$WITH_STOCK" = 1 ] && variants+=(stock)
    local -A times=() bad=()
    for v in "${variants[@]}"; do times[$v]=""; bad[$v]=""; done
    for rep in $(seq 1 "$REPEAT"); do
        sample_load
        rotated ${#variants[@]} "$rep" "${variants[@]}"
        for v in "${ROT[@]}"; do
            local out="$WORK/a-$op-$v-$rep.miff"
            printf '  A %-12s %-7s run %d/%d ... ' "$label" "$v" "$rep" "$REPEAT" >&2
            if ! run_convert "$v" "$WORK/in.png" "$out" "${opargs[@]}"; then
                bad[$v]=FAILED
                [ "$TIMED_OUT" = 1 ] && bad[$v]=TIMEOUT
                fail_run "A $label: $v run $rep"
                continue
            fi
            times[$v]+=" $ELAPSED"
            printf '%8s s' "$ELAPSED" >&2
            if [ -s "$WORK/convert.log" ]; then
                NOTES+=("A $label: $v run $rep succeeded but printed: $(head -n 3 "$WORK/convert.log" | tr '\n' ' ')")
            fi
            if [ "$v" = memory ] && [ -z "$ref" ]; then
                ref=$out
                echo "  (reference)" >&2
                continue
            fi
            check_output "A $label" "$v" "$rep" "$ref" "$out" \
                '  !!!!!!!! PIXEL MISMATCH vs memory: AE=%s !!!!!!!!'
            case $VERDICT in
                UNCHECKED) [ -n "${bad[$v]}" ] || bad[$v]=UNCHECKED ;;
                MISMATCH)  bad[$v]=MISMATCH ;;
                *)         [ "$KEEP" = 1 ] || rm -f "$out" ;;
            esac
        done
    done
    # The tier really is shm: its segments, and none left behind.
    printf '  A %-12s shm     -debug cache probe (untimed) ... ' "$label" >&2
    segments_of "A $label" "${opargs[@]}"
    echo "$SEGS" >&2
    local st used
    st=$(dpc_status)
    used=$(json_num "$st" used)
    if [ "$used" != 0 ]; then
        PROBLEMS+=("A $label: after the shm-tier runs the server still holds $used bytes ($st)")
        SEGS+="; !!! $used bytes still held afterwards"
    else
        SEGS+="; 0 bytes held afterwards"
    fi
    A_SEGMENTS+=("$(printf '  %-12s %s' "$label" "$SEGS")")

    local -A med=()
    for v in "${variants[@]}"; do
        case ${bad[$v]} in FAILED|TIMEOUT) med[$v]=${bad[$v]} ;; *) med[$v]=$(med_or "${times[$v]}" "") ;; esac
    done
    local check
    for v in memory shm stock; do
        if [ "$v" = stock ] && [ "$WITH_STOCK" = 0 ]; then
            A_ROWS+=("$(printf '%-12s %-7s %8s %8s  %-11s  %s' "$label" "$v" - - - "skipped (--no-stock)")")
            continue
        fi
        case ${bad[$v]} in
            MISMATCH)  check="!!! MISMATCH" ;;
            FAILED)    check="!!! FAILED" ;;
            TIMEOUT)   check="!!! TIMEOUT (>${STEP_TIMEOUT}s)" ;;
            UNCHECKED) check="!!! UNCHECKED" ;;
            *)         check="identical (AE 0)"
                       if [ "$v" = memory ]; then
                           check=reference
                           [ "$REPEAT" -gt 1 ] && check="reference ($(later_runs) AE 0)"
                       fi ;;
        esac
        A_ROWS+=("$(printf '%-12s %-7s %8s %8s  %-11s  %s' "$label" "$v" "${med[$v]}" \
            "$(ratio "${med[$v]}" "${med[memory]}")" "$(range "${times[$v]}")" "$check")")
    done
    A_ROWS+=("")
    local r
    r=$(ratio "${med[shm]}" "${med[memory]}")
    A_TARGETS+=("$(printf '%-12s shm/memory %6s  %s' "$label" "$r" "$(target "$r" 1.05)")")
}

# ================================================ B. hand-off between converts
# Kinds: what X is and which library both converts use.
B_KINDS=(shm mpc mpc-dropin miff png shm-stocklib)
declare -A B_LIB=([shm]=dropin [shm-stocklib]=stocklib [mpc]=stock [mpc-dropin]=dropin
                  [miff]=stock [png]=stock)
declare -A B_DESC=([shm]="shm:NAME, drop-in library" [shm-stocklib]="shm:NAME, system library"
                   [mpc]="MPC in tmpfs, system lib" [mpc-dropin]="MPC in tmpfs, drop-in lib"
                   [miff]="MIFF in tmpfs, system lib" [png]="PNG in tmpfs, system lib")
B_ROWS=()
B_TARGETS=()
B_LOGS=()

# stage_of KIND: X for KIND.
stage_of() {
    case $1 in
        shm)          echo "shm:stage1" ;;
        shm-stocklib) echo "shm:stage1-stocklib" ;;
        mpc)          echo "$HAND/stage1.mpc" ;;
        mpc-dropin)   echo "$HAND/stage1-dropin.mpc" ;;
        miff)         echo "$HAND/stage1.miff" ;;
        png)          echo "$HAND/stage1.png" ;;
    esac
}

# remove_stage X: the name unpublished, or the file(s) removed (untimed).
remove_stage() {
    case $1 in
        shm:*) unpublish "${1#shm:}" ;;
        *.mpc) rm -f "$1" "${1%.mpc}.cache" ;;
        *)     rm -f "$1" ;;
    esac
}

# stage_exists X: the name is published / the file(s) exist.
stage_exists() {
    case $1 in
        shm:*) published "${1#shm:}" ;;
        *.mpc) [ -s "$1" ] && [ -s "${1%.mpc}.cache" ] ;;
        *)     [ -s "$1" ] ;;
    esac
}

# coder_line LIB X: one untimed -debug coder attach-only read; CODER_LINE is
# the shm coder's "N bytes attached in place, no copy" / "N bytes copied".
coder_line() {
    local rc=0
    convert_cmd "$1"
    timeout --foreground -k 10 "$STEP_TIMEOUT" "${CMD[@]}" -debug coder "$2" -format '%wx%h' info: \
        > "$WORK/probe.log" 2>&1 || rc=$?
    CODER_LINE=$(sed -n 's/^ *\(shm: .*bytes .*\)$/\1/p' "$WORK/probe.log" | sed -n 1p)
    [ $rc = 0 ] || CODER_LINE="!!! -debug coder read FAILED (status $rc)"
    [ -n "$CODER_LINE" ] || CODER_LINE="!!! no 'shm: NAME: N bytes' line in -debug coder"
}

bench_handoff() {
    local rep k ref="" want
    local -A tw=() trd=() ta=() bad=() refk=()
    for k in "${B_KINDS[@]}"; do tw[$k]=""; trd[$k]=""; ta[$k]=""; bad[$k]=""; done
    # The size the first step makes (the reference for the attach-only read).
    want=$(env -u LD_LIBRARY_PATH "$CONVERT" -size "$SIZE" xc:black -resize 50% -format '%wx%h' info:)
    for rep in $(seq 1 "$REPEAT"); do
        sample_load
        rotated ${#B_KINDS[@]} "$rep" "${B_KINDS[@]}"
        for k in "${ROT[@]}"; do
            local lib=${B_LIB[$k]} x out="$WORK/b-$k-$rep.png" w r a
            x=$(stage_of "$k")
            remove_stage "$x"
            printf '  B %-13s run %d/%d  write ' "$k" "$rep" "$REPEAT" >&2
            if ! run_convert "$lib" "$WORK/in.png" "$x" -resize 50%; then
                bad[$k]=FAILED; fail_run "B $k: write, run $rep"; continue
            fi
            w=$ELAPSED
            if ! stage_exists "$x"; then
                bad[$k]=FAILED
                PROBLEMS+=("B $k: run $rep: convert ... $x succeeded but wrote no $x (is the shm coder on MAGICK_CODER_MODULE_PATH?)")
                echo "!!! $x was not written" >&2
                continue
            fi
            printf '%6s s, read ' "$w" >&2
            if ! run_convert "$lib" "$x" "$out" -sharpen 0x1; then
                bad[$k]=FAILED; fail_run "B $k: read, run $rep"; continue
            fi
            r=$ELAPSED
            printf '%6s s, attach-only ' "$r" >&2
            if ! run_convert "$lib" "$x" info: -format '%wx%h'; then
                bad[$k]=FAILED; fail_run "B $k: attach-only read, run $rep"; continue
            fi
            a=$ELAPSED
            printf '%6s s' "$a" >&2
            if ! grep -qx "$want" "$WORK/convert.log"; then
                bad[$k]=FAILED
                PROBLEMS+=("B $k: run $rep: the attach-only read printed '$(head -c 200 "$WORK/convert.log" | tr '\n' ' ')', not $want")
                echo "  !!! attach-only read printed something else than $want" >&2
                continue
            fi
            tw[$k]+=" $w"; trd[$k]+=" $r"; ta[$k]+=" $a"
            if [ -z "$ref" ]; then
                if [ "$k" = shm ]; then
                    ref=$out
                    echo "  (reference)" >&2
                    continue
                fi
                # The reference is shm's first output; until it exists, keep.
                refk[$k]+=" $out"
                echo "  (checked later)" >&2
                continue
            fi
            local ae
            ae=$(pixel_diff "$ref" "$out")
            if [ "$ae" = 0 ]; then
                echo "  AE 0" >&2
                [ "$KEEP" = 1 ] || rm -f "$out"
            else
                bad[$k]=MISMATCH
                PROBLEMS+=("B $k: run $rep PIXEL MISMATCH vs the shm hand-off: AE=$ae")
                echo "  !!!!!!!! PIXEL MISMATCH vs shm: AE=$ae !!!!!!!!" >&2
            fi
        done
    done
    # Outputs made before shm's first (rotation), checked now.
    local f
    for k in "${B_KINDS[@]}"; do
        for f in ${refk[$k]:-}; do
            if [ -z "$ref" ]; then
                [ -n "${bad[$k]}" ] || bad[$k]=UNCHECKED
                PROBLEMS+=("B $k: $(basename "$f") UNCHECKED (no shm reference)")
                continue
            fi
            local ae
            ae=$(pixel_diff "$ref" "$f")
            if [ "$ae" = 0 ]; then
                [ "$KEEP" = 1 ] || rm -f "$f"
            else
                bad[$k]=MISMATCH
                PROBLEMS+=("B $k: $(basename "$f") PIXEL MISMATCH vs the shm hand-off: AE=$ae")
            fi
        done
    done
    # The same pipeline in one convert: the hand-off itself must be lossless.
    if [ -n "$ref" ]; then
        env -u LD_LIBRARY_PATH "$CONVERT" "$WORK/in.png" -resize 50% -sharpen 0x1 "$WORK/b-direct.png"
        B_DIRECT=$(pixel_diff "$ref" "$WORK/b-direct.png")
        [ "$B_DIRECT" = 0 ] ||
            PROBLEMS+=("B: the shm hand-off differs from one convert doing both steps: AE=$B_DIRECT")
    else
        B_DIRECT="-"
    fi
    # What the shm coder says on attach (untimed, -debug coder).
    for k in shm shm-stocklib; do
        local x
        x=$(stage_of "$k")
        printf '  B %-13s -debug coder attach-only read (untimed) ... ' "$k" >&2
        if stage_exists "$x"; then coder_line "${B_LIB[$k]}" "$x"; else CODER_LINE="!!! $x not published"; fi
        echo "$CODER_LINE" >&2
        B_LOGS+=("$(printf '  %-13s %s' "$k" "$CODER_LINE")")
        case $CODER_LINE in '!!!'*) PROBLEMS+=("B $k: $CODER_LINE") ;; esac
    done
    [[ ${B_LOGS[0]} == *"attached in place, no copy"* ]] ||
        PROBLEMS+=("B shm: the drop-in did not log 'attached in place, no copy'")
    # Done with the names: the server's "used" at the end is then a leak check.
    unpublish stage1
    unpublish stage1-stocklib

    local -A mw=() mr=() ma=() mt=()
    for k in "${B_KINDS[@]}"; do
        local bk=""
        case ${bad[$k]} in FAILED) bk=FAILED ;; esac
        mw[$k]=$(med_or "${tw[$k]}" "$bk")
        mr[$k]=$(med_or "${trd[$k]}" "$bk")
        ma[$k]=$(med_or "${ta[$k]}" "$bk")
        # total = the median of the per-run sums
        local sums="" i
        # shellcheck disable=SC2206
        local -a wl=(${tw[$k]}) rl=(${trd[$k]})
        for i in "${!wl[@]}"; do
            sums+=" $(awk -v a="${wl[$i]}" -v b="${rl[$i]}" 'BEGIN { printf "%.3f", a + b }')"
        done
        mt[$k]=$(med_or "$sums" "$bk")
    done
    for k in "${B_KINDS[@]}"; do
        local check
        case ${bad[$k]} in
            MISMATCH)  check="!!! MISMATCH" ;;
            FAILED)    check="!!! FAILED" ;;
            UNCHECKED) check="!!! UNCHECKED" ;;
            *)         if [ "$k" = shm ]; then check=reference
                           [ "$REPEAT" -gt 1 ] && check="reference ($(later_runs) AE 0)"
                       else check="identical (AE 0)"; fi ;;
        esac
        B_ROWS+=("$(printf '%-13s %-26s %7s %7s %7s %7s  %8s %8s  %s' "$k" "${B_DESC[$k]}" \
            "${mw[$k]}" "${mr[$k]}" "${mt[$k]}" "$(ratio "${mt[$k]}" "${mt[shm]}")" \
            "${ma[$k]}" "$(ratio "${ma[$k]}" "${ma[shm]}")" "$check")")
    done
    local rt rr ra
    rt=$(ratio "${mt[shm]}" "${mt[mpc]}")
    rr=$(ratio "${mr[shm]}" "${mr[mpc]}")
    ra=$(ratio "${ma[shm]}" "${ma[mpc]}")
    B_TARGETS+=("$(printf 'shm/mpc total (write + read) %6s  %s' "$rt" "$(target "$rt" 1.00)")")
    B_TARGETS+=("$(printf 'shm/mpc write alone          %6s' "$(ratio "${mw[shm]}" "${mw[mpc]}")")")
    B_TARGETS+=("$(printf 'shm/mpc read alone           %6s' "$rr")")
    B_TARGETS+=("$(printf 'shm/mpc attach-only read     %6s' "$ra")")
    B_RAW=()
    for k in "${B_KINDS[@]}"; do
        B_RAW+=("$(printf '  %-13s write %s; read %s; attach %s' "$k" "${tw[$k]# }" "${trd[$k]# }" "${ta[$k]# }")")
    done
}

# ======================================================= C. no copy on attach
C_ROWS=()
GNU_TIME=
[ -x /usr/bin/time ] && /usr/bin/time -f '%M' true > /dev/null 2>&1 && GNU_TIME=/usr/bin/time

# rss_run VARIANT ARGS...: one convert (convert_cmd VARIANT, then ARGS) under
# GNU time; sets ELAPSED, RSS_KB, MINFLT and OUTPUT; returns its status.
rss_run() {
    local v=$1 rc=0 t0 t1
    shift
    convert_cmd "$v"
    rm -f "$WORK/time.out"
    TIMED_OUT=0
    t0=$EPOCHREALTIME
    if [ -n "$GNU_TIME" ]; then
        timeout --foreground -k 10 "$STEP_LIMIT" "$GNU_TIME" -o "$WORK/time.out" -f '%M %R' \
            "${CMD[@]}" "$@" > "$WORK/convert.log" 2>&1 || rc=$?
    else
        timeout --foreground -k 10 "$STEP_LIMIT" "${CMD[@]}" "$@" > "$WORK/convert.log" 2>&1 || rc=$?
    fi
    t1=$EPOCHREALTIME
    ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && TIMED_OUT=1
    RSS_KB=- MINFLT=-
    if [ -s "$WORK/time.out" ]; then
        read -r RSS_KB MINFLT < <(tail -n 1 "$WORK/time.out")
    fi
    OUTPUT=$(tr '\n' ' ' < "$WORK/convert.log" | sed 's/ *$//')
    return $rc
}

bench_big() {
    local rep k v
    local pixel_bytes=$((BIG_W * BIG_H * 8))
    C_PIXELS=$pixel_bytes
    local src=(-scale "${BIG}!")
    # Publish the big image (shm: by the drop-in, and MPC), timed: REPEAT
    # rounds, alternating.
    local -A tw=() bad=() wrss=() wflt=()
    local kinds=(shm mpc) xbig_shm=shm:big xbig_mpc=$HAND/big.mpc
    for rep in $(seq 1 "$REPEAT"); do
        sample_load
        rotated 2 "$rep" "${kinds[@]}"
        for k in "${ROT[@]}"; do
            local x lib
            if [ "$k" = shm ]; then x=$xbig_shm lib=dropin; else x=$xbig_mpc lib=stock; fi
            remove_stage "$x"
            printf '  C write %s %-28s run %d/%d ... ' "$BIG" "$x" "$rep" "$REPEAT" >&2
            if ! rss_run "$lib" "$WORK/in.png" "${src[@]}" "$x"; then
                bad[$k]=FAILED; fail_run "C write $x, run $rep"; continue
            fi
            if ! stage_exists "$x"; then
                bad[$k]=FAILED
                PROBLEMS+=("C: run $rep: convert ... $x succeeded but wrote no $x")
                echo "!!! $x was not written" >&2
                continue
            fi
            tw[$k]+=" $ELAPSED"
            wrss[$k]+=" $RSS_KB"
            wflt[$k]+=" $MINFLT"
            printf '%8s s, peak RSS %s KiB, %s minor faults\n' "$ELAPSED" "$RSS_KB" "$MINFLT" >&2
        done
    done
    C_WRITE=()
    for k in "${kinds[@]}"; do
        local line
        line=$(printf '%-4s %7s s (%s)' "$k" "$(med_or "${tw[$k]:-}" "${bad[$k]:-}")" "$(range "${tw[$k]:-}")")
        if [ -n "$GNU_TIME" ] && [ -n "${wrss[$k]:-}" ] && [ -z "${bad[$k]:-}" ]; then
            # shellcheck disable=SC2086
            line+=$(printf ', peak RSS %s MiB, %s minor faults' \
                "$(median ${wrss[$k]} | awk '{ printf "%.1f", $1 / 1024 }')" \
                "$(median ${wflt[$k]} | awk '{ printf "%d", $1 }')")
        fi
        C_WRITE+=("$line")
    done
    C_SEGMENT=$("$DPC_BIN" shm ls --socket "$SOCK" 2> /dev/null |
                sed -n 's/.*"name":"big","bytes":\([0-9]*\).*/\1/p')
    if ! stage_exists "$xbig_shm" || ! stage_exists "$xbig_mpc"; then
        PROBLEMS+=("C: the big image is not published / written; the reads are skipped")
        return 0
    fi
    # The reads: baseline (a 1x1 image), attach only, every pixel.
    local -a variants=(shm-dropin shm-stocklib mpc-stock mpc-dropin)
    declare -A C_LIB=([shm-dropin]=dropin [shm-stocklib]=stocklib [mpc-stock]=stock [mpc-dropin]=dropin)
    declare -A C_X=([shm-dropin]=$xbig_shm [shm-stocklib]=$xbig_shm [mpc-stock]=$xbig_mpc [mpc-dropin]=$xbig_mpc)
    local -A base_rss=() base_flt=() t=() rss=() flt=() outs=() cbad=()
    local ops=(attach mean)
    local -A fmt=([attach]='%wx%h' [mean]='%[mean]')
    for v in dropin stock; do
        local l=() lf=()
        for rep in 1 2 3; do
            rss_run "$v" -size 1x1 xc:black -format '%wx%h' info: || true
            l+=("$RSS_KB")
            lf+=("$MINFLT")
        done
        base_rss[$v]=$(median "${l[@]}" | awk '{ printf "%d", $1 }')
        base_flt[$v]=$(median "${lf[@]}" | awk '{ printf "%d", $1 }')
    done
    base_rss[stocklib]=${base_rss[stock]}
    for rep in $(seq 1 "$REPEAT"); do
        sample_load
        rotated ${#variants[@]} "$rep" "${variants[@]}"
        for v in "${ROT[@]}"; do
            local op
            for op in "${ops[@]}"; do
                local key="$v/$op"
                printf '  C read %-13s %-6s run %d/%d ... ' "$v" "$op" "$rep" "$REPEAT" >&2
                if ! rss_run "${C_LIB[$v]}" "${C_X[$v]}" -format "${fmt[$op]}" info:; then
                    cbad[$key]=FAILED
                    PROBLEMS+=("C read $v $op run $rep FAILED: $OUTPUT")
                    echo "!!! FAILED: $OUTPUT" >&2
                    server_alive "C read $v"
                    continue
                fi
                t[$key]+=" $ELAPSED"
                rss[$key]+=" $RSS_KB"
                flt[$key]+=" $MINFLT"
                outs[$op]+="$OUTPUT"$'\n'
                printf '%7s s, peak RSS %s KiB, %s minor faults, printed %s\n' \
                    "$ELAPSED" "$RSS_KB" "$MINFLT" "$OUTPUT" >&2
            done
        done
    done
    # Every read printed the same thing.
    local op n
    for op in "${ops[@]}"; do
        n=$(printf '%s' "${outs[$op]:-}" | sort -u | grep -c . || true)
        if [ "$n" != 1 ]; then
            PROBLEMS+=("C: the $op reads printed different things: $(printf '%s' "${outs[$op]:-}" | sort | uniq -c | tr '\n' ' ')")
        fi
        C_PRINTED[$op]=$(printf '%s' "${outs[$op]:-}" | sort -u | tr '\n' ' ' | sed 's/ *$//')
    done
    # The same pixels through every variant: compare -metric AE cannot hold
    # two 384 MB images under Debian's policy.xml (memory 256MiB, map 512MiB,
    # disk 1GiB: "cache resources exhausted"), so each prints the SHA-256
    # signature of its pixels (%#) instead; untimed.
    local -A sig=()
    for v in "${variants[@]}"; do
        printf '  C %-13s -format %%#  (pixel signature, untimed) ... ' "$v" >&2
        if rss_run "${C_LIB[$v]}" "${C_X[$v]}" -format '%#' info:; then
            sig[$v]=$OUTPUT
        else
            sig[$v]="FAILED: $OUTPUT"
        fi
        echo "${sig[$v]}" >&2
    done
    C_SIG=$(printf '%s\n' "${sig[@]}" | sort -u)
    if [ "$(echo "$C_SIG" | grep -c .)" = 1 ] && [[ $C_SIG =~ ^[0-9a-f]{64}$ ]]; then
        C_SIG="identical in all ${#variants[@]} variants ($C_SIG)"
    else
        PROBLEMS+=("C: the pixel signatures (%#) differ: $(for v in "${variants[@]}"; do printf '%s=%s ' "$v" "${sig[$v]}"; done)")
        C_SIG="!!! DIFFER: $(for v in "${variants[@]}"; do printf '%s=%s ' "$v" "${sig[$v]:0:16}"; done)"
    fi
    # The coder's own words (untimed).
    for v in shm-dropin shm-stocklib; do
        printf '  C %-13s -debug coder attach-only read (untimed) ... ' "$v" >&2
        coder_line "${C_LIB[$v]}" "${C_X[$v]}"
        echo "$CODER_LINE" >&2
        C_LOG[$v]=$CODER_LINE
        case $CODER_LINE in '!!!'*) PROBLEMS+=("C $v: $CODER_LINE") ;; esac
    done
    C_LOG[mpc-stock]="(MPC: the .cache file is memory-mapped)"
    C_LOG[mpc-dropin]="(MPC: the .cache file is memory-mapped)"
    [[ ${C_LOG[shm-dropin]} == *"attached in place, no copy"* ]] ||
        PROBLEMS+=("C shm-dropin: no 'attached in place, no copy' in -debug coder")

    for op in "${ops[@]}"; do
        for v in "${variants[@]}"; do
            local key="$v/$op" s r f over
            if [ -n "${cbad[$key]:-}" ] || [ -z "${t[$key]:-}" ]; then
                C_ROWS+=("$(printf '%-7s %-13s %7s %10s %10s %9s %9s  %s' "$op" "$v" FAILED - - - - "${C_LOG[$v]}")")
                continue
            fi
            # shellcheck disable=SC2086
            s=$(median ${t[$key]})
            if [ -n "$GNU_TIME" ]; then
                # shellcheck disable=SC2086
                r=$(median ${rss[$key]} | awk '{ printf "%d", $1 }')
                # shellcheck disable=SC2086
                f=$(median ${flt[$key]} | awk '{ printf "%d", $1 }')
                over=$(awk -v r="$r" -v b="${base_rss[${C_LIB[$v]}]}" 'BEGIN { printf "%.1f", (r - b) / 1024 }')
                r=$(awk -v r="$r" 'BEGIN { printf "%.1f", r / 1024 }')
                local pct
                pct=$(awk -v o="$over" -v p="$pixel_bytes" 'BEGIN { x = sprintf("%.0f", 100 * o * 1048576 / p); printf "%d%%", x + 0 }')
                C_ROWS+=("$(printf '%-7s %-13s %7s %10s %10s %9s %9s  %s' "$op" "$v" "$s" "$r" "$over" "$pct" "$f" "${C_LOG[$v]}")")
            else
                C_ROWS+=("$(printf '%-7s %-13s %7s %10s %10s %9s %9s  %s' "$op" "$v" "$s" - - - - "${C_LOG[$v]}")")
            fi
        done
        C_ROWS+=("")
    done
    C_BASE="drop-in $(awk -v r="${base_rss[dropin]}" 'BEGIN { printf "%.1f", r / 1024 }') MiB, ${base_flt[dropin]} faults;"
    C_BASE+=" system library $(awk -v r="${base_rss[stock]}" 'BEGIN { printf "%.1f", r / 1024 }') MiB, ${base_flt[stock]} faults"
    # The big files take RAM in tmpfs: gone now, even with --keep.
    remove_stage "$xbig_shm"
    remove_stage "$xbig_mpc"
}
declare -A C_PRINTED=() C_LOG=()

# ---------------------------------------------------------------- cleanup
HAND=
shm_cleanup() {
    if [ -n "$SOCK" ] && [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2> /dev/null; then
        local n
        for n in stage1 stage1-stocklib big; do unpublish "$n"; done
    fi
    if [ -n "$HAND" ] && [ -d "$HAND" ]; then
        rm -f "$HAND"/big.mpc "$HAND"/big.cache
        if [ "$KEEP" = 1 ]; then
            echo "hand-off files kept: $HAND (they use RAM: rm -r it when done)" >&2
        else
            rm -rf "$HAND"
        fi
    fi
}

# -------------------------------------------------------------------- main
main() {
    parse_args "$@"
    check_tools
    command -v ldd > /dev/null || die "ldd is needed"
    local shm_dir=${SHM_DIR:-$SHM_DIR_DEFAULT}
    if ! [ -d "$shm_dir" ] || ! [ -w "$shm_dir" ]; then
        die "$shm_dir is not a writable directory (set SHM_DIR)"
    fi
    local fstype
    fstype=$(stat -f -c %T "$shm_dir")

    start_work magick-dpc-shm 20       # cleanup: the server gets 2 s after SIGTERM
    trap 'shm_cleanup; cleanup 20' EXIT
    HAND=$(mktemp -d "$shm_dir/magick-dpc-shm.XXXXXX")
    SOCK=$WORK/dpc.sock
    cd "$WORK"                         # run_convert's rm -f OUT of "info:", "shm:NAME"
    find_artifacts
    start_dpc

    local load_start
    load_start=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "magick-dpc shared-memory tier and shm: hand-off, side by side"
    echo "date:        $(date '+%Y-%m-%d %H:%M:%S %Z')"
    echo "host:        $(uname -srm), nproc $(nproc), load average $load_start (at start)"
    echo "convert:     $("$CONVERT" -version | sed -n 1p)"
    echo "magick-dpc:  $("$DPC_BIN" --version 2>&1 | sed -n 1p) ($DPC_PATH)"
    echo "drop-in:     $LIB_PATH/libMagickCore-6.Q16.so.6 ($(stat -L -c '%s bytes, %y' "$LIB_PATH/libMagickCore-6.Q16.so.6" | cut -d. -f1))"
    echo "shm coder:   $CODER_PATH/shm.so ($(stat -L -c '%s bytes, %y' "$CODER_PATH/shm.so" | cut -d. -f1))"
    echo "             MAGICK_CODER_MODULE_PATH=<copy of it>:$IM_CODERS"
    echo "server:      magick-dpc serve --listen none --socket WORK/dpc.sock --shm-budget $BUDGET"
    echo "hand-off:    files in $shm_dir ($fstype)"
    echo "input:       $CONVERT -seed 1 -size $SIZE plasma:fractal in.png"
    echo "runs:        median of $REPEAT, wall-clock seconds; the variants interleaved, their"
    echo "             order rotated every round; timeout ${STEP_TIMEOUT}s per convert"

    env -u LD_LIBRARY_PATH "$CONVERT" -seed 1 -size "$SIZE" plasma:fractal "$WORK/in.png" ||
        die "cannot generate the $SIZE input"

    echo "progress (stderr):" >&2
    local o
    for o in blur resize; do bench_tier "$o"; done
    bench_handoff
    [ "$WITH_BIG" = 1 ] && bench_big
    sample_load
    local st_end
    st_end=$(dpc_status)
    [ "$(json_num "$st_end" used)" = 0 ] ||
        PROBLEMS+=("the server still holds $(json_num "$st_end" used) bytes at the end, every name removed: $st_end")

    echo
    echo "A. pixel-cache tier: convert in.png OP out.miff, $SIZE"
    echo "   memory = LD_LIBRARY_PATH=<drop-in> convert -define cache:tiers=memory -define cache:dpc-socket=SOCK"
    echo "   shm    = the same with -define cache:tiers=shm"
    echo "   stock  = $CONVERT on the system library (LD_LIBRARY_PATH unset)"
    echo "   (seconds = median; /memory = over memory's median; range = fastest-slowest run)"
    echo
    local h
    h=$(printf '%-12s %-7s %8s %8s  %-11s  %s' op variant seconds /memory range "pixels vs memory")
    echo "$h"
    echo "${h//?/-}"
    printf '%s\n' "${A_ROWS[@]}"
    echo "shm-tier segments (one extra untimed -debug cache run) and the server afterwards:"
    printf '%s\n' "${A_SEGMENTS[@]}"
    echo "target: shm tier within 1.05x of the memory tier:"
    printf '  %s\n' "${A_TARGETS[@]}"

    echo
    echo "B. hand-off: convert in.png -resize 50% X  (write), then convert X -sharpen 0x1 out.png"
    echo "   (read); attach = convert X -format %wx%h info: alone. X = shm:NAME (published"
    echo "   in a sealed segment of the server), or a file in $shm_dir: X.mpc (+ X.cache), X.miff,"
    echo "   X.png. Seconds = medians; total = median of write + read per run; /shm = over"
    echo "   the shm row; every out.png compared with the shm row's first."
    echo
    h=$(printf '%-13s %-26s %7s %7s %7s %7s  %8s %8s  %s' kind X write read total /shm attach /shm "pixels vs shm")
    echo "$h"
    echo "${h//?/-}"
    printf '%s\n' "${B_ROWS[@]}"
    echo
    echo "shm hand-off vs one convert doing both steps (in.png -resize 50% -sharpen 0x1): AE $B_DIRECT"
    echo "what the shm coder logs on attach (-debug coder, one extra untimed run):"
    printf '%s\n' "${B_LOGS[@]}"
    echo "target: the shm hand-off no slower than MPC in tmpfs (system library):"
    printf '  %s\n' "${B_TARGETS[@]}"
    echo "every run (seconds):"
    printf '%s\n' "${B_RAW[@]}"

    if [ "$WITH_BIG" = 1 ] && [ ${#C_ROWS[@]} -gt 0 ]; then
        echo
        echo "C. no pixel copy on attach: one $BIG image, $C_PIXELS bytes of Q16 pixels"
        echo "   ($(awk -v p="$C_PIXELS" 'BEGIN { printf "%.1f", p / 1048576 }') MiB; shm segment ${C_SEGMENT:-?} bytes), made by"
        echo "   convert in.png -scale $BIG! X, X = shm:big (drop-in) and $shm_dir/.../big.mpc (system lib):"
        echo "   write (medians, fastest-slowest):"
        printf '     %s\n' "${C_WRITE[@]}"
        echo "   pixels (-format %# = SHA-256 of the pixels; see README): $C_SIG"
        echo "   read: convert X -format FMT info:, attach: FMT %wx%h (touches no pixel),"
        echo "   mean: FMT %[mean] (reads every pixel). Medians of $REPEAT; peak RSS = GNU time %M;"
        echo "   +base = peak RSS minus a 1x1 run's on the same library"
        echo "   ($C_BASE);"
        echo "   %pix = +base over the pixel bytes; faults = minor page faults (%R)."
        [ -n "$GNU_TIME" ] || echo "   (no GNU /usr/bin/time on this machine: RSS and faults not measured)"
        echo
        h=$(printf '%-7s %-13s %7s %10s %10s %9s %9s  %s' read variant seconds "RSS MiB" "+base MiB" %pix faults "coder log")
        echo "$h"
        echo "${h//?/-}"
        printf '%s\n' "${C_ROWS[@]}"
        echo "printed: attach '${C_PRINTED[attach]:-}', mean '${C_PRINTED[mean]:-}'"
    fi

    echo
    echo "server at the end (every name removed): used $(json_num "$st_end" used) bytes, peak $(json_num "$st_end" peak),"
    echo "  segments $(json_num "$st_end" segments), names $(json_num "$st_end" names), refused $(json_num "$st_end" refused); restarts: $SERVER_RESTARTS"
    local warn
    warn=$(grep -E '\[(warn|warning|error)\]' "$WORK/server.log" || true)
    if [ -n "$warn" ]; then
        echo "server warnings/errors ($(echo "$warn" | wc -l) line(s)), last ones:"
        echo "$warn" | tail -n 10 | sed 's/^/    | /'
    fi
    local max
    max=$(printf '%s\n' "${LOADS[@]}" | sort -g | tail -n 1)
    echo "load average: $load_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end;"
    echo "              1-minute samples during the run: ${LOADS[*]} (max $max)"
    if [ ${#NOTES[@]} -gt 0 ]; then
        echo
        echo "notes (runs that succeeded but printed something):"
        printf '  %s\n' "${NOTES[@]}"
    fi
    echo
    if [ ${#PROBLEMS[@]} -gt 0 ]; then
        report_problems "(stderr)"
        return 1
    fi
    echo "all outputs pixel-identical (compare -metric AE = 0): A to the memory tier's,"
    if [ "$WITH_BIG" = 1 ]; then
        echo "B to the shm hand-off's and to one convert doing both steps; C: the same pixel"
        echo "signature (%#) through shm: and MPC on both libraries"
    else
        echo "B to the shm hand-off's and to one convert doing both steps"
    fi
}

main "$@"
