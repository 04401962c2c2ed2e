# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # globals shared with bench/shm.sh's other parts
# bench/shm/big.sh: C. no pixel copy on attach: peak RSS and page faults of reading a big
# image from shm: and from MPC (bench_big).
# Sourced by bench/shm.sh, in its order, after bench/lib.sh; not a script.

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
