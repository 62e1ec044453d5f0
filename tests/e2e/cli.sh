#!/bin/bash
# The command line: help, version, usage errors, and refusals that must
# leave nothing behind.
. "$TESTLIB"

ok "--help prints the usage and exits 0" sh -c '"$E2IMAGE" --help | grep -q "Usage: e2image"'
ok "-h is --help" sh -c '"$E2IMAGE" -h | grep -q -- "-Q"'
ok "-V prints the version" sh -c '"$E2IMAGE" -V | grep -q "e2image-ng"'
ok "no arguments: usage on stderr, exit 1" sh -c '"$E2IMAGE" 2>&1 >/dev/null | grep -q Usage; test $("$E2IMAGE" >/dev/null 2>&1; echo $?) = 1'
ok "-r and -Q together are a usage error" sh -c '! "$E2IMAGE" -r -Q a b 2>/dev/null'

missing_source() {
  out=$("$E2IMAGE" -r "$T/nonexistent" "$T/out.raw" 2>&1); rc=$?
  echo "$out"
  [ $rc = 1 ] && [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q nonexistent &&
    [ ! -e "$T/out.raw" ]
}
ok "a missing source: one error line naming it, exit 1, no output" missing_source

not_a_fs() {
  head -c 1048576 /dev/zero > "$T/zeros.img"
  out=$("$E2IMAGE" -Q "$T/zeros.img" "$T/out.qcow2" 2>&1); rc=$?
  echo "$out"
  [ $rc = 1 ] && [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q zeros.img &&
    [ ! -e "$T/out.qcow2" ] && [ -z "$(ls -A "$T" | grep e2image-)" ]
}
ok "not a filesystem: one error line, no output, no temporary file" not_a_fs

same_file() {
  make_fs "$T/fs.img" 8M -t ext4
  cp "$T/fs.img" "$T/fs.copy"
  ln -s "$T/fs.img" "$T/alias"
  ! "$E2IMAGE" -r "$T/fs.img" "$T/alias" 2>"$T/err" && grep -q "source itself" "$T/err" &&
    cmp "$T/fs.img" "$T/fs.copy"
}
ok "the source as output (through a symlink) is refused and untouched" same_file

# refused_as_source OUTPUT ARGS...: e2image ARGS fs.img OUTPUT is refused with
# one line and fs.img keeps its bytes.
refused_as_source() {
  out=$1; shift
  "$E2IMAGE" "$@" "$T/fs.img" "$out" 2> "$T/err"; rc=$?
  cat "$T/err"
  [ $rc = 1 ] && [ "$(wc -l < "$T/err")" = 1 ] && grep -q "source" "$T/err" &&
    cmp "$T/fs.img" "$T/fs.copy"
}
source_via_links() {
  ln -f "$T/fs.img" "$T/hard" || return 1
  for mode in -r -Q "" -ra; do
    refused_as_source "$T/hard" $mode || { echo "a hard link, mode '$mode'"; return 1; }
    refused_as_source /proc/self/fd/7 $mode 7< "$T/fs.img" || {
      echo "/proc/self/fd, mode '$mode'"; return 1; }
  done
}
ok "the source as output through a hard link or /proc/self/fd is refused, every mode" \
  source_via_links

# A loop device over the source file is the source too, both ways round.
# with_loop SCRIPT: runs SCRIPT with $LOOP over fs.img, then detaches it.
with_loop() {
  LOOP=$(losetup -f --show "$T/fs.img") || { echo "cannot make a loop device here"; return 1; }
  eval "$1"; rc=$?
  losetup -d "$LOOP"
  return $rc
}
loop_refused() {
  for mode in -r -Q "" -ra -rac; do
    refused_as_source "$LOOP" $mode || { echo "output: the loop device, mode '$mode'"; return 1; }
    "$E2IMAGE" $mode "$LOOP" "$T/fs.img" 2> "$T/err" && { echo "loop device as source, mode '$mode'"; return 1; }
    cat "$T/err"; [ "$(wc -l < "$T/err")" = 1 ] && cmp "$T/fs.img" "$T/fs.copy" || return 1
  done
  ! "$E2IMAGE" -I "$LOOP" "$T/fs.img" 2>/dev/null && cmp "$T/fs.img" "$T/fs.copy" || return 1
  # Not the same file: a loop device is captured like any device.
  "$E2IMAGE" -r "$LOOP" "$T/loop.raw" && e2fsck -fn "$T/loop.raw"
}
ok "a loop device over the source, as output or as source of its own file, is refused" \
  with_loop loop_refused

# Every open(2) of the source in a run, from strace.
source_opens() {
  # LeakSanitizer cannot run under ptrace: off for the traced run of a sanitizer build.
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    strace -f -qq -e trace=open,openat -o "$T/trace" "$E2IMAGE" "$@" > /dev/null 2>&1 || return 1
  grep -F "\"$T/fs.img\"" "$T/trace"
}
read_only() {
  for mode in -r -Q "" -rn "-r -s" "-Q -a" "-ra"; do
    rm -f "$T/ro.out"
    source_opens $mode "$T/fs.img" "$T/ro.out" > "$T/opens" || { echo "mode '$mode' failed"; return 1; }
    [ -s "$T/opens" ] || { echo "strace saw no open of the source"; return 1; }
    ! grep -E "O_RDWR|O_WRONLY" "$T/opens" || { echo "mode '$mode' opens the source for writing"; return 1; }
  done
  # The test can fail: a move in place (-ra -O) opens it read-write.
  cp "$T/fs.copy" "$T/fs.img"
  source_opens -ra -O 4096 "$T/fs.img" > "$T/opens" && grep -q O_RDWR "$T/opens"
}
ok "the source is opened read-only in every mode but -I and a -ra move" read_only
cp "$T/fs.copy" "$T/fs.img"

keep_existing() {
  echo "precious" > "$T/existing"
  ! "$E2IMAGE" -Q "$T/zeros.img" "$T/existing" 2>/dev/null && grep -q precious "$T/existing"
}
ok "a failed run leaves an existing output file untouched" keep_existing

ok "bad --cluster-size is refused" sh -c '! "$E2IMAGE" -Q --cluster-size=3000 "$T/fs.img" "$T/x.qcow2" 2>/dev/null'
raw_stdout() {
  "$E2IMAGE" -r "$T/fs.img" - > "$T/stdout.raw" && "$E2IMAGE" -r "$T/fs.img" "$T/file.raw" &&
    same_bytes "$T/stdout.raw" "$T/file.raw"
}
ok "raw to stdout gives the same bytes as raw to a file" raw_stdout

offsets_stdout() {
  { head -c 1048576 /dev/zero; cat "$T/fs.img"; } > "$T/at1m.img"
  "$E2IMAGE" -r -o 1048576 -O 12288 "$T/at1m.img" - > "$T/o-stdout.raw" || return 1
  "$E2IMAGE" -r -o 1048576 -O 12288 "$T/at1m.img" "$T/o-file.raw" || return 1
  "$ORACLE_E2IMAGE" -r -o 1048576 -O 12288 "$T/at1m.img" - 2>/dev/null > "$T/o-oracle.raw" || return 1
  same_bytes "$T/o-stdout.raw" "$T/o-file.raw" && same_bytes "$T/o-stdout.raw" "$T/o-oracle.raw" || return 1
  # qcow2 to raw on stdout, with -O, too.
  "$E2IMAGE" -Q "$T/fs.img" "$T/o.qcow2" && "$E2IMAGE" -r -O 12288 "$T/o.qcow2" - > "$T/q-stdout.raw" &&
    "$E2IMAGE" -r -O 12288 "$T/o.qcow2" "$T/q-file.raw" && same_bytes "$T/q-stdout.raw" "$T/q-file.raw"
}
ok "raw to stdout with -o and -O: the bytes of a file and of Debian's e2image" offsets_stdout

done_testing
