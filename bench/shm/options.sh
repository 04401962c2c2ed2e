# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # globals shared with bench/shm.sh's other parts
# bench/shm/options.sh: --help, the options and their defaults: usage, parse_args.
# Sourced by bench/shm.sh, in its order, after bench/lib.sh; not a script.

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
      --baseline DIR    also run another built tree of this project (its
                        _install/bin/magick-dpc, _install/lib drop-in and
                        _install/lib/magick-dpc/coders shm coder, on a
                        server of its own): in A as base-memory and
                        base-shm, in B as base-shm, base-shm-stocklib and
                        base-mpc-dropin, interleaved with this tree's, and
                        print this tree's time over the baseline's (not C)
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
BASE_DIR=""

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
            --baseline)   [ $# -ge 2 ] || usage_error "$1 needs a value"; BASE_DIR=$2; shift ;;
            --baseline=*) BASE_DIR=${1#*=} ;;
            -k|--keep)    KEEP=1 ;;
            -h|--help)    usage; exit 0 ;;
            *)            usage_error "unknown argument: $1" ;;
        esac
        shift
    done
    need_positive_ints REPEAT STEP_TIMEOUT
    if [ -n "$BASE_DIR" ]; then
        [ -d "$BASE_DIR" ] || usage_error "--baseline: no directory $BASE_DIR"
        BASE_DIR=$(cd "$BASE_DIR" && pwd)
        A_VW=11 B_KW=17
        B_KINDS+=(base-shm base-mpc-dropin base-shm-stocklib)
    fi
    [[ $SIZE =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]] || usage_error "bad size: $SIZE (want WxH)"
    [[ $BIG =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]] || usage_error "bad --big: $BIG (want WxH)"
    BIG_W=${BASH_REMATCH[1]} BIG_H=${BASH_REMATCH[2]}
    [[ $BUDGET =~ ^[0-9]+([KMGT]i?B|B)?$ ]] || usage_error "bad --budget: $BUDGET (e.g. 4GiB)"
    [ "$KEEP" = 1 ] || KEEP=0
}
