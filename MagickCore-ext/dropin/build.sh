#!/usr/bin/env bash
# MagickCore-ext/dropin/build.sh: a drop-in libMagickCore-6.Q16.so.6.
#
#   build.sh --prefix DIR --build-dir DIR [--magick-source DIR]
#            [--files DIR] [--extra-libs "ARGS"] [--cppflags "ARGS"]
#            [--final-prefix DIR] [--allow-older-source] [--also TARGET]...
#
# Builds libMagickCore from the distribution's own ImageMagick source, with
# Debian's own configure flags for the Q16 package, with the files of
# --files DIR (default: MagickCore-ext/dropin/files/, may be absent: then the
# library is stock) dropped into the tree's magick/, and installs it as
# DIR/lib/libMagickCore-6.Q16.so.6 (+ .so), so that
#   LD_LIBRARY_PATH=DIR/lib /usr/bin/convert ...
# runs the system's convert, libMagickWand and coder modules on it.
#
# Steps, each skipped when its result is already there:
#  1. packages: the -dev packages of every delegate libMagickCore's configure
#     detects (the same set as Debian's build, so `convert -version` lists
#     the same delegates), autotools, dpkg-dev; installed when missing.
#  2. source: with --magick-source, that tree as is.  Else `apt-get source
#     imagemagick=<installed version>` into BUILD/source/ (kept).  When the
#     mirror no longer has that exact version (a security pocket drops old
#     source), the newest available version of the SAME upstream version is
#     used, with a warning.  A deb-src entry is added when there is none.
#     The source's Debian version (that one, or --magick-source's
#     debian/changelog) is compared with the installed package's: when it
#     is older, the later revisions' security fixes are missing, and the
#     library is not installed where the dynamic linker looks by default
#     (--final-prefix DIR, the prefix the library will finally live under
#     when --prefix has a DESTDIR in front, default --prefix: DIR/lib is
#     /usr/lib, /lib, their multiarch and lib64 directories, or one listed
#     in /etc/ld.so.conf or the files it includes, e.g. /usr/local/lib):
#     an error before anything is built, unless --allow-older-source.
#     Elsewhere (a prefix of your own, used with LD_LIBRARY_PATH) it is a
#     warning.
#     The version built is written to BUILD/source.version ("unknown"
#     without a debian/changelog), e.g. for a package's description.
#  3. drop-in: each file of --files is copied into magick/ only when its
#     content differs (a file NAME.patch gives the original NAME with the
#     patch applied) (so make sees a change only when there is one); the
#     original is kept in TREE/.magick-dpc-dropin/ and put back when the file
#     leaves --files.  Only replacements of files the library is built from
#     are compiled: a new .c file must be #included by one of them.
#  4. autoreconf -fi when configure.ac is newer than configure, as Debian's
#     dh_autoreconf does (its patches change configure.ac, e.g. the
#     documentation path compiled into the library).
#  5. configure, out of tree in BUILD/obj, with debian/rules' arguments for
#     the q16 flavour (--with-quantum-depth=16 --enable-hdri=no, prefix /usr,
#     libdir /usr/lib/<multiarch>, sysconfdir /etc: the library looks for
#     coder modules and configure files exactly where the system's does) and
#     dpkg-buildflags' CFLAGS/LDFLAGS, plus --disable-static, and minus
#     --disable-dependency-tracking (so a changed header rebuilds what uses
#     it).  Only when the tree or the flags changed (BUILD/configure.stamp);
#     a reconfigure starts from an empty BUILD/obj.
#  6. make magick/libMagickCore-6.Q16.la only (incremental), and the
#     targets of --also (e.g. tests/validate, ImageMagick's own test
#     program, linked against this library) with the same variables.
#     --extra-libs: passed as make command-line variables,
#       magick_libMagickCore_6_Q16_la_LIBADD='$(MAGICK_DEP_LIBS) ARGS'
#     (Makefile.am's own LIBADD plus ARGS: libtool puts them after the
#     objects, before $(LIBS)), and
#       EXTRA_magick_libMagickCore_6_Q16_la_DEPENDENCIES='FILES STAMP'
#     (automake's hook for extra prerequisites: the ARGS that are files, e.g.
#     a static PIC archive, and a stamp of ARGS themselves), so the library
#     is relinked when the archive or the arguments change.  ARGS that are
#     existing files, and -L/-I with an existing relative directory, are
#     made absolute (make runs in BUILD/obj).
#     --cppflags: preprocessor flags for the library's sources only (e.g.
#     -I MagickCore-ext/client for headers the dropped-in files include), passed
#     as magick_libMagickCore_6_Q16_la_CPPFLAGS='$(AM_CPPFLAGS)
#     $(LIBRARY_EXTRA_CPPFLAGS) ARGS'; when they change, the library's
#     objects are deleted, so all are recompiled (make does not track flags).
#     Their -I directories are mirrored into BUILD/include/N/ (headers
#     copied when they differ) and the flags name those, so a copy of this
#     tree (a package build) sharing BUILD recompiles nothing whose headers
#     are the same.
#  7. checks, on a copy in BUILD/stage/ whose RPATH is removed with
#     `chrpath -d` as debian/rules does (configure's X11 flags add
#     -R/usr/lib/X11), each an error: SONAME libMagickCore-6.Q16.so.6;
#     every symbol the system's library exports (nm -D --defined-only)
#     exported too, of the same type and version (lists in
#     BUILD/symbols.{missing,mismatched,extra}, and the system binaries
#     importing a missing one in BUILD/symbols.users: with RTLD_NOW, as
#     Python's ctypes loads libMagickWand, one missing symbol makes the
#     whole library fail to load); every struct the installed headers
#     (/usr/include/ImageMagick-6, the installed package's) define of the
#     same size in the tree's headers (BUILD/layout/: the installed coders
#     and libMagickWand read and write the fields they know of in structs
#     this library allocates); `convert -version` identical to the
#     system's (same delegates and features).  There is no switch to
#     install a library failing them: a missing symbol or field is
#     implemented in --files (see files/*.patch).
#  8. install: the .so.6.x.y copied into PREFIX/lib (only when it differs,
#     atomically) with the .so.6 and .so symlinks; no `make install`.
#
# Quiet on success (one line, plus warnings); logs in BUILD/logs/; on
# failure the log's tail and the cause.  Environment: JOBS (default nproc).
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
PREFIX='' BUILD='' MAGICK_SOURCE='' EXTRA_LIBS='' EXTRA_CPPFLAGS=''
FINAL_PREFIX='' ALLOW_OLDER_SOURCE=no
ALSO=
FILES=$TOP/MagickCore-ext/dropin/files
SRC_PACKAGE=imagemagick
BIN_PACKAGE=libmagickcore-6.q16-6
SYSTEM_LIB_NAME=libMagickCore-6.Q16.so.6

