#!/usr/bin/env bash
# Python (Debian's python3-wand) and PHP (php-imagick) on the drop-in
# libMagickCore: a script that reads an image, blurs, resizes and writes it,
# its pixel caches on the distributed tier and on the shared-memory tier,
# the tier chosen by policy.xml alone.  Each output must equal the same
# script's on the system library with the memory cache, the server's
# counters must show the caches were there, and each script reports the
# libMagickCore and libMagickWand it mapped (/proc/self/maps): a binding
# that loaded any other (python3-wand falls back to Q16-HDRI when the Q16
# libMagickWand fails to load) fails the test.
. "${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib/common.sh"
need_dropin
PYTHON=/usr/bin/python3
# python3-wand tries library names in its own order and takes the first
# that loads: with Q16 and Q16-HDRI installed that is Q16-HDRI; this makes
# it the Q16 libMagickWand, the one the drop-in serves.
export WAND_MAGICK_LIBRARY_SUFFIX=-6.Q16
LANGS=
"$PYTHON" -c 'import wand.image' 2> /dev/null && LANGS="$LANGS python"
php -r 'exit(extension_loaded("imagick") ? 0 : 1);' 2> /dev/null && LANGS="$LANGS php"
[ -n "$LANGS" ] || {
    echo "SKIP: neither python3-wand nor php-imagick is installed"; exit 77; }
for lang in python php; do
    case " $LANGS " in *" $lang "*) ;; *) echo "# $lang: binding not installed, not tested" ;; esac
done

MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2> /dev/null || echo x86_64-linux-gnu)
SYSTEM_CORE=$(readlink -f "/usr/lib/$MA/libMagickCore-6.Q16.so.6")
SYSTEM_WAND=$(readlink -f "/usr/lib/$MA/libMagickWand-6.Q16.so.6")
DROPIN_CORE=$(readlink -f "$DROPIN_LIB/libMagickCore-6.Q16.so.6")

make_policy
export MAGICK_CONFIGURE_PATH=$WORK/etc
start_server
mem_convert -seed 11 -size 160x120 plasma:fractal "$WORK/in.miff"

# The scripts: IN OUT MAPS; MAPS gets the libMagick* files they mapped.
cat > "$WORK/blur.py" <<'PY'
import sys
from wand.image import Image
src, dst, maps = sys.argv[1:4]
with Image(filename=src) as image:
    image.blur(radius=0, sigma=2)
    image.resize(96, 72)
    image.save(filename=dst)
with open('/proc/self/maps') as f:
    libs = sorted({l.split()[-1] for l in f if '/libMagick' in l})
with open(maps, 'w') as out:
    out.write(''.join(lib + '\n' for lib in libs))
PY
cat > "$WORK/blur.php" <<'PHP'
<?php
[, $src, $dst, $maps] = $argv;
$image = new Imagick($src);
$image->blurImage(0, 2);
$image->resizeImage(96, 72, Imagick::FILTER_UNDEFINED, 1);
$image->writeImage($dst);
$image->clear();
$libs = [];
foreach (file('/proc/self/maps') as $line)
    if (strpos($line, '/libMagick') !== false)
        $libs[preg_replace('/^.*\s/', '', trim($line))] = true;
ksort($libs);
file_put_contents($maps, implode('', array_map(fn($l) => "$l\n", array_keys($libs))));
PHP

# binding LANG OUT [LD_LIBRARY_PATH]: LANG's script on in.miff.
binding() {
    local interp=$PYTHON script=$WORK/blur.py
    [ "$1" = php ] && interp=php script=$WORK/blur.php
    LD_LIBRARY_PATH=${3:-} timeout "$STEP_TIMEOUT" "$interp" "$script" \
        "$WORK/in.miff" "$2" "$2.maps"
}

# loaded MAPS CORE: MAPS lists exactly CORE and the system's Q16 libMagickWand.
loaded() {
    echo "  mapped: $(tr '\n' ' ' < "$1")"
    [ "$(grep '/libMagickCore' "$1")" = "$2" ]
    [ "$(grep '/libMagickWand' "$1")" = "$SYSTEM_WAND" ]
}


reference() {
    binding "$1" "$WORK/$1.mem.miff"
    loaded "$WORK/$1.mem.miff.maps" "$SYSTEM_CORE"
}

# distributed LANG: the server answered the script's requests (beyond the
# one status request requests_served counts between the two readings) and
# holds none of its caches after.
distributed() {
    local before after
    before=$(json_field requests_served)
    MAGICK_CONFIGURE_PATH=$(tier_policy distributed) \
        binding "$1" "$WORK/$1.dist.miff" "$DROPIN_LIB"
    after=$(json_field requests_served)
    echo "  requests served to the script: $((after - before - 1))"
    loaded "$WORK/$1.dist.miff.maps" "$DROPIN_CORE"
    same_pixels "$WORK/$1.mem.miff" "$WORK/$1.dist.miff"
    [ $((after - before - 1)) -gt 0 ] && [ "$(json_field caches_open)" = 0 ]
}

# shared LANG: on a fresh server (restarted by the caller), so that its
# peak is this script's.
shared() {
    MAGICK_CONFIGURE_PATH=$(tier_policy shm) \
        binding "$1" "$WORK/$1.shm.miff" "$DROPIN_LIB"
    echo "  shm: $(shm_json)"
    loaded "$WORK/$1.shm.miff.maps" "$DROPIN_CORE"
    same_pixels "$WORK/$1.mem.miff" "$WORK/$1.shm.miff"
    [ "$(shm_field peak)" -gt 0 ] && [ "$(shm_field used)" = 0 ]
}

for lang in $LANGS; do
    check "$lang on the system library, memory cache: system Q16 libraries" \
        reference "$lang"
    check "$lang on the drop-in, distributed tier from policy.xml: identical, served by magick-dpc" \
        distributed "$lang"
    stop_server
    start_server
    check "$lang on the drop-in, shm tier from policy.xml: identical, segments served and given back" \
        shared "$lang"
done
check_stops
finish
