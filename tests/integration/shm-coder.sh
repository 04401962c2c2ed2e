#!/usr/bin/env bash
# The shm: coder with the system's /usr/bin/convert: every image kind of the
# conversion matrix published and attached again, pixels and attributes
# identical; attached in place (no copy) on the drop-in library, copied on
# the stock one; names listed, removed, replaced, expired; readers cannot
# change what they attached.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
[ -e "$DROPIN_LIB/magick-dpc/coders/shm.la" ] || {
    echo "SKIP: no shm coder in $DROPIN_LIB/magick-dpc/coders"; exit 77; }

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server -v

make_inputs
# attributes beyond the pixels: resolution, page, comment, label, a profile
printf '%s' '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>shm</dc:title></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>' \
    > "$WORK/title.xmp"
mem_convert "$WORK/rgb.miff" -density 300 -units PixelsPerInch \
    -page 200x100+10+20 -set comment 'hello shm' -set label 'stage one' \
    -profile "$WORK/title.xmp" "$WORK/attrs.miff"

FORMAT='%m %w %h %z %[colorspace] %A %r %x %y %U %g %c %l %C %T %[type]\n'
describe() {
    "$CONVERT" "$1" -format "$FORMAT" info: | sed 's/^[A-Z]* //'
}

# round_trip KIND: publish, attach into a MIFF; pixels, frames and
# attributes as the original's.
round_trip() {
    local kind=$1 in
    in=$(ls "$WORK/$kind".*)
    shm_convert "$in" "shm:$kind"
    shm_convert "shm:$kind" "$WORK/$kind.back.miff"
    mem_convert "$in" "$WORK/$kind.ref.miff"
    [ "$(describe "$WORK/$kind.ref.miff")" = "$(describe "$WORK/$kind.back.miff")" ] || {
        diff <(describe "$WORK/$kind.ref.miff") <(describe "$WORK/$kind.back.miff") >&2
        return 1
    }
    local n i
    n=$("$CONVERT" "$in" -format '%n\n' info: | head -n 1)
    for i in $(seq 0 $((n - 1))); do
        same_pixels "$in[$i]" "$WORK/$kind.back.miff[$i]"
    done
    if [ "$kind" = attrs ]; then
        [ "$("$CONVERT" "$WORK/$kind.back.miff" -format '%[profiles]' info:)" = xmp ]
        "$CONVERT" "$in" xmp:"$WORK/p1.xmp"
        "$CONVERT" "$WORK/$kind.back.miff" xmp:"$WORK/p2.xmp"
        cmp "$WORK/p1.xmp" "$WORK/p2.xmp"
    fi
}
for kind in rgb rgba deep gray palette cmyk anim attrs; do
    check "$kind: published and attached, identical" round_trip "$kind"
done

attached_in_place() {
    shm_convert -debug coder shm:rgb "$WORK/x.miff" 2> "$WORK/debug.log"
    grep -q 'shm: rgb: 49152 bytes attached in place, no copy' "$WORK/debug.log"
    SHM_LIB=stock shm_convert -debug coder shm:rgb "$WORK/y.miff" \
        2> "$WORK/debug.log"
    grep -q 'shm: rgb: 49152 bytes copied' "$WORK/debug.log"
    same_pixels "$WORK/x.miff" "$WORK/y.miff"
}
check "drop-in: attached in place; stock library: copied, same pixels" \
    attached_in_place

stock_round_trip() {
    SHM_LIB=stock shm_convert "$WORK/cmyk.miff" shm:stock-cmyk
    SHM_LIB=stock shm_convert shm:stock-cmyk "$WORK/stock-cmyk.miff"
    same_pixels "$WORK/cmyk.miff" "$WORK/stock-cmyk.miff"
}
check "publish and attach on the stock library too" stock_round_trip

pipeline() {
    shm_convert "$WORK/rgb.miff" -resize 200% shm:stage1
    shm_convert shm:stage1 -sharpen 0x1 "$WORK/stage2.miff"
    mem_convert "$WORK/rgb.miff" -resize 200% -sharpen 0x1 "$WORK/stage2.mem.miff"
    same_pixels "$WORK/stage2.mem.miff" "$WORK/stage2.miff"
}
check "a two-step pipeline through shm:stage1 equals one convert" pipeline