say() { printf 'dropin: %s\n' "$*"; }
warn() { printf 'dropin: WARNING: %s\n' "$*" >&2; }
die() { printf 'dropin: error: %s\n' "$*" | tr -s ' ' >&2; exit 1; }
usage() {
    sed -n '3,5p' "$0" | sed 's/^# *//' >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --prefix) PREFIX=${2:?}; shift 2 ;;
    --build-dir) BUILD=${2:?}; shift 2 ;;
    --magick-source) MAGICK_SOURCE=${2:?}; shift 2 ;;
    --files) FILES=${2:?}; shift 2 ;;
    --extra-libs) EXTRA_LIBS=${2?}; shift 2 ;;
    --cppflags) EXTRA_CPPFLAGS=${2?}; shift 2 ;;
    --cppflags=*) EXTRA_CPPFLAGS=${1#*=}; shift ;;
    --final-prefix) FINAL_PREFIX=${2:?}; shift 2 ;;
    --final-prefix=*) FINAL_PREFIX=${1#*=}; shift ;;
    --allow-older-source) ALLOW_OLDER_SOURCE=yes; shift ;;
    --also) ALSO="$ALSO ${2:?}"; shift 2 ;;
    --prefix=*) PREFIX=${1#*=}; shift ;;
    --build-dir=*) BUILD=${1#*=}; shift ;;
    --magick-source=*) MAGICK_SOURCE=${1#*=}; shift ;;
    --files=*) FILES=${1#*=}; shift ;;
    --extra-libs=*) EXTRA_LIBS=${1#*=}; shift ;;
    -h | --help) usage ;;
    *) echo "dropin: unknown argument: $1" >&2; usage ;;
    esac
done
[ -n "$PREFIX" ] && [ -n "$BUILD" ] || usage

