#!/bin/bash
# -p in every mode: e2image's words ("Copying N / M blocks (P%)" redrawn
# after a carriage return, then "Copied N / M blocks (100%) in HH:MM:SS"),
# with the rate and time left only on a terminal.
. "$TESTLIB"

make_fs "$T/fs.img" 16M -t ext4 || exit 1
"$E2IMAGE" -Q "$T/fs.img" "$T/fs.qcow2" || exit 1

# summary ARGS...: the run succeeds; its last line, after the last carriage
# return, is the 100% line; no escape sequence and no rate off a terminal.
summary() {
  "$E2IMAGE" -p "$@" 2> "$T/err" > /dev/null || { cat "$T/err"; return 1; }
  cat -A "$T/err"
  tr '\r' '\n' < "$T/err" | tail -n 1 |
    grep -Eq '^(Copied|Installed) ([0-9]+) / \2 blocks \(100%\) in [0-9]{2}:[0-9]{2}:[0-9]{2}$' &&
    ! grep -q $'\033' "$T/err" && ! grep -q 'MiB/s' "$T/err"
}
ok "-p with -r" summary -r "$T/fs.img" "$T/a.raw"
ok "-p with -Q" summary -Q "$T/fs.img" "$T/a.qcow2"
ok "-p in normal (e2i) mode" summary "$T/fs.img" "$T/a.e2i"
ok "-p converting qcow2 to raw" summary -r "$T/fs.qcow2" "$T/b.raw"
ok "-p with -ra copy" summary -ra "$T/fs.img" "$T/copy.img"
ok "-p with an in-place move" summary -ra -O 4096 "$T/copy.img"
ok "-p with -I" summary -I "$T/fs.img" "$T/a.e2i"
ok "-p with -rn: the blocks on stdout, no copy to report" sh -c '
  "$E2IMAGE" -p -rn "$1" "$2" > "$3" 2> "$4" && grep -q "^Writing block" "$3" && ! grep -q Copied "$4"' \
  _ "$T/fs.img" "$T/never.raw" "$T/rn.out" "$T/rn.err"

on_a_terminal() {
  script -qec "'$E2IMAGE' -p -r '$T/fs.img' '$T/tty.raw'" /dev/null > "$T/tty.out" || return 1
  grep -q $'\r' "$T/tty.out" && grep -q $'\033\\[K' "$T/tty.out" && grep -q "(100%)" "$T/tty.out"
}
ok "-p on a terminal redraws one line" on_a_terminal

# A raw image on stdout read by a slow reader: the copy waits, so progress
# lines come before the summary (every 200 ms on a terminal, 1 s otherwise).
slow_terminal() {
  script -qec "'$E2IMAGE' -p -r '$T/fs.img' - | (sleep 2; cat > /dev/null)" /dev/null > "$T/slow.out" ||
    return 1
  tr '\r' '\n' < "$T/slow.out" | cat -A
  # The counts, then the rate and the time left; the summary over it.
  grep -Eq $'\rCopying [0-9]+ / [0-9]+ blocks \\([0-9]+%\\), [0-9.]+ MiB/s, [0-9:]{8} left\033\\[K\r' \
    "$T/slow.out"
}
ok "-p on a terminal: blocks, percent, rate and time left, redrawn in place" slow_terminal

slow_plain() {
  { "$E2IMAGE" -p -r "$T/fs.img" - 2> "$T/plain.err" | (sleep 3; cat > /dev/null); } || return 1
  cat -A "$T/plain.err"
  # Redrawn in place with no rate (what GParted parses), then the summary.
  grep -Eq $'\rCopying [0-9]+ / [0-9]+ blocks \\(([0-9]|[1-9][0-9])%\\) *\r' "$T/plain.err" &&
    ! grep -q 'MiB/s' "$T/plain.err" && [ "$(grep -c . "$T/plain.err")" = 2 ] &&
    tr '\r' '\n' < "$T/plain.err" | tail -n 1 | grep -q "^Copied .*(100%) in 00:00:0[0-9] at [0-9.]* MB/s$"
}
ok "-p not on a terminal: redrawn in place every second without rate, then the summary" slow_plain

ok "without -p nothing is printed" sh -c '"$E2IMAGE" -r "$1" "$2" 2>&1 | wc -c | grep -qx 0' _ \
  "$T/fs.img" "$T/quiet.raw"

done_testing
