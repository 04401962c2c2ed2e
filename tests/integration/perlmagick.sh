#!/usr/bin/env bash
# PerlMagick (Debian's Image::Magick, unchanged) on the drop-in
# libMagickCore: its pixel caches on the distributed tier and on the
# shared-memory tier, and images handed to and from convert through shm:.
# Settings come from policy.xml, as a Perl program would get them.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
perl -MImage::Magick -e 1 2> /dev/null || {
    echo "SKIP: PerlMagick (libimage-magick-perl) is not installed"; exit 77; }

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server -v

mem_convert -seed 5 -size 160x120 plasma:fractal "$WORK/in.miff"
mem_convert "$WORK/in.miff" -blur 0x2 "$WORK/blur.mem.miff"


# perl_blur TIERS OUT: Image::Magick reads, blurs and writes on the
# drop-in library, with only the given tiers.
perl_blur() {
    tier_policy "$1" > /dev/null
    MAGICK_CONFIGURE_PATH=$WORK/etc-$1 LD_LIBRARY_PATH=$DROPIN_LIB \
        timeout "$STEP_TIMEOUT" perl -MImage::Magick -e '
        my ($in, $out) = @ARGV;
        my $image = Image::Magick->new;
        my $err = $image->Read($in);
        die "read: $err\n" if $err;
        $err = $image->Blur(geometry => "0x2");
        die "blur: $err\n" if $err;
        $err = $image->Write($out);
        die "write: $err\n" if $err;' "$WORK/in.miff" "$2"
}

distributed() {
    local before after
    before=$(json_field requests_served)
    perl_blur distributed "$WORK/blur.dist.miff"
    after=$(json_field requests_served)
    same_pixels "$WORK/blur.mem.miff" "$WORK/blur.dist.miff"
    [ "$after" -gt $((before + 1)) ]    # more than the status request itself
}
check "PerlMagick on the distributed tier: identical, served by magick-dpc" \
    distributed

shared() {
    perl_blur shm "$WORK/blur.shm.miff"
    same_pixels "$WORK/blur.mem.miff" "$WORK/blur.shm.miff"
    [ "$(shm_field peak)" -gt 0 ] && [ "$(shm_field used)" = 0 ]
}
check "PerlMagick on the shm tier: identical, segments given back" shared

handoff() {
    tier_policy memory > /dev/null
    MAGICK_CONFIGURE_PATH=$WORK/etc-memory LD_LIBRARY_PATH=$DROPIN_LIB \
        MAGICK_CODER_MODULE_PATH=$SHM_CODERS timeout "$STEP_TIMEOUT" \
        perl -MImage::Magick -e '
        my $image = Image::Magick->new;
        my $err = $image->Read($ARGV[0]) || $image->Write("shm:from-perl");
        die "$err\n" if $err;' "$WORK/in.miff"
    shm_convert shm:from-perl "$WORK/from-perl.miff"
    same_pixels "$WORK/in.miff" "$WORK/from-perl.miff"
    shm_convert "$WORK/blur.mem.miff" shm:to-perl
    MAGICK_CONFIGURE_PATH=$WORK/etc-memory LD_LIBRARY_PATH=$DROPIN_LIB \
        MAGICK_CODER_MODULE_PATH=$SHM_CODERS timeout "$STEP_TIMEOUT" \
        perl -MImage::Magick -e '
        my $image = Image::Magick->new;
        my $err = $image->Read("shm:to-perl") || $image->Write($ARGV[0]);
        die "$err\n" if $err;' "$WORK/to-perl.miff"
    same_pixels "$WORK/blur.mem.miff" "$WORK/to-perl.miff"
}
check "PerlMagick publishes to and attaches from shm:, with convert on the other side" \
    handoff
check_stops
finish
