#!/bin/bash
# The Debian package, end to end, on this machine: builds it with
# dpkg-buildpackage from a clean export of the committed tree (HEAD), checks
# it with lintian, installs it, runs e2image from /usr/sbin, reinstalls
# e2fsprogs under it, then removes it, installs and purges it, and checks
# each time that e2fsprogs' e2image and man page are back, unchanged.
# Must run as root: it installs its build dependencies and the package.
# Prints TAP, then "N passed, M failed"; exits 1 if anything failed.
# DEB_BUILD_OPTIONS defaults to "nocheck" (CI runs `make check` before).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

if [ "$(id -u)" != 0 ]; then
  echo "Bail out! $0 installs packages: run it as root"
  exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/e2image-ng-package.XXXXXX")
src=$work/e2image-ng

# Whatever happens, the machine is left with e2fsprogs' e2image.
purge_if_installed() {
  if dpkg-query -W -f='${Status}' e2image-ng 2> /dev/null | grep -q 'ok installed'; then
    dpkg --purge e2image-ng > /dev/null 2>&1 || true
  fi
}
trap 'purge_if_installed; rm -rf "$work"' EXIT

n=0
failed=0
ok() {  # ok DESCRIPTION COMMAND...: runs the command, reports its status.
  local desc=$1
  shift
  n=$((n + 1))
  if "$@" > "$work/last.out" 2>&1; then
    echo "ok $n - $desc"
  else
    echo "not ok $n - $desc"
    sed 's/^/# /' "$work/last.out" | tail -n 40
    failed=$((failed + 1))
    return 1
  fi
}
finish() {
  echo "1..$n"
  echo "$((n - failed)) passed, $failed failed"
  [ "$failed" = 0 ]
  exit
}

# ---- build ------------------------------------------------------------------
export_tree() {
  mkdir -p "$src" && git -C "$top" archive --format=tar HEAD | tar -x -C "$src"
}

tools_missing() {
  ! command -v dpkg-buildpackage || ! command -v lintian || ! command -v dh ||
    ! (cd "$src" && dpkg-checkbuilddeps)
}
install_build_deps() {
  tools_missing > /dev/null 2>&1 || return 0
  apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends dpkg-dev debhelper lintian &&
    apt-get build-dep -y -qq "$src" && ! tools_missing
}

build_package() {
  (cd "$src" && DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS-nocheck} dpkg-buildpackage -us -uc -b) \
    > "$work/build.log" 2>&1 || { tail -n 60 "$work/build.log"; return 1; }
  deb=$(ls "$work"/e2image-ng_*.deb) && [ -f "$deb" ]
}

lintian_clean() {
  lintian --fail-on error --info "$work"/e2image-ng_*.changes
}

# Everything `make install` installs (man pages compressed by dh) is in the
# package, qcow2-inspect and its man page included once they are installed.
installed_files() { sed 's/\.gz$//' | sort -u; }
package_holds_make_install() {
  make -C "$src" install DESTDIR="$work/staged" > /dev/null || return 1
  (cd "$work/staged" && find . ! -type d) | installed_files > "$work/staged.list"
  dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -v '/$' | installed_files > "$work/deb.list"
  [ -s "$work/staged.list" ] && ! comm -23 "$work/staged.list" "$work/deb.list" | grep .
}
package_holds() {
  for f in ./usr/sbin/e2image ./usr/share/man/man8/e2image.8.gz \
    ./usr/share/bash-completion/completions/e2image \
    ./usr/share/bash-completion/completions/qcow2-inspect; do
    dpkg-deb -c "$deb" | grep -q " $f\$" || { echo "missing: $f"; return 1; }
  done
}

echo "# building the committed tree (HEAD) of $top in $work"
ok "the committed tree exports" export_tree || finish
ok "build dependencies installed (apt-get build-dep)" install_build_deps || finish
ok "dpkg-buildpackage -us -uc -b builds the package" build_package || finish
ok "lintian reports no errors" lintian_clean
ok "the package holds e2image, its man page and both completions" package_holds
ok "the package holds every file that make install installs" package_holds_make_install

# ---- e2fsprogs' files, as dpkg knows them -------------------------------------
e2fsprogs_md5() {  # e2fsprogs_md5 PATH-IN-PACKAGE
  dpkg-query --control-show e2fsprogs md5sums | awk -v p="$1" '$2 == p { print $1 }'
}
program_md5=$(e2fsprogs_md5 sbin/e2image)
[ -n "$program_md5" ] || program_md5=$(e2fsprogs_md5 usr/sbin/e2image)
manual_md5=$(e2fsprogs_md5 usr/share/man/man8/e2image.8.gz)
has_md5() { [ "$(md5sum < "$2" | cut -d' ' -f1)" = "$1" ] || { echo "$2 is not e2fsprogs'"; return 1; }; }

e2fsprogs_in_place() {
  [ -n "$program_md5" ] && [ -n "$manual_md5" ] || { echo "no md5sums for e2fsprogs"; return 1; }
  has_md5 "$program_md5" /usr/sbin/e2image && has_md5 "$program_md5" /sbin/e2image &&
    has_md5 "$manual_md5" /usr/share/man/man8/e2image.8.gz &&
    [ ! -e /usr/sbin/e2image.e2fsprogs ] && [ ! -e /usr/share/man/man8/e2image.e2fsprogs.8.gz ] &&
    ! dpkg-divert --list | grep e2image &&
    dpkg -S /sbin/e2image | grep -qx 'e2fsprogs: /sbin/e2image' &&
    /usr/sbin/e2image 2>&1 | grep -q '^e2image 1\.' &&
    [ -z "$(dpkg --verify e2fsprogs | tee /dev/stderr)" ]
}

