#!/usr/bin/env bash
# The system's other ImageMagick tools on the drop-in libMagickCore with
# the distributed tier forced: identify, mogrify, montage, composite,
# compare and stream (by -define), conjure (by policy.xml: it has no
# -define), and convert -concatenate (the one path of libMagickWand that
# needs IsPathAuthorized from libMagickCore).  Each must exit as the same
# tool does on the system's library and memory cache, with identical
# output, and the server must have received the pixels: a tile cache of
# 16 tiles makes every image here spill to it.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
[ -r "$FONT" ] || FONT=$(fc-match -f '%{file}' sans 2> /dev/null || true)

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server -v
TILE_CACHE=128KiB
# conjure's settings: policy.xml with the hosts and the tier.
mkdir -p "$WORK/etc-dpc"
sed "s|</policymap>|  <policy domain=\"cache\" name=\"hosts\" value=\"127.0.0.1:$PORT\"/>\n  <policy domain=\"cache\" name=\"tiers\" value=\"distributed\"/>\n  <policy domain=\"cache\" name=\"dpc-tile-cache\" value=\"$TILE_CACHE\"/>\n</policymap>|" \
    "$WORK/etc/policy.xml" > "$WORK/etc-dpc/policy.xml"

mem_convert -seed 11 -size 320x240 plasma:fractal "$WORK/a.miff"
mem_convert -seed 12 -size 320x240 plasma:fractal "$WORK/b.miff"
mem_convert "$WORK/a.miff" -resize 160x120 "$WORK/small.miff"
mem_convert -size 160x120 gradient:'#ff000080-#0000ff80' "$WORK/over.miff"
mkdir -p "$WORK/mem/out" "$WORK/dpc/out"

# tool HOW NAME ARGS...: /usr/bin/NAME in $WORK/HOW, its stdout and
# stderr in HOW/NAME.out and .err, its status in HOW/NAME.rc.  HOW mem:
# the system's library, memory cache.  HOW dpc: the drop-in, only the
# distributed tier, a small tile cache (-define before the arguments;
# conjure takes policy.xml instead).
tool() {
    local how=$1 name=$2 rc=0
    shift 2
    local env=() defs=()
    if [ "$how" = dpc ]; then
        env=(LD_LIBRARY_PATH="$DROPIN_LIB")
        if [ "$name" = conjure ]; then
            env+=(MAGICK_CONFIGURE_PATH="$WORK/etc-dpc")
        else
            defs=(-define cache:hosts=127.0.0.1:"$PORT"
                -define cache:tiers=distributed
                -define cache:dpc-tile-cache="$TILE_CACHE")
        fi
    fi
    (cd "$WORK/$how" && env "${env[@]}" timeout "$STEP_TIMEOUT" \
        "/usr/bin/$name" "${defs[@]}" "$@") \
        > "$WORK/$how/$name.out" 2> "$WORK/$how/$name.err" || rc=$?
    echo "$rc" > "$WORK/$how/$name.rc"
    [ "$rc" -le 128 ] || [ "$rc" = 124 ] ||
        echo "$how: $name killed by SIG$(kill -l $((rc - 128)))"
}

# native_bytes_in: bytes the server received on native connections
# closed since the last mark_log (waits up to 5 s for one to close).
# native_opens: caches it opened for them.
mark_log() { LOG_MARK=$(wc -l < "$WORK/server.log"); }
native_opens() {
    tail -n +"$((LOG_MARK + 1))" "$WORK/server.log" | grep -c ': OPEN [0-9]' ||
        true
}
native_bytes_in() {
    local lines
    for _ in $(seq 1 50); do
        lines=$(tail -n +"$((LOG_MARK + 1))" "$WORK/server.log" |
            grep -E '\(native(, TLS)?\): .*bytes in' || true)
        [ -n "$lines" ] && break
        sleep 0.1
    done
    echo "$lines" | sed -n 's/.* \([0-9]*\) bytes in.*/\1/p' |
        awk '{ s += $1 } END { print s + 0 }'
}

