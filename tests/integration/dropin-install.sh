#!/usr/bin/env bash
# make install and the drop-in's source revision: a drop-in built from an
# older Debian revision than the installed libMagickCore (its security fixes
# missing) is refused for /usr/local, which the dynamic linker searches by
# default, before anything of it is copied, with a message naming both
# revisions and the configure flag that overrides; the quickstart's own
# prefix (_install, used with LD_LIBRARY_PATH) takes it.  Both run with
# DESTDIR under the test's directory: nothing is installed system-wide.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
B=${TOP_BUILDDIR:-$TOP_SRCDIR/_build}
[ -f "$B/Makefile" ] || { echo "SKIP: no configured build directory ($B)"; exit 77; }
grep -q '^install-exec-local: dropin' "$B/Makefile" || {
    echo "SKIP: configured with --disable-dropin"; exit 77; }

# in_build ARGS...: make in the build directory, free of an enclosing make's
# flags and variables (make check TESTS=...).
in_build() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
        timeout "$STEP_TIMEOUT" make -s -C "$B" "$@"
}
DROPIN_BUILD=$(echo 'print-dropin-build: ; @echo $(DROPIN_BUILD)' |
    in_build -f Makefile -f - print-dropin-build)
STATE=$DROPIN_BUILD/source/state
[ -f "$STATE" ] || { echo "SKIP: no $STATE (drop-in built from --magick-source)"; exit 77; }
# shellcheck disable=SC1090
. "$STATE"                             # CACHED_FOR (installed), USED (built)
echo "# drop-in built from $USED; installed: $CACHED_FOR"

refused() {
    local rc=0 before
    before=$(ls -l /usr/local/lib/libMagickCore* 2>&1 || true)
    in_build install prefix=/usr/local DESTDIR="$WORK/dest" \
        > "$WORK/install.log" 2>&1 || rc=$?
    sed -n '/refusing/,$p' "$WORK/install.log"
    [ $rc -ne 0 ]
    grep -q "refusing to install into /usr/local/lib" "$WORK/install.log"
    grep -qF "$USED" "$WORK/install.log"
    grep -qF "$CACHED_FOR" "$WORK/install.log"
    grep -q "security fixes" "$WORK/install.log"
    grep -q -- "--enable-older-magick-source" "$WORK/install.log"
    # nothing of the library copied, here or system-wide
    [ -z "$(find "$WORK/dest" -name 'libMagickCore*' 2> /dev/null)" ]
    [ "$(ls -l /usr/local/lib/libMagickCore* 2>&1 || true)" = "$before" ]
}
if dpkg --compare-versions "$USED" lt "$CACHED_FOR"; then
    check "older source: make install into /usr/local refused before copying" refused
else
    echo "# built from the installed revision: nothing to refuse"
fi

# The allowed path rebuilds nothing only in the build directory whose
# libdpcclient.a the drop-in was linked with (the ASan build's is not).
allowed() {
    in_build install prefix="$TOP_SRCDIR/_install" DESTDIR="$WORK/dest" \
        > "$WORK/install.log" 2>&1
    grep 'dropin:' "$WORK/install.log" | cut -c1-160
    cmp "$DROPIN_LIB/libMagickCore-6.Q16.so.6" \
        "$WORK/dest$TOP_SRCDIR/_install/lib/libMagickCore-6.Q16.so.6"
}
if grep -qF "$B/MagickCore-ext/client/libdpcclient.a" "$DROPIN_BUILD/extra-libs.stamp" 2> /dev/null; then
    check "quickstart's prefix (_install): make install takes the drop-in" allowed
else
    echo "# the drop-in was not linked from $B: allowed install not tested here"
fi
finish
