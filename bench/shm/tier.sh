# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # globals shared with bench/shm.sh's other parts
# bench/shm/tier.sh: A. one convert on the shm tier against the memory tier (bench_tier).
# Sourced by bench/shm.sh, in its order, after bench/lib.sh; not a script.

# ============================================ A. the shm tier against memory
declare -A OP_ARGS=([blur]="-blur 0x2" [resize]="-resize 50%")
A_ROWS=()
A_TARGETS=()
A_SEGMENTS=()
A_VW=7                             # the variant column's width (11: --baseline)

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
    [ -z "$BASE_DIR" ] || variants+=(base-memory base-shm)
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
    if [ -n "$BASE_DIR" ]; then
        st=$(dpc_status base)
        used=$(json_num "$st" used)
        if [ "$used" != 0 ]; then
            PROBLEMS+=("A $label: after the base-shm runs the baseline server still holds $used bytes ($st)")
            SEGS+="; !!! the baseline server still holds $used bytes"
        fi
    fi
    A_SEGMENTS+=("$(printf '  %-12s %s' "$label" "$SEGS")")

    local -A med=()
    for v in "${variants[@]}"; do
        case ${bad[$v]} in FAILED|TIMEOUT) med[$v]=${bad[$v]} ;; *) med[$v]=$(med_or "${times[$v]}" "") ;; esac
    done
    local check
    local -a shown=(memory shm stock)
    [ -z "$BASE_DIR" ] || shown+=(base-memory base-shm)
    for v in "${shown[@]}"; do
        if [ "$v" = stock ] && [ "$WITH_STOCK" = 0 ]; then
            A_ROWS+=("$(printf '%-12s %-*s %8s %8s  %-11s  %s' "$label" "$A_VW" "$v" - - - "skipped (--no-stock)")")
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
        A_ROWS+=("$(printf '%-12s %-*s %8s %8s  %-11s  %s' "$label" "$A_VW" "$v" "${med[$v]}" \
            "$(ratio "${med[$v]}" "${med[memory]}")" "$(range "${times[$v]}")" "$check")")
    done
    A_ROWS+=("")
    local r
    r=$(ratio "${med[shm]}" "${med[memory]}")
    A_TARGETS+=("$(printf '%-12s shm/memory %6s  %s' "$label" "$r" "$(target "$r" 1.05)")")
    if [ -n "$BASE_DIR" ]; then
        for v in memory shm; do
            BASE_ROWS+=("$(printf '%-4s %-22s %-16s %9s %9s %9s' A "$label" "$v" "${med[$v]}" \
                "${med[base-$v]}" "$(ratio "${med[$v]}" "${med[base-$v]}")")")
        done
    fi
}