# same_run NAME FILES ARGS...: the tool on memory, then on the server;
# the same exit status, stdout and stderr (with the run's directory
# left out), the same pixels in each output FILE (comma-separated, a
# frame as FILE[N]; "-" for none), and pixels sent to the server.
same_run() {
    local name=$1 files=$2 bytes opens f
    shift 2
    tool mem "$name" "$@"
    mark_log
    tool dpc "$name" "$@"
    bytes=$(native_bytes_in)
    opens=$(native_opens)
    echo "exit: memory $(cat "$WORK/mem/$name.rc"), distributed $(cat "$WORK/dpc/$name.rc")"
    sed 's/^/  memory stderr: /' "$WORK/mem/$name.err" | head -n 5
    sed 's/^/  distributed stderr: /' "$WORK/dpc/$name.err" | head -n 5
    echo "caches the server opened: $opens, bytes it received: $bytes"
    [ "$(cat "$WORK/mem/$name.rc")" = "$(cat "$WORK/dpc/$name.rc")" ]
    diff "$WORK/mem/$name.out" "$WORK/dpc/$name.out"
    diff <(sed "s|$WORK/mem|DIR|g" "$WORK/mem/$name.err") \
        <(sed "s|$WORK/dpc|DIR|g" "$WORK/dpc/$name.err")
    if [ "$files" != - ]; then
        for f in ${files//,/ }; do
            [ -s "$WORK/mem/${f%%\[*}" ] || { echo "memory wrote no $f"; return 1; }
            same_pixels "$WORK/mem/$f" "$WORK/dpc/$f"
        done
    fi
    [ "$opens" -gt 0 ] && { [ "$bytes" -gt 0 ] || [ -n "$NO_PIXELS_SENT" ]; }
}
# stream hands each row to the caller; the pixel cache it opens receives
# only the zeros ImageMagick clears an image with, which the drop-in does
# not send (a tile never written reads as zeros)
NO_PIXELS_SENT=

check "identify -format: signature and statistics" same_run identify - \
    -format '%# %[mean] %[standard-deviation] %[max] %k\n' ../a.miff ../b.miff
mogrify_in_place() {
    cp "$WORK/a.miff" "$WORK/mem/m.miff"
    cp "$WORK/a.miff" "$WORK/dpc/m.miff"
    same_run mogrify m.miff -blur 0x1 -resize 80% m.miff
}
check "mogrify -blur -resize, in place" mogrify_in_place
check "mogrify -path -format png" same_run mogrify out/a.png \
    -path out -format png -rotate 17 ../a.miff
check "montage -tile 2x1 -geometry +4+4" same_run montage montage.miff \
    ../a.miff ../b.miff -tile 2x1 -geometry +4+4 -background gray montage.miff
check "montage with labels" same_run montage labels.miff -font "$FONT" \
    -pointsize 14 -label '%wx%h' ../a.miff ../b.miff -tile 2x1 \
    -geometry +4+4 labels.miff
check "composite -gravity center -dissolve 60" same_run composite \
    composite.miff -gravity center -dissolve 60 ../over.miff ../a.miff \
    composite.miff
check "compare -metric AE -fuzz 10%: metric and difference image" \
    same_run compare diff.miff -metric AE -fuzz 10% ../a.miff ../b.miff diff.miff
# -subimage-search makes a cache for every offset tried: 7,676 here, each
# opened on the server.
check "compare -metric RMSE -subimage-search" same_run compare \
    'search.miff[0],search.miff[1]' -metric RMSE -subimage-search \
    ../small.miff '../small.miff[60x45+50+40]' search.miff
stream_same() {
    NO_PIXELS_SENT=1
    same_run stream - -map rgb -storage-type char ../a.miff a.rgb
    NO_PIXELS_SENT=
    cmp "$WORK/mem/a.rgb" "$WORK/dpc/a.rgb"
}
check "stream -map rgb -storage-type char" stream_same
# -map rgb: a.miff has no alpha, and the opacity ImageMagick 6 exports for
# such an image is whatever its pixel cache held (zero pages in a memory
# cache; heap contents through any distributed one: under MALLOC_PERTURB_
# the stock client differs from memory there too).
stream_extract() {
    NO_PIXELS_SENT=1
    same_run stream - -map rgb -storage-type short -extract 100x60+150+100 \
        ../a.miff part.rgb
    NO_PIXELS_SENT=
    cmp "$WORK/mem/part.rgb" "$WORK/dpc/part.rgb"
}
check "stream -extract 100x60+150+100" stream_extract

# conjure: an MSL script.  On Debian 12 an <image> element crashes the
# system's own conjure on the memory cache already: MSLPushImage() in
# msl.c (debian/patches/port-msl-svg-to-6.9.13-41.patch) clones through
# &image->exception with a NULL image.  Then there is nothing to compare
# and the case says so.  A script without an <image> can only read (into
# a pixel cache) and print; that one runs everywhere.
cat > "$WORK/mem/blur.msl" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<image>
  <read filename="../a.miff"/>
  <blur geometry="0x1"/>
  <write filename="conjured.miff"/>
</image>
XML
cp "$WORK/mem/blur.msl" "$WORK/dpc/blur.msl"
printf '<group>\n  <read filename="../a.miff"/>\n  <print output="%%wx%%h\\n"/>\n</group>\n' \
    > "$WORK/mem/read.msl"
cp "$WORK/mem/read.msl" "$WORK/dpc/read.msl"
tool mem conjure msl:blur.msl 2> /dev/null
if [ "$(cat "$WORK/mem/conjure.rc")" = 0 ]; then
    check "conjure: <image> <read> <blur> <write>" same_run conjure \
        conjured.miff msl:blur.msl
else
    echo "# conjure <image> script left out: the system's conjure fails on the memory cache (exit $(cat "$WORK/mem/conjure.rc"))"
fi
check "conjure: <read> <print>" same_run conjure - msl:read.msl

# convert -concatenate: libMagickWand's ConcatenateImages() checks each
# path with IsPathAuthorized(), which libMagickCore must export.  It
# deletes its inputs, so each run gets its own.
concatenate() {
    local how rc
    for how in mem dpc; do
        printf 'first\n' > "$WORK/c1.txt"
        printf 'second\n' > "$WORK/c2.txt"
        rc=0
        if [ $how = dpc ]; then
            LD_LIBRARY_PATH=$DROPIN_LIB timeout "$STEP_TIMEOUT" "$CONVERT" \
                -concatenate "$WORK/c1.txt" "$WORK/c2.txt" "$WORK/$how/cat.txt" ||
                rc=$?
        else
            timeout "$STEP_TIMEOUT" "$CONVERT" -concatenate "$WORK/c1.txt" \
                "$WORK/c2.txt" "$WORK/$how/cat.txt" || rc=$?
        fi
        echo "$how: exit $rc"
        [ $rc = 0 ]
        [ ! -e "$WORK/c1.txt" ] && [ ! -e "$WORK/c2.txt" ]
    done
    cmp "$WORK/mem/cat.txt" "$WORK/dpc/cat.txt"
}
check "convert -concatenate (IsPathAuthorized)" concatenate

check "server alive" server_alive
check "no cache left on the server" sh -c \
    "[ \"\$('$MAGICK_DPC' status --host 127.0.0.1:$PORT | sed -n 's/.*\"caches_open\":\([0-9]*\).*/\1/p')\" = 0 ]"
check_stops
finish
