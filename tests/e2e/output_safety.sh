#!/bin/sh
# Output safety: e2image never does more with its output path than opening
# it through the kernel would let the caller do. Links, FIFOs and files are
# planted in a sticky world-writable directory; root and nobody write images
# there with fs.protected_symlinks/fifos/regular at 0 and at 1 (when this
# machine lets the test set them), and each outcome (refused or written, and
# what became of the planted object and what it points at) must be
# /usr/sbin/e2image's. Then what e2fsprogs' e2image cannot be compared on:
# 0600 images, in-place -O, checked offsets, signals, a qcow2's own files,
# and -I of another filesystem's e2i image.
. "$TESTLIB"
# The fault library is preloaded before the sanitizers' runtime in their build.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }

chmod 755 "$T"
BUILD_T=$T
if ! as_nobody test -x "$T"; then  # a build tree nobody cannot reach
  T=$(mktemp -d /tmp/output_safety.XXXXXX)
  chmod 755 "$T"
  # Nor can nobody run the program there: a copy of it, which nobody can.
  cp "$E2IMAGE" "$T/e2image" && chmod 755 "$T/e2image" && E2IMAGE=$T/e2image
fi
FS="$T/fs.img"
mke2fs -q -F -t ext4 "$FS" 4M
chmod 644 "$FS"
S="$T/sticky"
mkdir "$S" && chmod 1777 "$S"
NOBODY_DIR="$T/nobody"
mkdir "$NOBODY_DIR" && chown nobody:nogroup "$NOBODY_DIR"

SYSCTLS="fs.protected_symlinks fs.protected_fifos fs.protected_regular"
saved=""
for k in $SYSCTLS; do saved="$saved $k=$(sysctl -n "$k")"; done
restore_sysctls() { for kv in $saved; do sysctl -qw "$kv"; done; }
trap 'restore_sysctls; rm -rf "$T" "$BUILD_T"' EXIT
set_level() { for k in $SYSCTLS; do sysctl -qw "$k=$1"; done; }
if set_level 1 2> /dev/null && set_level 0 2> /dev/null; then
  LEVELS="0 1"
else  # a container that may not change them: the values it has
  LEVELS=current
fi

# What a planted object (and $T/victim) became: kind, owner, mode, content.
describe() {
  for f in "$S/out" "$T/victim" "$NOBODY_DIR/target"; do
    [ -e "$f" ] || [ -L "$f" ] || { echo "$f: none"; continue; }
    kind=$(stat -c %F "$f")
    if [ -L "$f" ]; then
      echo "$f: $kind $(stat -c '%U %a' "$f")"
    elif [ -p "$f" ]; then
      echo "$f: $kind $(stat -c '%U %a' "$f")"
    elif [ "$(stat -c %s "$f")" -lt 64 ]; then  # a planted file, intact
      echo "$f: $kind $(stat -c '%U:%G %a' "$f") holding $(cat "$f")"
    else
      echo "$f: $kind $(stat -c '%U:%G %a' "$f") holding an image"
    fi
  done
  ls -A "$S" | grep e2image- || true
}

