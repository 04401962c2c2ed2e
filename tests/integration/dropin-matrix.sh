#!/usr/bin/env bash
# The conversion matrix again, through the drop-in libMagickCore: the
# system's convert, the native protocol, the distributed tier forced.  A
# tile cache of three tiles, so that the matrix's small images do not fit
# in it and their pixels travel to the server and back.
DPC_VIA=dropin DPC_TILE_CACHE=32KiB exec bash "$(dirname "$0")/convert-matrix.sh"
