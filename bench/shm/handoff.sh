# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # globals shared with bench/shm.sh's other parts
# bench/shm/handoff.sh: B. an image handed from one convert to the next through shm:, MPC, MIFF
# and PNG (bench_handoff).
# Sourced by bench/shm.sh, in its order, after bench/lib.sh; not a script.

# ================================================ B. hand-off between converts
# Kinds: what X is and which library both converts use (--baseline adds
# base-shm, base-mpc-dropin and base-shm-stocklib: the baseline's drop-in,
# coder and server).
B_KINDS=(shm mpc mpc-dropin miff png shm-stocklib)
declare -A B_LIB=([shm]=dropin [shm-stocklib]=stocklib [mpc]=stock [mpc-dropin]=dropin
                  [miff]=stock [png]=stock [base-shm]=basedropin
                  [base-shm-stocklib]=basestocklib [base-mpc-dropin]=basedropin)
declare -A B_DESC=([shm]="shm:NAME, drop-in library" [shm-stocklib]="shm:NAME, system library"
                   [mpc]="MPC in tmpfs, system lib" [mpc-dropin]="MPC in tmpfs, drop-in lib"
                   [miff]="MIFF in tmpfs, system lib" [png]="PNG in tmpfs, system lib"
                   [base-shm]="shm:NAME, baseline drop-in" [base-shm-stocklib]="shm:NAME, base coder"
                   [base-mpc-dropin]="MPC in tmpfs, base drop-in")
B_KW=13                            # the kind column's width (17: --baseline)
B_ROWS=()
B_TARGETS=()
B_LOGS=()

# stage_of KIND: X for KIND.
stage_of() {
    case $1 in
        shm)          echo "shm:stage1" ;;
        shm-stocklib) echo "shm:stage1-stocklib" ;;
        base-shm)     echo "shm:base-stage1" ;;
        base-shm-stocklib) echo "shm:base-stage1-stocklib" ;;
        base-mpc-dropin) echo "$HAND/base-stage1-dropin.mpc" ;;
        mpc)          echo "$HAND/stage1.mpc" ;;
        mpc-dropin)   echo "$HAND/stage1-dropin.mpc" ;;
        miff)         echo "$HAND/stage1.miff" ;;
        png)          echo "$HAND/stage1.png" ;;
    esac
}

# remove_stage X: the name unpublished, or the file(s) removed (untimed).
# shm:base-* names live on the --baseline server.
remove_stage() {
    case $1 in
        shm:base-*) unpublish "${1#shm:}" base ;;
        shm:*) unpublish "${1#shm:}" ;;
        *.mpc) rm -f "$1" "${1%.mpc}.cache" ;;
        *)     rm -f "$1" ;;
    esac
}

# stage_exists X: the name is published / the file(s) exist.
stage_exists() {
    case $1 in
        shm:base-*) published "${1#shm:}" base ;;
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
            printf '  B %-*s run %d/%d  write ' "$B_KW" "$k" "$rep" "$REPEAT" >&2
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
    local -a coded=(shm shm-stocklib)
    [ -z "$BASE_DIR" ] || coded+=(base-shm base-shm-stocklib)
    for k in "${coded[@]}"; do
        local x
        x=$(stage_of "$k")
        printf '  B %-*s -debug coder attach-only read (untimed) ... ' "$B_KW" "$k" >&2
        if stage_exists "$x"; then coder_line "${B_LIB[$k]}" "$x"; else CODER_LINE="!!! $x not published"; fi
        echo "$CODER_LINE" >&2
        B_LOGS+=("$(printf '  %-*s %s' "$B_KW" "$k" "$CODER_LINE")")
        case $CODER_LINE in '!!!'*) PROBLEMS+=("B $k: $CODER_LINE") ;; esac
    done
    [[ ${B_LOGS[0]} == *"attached in place, no copy"* ]] ||
        PROBLEMS+=("B shm: the drop-in did not log 'attached in place, no copy'")
    [ -z "$BASE_DIR" ] || [[ ${B_LOGS[2]} == *"attached in place, no copy"* ]] ||
        PROBLEMS+=("B base-shm: the baseline's drop-in did not log 'attached in place, no copy'")
    # Done with the names: the server's "used" at the end is then a leak check.
    unpublish stage1
    unpublish stage1-stocklib
    if [ -n "$BASE_DIR" ]; then
        unpublish base-stage1 base
        unpublish base-stage1-stocklib base
    fi

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
        B_ROWS+=("$(printf '%-*s %-26s %7s %7s %7s %7s  %8s %8s  %s' "$B_KW" "$k" "${B_DESC[$k]}" \
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
    if [ -n "$BASE_DIR" ]; then
        for k in shm mpc-dropin shm-stocklib; do
            local m t u
            for m in total write read attach; do
                case $m in
                    total)  t=${mt[$k]} u=${mt[base-$k]} ;;
                    write)  t=${mw[$k]} u=${mw[base-$k]} ;;
                    read)   t=${mr[$k]} u=${mr[base-$k]} ;;
                    attach) t=${ma[$k]} u=${ma[base-$k]} ;;
                esac
                BASE_ROWS+=("$(printf '%-4s %-22s %-16s %9s %9s %9s' B "$k" "$m" "$t" "$u" "$(ratio "$t" "$u")")")
            done
        done
    fi
    B_RAW=()
    for k in "${B_KINDS[@]}"; do
        B_RAW+=("$(printf '  %-*s write %s; read %s; attach %s' "$B_KW" "$k" "${tw[$k]# }" "${trd[$k]# }" "${ta[$k]# }")")
    done
}
