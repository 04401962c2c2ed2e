#!/usr/bin/env bash
# tests/package/install.sh DIR: the Debian packages of DIR (magick-dpc_*.deb,
# magick-dpc-dropin_*.deb, as `./quickstart package` builds them in
# _work/deb), installed on this machine as root and used by the system's
# convert:
#   magick-dpc: the system user, the files, the manual page, the unit
#   (systemd-analyze verify), the server run as its user on loopback with
#   the stock client (pixels identical to the memory cache's) and the shm:
#   coder found in ImageMagick's own coder directory;
#   magick-dpc-dropin: the system library diverted, convert on the drop-in
#   (cache:tiers=distributed, the server's request count moves), then
#   purged: the system library back, byte for byte, and no diversion.
# Leaves the machine as it found it: both packages purged on exit, the
# user and group removed when they did not exist before.  Refuses to run
# when either package is already installed.
set -euo pipefail

DIR=$(cd "${1:?usage: install.sh DEB-DIR}" && pwd)
TIMEOUT=${TIMEOUT:-60}
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
LIB=/usr/lib/$MA/libMagickCore-6.Q16.so.6.0.0
CODERS=$(ls -d /usr/lib/"$MA"/ImageMagick-6*/modules-Q16/coders)
USER_NAME=magick-dpc
step() { printf 'package: %s\n' "$*"; }
fail() { printf 'package: FAILED: %s\n' "$*" >&2; exit 1; }
t() { timeout "$TIMEOUT" "$@"; }