# Plantings, each from scratch (run before each program).
reset() {
  rm -rf "$S"/* "$S"/.[!.]* "$T/victim" "$NOBODY_DIR/target" "$T/fifo.out"
  echo secret > "$T/victim"
  chmod 600 "$T/victim"
}
plant_link_to_victim() {  # nobody's link to root's file
  ln -s "$T/victim" "$S/out" && chown -h nobody:nogroup "$S/out"
}
plant_root_link_to_victim() {  # the directory owner's link: followed
  ln -s "$T/victim" "$S/out"
}
plant_own_link() {  # nobody's link to nobody's file
  echo mine > "$NOBODY_DIR/target" && chown nobody:nogroup "$NOBODY_DIR/target"
  ln -s "$NOBODY_DIR/target" "$S/out" && chown -h nobody:nogroup "$S/out"
}
plant_fifo() {  # nobody's FIFO, with a reader for 10 s
  mkfifo "$S/out" && chown nobody:nogroup "$S/out"
  (timeout 10 cat "$S/out" > "$T/fifo.out" 2> /dev/null &)
}
plant_regular() {  # nobody's file, 0644
  echo theirs > "$S/out" && chown nobody:nogroup "$S/out" && chmod 644 "$S/out"
}
plant_readonly() {  # nobody's read-only file
  echo mine > "$S/out" && chown nobody:nogroup "$S/out" && chmod 444 "$S/out"
}
plant_root_file() {  # root's 0644 file
  echo roots > "$S/out" && chmod 644 "$S/out"
}
plant_nothing() { :; }

# One program's outcome: "written" or "refused", then describe; its
# messages go to $T/run.TAG.out.
outcome() {
  tag=$1 prog=$2 who=$3 plant=$4
  shift 4
  reset
  $plant
  if [ "$who" = nobody ]; then
    as_nobody timeout 20 "$prog" "$@" > "$T/run.out" 2>&1
  else
    timeout 20 "$prog" "$@" > "$T/run.out" 2>&1
  fi
  rc=$?
  [ $rc -eq 0 ] && echo written || echo refused
  describe
  # Lets a reader still waiting on the FIFO see its end (an O_RDWR open never waits).
  # As its owner: fs.protected_fifos lets root open nobody's FIFO no more
  # than it lets e2image.
  [ -p "$S/out" ] && { sleep 0.1; as_nobody sh -c ': 3<> "$1"' - "$S/out"; sleep 0.1; }
  [ -s "$T/fifo.out" ] && echo "the FIFO's reader got bytes"
  cp "$T/run.out" "$T/run.$tag.out"
}

# same_outcome WHO PLANT EXPECTED E2IMAGE-ARGS...: ours and the oracle's
# outcomes agree, and are EXPECTED (written or refused).
same_outcome() {
  who=$1 plant=$2 expected=$3
  shift 3
  mine=$(outcome ours "$E2IMAGE" "$who" "$plant" "$@")
  theirs=$(outcome oracle "$ORACLE_E2IMAGE" "$who" "$plant" "$@")
  echo "ours:"; echo "$mine"; cat "$T/run.ours.out"
  [ "$mine" = "$theirs" ] || {
    echo "e2fsprogs' e2image:"; echo "$theirs"; cat "$T/run.oracle.out"; return 1; }
  [ "$(echo "$mine" | head -n 1)" = "$expected" ] || { echo "expected: $expected"; return 1; }
  # Every refusal is one line naming the path.
  [ "$expected" = written ] || { [ "$(grep -c . "$T/run.ours.out")" = 1 ] &&
    grep -q "^e2image: $S/out: " "$T/run.ours.out"; }
}

# A FIFO: e2fsprogs' e2image opens it, then fails to seek in it; this one
# writes the raw image through it. The open is what must agree: refused
# (Permission denied) by both, or opened by both.
fifo_case() {
  expected=$1
  shift
  mine=$(outcome ours "$E2IMAGE" root plant_fifo "$@")
  theirs=$(outcome oracle "$ORACLE_E2IMAGE" root plant_fifo "$@")
  echo "ours:"; echo "$mine"; cat "$T/run.ours.out"
  echo "e2fsprogs' e2image:"; echo "$theirs"; cat "$T/run.oracle.out"
  [ "$(echo "$mine" | head -n 1)" = "$expected" ] || { echo "expected: $expected"; return 1; }
  if [ "$expected" = refused ]; then
    grep -q "Permission denied" "$T/run.oracle.out" && [ "$(grep -c . "$T/run.ours.out")" = 1 ] &&
      grep -q "^e2image: $S/out: .*Permission denied.*protected_fifos" "$T/run.ours.out"
  else
    echo "$mine" | grep -q "the FIFO's reader got bytes" &&
      grep -q "Illegal seek" "$T/run.oracle.out"
  fi
}

for level in $LEVELS; do
  if [ "$level" = current ]; then
    level=$(sysctl -n fs.protected_symlinks)
  else
    set_level "$level"
  fi
  [ "$level" = 1 ] && refused_by_rule=refused || refused_by_rule=written
  ok "level $level: root, nobody's symlink to root's file: $refused_by_rule" \
    same_outcome root plant_link_to_victim $refused_by_rule -r "$FS" "$S/out"
  ok "level $level: root, the directory owner's symlink: written" \
    same_outcome root plant_root_link_to_victim written -r "$FS" "$S/out"
  ok "level $level: root, nobody's FIFO: $refused_by_rule" \
    fifo_case $refused_by_rule -r "$FS" "$S/out"
  ok "level $level: root, nobody's file: $refused_by_rule, owner and mode kept" \
    same_outcome root plant_regular $refused_by_rule -r "$FS" "$S/out"
  ok "level $level: root, a qcow2 image over nobody's file: $refused_by_rule" \
    same_outcome root plant_regular $refused_by_rule -Q "$FS" "$S/out"
  ok "level $level: root, a new file: written 0600" \
    same_outcome root plant_nothing written -r "$FS" "$S/out"
  ok "level $level: nobody, its own symlink to its own file: written" \
    same_outcome nobody plant_own_link written -r "$FS" "$S/out"
  ok "level $level: nobody, root's symlink to root's 0600 file: refused" \
    same_outcome nobody plant_root_link_to_victim refused -r "$FS" "$S/out"
  ok "level $level: nobody, its own read-only file: refused, not replaced" \
    same_outcome nobody plant_readonly refused -r "$FS" "$S/out"
  ok "level $level: nobody, root's 0644 file: refused, not replaced" \
    same_outcome nobody plant_root_file refused -r "$FS" "$S/out"
  ok "level $level: nobody, an e2i image over root's file: refused" \
    same_outcome nobody plant_root_file refused "$FS" "$S/out"
  ok "level $level: nobody, a new file: written 0600" \
    same_outcome nobody plant_nothing written -r "$FS" "$S/out"
done
restore_sysctls

# The image's temporary file is 0600 while written too (umask 0), and a
# replaced file's owner, group and mode survive (e2fsprogs' e2image
# truncates it in place; this one renames a new file over it).
temp_mode() {
  echo old > "$T/kept.raw" && chown nobody:nogroup "$T/kept.raw" && chmod 0604 "$T/kept.raw"
  (umask 0 && env LD_PRELOAD="$IOFAULT_SO" IOFAULT_PATH=kept.raw.e2image- IOFAULT_DELAY_MS=100 \
    "$E2IMAGE" -Q "$FS" "$T/kept.raw") &
  pid=$!
  modes=""
  for _ in $(seq 1 200); do
    temp=$(ls -A "$T" | grep 'kept.raw.e2image-' | head -n 1)
    [ -n "$temp" ] && modes="$modes $(stat -c '%a:%U' "$T/$temp" 2> /dev/null)"
    kill -0 $pid 2> /dev/null || break
    sleep 0.02
  done
  wait $pid || return 1
  echo "temporary file modes seen:$modes"
  [ -n "$modes" ] || return 1
  for m in $modes; do
    case $m in 600:root | 600:nobody) ;; *) return 1 ;; esac
  done
  [ "$(stat -c '%U:%G %a' "$T/kept.raw")" = "nobody:nogroup 604" ]
}
ok "the temporary file is never wider than the file it replaces; owner, group, mode kept" temp_mode

# -O into an existing disk image writes in place: the bytes before and
# after the image's region are kept (e2fsprogs' e2image keeps those before
# and truncates the file at the image's end).
MiB=1048576
make_disk() {  # a 7 MiB disk: 1 MiB of pattern, 4 MiB of zeros, 2 MiB of pattern
  { pseudo_random $MiB 7; head -c $((4 * MiB)) /dev/zero; pseudo_random $((2 * MiB)) 8; } > "$1"
}
in_place() {
  src=$1 region_should_be=$2
  make_disk "$T/disk.img"
  cp "$T/disk.img" "$T/disk.orig"
  ino=$(stat -c %i "$T/disk.img")
  "$E2IMAGE" -r -O $MiB "$src" "$T/disk.img" || return 1
  [ "$(stat -c %i "$T/disk.img")" = "$ino" ] || { echo "the file was replaced"; return 1; }
  cmp -n $MiB "$T/disk.img" "$T/disk.orig" || return 1
  cmp -i $((5 * MiB)) "$T/disk.img" "$T/disk.orig" || return 1
  tail -c +$((MiB + 1)) "$T/disk.img" | head -c $((4 * MiB)) > "$T/region"
  cmp "$T/region" "$region_should_be"
}
"$ORACLE_E2IMAGE" -r "$FS" "$T/oracle.raw" 2> /dev/null
ok "-r -O into an existing disk image: in place, bytes outside the region kept" \
  in_place "$FS" "$T/oracle.raw"
qemu-img convert -O qcow2 "$FS" "$T/fs.qcow2"
ok "qcow2 to raw -O into an existing disk image: in place, bytes outside kept" \
  in_place "$T/fs.qcow2" "$FS"
oracle_keeps_head() {
  make_disk "$T/disk.img" && cp "$T/disk.img" "$T/disk.orig"
  "$ORACLE_E2IMAGE" -r -O $MiB "$FS" "$T/disk.img" 2> /dev/null &&
    cmp -n $MiB "$T/disk.img" "$T/disk.orig"
}
ok "e2fsprogs' e2image too keeps the bytes before the region" oracle_keeps_head

# Offsets: refused before anything is written, as e2fsprogs' e2image does.
refused_untouched() {  # refused_untouched FILE-THAT-MUST-NOT-CHANGE ARGS...
  keep=$1
  shift
  cp "$keep" "$T/keep.orig"
  if "$E2IMAGE" "$@" 2> "$T/err"; then echo "accepted"; return 1; fi
  cat "$T/err"
  [ "$(grep -c . "$T/err")" = 1 ] || return 1
  cmp "$keep" "$T/keep.orig" || return 1
  ! ls -A "$T" | grep -q e2image- || { echo "temporary file left"; return 1; }
  if "$ORACLE_E2IMAGE" "$@" 2> /dev/null; then echo "e2fsprogs' e2image accepts it"; return 1; fi
}
cp "$FS" "$T/move.img"
ok "-ra -O 2^64-1 (one file): refused, the filesystem untouched" \
  refused_untouched "$T/move.img" -ra -O 18446744073709551615 "$T/move.img"
ok "-ra -O 2^63-4096 (one file): refused, the filesystem untouched" \
  refused_untouched "$T/move.img" -ra -O 9223372036854771712 "$T/move.img"
make_disk "$T/off.img"
ok "-r -O 2^64-1 into an existing file: refused, the file untouched" \
  refused_untouched "$T/off.img" -r -O 18446744073709551615 "$FS" "$T/off.img"
ok "-r -O 2^63-4096 into an existing file: refused, the file untouched" \
  refused_untouched "$T/off.img" -r -O 9223372036854771712 "$FS" "$T/off.img"
ok "-r -o 2^64-1: refused" \
  refused_untouched "$T/off.img" -r -o 18446744073709551615 "$FS" "$T/off.img"
# An image that would end past the end of a device: refused before a byte
# is written (e2fsprogs' e2image writes what fits, then fails).
past_device_end() {
  pseudo_random $((5 * MiB)) 9 > "$T/small-dev"
  cp "$T/small-dev" "$T/small-dev.orig"
  dev=$(losetup -f --show "$T/small-dev") || { echo "no loop device"; return 1; }
  "$E2IMAGE" -r -O $((2 * MiB)) "$FS" "$dev" 2> "$T/err"
  rc=$?
  "$E2IMAGE" -r -O $((2 * MiB)) "$T/fs.qcow2" "$dev" 2>> "$T/err"
  rc2=$?
  losetup -d "$dev"
  cat "$T/err"
  [ $rc -ne 0 ] && [ $rc2 -ne 0 ] && [ "$(grep -c 'past the end of the device' "$T/err")" = 2 ] &&
    cmp "$T/small-dev" "$T/small-dev.orig"
}
ok "-r -O past the end of a device (filesystem, qcow2): refused, the device untouched" \
  past_device_end

# Every signal whose default is to end the process removes the temporary
# file (the process still dies of the signal; the destination is untouched).
interrupted() {
  sig=$1 dest="$T/sig.qcow2"
  echo precious > "$dest"
  env --default-signal LD_PRELOAD="$IOFAULT_SO" IOFAULT_PATH="sig.qcow2.e2image-" \
    IOFAULT_DELAY_MS=100 "$E2IMAGE" -Q "$FS" "$dest" 2> "$T/sig-err" &
  pid=$!
  for _ in $(seq 1 400); do
    ls -A "$T" | grep -q "sig.qcow2.e2image-" && break
    sleep 0.02
  done
  kill -s "$sig" $pid || { echo "e2image had already finished"; return 1; }
  wait $pid
  rc=$?
  cat "$T/sig-err"
  [ $rc -gt 128 ] && [ "$(kill -l $((rc - 128)))" = "$sig" ] || { echo "exit status $rc"; return 1; }
  [ "$(cat "$dest")" = precious ] || { echo "destination changed"; return 1; }
  ! ls -A "$T" | grep -q 'e2image-' || { echo "temporary file left:"; ls -A "$T"; return 1; }
}
for sig in HUP INT QUIT USR1 USR2 PIPE ALRM TERM XCPU VTALRM PROF; do
  ok "SIG$sig part way: temporary file removed, destination untouched" interrupted $sig
done

# An input qcow2's own backing file and external data file are not outputs.
cp "$FS" "$T/base.raw"
qemu-img create -q -f qcow2 -b "$T/base.raw" -F raw "$T/over.qcow2"
qemu-img create -q -f qcow2 -o data_file="$T/data.raw" "$T/df.qcow2" 4M
qemu-io -c "write -P 0x5a 0 64k" "$T/df.qcow2" > /dev/null
refused_own_file() {  # refused_own_file IMAGE OUTPUT WHAT
  cp "$2" "$T/own.orig"
  if "$E2IMAGE" -r "$1" "$2" 2> "$T/err"; then echo accepted; return 1; fi
  cat "$T/err"
  grep -q "the output is the $3 of $1" "$T/err" && cmp "$2" "$T/own.orig"
}
ok "qcow2 to raw over its own backing file: refused" \
  refused_own_file "$T/over.qcow2" "$T/base.raw" "backing file"
ln -sf data.raw "$T/data-link.raw"
ok "qcow2 to raw over its own data file (through a symlink): refused" \
  refused_own_file "$T/df.qcow2" "$T/data-link.raw" "external data file"

# -I with the e2i image of another filesystem: refused, naming both UUIDs.
mke2fs -q -F -t ext4 "$T/other.img" 4M
"$E2IMAGE" "$T/other.img" "$T/other.e2i"
cp "$FS" "$T/target.img"
install_other() {
  if "$E2IMAGE" -I "$T/target.img" "$T/other.e2i" 2> "$T/err"; then echo accepted; return 1; fi
  cat "$T/err"
  grep -q "UUID $(blkid -s UUID -o value "$T/other.img").*UUID $(blkid -s UUID -o value "$FS")" \
    "$T/err" && cmp "$T/target.img" "$FS"
}
ok "-I of another filesystem's e2i image: refused, naming both UUIDs" install_other
install_forced() {
  "$E2IMAGE" -I -f "$T/target.img" "$T/other.e2i" && ! cmp -s "$T/target.img" "$FS"
}
ok "-I -f installs it anyway" install_forced
install_own() {
  cp "$FS" "$T/own.img" && "$E2IMAGE" "$FS" "$T/own.e2i" && "$E2IMAGE" -I "$T/own.img" "$T/own.e2i"
}
ok "-I of the device's own e2i image: installed" install_own
# The primary superblock wiped (what -I is for): the first backup is
# compared instead (two block groups of 1 KiB blocks).
mke2fs -q -F -t ext4 -b 1024 "$T/big.img" 20M
mke2fs -q -F -t ext4 -b 1024 "$T/big-other.img" 20M
"$E2IMAGE" "$T/big.img" "$T/big.e2i" && "$E2IMAGE" "$T/big-other.img" "$T/big-other.e2i"
wipe_primary() {
  cp "$T/big.img" "$T/wiped.img" &&
    dd if=/dev/zero of="$T/wiped.img" bs=1024 seek=1 count=1 conv=notrunc 2> /dev/null
}
install_other_wiped() {
  wipe_primary && cp "$T/wiped.img" "$T/wiped.orig"
  if "$E2IMAGE" -I "$T/wiped.img" "$T/big-other.e2i" 2> "$T/err"; then echo accepted; return 1; fi
  cat "$T/err"
  grep -q "UUID $(blkid -s UUID -o value "$T/big-other.img").*UUID $(blkid -s UUID -o value "$T/big.img")" \
    "$T/err" && cmp "$T/wiped.img" "$T/wiped.orig"
}
ok "-I of another filesystem's image, the primary superblock wiped: refused by the backup's UUID" \
  install_other_wiped
install_own_wiped() {
  wipe_primary && "$E2IMAGE" -I "$T/wiped.img" "$T/big.e2i" && e2fsck -fn "$T/wiped.img"
}
ok "-I of the device's own image, the primary superblock wiped: installed, e2fsck-clean" \
  install_own_wiped

done_testing
