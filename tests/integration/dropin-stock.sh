#!/usr/bin/env bash
# The drop-in libMagickCore (MagickCore-ext/dropin/build.sh) under the
# system's own programs: /usr/bin/convert, libMagickWand, the coder modules
# and, when installed, PerlMagick must run on it and give pixels identical
# to the system library's.  DROPIN_LIB is the directory holding the built
# libMagickCore-6.Q16.so.6 (e.g. _install/lib); unset or absent: skipped.
LIBNAME=libMagickCore-6.Q16.so.6
if [ -z "${DROPIN_LIB:-}" ]; then
    echo "SKIP: DROPIN_LIB is not set (the directory holding the drop-in $LIBNAME," \
        "made by MagickCore-ext/dropin/build.sh)"
    exit 77
fi
if [ ! -e "$DROPIN_LIB/$LIBNAME" ]; then
    echo "SKIP: no $DROPIN_LIB/$LIBNAME (run MagickCore-ext/dropin/build.sh first)"
    exit 77
fi
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"

DROPIN_LIB=$(cd "$DROPIN_LIB" && pwd)
SYSTEM_LIB=$(readlink -f "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null ||
    echo x86_64-linux-gnu)/$LIBNAME")

# sys_convert / drop_convert ARGS...: the system convert on the system
# library / on the drop-in.
sys_convert() { timeout "$STEP_TIMEOUT" "$CONVERT" "$@"; }
drop_convert() { LD_LIBRARY_PATH=$DROPIN_LIB timeout "$STEP_TIMEOUT" "$CONVERT" "$@"; }

# --- it runs, and it is really the drop-in that runs
version_works() {
    drop_convert -version > "$WORK/version.dropin"
    grep -q '^Version: ImageMagick ' "$WORK/version.dropin"
    sys_convert -version > "$WORK/version.system"
    diff "$WORK/version.system" "$WORK/version.dropin"
}
check "convert -version works on the drop-in (identical to the system's)" version_works

ldd_resolves() {
    local got
    got=$(LD_LIBRARY_PATH=$DROPIN_LIB ldd "$CONVERT" |
        awk -v n="$LIBNAME" '$1 == n { print $3 }')
    echo "ldd: $LIBNAME => $got"
    [ -n "$got" ]
    [ "$(readlink -f "$got")" = "$(readlink -f "$DROPIN_LIB/$LIBNAME")" ]
    # Not the system's own file under another name.
    [ "$(readlink -f "$got")" != "$SYSTEM_LIB" ]
}
check "ldd: $LIBNAME resolves to \$DROPIN_LIB" ldd_resolves

loader_loads() {
    # The dynamic loader's own account of what the process initialised.
    LD_DEBUG=libs LD_LIBRARY_PATH=$DROPIN_LIB "$CONVERT" -version 2>&1 >/dev/null |
        grep 'calling init:.*libMagickCore' > "$WORK/init.log" || true
    cat "$WORK/init.log"
    grep -qF "$DROPIN_LIB/$LIBNAME" "$WORK/init.log"
}
check "the loader initialises libMagickCore from \$DROPIN_LIB" loader_loads

# Module and configure paths: the drop-in finds the system's coder modules
# and configure files exactly as the system library does.
same_list() {
    sys_convert -list "$1" > "$WORK/list-$1.system" 2>&1
    drop_convert -list "$1" > "$WORK/list-$1.dropin" 2>&1
    diff "$WORK/list-$1.system" "$WORK/list-$1.dropin"
}
for l in format configure delegate policy; do
    check "convert -list $l identical" same_list "$l"
done

# --- conversions: system library vs drop-in, pixel-identical
# same_output NAME OUT-EXT ARGS...: `convert ARGS... out.EXT` with both.
same_output() {
    local name=$1 ext=$2
    shift 2
    sys_convert "$@" "$WORK/$name.system.$ext"
    drop_convert "$@" "$WORK/$name.dropin.$ext"
    same_pixels "$WORK/$name.system.$ext" "$WORK/$name.dropin.$ext"
}

sys_convert -seed 7 -size 160x120 plasma:fractal "$WORK/in.png"
sys_convert "$WORK/in.png" -quality 90 "$WORK/in.jpg"
sys_convert "$WORK/in.png" -colors 64 "$WORK/in.gif"

check "generate (plasma, -seed) and write PNG" \
    same_output gen png -seed 7 -size 160x120 plasma:fractal
check "PNG read, PNG write" same_output png png "$WORK/in.png"
check "PNG with alpha, 16-bit" same_output png16 png "$WORK/in.png" \
    -alpha set -channel A -fx 'i/w' +channel -depth 16
check "JPEG write (-quality 85)" same_output jpgw jpg "$WORK/in.png" -quality 85
check "JPEG read" same_output jpgr png "$WORK/in.jpg"
check "GIF write (-colors 64: quantize)" same_output gifw gif "$WORK/in.png" -colors 64
check "GIF read" same_output gifr png "$WORK/in.gif"
check "-resize 37%" same_output resize png "$WORK/in.png" -resize 37%
check "-resize 250% (Lanczos)" same_output upsize png "$WORK/in.png" -filter Lanczos -resize 250%
check "-blur 0x2" same_output blur png "$WORK/in.png" -blur 0x2
check "-rotate 33 -colorspace Gray" same_output rotate png "$WORK/in.png" -rotate 33 -colorspace Gray

# --- PerlMagick (libimage-magick-perl), when installed
perl_run() {
    # perl_run OUT: resize + blur through Image::Magick; prints the path of
    # the libMagickCore the process mapped.
    perl -MImage::Magick -e '
        my ($in, $out) = @ARGV;
        my $im = Image::Magick->new;
        my $e = $im->Read($in); die "$e\n" if $e;
        $e = $im->Resize(geometry => "50%"); die "$e\n" if $e;
        $e = $im->Blur(geometry => "0x1"); die "$e\n" if $e;
        $e = $im->Write($out); die "$e\n" if $e;
        open my $m, "<", "/proc/self/maps" or die;
        my %seen;
        while (<$m>) { print "$1\n" if m{(/\S*libMagickCore\S*)} && !$seen{$1}++ }
    ' "$WORK/in.png" "$1"
}
perlmagick() {
    perl_run "$WORK/perl.system.png" > "$WORK/perl.system.maps"
    LD_LIBRARY_PATH=$DROPIN_LIB perl_run "$WORK/perl.dropin.png" > "$WORK/perl.dropin.maps"
    cat "$WORK/perl.dropin.maps"
    grep -qxF "$(readlink -f "$DROPIN_LIB/$LIBNAME")" "$WORK/perl.dropin.maps" ||
        grep -qxF "$DROPIN_LIB/$LIBNAME" "$WORK/perl.dropin.maps"
    same_pixels "$WORK/perl.system.png" "$WORK/perl.dropin.png"
}
if perl -MImage::Magick -e 1 2> /dev/null; then
    check "PerlMagick (Image::Magick) runs on the drop-in, same pixels" perlmagick
else
    echo "skip - PerlMagick: Image::Magick is not installed" \
        "(apt-get install libimage-magick-perl to test it)"
fi

finish