[ "$(id -u)" -eq 0 ] || fail "run as root (it installs packages)"
shopt -s nullglob
main_deb=("$DIR"/magick-dpc_*.deb)
dropin_deb=("$DIR"/magick-dpc-dropin_*.deb)
shopt -u nullglob
[ ${#main_deb[@]} -eq 1 ] && [ ${#dropin_deb[@]} -eq 1 ] ||
    fail "want one magick-dpc_*.deb and one magick-dpc-dropin_*.deb in $DIR"
for p in magick-dpc magick-dpc-dropin; do
    ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'installed' ||
        fail "$p is already installed; this test would purge it"
done

user_existed=no group_existed=no
getent passwd "$USER_NAME" > /dev/null && user_existed=yes
getent group "$USER_NAME" > /dev/null && group_existed=yes
md5_before=$(md5sum < "$LIB" | cut -d" " -f1)
WORK=$(mktemp -d /tmp/dpc-package.XXXXXX)
chmod 755 "$WORK"
pid=

cleanup() {
    [ -z "$pid" ] || kill "$pid" 2> /dev/null || true
    dpkg --purge magick-dpc-dropin magick-dpc > "$WORK/purge-exit.log" 2>&1 || cat "$WORK/purge-exit.log" >&2
    [ "$user_existed" = yes ] || ! getent passwd "$USER_NAME" > /dev/null ||
        deluser --system --quiet "$USER_NAME" > /dev/null 2>&1 || true
    [ "$group_existed" = yes ] || ! getent group "$USER_NAME" > /dev/null ||
        delgroup --system --quiet "$USER_NAME" > /dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# install DEB: dpkg -i, with apt-get -f for dependencies it lacks.
install_deb() {
    if ! t dpkg -i "$1" > "$WORK/dpkg.log" 2>&1; then
        t env DEBIAN_FRONTEND=noninteractive apt-get install -f -y \
            --no-install-recommends >> "$WORK/dpkg.log" 2>&1 ||
            { cat "$WORK/dpkg.log" >&2; fail "installing $(basename "$1")"; }
    fi
}

# ------------------------------------------------------------- magick-dpc
step "installing $(basename "${main_deb[0]}")"
install_deb "${main_deb[0]}"
getent passwd "$USER_NAME" > /dev/null || fail "no user $USER_NAME after install"
getent group "$USER_NAME" > /dev/null || fail "no group $USER_NAME after install"
[ "$(getent passwd "$USER_NAME" | cut -d: -f6)" = /nonexistent ] ||
    fail "$USER_NAME's home is not /nonexistent"
dpkg -L magick-dpc > "$WORK/files"
for f in /usr/bin/magick-dpc "$CODERS/shm.so" "$CODERS/shm.la" \
    /lib/systemd/system/magick-dpc.service /lib/systemd/system/magick-dpc.socket \
    /usr/share/magick-dpc/policy.xml /usr/share/doc/magick-dpc/README.md; do
    grep -qxF "$f" "$WORK/files" || fail "magick-dpc does not ship $f"
    [ -e "$f" ] || fail "$f is missing after install"
done
step "user $USER_NAME, $(grep -c . "$WORK/files") paths (dpkg -L) in place"
man -w magick-dpc > /dev/null || fail "man -w magick-dpc finds no page"
man -w 5 magick-dpc-policy > /dev/null || fail "man -w 5 magick-dpc-policy finds no page"
grep -q '^ExecStart=/usr/bin/magick-dpc ' /lib/systemd/system/magick-dpc.service ||
    fail "the unit does not run /usr/bin/magick-dpc"
if command -v systemd-analyze > /dev/null &&
    t systemd-analyze verify /lib/systemd/system/magick-dpc.socket > "$WORK/verify.log" 2>&1; then
    t systemd-analyze verify /lib/systemd/system/magick-dpc.service > "$WORK/verify.log" 2>&1 ||
        { cat "$WORK/verify.log" >&2; fail "systemd-analyze verify magick-dpc.service"; }
    step "systemd-analyze verify: both units accepted"
else
    step "systemd-analyze unusable here: units not verified"
fi

# The server as its system user, on loopback, its secret in a policy.xml
# only that user reads; the socket as the unit makes it (group magick-dpc).
mkdir -p "$WORK/etc" "$WORK/run"
chown "$USER_NAME" "$WORK/run"
printf '<policymap>\n  <policy domain="cache" name="shared-secret" value="%s" stealth="true"/>\n</policymap>\n' \
    "$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" > "$WORK/etc/policy.xml"
chown "$USER_NAME" "$WORK/etc/policy.xml"
chmod 0400 "$WORK/etc/policy.xml"
export MAGICK_CONFIGURE_PATH=$WORK/etc
setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups -- \
    /usr/bin/magick-dpc serve --listen 127.0.0.1:0 \
    --socket "$WORK/run/magick-dpc.sock" --socket-mode 0660 \
    --allow-gids "$USER_NAME" 2> "$WORK/server.log" &
pid=$!
port=
for _ in $(seq 200); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/server.log")
    [ -n "$port" ] && [ -S "$WORK/run/magick-dpc.sock" ] && break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.05
done
[ -n "$port" ] || { cat "$WORK/server.log" >&2; fail "the server did not start"; }
[ "$(stat -c %U "/proc/$pid")" = "$USER_NAME" ] || fail "the server does not run as $USER_NAME"
step "/usr/bin/magick-dpc serving on 127.0.0.1:$port as $USER_NAME"

# same A B WHAT: compare -metric AE prints 0.
same() {
    local ae
    ae=$(t /usr/bin/compare -metric AE "$1" "$2" null: 2>&1) || true
    [ "$ae" = 0 ] || fail "$3: pixels differing: $ae"
    step "$3: identical (AE 0)"
}
requests() {
    t /usr/bin/magick-dpc status --host 127.0.0.1:"$port" |
        sed -n 's/.*"requests_served": *\([0-9]*\).*/\1/p'
}

t /usr/bin/convert -seed 7 -size 320x240 plasma:fractal "$WORK/in.png"
t /usr/bin/convert "$WORK/in.png" -blur 0x2 "$WORK/memory.png"
t /usr/bin/convert -define registry:cache:hosts=127.0.0.1:"$port" \
    -limit memory 0 -limit map 0 -limit disk 0 \
    "$WORK/in.png" -blur 0x2 "$WORK/stock.png"
same "$WORK/memory.png" "$WORK/stock.png" "stock convert -blur on the packaged server"

# shm: from ImageMagick's own coder directory, no MAGICK_CODER_MODULE_PATH;
# the client in the group magick-dpc, as the unit's --allow-gids wants.
shm=(t setpriv --groups="$USER_NAME" -- env -u MAGICK_CODER_MODULE_PATH
    /usr/bin/convert -define cache:dpc-socket="$WORK/run/magick-dpc.sock")
"${shm[@]}" "$WORK/in.png" -resize 50% shm:package-test
"${shm[@]}" shm:package-test -sharpen 0x1 "$WORK/handoff.png"
t /usr/bin/convert "$WORK/in.png" -resize 50% -sharpen 0x1 "$WORK/onestep.png"
same "$WORK/onestep.png" "$WORK/handoff.png" "convert ... shm:NAME; convert shm:NAME ... (stock library)"

# Image::Magick::DPC from Perl's vendor directories (no PERL5LIB): the
# published image attached, listed, and the server's status over the socket.
t /usr/bin/convert "$WORK/in.png" -resize 50% "$WORK/resized.png"
t setpriv --groups="$USER_NAME" -- env -u MAGICK_CODER_MODULE_PATH perl -e '
    use strict; use warnings;
    use Image::Magick;
    use Image::Magick::DPC qw(:all);
    my ($sock, $out) = @ARGV;
    configure(socket => $sock);
    my $image = attach("package-test");
    my $err = $image->Write($out);
    die "$err\n" if $err;
    grep { $_->{name} eq "package-test" } names()
        or die "names() does not list package-test\n";
    defined status(socket => $sock)->{used} or die "status() has no used\n";
' "$WORK/run/magick-dpc.sock" "$WORK/perl.png" > "$WORK/perl.log" 2>&1 ||
    { cat "$WORK/perl.log" >&2; fail "Image::Magick::DPC from the package"; }
same "$WORK/resized.png" "$WORK/perl.png" "Image::Magick::DPC attach of shm:NAME (packaged module)"

# ------------------------------------------------------- magick-dpc-dropin
step "installing $(basename "${dropin_deb[0]}")"
install_deb "${dropin_deb[0]}"
dpkg-divert --list | grep -F "$LIB" | grep -q magick-dpc-dropin ||
    fail "no diversion of $LIB by magick-dpc-dropin"
stock=$(dpkg-divert --truename "$LIB")
[ "$stock" != "$LIB" ] && [ "$(md5sum < "$stock" | cut -d" " -f1)" = "$md5_before" ] ||
    fail "the diverted system library is not the original"
[ "$(md5sum < "$LIB" | cut -d" " -f1)" != "$md5_before" ] || fail "$LIB is still the system's"
step "diverted: $(dpkg-divert --list | grep -F "$LIB")"
before=$(requests)
t /usr/bin/convert -define cache:hosts=127.0.0.1:"$port" \
    -define cache:tiers=distributed "$WORK/in.png" -blur 0x2 "$WORK/dropin.png"
after=$(requests)
same "$WORK/memory.png" "$WORK/dropin.png" "convert -blur on the drop-in, cache:tiers=distributed"
[ -n "$before" ] && [ -n "$after" ] && [ "$after" -gt "$before" ] ||
    fail "the server's requests_served did not move ($before -> $after): convert did not run on the drop-in"
step "the server served $((after - before)) requests for it"
"${shm[@]}" shm:package-test -sharpen 0x1 "$WORK/handoff2.png"
same "$WORK/onestep.png" "$WORK/handoff2.png" "convert shm:NAME ... (drop-in library)"

kill -TERM "$pid" && t tail --pid="$pid" -f /dev/null
pid=

step "purging magick-dpc-dropin"
t dpkg --purge magick-dpc-dropin > "$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log" >&2; fail "purge magick-dpc-dropin"; }
[ "$(md5sum < "$LIB" | cut -d" " -f1)" = "$md5_before" ] || fail "$LIB differs from the system's after the purge"
! dpkg-divert --list | grep -qF "$LIB" || fail "the diversion of $LIB is still there"
[ ! -e "/usr/lib/$MA/magick-dpc-dropin" ] || fail "/usr/lib/$MA/magick-dpc-dropin left behind"
step "system library back (md5 $md5_before), no diversion"
t dpkg --purge magick-dpc > "$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log" >&2; fail "purge magick-dpc"; }
[ ! -e /usr/bin/magick-dpc ] && [ ! -e "$CODERS/shm.so" ] || fail "files left after purging magick-dpc"
! perl -MImage::Magick::DPC -e 1 2> /dev/null || fail "Image::Magick::DPC left after purging magick-dpc"
step "PASS"