T0=$(date +%s.%N)
mkdir -p "$PREFIX" "$BUILD"
PREFIX=$(cd "$PREFIX" && pwd)
BUILD=$(cd "$BUILD" && pwd)
FINAL_PREFIX=$(realpath -m "${FINAL_PREFIX:-$PREFIX}")
case $FILES in /*) ;; *) FILES=$PWD/$FILES ;; esac
LOGDIR=$BUILD/logs
mkdir -p "$LOGDIR"
OBJ=$BUILD/obj
JOBS=${JOBS:-$(nproc)}
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# One build at a time in a build directory.
exec 9> "$BUILD/.lock"
flock 9

# run LOG CMD...: output to BUILD/logs/LOG; on failure its tail and exit.
run() {
    local log=$LOGDIR/$1
    shift
    if ! "$@" > "$log" 2>&1; then
        printf 'dropin: failed: %s\n' "$*" | cut -c1-300 >&2
        log_tail "$log"
        die "see $log"
    fi
}

# log_tail LOG: the lines that say what went wrong (compiler errors, make's
# errors), else the last ones; long command lines cut.
log_tail() {
    local re='error:|Error [0-9]|\*\*\*|No such file|undefined reference|cannot find'
    if grep -qE "$re" "$1"; then
        grep -E -B2 -A3 "$re" "$1" | tail -n 30
    else
        tail -n 30 "$1"
    fi | cut -c1-300 | sed 's/^/  | /' >&2
}

# write_if_changed FILE: stdin into FILE, only when the content differs
# (so FILE's mtime tells make when it really changed).
write_if_changed() {
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    cat > "$tmp"
    if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; fi
}

# ---------------------------------------------------------------- packages
# What libMagickCore's configure must find to enable the same delegates as
# Debian's build (debian/control Build-Depends, less packaging tools, docs,
# Perl and SVG tools that do not touch the library).
PACKAGES="gcc g++ make dpkg-dev autoconf automake libtool pkg-config
  libmagickcore-6.q16-dev
  libltdl-dev libfftw3-dev liblcms2-dev liblqr-1-0-dev libfreetype-dev
  libfontconfig-dev zlib1g-dev liblzma-dev libbz2-dev libzstd-dev
  libx11-dev libxext-dev libxt-dev libdjvulibre-dev libexif-dev
  libjpeg-dev libopenjp2-7-dev libopenexr-dev libpng-dev libtiff-dev
  libwmf-dev libheif-dev libwebp-dev libpango1.0-dev libxml2-dev
  libjbig-dev librsvg2-dev chrpath"

install_packages() {
    local missing
    missing=$(dpkg-query -W -f='${Package} ${Status}\n' $PACKAGES 2>&1 |
        awk '$NF == "installed" { ok[$1] = 1 }
             END { n = split(pkgs, p, " ");
                   for (i = 1; i <= n; i++) if (!(p[i] in ok)) printf "%s ", p[i] }' \
            pkgs="$(echo $PACKAGES)" || true)
    [ -z "$missing" ] && return 0
    say "installing ${missing% }"
    run apt-update.log $SUDO apt-get update
    run apt-install.log $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends $missing
}

# ------------------------------------------------------------------ source
SOURCE_VERSION=''      # Debian version of the source built ('': unknown)
INSTALLED_VERSION=''   # Debian version of the installed library

# deb-src entries known to apt?
have_deb_src() {
    grep -qsE '^[[:space:]]*(deb-src[[:space:]]|Types:.*deb-src)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources
}

# add_deb_src: a deb-src twin of the system's deb entries.
add_deb_src() {
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        say "adding /etc/apt/sources.list.d/magick-dpc-src.sources (deb-src)"
        sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources |
            $SUDO tee /etc/apt/sources.list.d/magick-dpc-src.sources > /dev/null
    elif grep -qsE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list; then
        say "adding /etc/apt/sources.list.d/magick-dpc-src.list (deb-src)"
        sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list |
            $SUDO tee /etc/apt/sources.list.d/magick-dpc-src.list > /dev/null
    else
        die "no deb-src entry and no Debian deb entry to derive one from; " \
            "add a deb-src line for your mirror, or pass --magick-source DIR"
    fi
}

# The versions apt can fetch; none (not an error) before a deb-src entry.
source_versions() {
    { apt-cache showsrc "$SRC_PACKAGE" 2>/dev/null || true; } |
        sed -n 's/^Version: //p' | sort -u
}

# fetch_source: sets SRC to the extracted tree matching the installed
# library, downloading it when the cache does not hold it.
fetch_source() {
    local cache=$BUILD/source installed upstream v versions candidates state
    local tree used
    installed=$(dpkg-query -W -f='${source:Version}' "$BIN_PACKAGE" 2>/dev/null) ||
        die "$BIN_PACKAGE is not installed (apt-get install $BIN_PACKAGE), " \
            "or pass --magick-source DIR"
    INSTALLED_VERSION=$installed
    upstream=${installed%-*}           # epoch:upstream, no Debian revision
    state=$cache/state
    mkdir -p "$cache"
    if [ -f "$state" ]; then
        # shellcheck disable=SC1090
        . "$state"                     # CACHED_FOR, USED, TREE
        if [ "${CACHED_FOR:-}" = "$installed" ] && [ -f "${TREE:-}/configure.ac" ]; then
            SRC=$TREE
            SOURCE_VERSION=$USED
            return 0
        fi
    fi

    versions=$(source_versions)
    if [ -z "$versions" ]; then
        have_deb_src || add_deb_src
        run apt-update.log $SUDO apt-get update
        versions=$(source_versions)
        [ -n "$versions" ] || die "apt knows no source package '$SRC_PACKAGE' " \
            "(apt-cache showsrc $SRC_PACKAGE is empty even after apt-get update): " \
            "add a deb-src entry for a mirror that has it, or pass --magick-source DIR"
    fi
    # The installed version first, then the others of the same upstream
    # version, newest first.
    candidates=
    printf '%s\n' "$versions" | grep -qxF "$installed" && candidates=$installed
    for v in $(printf '%s\n' "$versions" |
        while read -r v; do [ "${v%-*}" = "$upstream" ] && [ "$v" != "$installed" ] && echo "$v"; done |
        sort -r -V); do
        candidates="$candidates $v"
    done
    [ -n "$candidates" ] || die "no source of $SRC_PACKAGE upstream ${upstream#*:} " \
        "on the mirror (installed: $installed; available: $(echo $versions)). " \
        "Fix: add a deb-src entry for a mirror or snapshot that has it, " \
        "or pass --magick-source DIR"

    rm -rf "$cache/dl" && mkdir -p "$cache/dl"
    chmod 755 "$cache/dl"
    used=
    : > "$LOGDIR/apt-source.log"
    for v in $candidates; do
        if (cd "$cache/dl" && apt-get source "$SRC_PACKAGE=$v") \
            >> "$LOGDIR/apt-source.log" 2>&1; then
            used=$v
            break
        fi
        rm -rf "${cache:?}/dl/"*/       # a half-extracted tree
    done
    [ -n "$used" ] || {
        tail -n 20 "$LOGDIR/apt-source.log" | sed 's/^/  | /' >&2
        die "apt-get source failed for every version of upstream ${upstream#*:} " \
            "($(echo $candidates)); see $LOGDIR/apt-source.log. " \
            "Fix: a deb-src entry for a mirror or snapshot that has $installed, " \
            "or pass --magick-source DIR"
    }
    tree=$(find "$cache/dl" -mindepth 1 -maxdepth 1 -type d -print -quit)
    [ -f "$tree/configure.ac" ] || die "apt-get source gave no source tree in $cache/dl"
    printf 'CACHED_FOR=%q\nUSED=%q\nTREE=%q\n' "$installed" "$used" "$tree" > "$state"
    SRC=$tree
    SOURCE_VERSION=$used
}

