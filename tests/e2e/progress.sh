#!/bin/bash
# -p in every mode: a final summary line on stderr (plain lines when stderr
# is not a terminal), and a line redrawn in place on a terminal.
. "$TESTLIB"

make_fs "$T/fs.img" 16M -t ext4 || exit 1
"$E2IMAGE" -Q "$T/fs.img" "$T/fs.qcow2" || exit 1

# summary DESC ARGS...: the run succeeds and ends with a 100% line, no \r
# (a qcow2 image's capture record, printed once converted, aside).
summary() {
  "$E2IMAGE" -p "$@" 2> "$T/err" > /dev/null || { cat "$T/err"; return 1; }
  cat "$T/err"
  grep -v '^e2image: .*: e2image-ng ' "$T/err" | tail -n 1 | grep -Eq '[0-9]+ / [0-9]+ blocks \(100%\) in [0-9.]+s, [0-9.]+ MiB/s' &&
    ! grep -q $'\r' "$T/err"
}
ok "-p with -r" summary -r "$T/fs.img" "$T/a.raw"
ok "-p with -Q" summary -Q "$T/fs.img" "$T/a.qcow2"
ok "-p in normal (e2i) mode" summary "$T/fs.img" "$T/a.e2i"
ok "-p converting qcow2 to raw" summary -r "$T/fs.qcow2" "$T/b.raw"
ok "-p with -ra copy" summary -ra "$T/fs.img" "$T/copy.img"
ok "-p with an in-place move" summary -ra -O 4096 "$T/copy.img"
ok "-p with -rn" summary -rn "$T/fs.img" "$T/never.raw"

install_progress() {
  "$E2IMAGE" -p -I "$T/fs.img" "$T/a.e2i" 2> "$T/err" || return 1
  cat "$T/err"
  grep -Eq '^Inode table blocks installed: [0-9]+ / [0-9]+ blocks \(100%\) in [0-9.]+s, [0-9.]+ MiB/s$' \
    "$T/err" && grep -q "^Installed the metadata of" "$T/err"
}
ok "-p with -I" install_progress

on_a_terminal() {
  script -qec "'$E2IMAGE' -p -r '$T/fs.img' '$T/tty.raw'" /dev/null > "$T/tty.out" || return 1
  grep -q $'\r' "$T/tty.out" && grep -q $'\033\\[K' "$T/tty.out" && grep -q "(100%)" "$T/tty.out"
}
ok "-p on a terminal redraws one line" on_a_terminal

# A raw image on stdout read by a slow reader: the copy waits, so progress
# lines come before the summary (every 200 ms on a terminal, 5 s otherwise).
slow_terminal() {
  script -qec "'$E2IMAGE' -p -r '$T/fs.img' - | (sleep 2; cat > /dev/null)" /dev/null > "$T/slow.out" ||
    return 1
  tr '\r' '\n' < "$T/slow.out" | cat -A
  # A line with the time left, then the summary over it: no newline between.
  grep -Eq $'\r[A-Za-z]+: [0-9]+ / [0-9]+ blocks \\([0-9]+%\\), [0-9.]+ MiB/s, [0-9]+s left\033\\[K\r' \
    "$T/slow.out"
}
ok "-p on a terminal: blocks, percent, rate and time left, redrawn in place" slow_terminal

slow_plain() {
  { "$E2IMAGE" -p -r "$T/fs.img" - 2> "$T/plain.err" | (sleep 6; cat > /dev/null); } || return 1
  cat "$T/plain.err"
  ! grep -q $'\r' "$T/plain.err" &&
    grep -Eq '^Copied: [0-9]+ / [0-9]+ blocks \([0-9]+%\), [0-9.]+ MiB/s, [0-9]+s left$' "$T/plain.err" &&
    tail -n 1 "$T/plain.err" | grep -q "(100%) in"
}
ok "-p not on a terminal: periodic plain lines with the time left, then the summary" slow_plain

ok "without -p nothing is printed" sh -c '"$E2IMAGE" -r "$1" "$2" 2>&1 | wc -c | grep -qx 0' _ \
  "$T/fs.img" "$T/quiet.raw"

done_testing
