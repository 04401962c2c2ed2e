# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # globals shared with bench/shm.sh's other parts
# bench/shm/runs.sh: bookkeeping shared by the parts: notes, load samples, the variants'
# rotation, failed runs, medians, ranges and targets.
# Sourced by bench/shm.sh, in its order, after bench/lib.sh; not a script.

NOTES=()
BASE_ROWS=()                       # --baseline: this tree's medians over the baseline's
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
