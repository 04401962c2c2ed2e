# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154,SC2164  # globals shared with the other parts; set -e (bench/shm.sh)
# bench/shm/main.sh: the run and its report: shm_cleanup and main.
# Sourced by bench/shm.sh, in its order, after bench/lib.sh; not a script.

# ---------------------------------------------------------------- cleanup
HAND=
shm_cleanup() {
    if [ -n "$SOCK" ] && [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2> /dev/null; then
        local n
        for n in stage1 stage1-stocklib big; do unpublish "$n"; done
    fi
    if [ -n "$BASE_SOCK" ] && [ -n "$BASE_PID" ] && kill -0 "$BASE_PID" 2> /dev/null; then
        unpublish base-stage1 base
        unpublish base-stage1-stocklib base
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
    [ -z "$BASE_DIR" ] || start_base_dpc

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
    local base_end=""
    if [ -n "$BASE_DIR" ]; then
        base_end=$(dpc_status base)
        [ "$(json_num "$base_end" used)" = 0 ] ||
            PROBLEMS+=("the baseline server still holds $(json_num "$base_end" used) bytes at the end, every name removed: $base_end")
    fi

    echo
    echo "A. pixel-cache tier: convert in.png OP out.miff, $SIZE"
    echo "   memory = LD_LIBRARY_PATH=<drop-in> convert -define cache:tiers=memory -define cache:dpc-socket=SOCK"
    echo "   shm    = the same with -define cache:tiers=shm"
    echo "   stock  = $CONVERT on the system library (LD_LIBRARY_PATH unset)"
    [ -z "$BASE_DIR" ] ||
        echo "   base-memory, base-shm = memory, shm with $BASE_DIR's drop-in and its own server (--baseline)"
    echo "   (seconds = median; /memory = over memory's median; range = fastest-slowest run)"
    echo
    local h
    h=$(printf '%-12s %-*s %8s %8s  %-11s  %s' op "$A_VW" variant seconds /memory range "pixels vs memory")
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
    [ -z "$BASE_DIR" ] ||
        echo "   base-* = the same with $BASE_DIR's drop-in, shm coder and its own server (--baseline)"
    echo
    h=$(printf '%-*s %-26s %7s %7s %7s %7s  %8s %8s  %s' "$B_KW" kind X write read total /shm attach /shm "pixels vs shm")
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

    if [ -n "$BASE_DIR" ]; then
        echo
        echo "this tree against the baseline ($BASE_DIR, $(git -C "$BASE_DIR" log -1 --format=%h 2>/dev/null || echo '?')):"
        echo "   medians in seconds; this/base = this tree's over the baseline's"
        echo
        h=$(printf '%-4s %-22s %-16s %9s %9s %9s' part case variant this base this/base)
        echo "$h"
        echo "${h//?/-}"
        printf '%s\n' "${BASE_ROWS[@]}"
    fi

    echo
    echo "server at the end (every name removed): used $(json_num "$st_end" used) bytes, peak $(json_num "$st_end" peak),"
    echo "  segments $(json_num "$st_end" segments), names $(json_num "$st_end" names), refused $(json_num "$st_end" refused); restarts: $SERVER_RESTARTS"
    [ -z "$BASE_DIR" ] ||
        echo "baseline server at the end: used $(json_num "$base_end" used) bytes, peak $(json_num "$base_end" peak)"
    local warn
    warn=$(grep -E '\[(warn|warning|error)\]' "$WORK/server.log" || true)
    if [ -n "$warn" ]; then
        echo "server warnings/errors ($(echo "$warn" | wc -l) line(s)), last ones:"
        echo "$warn" | tail -n 10 | sed 's/^/    | /'
    fi
    if [ -n "$BASE_DIR" ]; then
        warn=$(grep -E '\[(warn|warning|error)\]' "$WORK/base-server.log" || true)
        if [ -n "$warn" ]; then
            echo "baseline server warnings/errors ($(echo "$warn" | wc -l) line(s)), last ones:"
            echo "$warn" | tail -n 10 | sed 's/^/    | /'
        fi
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
