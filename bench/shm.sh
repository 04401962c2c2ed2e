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

# The parts, in this order (each defines what the next ones use):
for part in options server runs tier handoff big main; do
    # shellcheck source-path=SCRIPTDIR/shm disable=SC1090
    . "$(dirname "$SELF")/shm/$part.sh"
done
unset part

main "$@"
