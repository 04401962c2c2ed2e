#!/usr/bin/env bash
# Text drawn across every edge and corner of an image (-annotate, -draw
# text, label:, caption:), on every way a pixel cache reaches magick-dpc:
# the stock client of Debian's Q16 and Q16-HDRI convert, the drop-in's
# distributed tier (with its default tile cache, and with one too small for
# the image) and its shm tier.  Each case must exit 0 with pixels
# identical to the same command on the memory cache of the same build.
#
# A glyph row drawn past the right edge asks the cache for a region that
# runs past the row's end and wraps onto the next row (the memory cache
# accepts it as a linear run); on the last row the memory cache refuses
# it and the text code falls back to one pixel at a time.  A glyph wholly
# past the left or right edge asks for no pixels at all, but its cache
# view is still synced, with an empty region.  All three are exercised.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"

CONVERT_Q16=/usr/bin/convert-im6.q16
CONVERT_HDRI=/usr/bin/convert-im6.q16hdri
COMPARE_HDRI=/usr/bin/compare-im6.q16hdri
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
[ -r "$FONT" ] || FONT=$(fc-match -f '%{file}' sans 2> /dev/null || true)
if [ -z "$FONT" ] || [ ! -r "$FONT" ]; then
    echo "SKIP: no TrueType font (fonts-dejavu-core)"
    exit 77
fi

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server

# The cases.  The canvas is 200x50; at 30 points "Hello" is about 75x22
# pixels, its glyphs 8-22 pixels wide.  A glyph "straddles" an edge when
# part of it is inside; a glyph wholly past the left or right edge, on rows
# of the image, is only looked at, one glyph row at a time, never drawn.
#
# add EDGES NAME ARGS...: a case, convert's arguments before the output;
# EDGES are those its text must reach on the memory cache (l, r, t, b), so
# that another font cannot quietly move it inside.
NAMES=()
EDGES=()
ARGS=()
add() {
    EDGES+=("$1")
    NAMES+=("$2")
    shift 2
    ARGS+=("$(printf '%q ' "$@")")
}
BG=(-size 200x50 xc:white -fill black -font "$FONT" -pointsize 30)
PLACES="r:right,-last-glyph-straddling:130:35
r:right,-glyphs-wholly-past-it:170:35
l:left,-first-glyph-straddling:-8:35
l:left,-first-glyph-wholly-past-it:-26:35
t:top:60:10
b:bottom:60:60
lt:top-left-corner:-8:14
rt:top-right-corner:130:14
lb:bottom-left-corner:-8:60
rb:bottom-right-corner:130:60"
for place in $PLACES; do
    IFS=: read -r edges where x y <<< "$place"
    where=${where//-/ }
    geometry=$(printf '%+d%+d' "$x" "$y")
    add "$edges" "annotate $geometry: $where" "${BG[@]}" \
        -annotate "$geometry" Hello
    add "$edges" "draw text $x,$y: $where" "${BG[@]}" \
        -draw "text $x,$y 'Hello'"
done
add rb "annotate -gravity SouthEast -8-10: bottom-right corner" "${BG[@]}" \
    -gravity SouthEast -annotate -8-10 Hello
add lt "annotate -gravity NorthWest -8-14: top-left corner" "${BG[@]}" \
    -gravity NorthWest -annotate -8-14 Hello
add lb "annotate -gravity SouthWest -8-10: bottom-left corner" "${BG[@]}" \
    -gravity SouthWest -annotate -8-10 Hello
add rt "annotate -gravity NorthEast -8-14: top-right corner" "${BG[@]}" \
    -gravity NorthEast -annotate -8-14 Hello
add r "draw text -gravity East -8,0: right" "${BG[@]}" -gravity East \
    -draw "text -8,0 'Hello'"
add lrtb "annotate -gravity Center at 96 points: all four edges" "${BG[@]}" \
    -gravity Center -pointsize 96 -annotate +0+0 Hello
add r "annotate rotated 30 degrees across the right edge" "${BG[@]}" \
    -annotate 30x30+150+45 Hello
add r "annotate stroked across the right edge" "${BG[@]}" -stroke red \
    -strokewidth 2 -annotate +130+35 Hello
add lrtb "label: 60x20 at 30 points, centred: all four edges" -size 60x20 \
    -font "$FONT" -pointsize 30 -gravity Center label:Hello
add r "label: 60x40, -gravity West: right" -size 60x40 -font "$FONT" \
    -pointsize 30 -gravity West label:Hello
add l "label: 60x40, -gravity East: left" -size 60x40 -font "$FONT" \
    -pointsize 30 -gravity East label:Hello
add b "caption: 90x36, overflowing the bottom" -size 90x36 -font "$FONT" \
    -pointsize 24 caption:'Hello wide world'
add tb "caption: 90x44, centred: overflowing top and bottom" -size 90x44 \
    -font "$FONT" -pointsize 24 -gravity Center caption:'Hello wide world'
add r "label: composited across the right edge" "${BG[@]}" \
    '(' -size 80x40 -background none label:Hello ')' -geometry +160+20 \
    -composite
# The reported command itself: ImageMagick's default font (Helvetica, a
# Type 1 font: quickstart installs gsfonts), glyphs wholly past the right
# edge.
if mem_convert -size 20x20 xc:white -annotate +2+10 x null: 2> /dev/null; then
    add r "annotate +170+35 in the default font: the reported command" \
        -size 200x50 xc:white -fill black -pointsize 30 -annotate +170+35 Hello
fi

# Under the sanitizers, only the annotate cases and one of each other kind.
SUBSET='^annotate|^draw text 130,35|^label: 60x20|^caption: 90x36'

# run HOW OUT ARGS...: one convert; HOW is mem-q16, mem-hdri, stock-q16,
# stock-hdri, dropin, dropin-spill or shm.  dropin's tile cache (1 MiB at
# least) holds a whole 200x50 image, so only its opens reach the server;
# dropin-spill's holds 8 tiles of the 14, so tiles go to the server and
# come back.  A failure prints its exit status, and the signal when one
# killed it.
run() {
    local how=$1 out=$2 rc=0
    shift 2
    case $how in
    mem-q16) timeout "$STEP_TIMEOUT" "$CONVERT_Q16" "$@" "$out" || rc=$? ;;
    mem-hdri) timeout "$STEP_TIMEOUT" "$CONVERT_HDRI" "$@" "$out" || rc=$? ;;
    stock-q16 | stock-hdri)
        local bin=$CONVERT_Q16
        [ "$how" = stock-hdri ] && bin=$CONVERT_HDRI
        timeout "$STEP_TIMEOUT" "$bin" \
            -define registry:cache:hosts=127.0.0.1:"$PORT" \
            -limit memory 0 -limit map 0 -limit disk 0 "$@" "$out" || rc=$? ;;
    dropin | shm) DPC_VIA=$how dpc_convert "$@" "$out" || rc=$? ;;
    dropin-spill)
        DPC_VIA=dropin dpc_convert -define cache:dpc-tile-cache=64KiB "$@" \
            "$out" || rc=$? ;;
    esac
    [ $rc -eq 0 ] && return 0
    if [ $rc -gt 128 ] && [ $rc -ne 124 ]; then
        echo "$how: killed by SIG$(kill -l $((rc - 128)))"
    else
        echo "$how: exit $rc"
    fi
    return 1
}