ng_in_place() {
  for p in /usr/sbin/e2image /sbin/e2image /usr/share/man/man8/e2image.8.gz; do
    [ "$(dpkg-divert --listpackage "$p")" = e2image-ng ] || { echo "$p not diverted"; return 1; }
  done
  /usr/sbin/e2image -V | grep -q e2image-ng && /sbin/e2image -V | grep -q e2image-ng &&
    has_md5 "$program_md5" /usr/sbin/e2image.e2fsprogs &&
    has_md5 "$manual_md5" /usr/share/man/man8/e2image.e2fsprogs.8.gz &&
    zcat /usr/share/man/man8/e2image.8.gz | grep -q e2image-ng &&
    [ "$(man -w e2image)" = /usr/share/man/man8/e2image.8.gz ] &&
    [ "$(man -w e2image.e2fsprogs)" = /usr/share/man/man8/e2image.e2fsprogs.8.gz ] &&
    [ -z "$(dpkg --verify e2fsprogs e2image-ng | tee /dev/stderr)" ]
}

# Every program of the package runs (--help) from its installed place, and
# man finds every man page of the package.
programs_and_manuals_work() {
  dpkg -L e2image-ng > "$work/installed.list" || return 1
  local count=0 path name
  for path in $(grep -E '^/usr/s?bin/[^/]+$' "$work/installed.list"); do
    "$path" --help > /dev/null || { echo "$path --help failed"; return 1; }
    count=$((count + 1))
  done
  for path in $(grep -E '^/usr/share/man/man[1-8]/[^/]+\.gz$' "$work/installed.list"); do
    name=$(basename "$path" .gz)
    [ "$(man -w "${name##*.}" "${name%.*}")" = "$path" ] || { echo "man does not find $path"; return 1; }
  done
  echo "$count programs"
  [ "$count" -ge 1 ]
}

# ---- the installed program ----------------------------------------------------
make_small_fs() {
  mkdir -p "$work/tree/dir" && seq 1 5000 > "$work/tree/dir/numbers" &&
    ln -sf dir/numbers "$work/tree/link" &&
    mke2fs -q -F -t ext4 -d "$work/tree" "$work/fs.img" 16M
}
capture_qcow2() {
  rm -f "$work/fs.qcow2" && /usr/sbin/e2image -Q "$work/fs.img" "$work/fs.qcow2" &&
    qemu-img check "$work/fs.qcow2"
}
qcow2_to_raw() {
  rm -f "$work/fs.raw" && /usr/sbin/e2image -r "$work/fs.qcow2" "$work/fs.raw" &&
    e2fsck -fn "$work/fs.raw"
}
raw_as_e2fsprogs() {
  rm -f "$work/ng.raw" "$work/e2fsprogs.raw" &&
    /usr/sbin/e2image -r "$work/fs.img" "$work/ng.raw" &&
    /usr/sbin/e2image.e2fsprogs -r "$work/fs.img" "$work/e2fsprogs.raw" &&
    cmp "$work/ng.raw" "$work/e2fsprogs.raw" && cmp "$work/fs.raw" "$work/e2fsprogs.raw"
}

# An upgrade of e2fsprogs while the package is installed writes its
# /sbin/e2image (an alias of /usr/sbin/e2image) to the diverted name.
reinstall_e2fsprogs() {
  version=$(dpkg-query -W -f='${Version}' e2fsprogs)
  (cd "$work" && apt-get download -qq "e2fsprogs=$version") &&
    dpkg -i "$work"/e2fsprogs_*.deb
}

purge_if_installed
ok "e2fsprogs' e2image is in place before" e2fsprogs_in_place || finish
ok "a small ext4 filesystem" make_small_fs
ok "dpkg -i installs the package" dpkg -i "$deb"
ok "installed: e2image is e2image-ng's, e2fsprogs' is diverted aside" ng_in_place
ok "installed: every program runs --help, man finds every man page" programs_and_manuals_work
ok "/usr/sbin/e2image -Q writes a qcow2 image that qemu-img check passes" capture_qcow2
ok "/usr/sbin/e2image -r turns it into a raw image that e2fsck -fn passes" qcow2_to_raw
ok "raw images equal those of e2fsprogs' e2image, kept as e2image.e2fsprogs" raw_as_e2fsprogs
ok "e2fsprogs reinstalled under the package" reinstall_e2fsprogs
ok "after the reinstall, e2image is still e2image-ng's" ng_in_place
ok "dpkg -r removes the package" dpkg -r e2image-ng
ok "removed: e2fsprogs' e2image and man page are back" e2fsprogs_in_place
ok "dpkg -i installs it again" dpkg -i "$deb"
ok "installed again: e2image is e2image-ng's" ng_in_place
ok "dpkg -P purges the package" dpkg -P e2image-ng
ok "purged: e2fsprogs' e2image and man page are back" e2fsprogs_in_place
finish