# tree_version: SOURCE_VERSION and INSTALLED_VERSION for --magick-source
# (the tree's debian/changelog, when it has one).
tree_version() {
    INSTALLED_VERSION=$(dpkg-query -W -f='${source:Version}' "$BIN_PACKAGE" 2>/dev/null || true)
    [ ! -f "$SRC/debian/changelog" ] ||
        SOURCE_VERSION=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version 2>/dev/null || true)
}

# ld_conf_dirs FILE [DEPTH]: the directories an ld.so.conf lists, following
# its include lines (relative patterns from the including file's directory).
ld_conf_dirs() {
    local file=$1 depth=${2:-0} line word inc
    [ -r "$file" ] && [ "$depth" -lt 8 ] || return 0
    while IFS= read -r line || [ -n "$line" ]; do
        line=${line%%#*}
        set -- $line
        [ $# -gt 0 ] || continue
        case $1 in
        include)
            shift
            for word in "$@"; do
                case $word in /*) ;; *) word=$(dirname "$file")/$word ;; esac
                for inc in $word; do
                    [ -f "$inc" ] && ld_conf_dirs "$inc" $((depth + 1))
                done
            done
            ;;
        hwcap) ;;
        *) printf '%s\n' $(printf '%s\n' "$line" | tr ':,\t' '   ') | sed 's/=.*//' ;;
        esac
    done < "$file"
}

# ld_default_dir DIR: whether the dynamic linker searches DIR without
# LD_LIBRARY_PATH (its trusted directories, and those of /etc/ld.so.conf).
ld_default_dir() {
    local want d ma
    want=$(realpath -m "$1")
    ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    for d in /lib /usr/lib /lib64 /usr/lib64 "/lib/$ma" "/usr/lib/$ma" \
        $(ld_conf_dirs /etc/ld.so.conf); do
        [ "$(realpath -m "$d")" = "$want" ] && return 0
    done
    return 1
}

# check_source_version: an older Debian revision of the source than the
# installed library's is refused for a directory the dynamic linker
# searches by default (unless --allow-older-source), else a warning.
check_source_version() {
    local dir=$FINAL_PREFIX/lib WHY_OLDER=' (whose source the mirror lacks)'
    [ -z "$MAGICK_SOURCE" ] || WHY_OLDER=''
    if [ -z "$SOURCE_VERSION" ] || [ -z "$INSTALLED_VERSION" ]; then
        warn "the Debian version of $SRC is unknown (no debian/changelog): cannot tell whether it has the installed ${INSTALLED_VERSION:-library}'s security fixes"
        return 0
    fi
    dpkg --compare-versions "$SOURCE_VERSION" lt "$INSTALLED_VERSION" || return 0
    if [ "$ALLOW_OLDER_SOURCE" = no ] && ld_default_dir "$dir"; then
        {
            printf 'dropin: error: refusing to install into %s\n' "$dir"
            printf '  %s\n' \
                "The dynamic linker searches $dir by default, so every program" \
                "using ImageMagick 6 would load this libMagickCore.  It is built from" \
                "    $SRC_PACKAGE $SOURCE_VERSION," \
                "older than the installed" \
                "    $BIN_PACKAGE $INSTALLED_VERSION$WHY_OLDER:" \
                "the security fixes of the later Debian revisions would be missing." \
                "Install under a prefix of your own and use LD_LIBRARY_PATH, build" \
                "from the installed version's source (configure --with-magick-source=DIR)," \
                "or accept the older source explicitly:" \
                "    ./configure --enable-older-magick-source   (build.sh --allow-older-source)"
        } >&2
        exit 1
    fi
    warn "built from $SRC_PACKAGE $SOURCE_VERSION, older than the installed $INSTALLED_VERSION$WHY_OLDER: the security fixes of the later Debian revisions are missing (fine under LD_LIBRARY_PATH; refused where the dynamic linker looks by default)"
}

# ----------------------------------------------------------------- drop-in
DROPPED=0

# drop_in: FILES/* into SRC/magick/, originals kept, removed ones restored.
drop_in() {
    local state=$SRC/.magick-dpc-dropin name f manifest new
    manifest=$state/manifest
    mkdir -p "$state/orig"
    touch "$manifest"
    new=$(mktemp)
    if [ -d "$FILES" ]; then
        while IFS= read -r -d '' f; do
            # NAME.patch: the original NAME with the patch applied.
            name=${f##*/}
            name=${name%.patch}
            echo "$name" >> "$new"
            if ! grep -qxF "$name" "$manifest"; then
                if [ -e "$SRC/magick/$name" ]; then
                    cp -p "$SRC/magick/$name" "$state/orig/$name"
                else
                    rm -f "$state/orig/$name"
                fi
                echo "$name" >> "$manifest"
            fi
            if [ "$name" != "${f##*/}" ]; then
                [ -e "$state/orig/$name" ] || die "${f##*/}: no magick/$name to patch"
                patch -s -o "$state/patched" "$state/orig/$name" < "$f" ||
                    die "${f##*/} does not apply to this source"
                f=$state/patched
            fi
            cmp -s "$f" "$SRC/magick/$name" || cp "$f" "$SRC/magick/$name"
            DROPPED=$((DROPPED + 1))
        done < <(find "$FILES/" -mindepth 1 -maxdepth 1 -type f ! -name '.*' -print0 | sort -z)
    fi
    # Files that left FILES: put the originals back (new mtime: rebuilt).
    while IFS= read -r name; do
        [ -n "$name" ] || continue
        grep -qxF "$name" "$new" && continue
        if [ -e "$state/orig/$name" ]; then
            cmp -s "$state/orig/$name" "$SRC/magick/$name" ||
                cp "$state/orig/$name" "$SRC/magick/$name"
            rm -f "$state/orig/$name"
        else
            rm -f "$SRC/magick/$name"
        fi
    done < "$manifest"
    sort -u "$new" > "$manifest"
    rm -f "$new"
}

# ----------------------------------------------------------------- configure
configure_tree() {
    local major multiarch gnutype flags stamp cflags cppflags cxxflags ldflags
    if [ "$SRC/configure.ac" -nt "$SRC/configure" ]; then
        run autoreconf.log sh -c "cd '$SRC' && autoreconf -fi"
    fi
    [ ! -f "$SRC/config.status" ] || die "$SRC is configured in place; " \
        "run 'make distclean' there (this script builds out of tree)"
    major=$(sed -n 's/^m4_define(\[magick_major_version\], *\[\([0-9]*\)\]).*/\1/p;T;q' \
        "$SRC/m4/version.m4")
    [ -n "$major" ] || die "cannot read magick_major_version from $SRC/m4/version.m4"
    multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    gnutype=$(dpkg-architecture -qDEB_BUILD_GNU_TYPE)
    # Debian's build flags (debian/rules appends -Wl,--as-needed), taken in
    # the source tree like dpkg-buildpackage does (-ffile-prefix-map).
    cflags=$(cd "$SRC" && dpkg-buildflags --get CFLAGS)
    cxxflags=$(cd "$SRC" && dpkg-buildflags --get CXXFLAGS)
    cppflags=$(cd "$SRC" && dpkg-buildflags --get CPPFLAGS)
    ldflags=$(cd "$SRC" && DEB_LDFLAGS_MAINT_APPEND=-Wl,--as-needed dpkg-buildflags --get LDFLAGS)
    # dh_auto_configure's arguments, then debian/rules' CONFIGURE_OPTIONS and
    # the q16 flavour's (see the system's own record of them: CONFIGURE in
    # /usr/lib/<multiarch>/ImageMagick-*/config-Q16/configure.xml).
    CONFIGURE_ARGS=(
        --build="$gnutype"
        --includedir='${prefix}/include'
        --mandir='${prefix}/share/man'
        --infodir='${prefix}/share/info'
        --localstatedir=/var
        --disable-option-checking
        --libdir="\${prefix}/lib/$multiarch"
        --libexecdir="\${prefix}/lib/$multiarch"
        --runstatedir=/run
        --disable-maintainer-mode
        --enable-reproducible-build
        --prefix=/usr
        --libdir="/usr/lib/$multiarch"
        --docdir="/usr/share/doc/imagemagick-$major-common/html"
        "--with-extra-doc-dir= (on debian system you may install the imagemagick-$major package)"
        --sysconfdir=/etc
        --with-includearch-dir="/usr/include/$multiarch/"
        --mandir=/usr/share/man
        --infodir=/usr/share/info
        --with-modules
        --with-gs-font-dir=/usr/share/fonts/type1/gsfonts
        --with-magick-plus-plus
        --with-djvu
        --with-heic
        --with-openjp2
        --with-webp
        --with-wmf
        --without-gvc
        --enable-shared
        --without-dps
        --without-fpx
        --with-perl
        --with-perl-options=INSTALLDIRS=vendor
        --x-includes=/usr/include/X11
        --x-libraries=/usr/lib/X11
        --without-rsvg
        --without-gcc-arch
        MVDelegate=/bin/mv
        RMDelegate=/bin/rm
        --disable-silent-rules
        --with-quantum-depth=16
        --enable-hdri=no
        --disable-static
        "CFLAGS=$cflags"
        "CXXFLAGS=$cxxflags"
        "CPPFLAGS=$cppflags"
        "LDFLAGS=$ldflags"
    )
    stamp=$BUILD/configure.stamp
    flags=$( {
        echo "tree: $SRC"
        head -n 1 "$SRC/debian/changelog" 2>/dev/null || true
        md5sum < "$SRC/configure"
        printf '%s\n' "${CONFIGURE_ARGS[@]}"
    })
    if [ -f "$OBJ/config.status" ] && [ -f "$OBJ/Makefile" ] &&
        [ "$(cat "$stamp" 2>/dev/null)" = "$flags" ]; then
        return 0
    fi
    rm -f "$stamp"
    rm -rf "$OBJ" && mkdir -p "$OBJ"
    run configure.log env -C "$OBJ" "$SRC/configure" "${CONFIGURE_ARGS[@]}"
    printf '%s\n' "$flags" > "$stamp"
}

# ------------------------------------------------------------------- build
build_library() {
    local la var f extra_deps='' abs_extra='' abs_cpp='' w old n
    la=$(sed -n 's/^\(magick\/libMagickCore-[^ ]*\.la\):.*/\1/p;T;q' "$OBJ/Makefile")
    [ -n "$la" ] || die "no libMagickCore .la target in $OBJ/Makefile"
    var=$(basename "$la" .la | tr -c 'a-zA-Z0-9\n' _)
    var=magick_${var}_la
    grep -qxF "${var}_LIBADD = \$(MAGICK_DEP_LIBS)" "$OBJ/Makefile" ||
        die "$OBJ/Makefile: ${var}_LIBADD is not '\$(MAGICK_DEP_LIBS)'; update --extra-libs handling in $0"
    grep -qxF "${var}_CPPFLAGS = \$(AM_CPPFLAGS) \$(LIBRARY_EXTRA_CPPFLAGS)" "$OBJ/Makefile" ||
        die "$OBJ/Makefile: unexpected ${var}_CPPFLAGS; update --cppflags handling in $0"
    # --extra-libs: file arguments made absolute and made prerequisites.
    for w in $(join_flags $EXTRA_LIBS); do
        if [ -f "$w" ]; then
            f=$(absolute "$w")
            abs_extra="$abs_extra $f"
            extra_deps="$extra_deps $f"
        else
            abs_extra="$abs_extra $(absolute_flag "$w")"
        fi
    done
    printf '%s\n' "$abs_extra" | write_if_changed "$BUILD/extra-libs.stamp"
    # --cppflags: make does not track flags, so when they change the
    # library's objects are removed (all recompiled).  Their -I directories
    # are mirrored into BUILD/include/N/ first (headers copied only when
    # they differ): the flags then name the same directories whichever
    # tree runs the build (a copy of it, e.g. a package build sharing this
    # build directory), and dependency tracking sees the headers change.
    n=0
    for w in $(join_flags $EXTRA_CPPFLAGS); do
        w=$(absolute_flag "$w")
        case $w in
        -I/*)
            if [ -d "${w#-I}" ]; then
                n=$((n + 1))
                mirror_headers "${w#-I}" "$BUILD/include/$n"
                w=-I$BUILD/include/$n
            fi
            ;;
        esac
        abs_cpp="$abs_cpp $w"
    done
    old=$(cat "$BUILD/cppflags.stamp" 2>/dev/null || echo '<none>')
    if [ "$old" != "$abs_cpp" ]; then
        find "$OBJ/magick" \( -name "${var#magick_}-*.lo" -o -name "${var#magick_}-*.o" \) -delete
        printf '%s\n' "$abs_cpp" > "$BUILD/cppflags.stamp"
    fi
    # shellcheck disable=SC2086 # ALSO: more targets, e.g. tests/validate
    run make.log make -C "$OBJ" -j"$JOBS" "$la" $ALSO \
        "${var}_LIBADD=\$(MAGICK_DEP_LIBS)$abs_extra" \
        "EXTRA_${var}_DEPENDENCIES=$BUILD/extra-libs.stamp$extra_deps" \
        "${var}_CPPFLAGS=\$(AM_CPPFLAGS) \$(LIBRARY_EXTRA_CPPFLAGS)$abs_cpp"
}

# mirror_headers DIR COPY: DIR's *.h files (and subdirectories') into
# COPY, each written only when its content differs; those no longer in DIR
# removed.
mirror_headers() {
    local src=$1 dst=$2 h
    mkdir -p "$dst"
    (cd "$src" && find . -name '*.h' -type f) | while IFS= read -r h; do
        mkdir -p "$dst/$(dirname "$h")"
        cmp -s "$src/$h" "$dst/$h" || cp "$src/$h" "$dst/$h"
    done
    (cd "$dst" && find . -name '*.h' -type f) | while IFS= read -r h; do
        [ -f "$src/$h" ] || rm -f "$dst/$h"
    done
}

# join_flags WORD...: the words, with a lone -I/-L joined to the next.
join_flags() {
    local pending=''
    for w in "$@"; do
        case $pending$w in
        -I | -L) pending=$w ;;
        *) printf '%s\n' "$pending$w"; pending='' ;;
        esac
    done
    [ -z "$pending" ] || printf '%s\n' "$pending"
}

# absolute PATH: PATH from the caller's directory, made absolute.
absolute() {
    case $1 in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$(cd "$(dirname "$1")" && pwd)" "$(basename "$1")" ;;
    esac
}

# absolute_flag WORD: -IDIR/-LDIR with a relative existing DIR made
# absolute (make runs in BUILD/obj); other words as they are.
absolute_flag() {
    case $1 in
    -I/* | -L/*) printf '%s\n' "$1" ;;
    -I?* | -L?*)
        if [ -d "${1#-?}" ]; then
            printf '%s%s\n' "${1:0:2}" "$(cd "${1#-?}" && pwd)"
        else
            printf '%s\n' "$1"
        fi
        ;;
    *) printf '%s\n' "$1" ;;
    esac
}

# ------------------------------------------------------------------ checks
# stage_library: the built library copied to BUILD/stage/ with its RPATH
# removed (`chrpath -d`, as debian/rules does: configure's X11 flags add
# -R/usr/lib/X11), plus the SONAME link; sets LIB_REAL.
stage_library() {
    local libs=$OBJ/magick/.libs built name stage=$BUILD/stage
    [ -e "$libs/$SYSTEM_LIB_NAME" ] || die "the build made no $libs/$SYSTEM_LIB_NAME"
    built=$(readlink -f "$libs/$SYSTEM_LIB_NAME")
    name=$(basename "$built")
    mkdir -p "$stage"
    if [ ! -f "$stage/$name" ] || [ "$built" -nt "$stage/$name" ]; then
        cp "$built" "$stage/.$name.tmp"
        run chrpath.log chrpath -d "$stage/.$name.tmp"
        mv -f "$stage/.$name.tmp" "$stage/$name"
    fi
    ln -sfn "$name" "$stage/$SYSTEM_LIB_NAME"
    LIB_REAL=$stage/$name
}

# symbol_users FILE: which of the system's ImageMagick binaries, libraries
# and modules import the symbols listed in FILE.
symbol_users() {
    local f ma
    ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    for f in /usr/lib/"$ma"/libMagick*.so.* /usr/lib/"$ma"/ImageMagick-*/modules-Q16/*/*.so \
        /usr/bin/*-im6.q16 /usr/lib/"$ma"/perl5/*/auto/Image/Magick/*/*.so; do
        [ -f "$f" ] && [ ! -L "$f" ] || continue
        nm -D --undefined-only "$f" 2>/dev/null | awk '{print $NF}' |
            grep -xF -f "$1" | sed "s|\$| used by $f|" || true
    done
}

# dynamic_symbols LIB: "NAME[@VERSION] TYPE" of each symbol LIB exports.
dynamic_symbols() {
    nm -D --defined-only --with-symbol-versions "$1" | awk '{print $3, $2}' | sort -u
}

# check_symbols SYSTEM_LIB: every symbol SYSTEM_LIB exports also exported by
# the drop-in, with the same type and version; else an error listing them
# and the system binaries that import the missing ones.
check_symbols() {
    local system_lib=$1 missing mismatched extra
    dynamic_symbols "$system_lib" > "$BUILD/symbols.system"
    dynamic_symbols "$LIB_REAL" > "$BUILD/symbols.dropin"
    # names only (no version, no type)
    sed 's/[@ ].*//' "$BUILD/symbols.system" | sort -u > "$BUILD/symbols.system.names"
    sed 's/[@ ].*//' "$BUILD/symbols.dropin" | sort -u > "$BUILD/symbols.dropin.names"
    comm -23 "$BUILD/symbols.system.names" "$BUILD/symbols.dropin.names" |
        write_if_changed "$BUILD/symbols.missing"
    comm -13 "$BUILD/symbols.system.names" "$BUILD/symbols.dropin.names" \
        > "$BUILD/symbols.extra"
    # exported by both, but with another type or version
    comm -23 "$BUILD/symbols.system" "$BUILD/symbols.dropin" |
        grep -vwF -f "$BUILD/symbols.missing" > "$BUILD/symbols.mismatched" || true
    missing=$(wc -l < "$BUILD/symbols.missing")
    mismatched=$(wc -l < "$BUILD/symbols.mismatched")
    extra=$(wc -l < "$BUILD/symbols.extra")
    if [ "$missing" -ne 0 ]; then
        [ "$BUILD/symbols.users" -nt "$BUILD/symbols.missing" ] ||
            symbol_users "$BUILD/symbols.missing" > "$BUILD/symbols.users"
        sed 's/^/  | /' "$BUILD/symbols.users" >&2
        die "$missing symbols of $system_lib missing:" \
            "$(tr '\n' ' ' < "$BUILD/symbols.missing")(their system importers" \
            "above; one missing symbol makes a program that loads them with" \
            "RTLD_NOW, as Python's ctypes does libMagickWand, fail to load" \
            "them at all): implement them in $FILES; not installed"
    fi
    if [ "$mismatched" -ne 0 ]; then
        sed 's/^/  | system: /' "$BUILD/symbols.mismatched" >&2
        die "$mismatched symbols of $system_lib exported with another type or" \
            "version (list: $BUILD/symbols.mismatched); not installed"
    fi
    [ "$extra" -eq 0 ] ||
        warn "exports $extra symbols the system library does not (list: $BUILD/symbols.extra)"
}

# check_layouts: each struct the installed headers define has the same size
# in the tree's headers (a program or coder built with the installed ones
# reads and writes every field it knows of in the structs we allocate).
check_layouts() {
    local dir=$BUILD/layout include=/usr/include/ImageMagick-6
    mkdir -p "$dir"
    # struct tags with a body: "[typedef ]struct _Name" then a "{" line
    awk 'prev ~ /^(typedef )?struct _[A-Za-z0-9]+ *$/ && /^[ \t]*\{/ {
             n = prev; sub(/^(typedef )?struct /, "", n); sub(/ *$/, "", n); print n }
         { prev = $0 }' "$include"/magick/*.h | sort -u > "$dir/structs"
    [ -s "$dir/structs" ] || die "no struct definitions found in $include/magick"
    {
        printf '#include <stdio.h>\n#include "magick/MagickCore.h"\n'
        printf 'int main(void)\n{\n'
        sed 's/.*/  printf("%s %zu\\n","&",sizeof(struct &));/' "$dir/structs"
        printf '  return(0);\n}\n'
    } > "$dir/sizes.c"
    run layout-system.log gcc $(pkg-config --cflags MagickCore) \
        -o "$dir/sizes.system" "$dir/sizes.c"
    run layout-dropin.log gcc -I"$OBJ" -I"$SRC" -DMAGICKCORE_HDRI_ENABLE=0 \
        -DMAGICKCORE_QUANTUM_DEPTH=16 -o "$dir/sizes.dropin" "$dir/sizes.c"
    "$dir/sizes.system" > "$dir/sizes.system.txt"
    "$dir/sizes.dropin" > "$dir/sizes.dropin.txt"
    if ! cmp -s "$dir/sizes.system.txt" "$dir/sizes.dropin.txt"; then
        join "$dir/sizes.system.txt" "$dir/sizes.dropin.txt" |
            awk '$2 != $3 { printf "  | struct %s: %s bytes in %s, %s in the drop-in\n", $1, $2, inc, $3 }' \
                inc="$include" >&2
        die "structs of the installed headers differ in size from the drop-in's" \
            "(the installed coders and libMagickWand would read and write past" \
            "what this library allocates): add the fields to the headers in" \
            "$FILES; not installed"
    fi
}

check_library() {
    local soname ma system_lib
    soname=$(readelf -d "$LIB_REAL" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [ "$soname" = "$SYSTEM_LIB_NAME" ] ||
        die "SONAME of $LIB_REAL is '$soname', not $SYSTEM_LIB_NAME"
    case $(readelf -d "$LIB_REAL") in
    *'(RPATH)'* | *'(RUNPATH)'*) die "$LIB_REAL still has an RPATH/RUNPATH" ;;
    esac
    ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    system_lib=$(readlink -f "/usr/lib/$ma/$SYSTEM_LIB_NAME")
    check_symbols "$system_lib"
    check_layouts
    # The same version, features, delegates: convert -version identical.
    /usr/bin/convert -version > "$BUILD/version.system" 2>&1 || true
    LD_LIBRARY_PATH=$(dirname "$LIB_REAL") /usr/bin/convert -version \
        > "$BUILD/version.dropin" 2>&1 || true
    if ! cmp -s "$BUILD/version.system" "$BUILD/version.dropin"; then
        diff "$BUILD/version.system" "$BUILD/version.dropin" | sed 's/^/  | /' >&2 || true
        die "convert -version on the drop-in differs from the system's (a missing -dev package?); not installed"
    fi
}

# ----------------------------------------------------------------- install
install_library() {
    local dest=$PREFIX/lib name
    name=$(basename "$LIB_REAL")
    mkdir -p "$dest"
    if ! cmp -s "$LIB_REAL" "$dest/$name"; then
        cp "$LIB_REAL" "$dest/.$name.tmp"
        chmod 644 "$dest/.$name.tmp"
        mv -f "$dest/.$name.tmp" "$dest/$name"
    fi
    [ "$(readlink "$dest/$SYSTEM_LIB_NAME" 2>/dev/null)" = "$name" ] ||
        ln -sfn "$name" "$dest/$SYSTEM_LIB_NAME"
    [ "$(readlink "$dest/${SYSTEM_LIB_NAME%.*}" 2>/dev/null)" = "$name" ] ||
        ln -sfn "$name" "$dest/${SYSTEM_LIB_NAME%.*}"
}

# -------------------------------------------------------------------- main
install_packages
if [ -n "$MAGICK_SOURCE" ]; then
    [ -f "$MAGICK_SOURCE/configure.ac" ] && [ -d "$MAGICK_SOURCE/magick" ] ||
        die "--magick-source $MAGICK_SOURCE is not an ImageMagick source tree"
    SRC=$(cd "$MAGICK_SOURCE" && pwd)
    tree_version
else
    fetch_source
fi
check_source_version
printf '%s\n' "${SOURCE_VERSION:-unknown}" | write_if_changed "$BUILD/source.version"
drop_in
configure_tree
build_library
stage_library
check_library
install_library
T1=$(date +%s.%N)
if [ "$DROPPED" -eq 0 ]; then what=stock; else what="$DROPPED file(s) dropped in"; fi
what="$SRC_PACKAGE ${SOURCE_VERSION:-$SRC}, $what"
say "$PREFIX/lib/$SYSTEM_LIB_NAME ($what) ready in $(awk "BEGIN{printf \"%.1f\", $T1 - $T0}") s; logs in $LOGDIR"