# reaches_edges N: case N's text on the memory cache (Q16) reaches its
# edges: the bounding box of what is not background touches them.
reaches_edges() {
    local n=$1 w h bw bh bx by e
    eval "set -- ${ARGS[$n]}"
    run mem-q16 "$WORK/$n.mem-q16.miff" "$@"
    read -r w h bw bh bx by < <("$CONVERT_Q16" "$WORK/$n.mem-q16.miff" \
        -format '%w %h %@\n' info: | tr 'x+' '  ')
    echo "image ${w}x$h, text ${bw}x$bh+$bx+$by, edges wanted: ${EDGES[$n]}"
    for e in $(echo "${EDGES[$n]}" | fold -w 1); do
        case $e in
        l) [ "$bx" -eq 0 ] ;;
        t) [ "$by" -eq 0 ] ;;
        r) [ $((bx + bw)) -eq "$w" ] ;;
        b) [ $((by + bh)) -eq "$h" ] ;;
        esac
    done
}

# same_as_memory HOW N: case N on HOW, against the memory cache's output
# of the same build (made once per case and build).
same_as_memory() {
    local how=$1 n=$2 mem=mem-q16 cmp=$COMPARE ae
    case $how in stock-hdri) mem=mem-hdri cmp=$COMPARE_HDRI ;; esac
    eval "set -- ${ARGS[$n]}"
    [ -s "$WORK/$n.$mem.miff" ] || run $mem "$WORK/$n.$mem.miff" "$@"
    run "$how" "$WORK/$n.$how.miff" "$@"
    ae=$("$cmp" -metric AE "$WORK/$n.$mem.miff" "$WORK/$n.$how.miff" null: 2>&1) ||
        true
    [ "$ae" = 0 ] || { echo "$how: AE=$ae against $mem"; return 1; }
}

HOWS="stock-q16 stock-hdri"
[ -x "$CONVERT_HDRI" ] || { echo "# no $CONVERT_HDRI: HDRI cases left out"; HOWS=stock-q16; }
if [ -n "${DROPIN_LIB:-}" ] && [ -e "$DROPIN_LIB/libMagickCore-6.Q16.so.6" ]; then
    HOWS="$HOWS dropin dropin-spill shm"
else
    echo "# no drop-in libMagickCore: its cases left out"
fi
for n in "${!NAMES[@]}"; do
    if [ "${DPC_SLOW_TESTS:-yes}" = no ] && ! [[ ${NAMES[$n]} =~ $SUBSET ]]; then
        continue
    fi
    check "${NAMES[$n]}: the text reaches its edges" reaches_edges "$n"
    for how in $HOWS; do
        check "${NAMES[$n]} [$how]" same_as_memory "$how" "$n"
    done
done

check "server alive after every case" server_alive
check "no cache left on the server" sh -c \
    "[ \"\$('$MAGICK_DPC' status --host 127.0.0.1:$PORT | sed -n 's/.*\"caches_open\":\([0-9]*\).*/\1/p')\" = 0 ]"
check_stops
finish
