#!/usr/bin/env bash
# Image::Magick::DPC's own t/ suite (PerlMagick-glue/t), as built in this
# build tree, with prove: real servers (this build's magick-dpc), this
# build's shm: coder, and perl on the drop-in libMagickCore, so the tier
# tests run too.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
GLUE=${TOP_BUILDDIR:-$TOP_SRCDIR}/PerlMagick-glue
if [ ! -f "$GLUE/blib/arch/auto/Image/Magick/DPC/DPC.so" ]; then
    echo "SKIP: Image::Magick::DPC is not built (configure --disable-perl-glue?)"
    exit 77
fi
# The sanitized build's coder cannot load into the system's perl (the
# XS itself is built with Perl's flags); the unsanitized build runs these.
if grep -q '^CFLAGS = .*-fsanitize' "${TOP_BUILDDIR:-$TOP_SRCDIR}/Makefile"; then
    echo "SKIP: a sanitized build's shm: coder cannot load into perl"
    exit 77
fi

suite() {
    cd "$GLUE"
    env -u MAGICK_CODER_MODULE_PATH MAGICK_DPC="$MAGICK_DPC" \
        MAGICK_DPC_CODERS="${TOP_BUILDDIR:-$TOP_SRCDIR}/coders" \
        DROPIN_LIB="$DROPIN_LIB" LD_LIBRARY_PATH="$DROPIN_LIB" \
        TMPDIR="$WORK" timeout 600 prove -b t/
}
check "Image::Magick::DPC's t/ (prove -b, on the drop-in library)" suite
# The output of prove, whatever the outcome.
sed 's/^/  /' "$WORK/check.log"
finish
