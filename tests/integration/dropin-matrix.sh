#!/usr/bin/env bash
# The conversion matrix again, through the drop-in libMagickCore: the
# system's convert, the native protocol, the distributed tier forced.
DPC_VIA=dropin exec bash "$(dirname "$0")/convert-matrix.sh"
