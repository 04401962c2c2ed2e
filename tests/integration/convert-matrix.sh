#!/usr/bin/env bash
# The real /usr/bin/convert with its pixel cache forced onto magick-dpc:
# every image kind and operation must give pixels identical to the memory
# cache's.  Palette and CMYK images must also have used the index plane.
# DPC_VIA=stock (default): the stock client and protocol; DPC_VIA=dropin:
# the drop-in libMagickCore and the native protocol (dropin-matrix.sh);
# DPC_VIA=shm: the drop-in's shared-memory tier (shm-matrix.sh).
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
[ "${DPC_VIA:-stock}" = stock ] || need_dropin

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server -v

make_inputs

# same_output NAME IN OPS...: memory vs magick-dpc, output as MIFF.
same_output() {
    local name=$1 in=$2
    shift 2
    mem_convert "$in" "$@" "$WORK/$name.mem.miff"
    dpc_convert "$in" "$@" "$WORK/$name.dpc.miff"
    same_pixels "$WORK/$name.mem.miff" "$WORK/$name.dpc.miff"
}

# used_index_plane: the server saw index-plane data since the mark: stock
# 'W' requests, native slots of 32x32 tiles of 8+2 bytes a pixel, or a
# shared segment of 96x64 pixels of 8+2 bytes.
mark() { MARK=$(wc -l < "$WORK/server.log"); }
used_index_plane() {
    tail -n +"$((MARK + 1))" "$WORK/server.log" |
        grep -qE ': W [0-9]|: OPEN [0-9]+ x 10240 bytes|: alloc 61440 bytes'
}

for kind in rgb rgba deep gray cmyk; do
    check "$kind: -blur 0x1" same_output "$kind-blur" "$WORK/$kind.miff" -blur 0x1
done
check "16-bit stays 16-bit" sh -c \
    "[ \"\$($CONVERT '$WORK/deep-blur.dpc.miff' -format %z info:)\" = 16 ]"

mark
check "palette: -flip keeps the index plane" \
    same_output palette "$WORK/palette.gif" -flip
check "palette: the index plane reached the server" used_index_plane
mark
check "cmyk: -negate" same_output cmyk-negate "$WORK/cmyk.miff" -negate
check "cmyk: the index plane reached the server" used_index_plane

anim_frames() {
    mem_convert "$WORK/anim.gif" -rotate 90 "$WORK/anim.mem.gif"
    dpc_convert "$WORK/anim.gif" -rotate 90 "$WORK/anim.dpc.gif"
    [ "$($CONVERT "$WORK/anim.dpc.gif" -format '%n\n' info: | head -n 1)" = 3 ]
    for i in 0 1 2; do
        same_pixels "$WORK/anim.mem.gif[$i]" "$WORK/anim.dpc.gif[$i]"
    done
}
check "multi-frame GIF: 3 frames rotated" anim_frames

check "-resize 50%" same_output resize "$WORK/rgb.miff" -resize 50%
check "-rotate 33" same_output rotate "$WORK/rgba.miff" -rotate 33
check "-distort SRT 30" same_output distort "$WORK/rgb.miff" -distort SRT 30
check "-fx" same_output fx "$WORK/rgb.miff" -fx 'u*0.5+0.25*sin(i/4)'
check "-composite" same_output composite "$WORK/rgb.miff" \
    "$WORK/rgba.miff" -gravity center -composite

check "caches freed after the clients exit" \
    sh -c "[ \"\$('$MAGICK_DPC' status --host 127.0.0.1:$PORT | sed -n 's/.*\"caches_open\":\([0-9]*\).*/\1/p')\" = 0 ]"
shm_freed() { [ "$(shm_field used)" = 0 ] && [ "$(shm_field segments)" = 0 ]; }
[ "${DPC_VIA:-stock}" != shm ] ||
    check "shared segments freed after the clients exit" shm_freed
# With a tile cache smaller than the images, tiles really were written to
# the server and fetched back.
tiles_travelled() {
    grep -qE ': PUT [0-9]+ x [0-9]+' "$WORK/server.log"
    grep -qE ': GET [0-9]+ x [0-9]+' "$WORK/server.log"
}
[ -z "${DPC_TILE_CACHE:-}" ] ||
    check "tiles written to the server and fetched back" tiles_travelled
check "no secret in the server log" sh -c "! grep -qF '$SECRET' '$WORK/server.log'"
check_stops
finish