readers_cannot_write() {
    shm_convert shm:rgb -negate "$WORK/neg.miff"
    shm_convert shm:rgb "$WORK/again.miff"
    same_pixels "$WORK/rgb.miff" "$WORK/again.miff"
    ! same_pixels "$WORK/rgb.miff" "$WORK/neg.miff" 2> /dev/null
}
check "a reader changing its attached image leaves the published one alone" \
    readers_cannot_write

ls_rm_replace() {
    local names
    names=$("$MAGICK_DPC" shm ls --socket "$SHM_SOCK")
    echo "$names" >&2
    # no shm:ttl: the default dpc-shm-name-lifetime, 24 h
    echo "$names" | grep -Eq '"name":"rgb","bytes":[0-9]*,"ttl_seconds":(8639[0-9]|86400)}'
    local before
    before=$(shm_field names)
    shm_convert "$WORK/gray.miff" shm:rgb           # replaces rgb
    [ "$(shm_field names)" = "$before" ]
    shm_convert shm:rgb "$WORK/replaced.miff"
    same_pixels "$WORK/gray.miff" "$WORK/replaced.miff"
    "$MAGICK_DPC" shm rm rgb --socket "$SHM_SOCK"
    [ "$(shm_field names)" = "$((before - 1))" ]
    local rc=0
    shm_convert shm:rgb null: 2> "$WORK/gone.err" || rc=$?
    cat "$WORK/gone.err" >&2
    [ "$rc" != 0 ] && grep -q "no image named 'rgb' published by uid" "$WORK/gone.err"
}
check "shm ls lists names; a second publish replaces; shm rm removes" \
    ls_rm_replace

owner_names() {
    shm_convert "shm:$(id -u)/gray" "$WORK/by-uid.miff"
    shm_convert "shm:$(id -un)/gray" "$WORK/by-name.miff"
    same_pixels "$WORK/gray.miff" "$WORK/by-uid.miff"
    same_pixels "$WORK/gray.miff" "$WORK/by-name.miff"
    ! shm_convert "$WORK/gray.miff" "shm:$(id -u)/other" 2> /dev/null
}
check "OWNER/NAME reads by uid or user name; publishing is under one's own" \
    owner_names

expires() {
    shm_convert -define shm:ttl=1s "$WORK/rgb.miff" shm:brief
    "$MAGICK_DPC" shm ls --socket "$SHM_SOCK" | grep -q '"name":"brief"'
    sleep 2.5
    ! "$MAGICK_DPC" shm ls --socket "$SHM_SOCK" | grep -q '"name":"brief"'
    grep -q "name expired\|names expired" "$WORK/server.log"
}
check "-define shm:ttl=1s: the name is gone after its time" expires

bad_names() {
    local rc=0
    shm_convert "$WORK/rgb.miff" 'shm:.hidden' 2> "$WORK/bad.err" || rc=$?
    [ "$rc" != 0 ] && grep -q InvalidSharedMemoryName "$WORK/bad.err"
    rc=0
    shm_convert "$WORK/rgb.miff" 'shm:../etc' 2> "$WORK/bad.err" || rc=$?
    [ "$rc" != 0 ] && grep -q "NoSuchUser \`..'" "$WORK/bad.err"
    rc=0
    shm_convert "$WORK/rgb.miff" -define shm:ttl=soon shm:x \
        2> "$WORK/bad.err" || rc=$?
    [ "$rc" != 0 ] && grep -q "shm:ttl" "$WORK/bad.err"
}
check "bad names and times to live are refused with the reason" bad_names

no_server() {
    local rc=0
    SHM_SOCK=$WORK/nobody.sock shm_convert shm:rgb null: 2> "$WORK/ns.err" ||
        rc=$?
    cat "$WORK/ns.err" >&2
    [ "$rc" != 0 ] && grep -q "cannot connect to magick-dpc at $WORK/nobody.sock" \
        "$WORK/ns.err"
}
check "no server: a clear error naming the socket" no_server

names_freed_on_rm() {
    local n
    for n in $("$MAGICK_DPC" shm ls --socket "$SHM_SOCK" |
               grep -o '"name":"[^"]*"' | cut -d'"' -f4); do
        "$MAGICK_DPC" shm rm "$n" --socket "$SHM_SOCK"
    done
    [ "$(shm_field used)" = 0 ] && [ "$(shm_field names)" = 0 ]
}
check "removing every name gives back every byte" names_freed_on_rm
check_stops
finish
