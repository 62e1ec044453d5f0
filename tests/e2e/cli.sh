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

keep_existing() {
  echo "precious" > "$T/existing"
  ! "$E2IMAGE" -Q "$T/zeros.img" "$T/existing" 2>/dev/null && grep -q precious "$T/existing"
}
ok "a failed run leaves an existing output file untouched" keep_existing

ok "bad --cluster-size is refused" sh -c '! "$E2IMAGE" -Q --cluster-size=3000 "$T/fs.img" "$T/x.qcow2" 2>/dev/null'
ok "qcow2 to stdout is refused" sh -c '! "$E2IMAGE" -Q "$T/fs.img" - >/dev/null 2>&1'

raw_stdout() {
  "$E2IMAGE" -r "$T/fs.img" - > "$T/stdout.raw" && "$E2IMAGE" -r "$T/fs.img" "$T/file.raw" &&
    same_bytes "$T/stdout.raw" "$T/file.raw"
}
ok "raw to stdout gives the same bytes as raw to a file" raw_stdout

done_testing
