#!/bin/bash
# make demo (demo/demo.sh) works in the tree the tests run in, which was
# built in place: it captures, checks, converts, e2fscks and moves, all clean,
# and shows -p progress.
. "$TESTLIB"
SRC=$(cd "$(dirname "$TESTLIB")/../.." && pwd)

demo_runs() {
  bash "$SRC/demo/demo.sh" "$E2IMAGE" "$SRC" "$T/demo" > "$T/demo.out" 2>&1 || {
    tail -n 30 "$T/demo.out"; return 1; }
  grep -q "^Verdicts: qemu-img check: clean; e2fsck -fn: clean; after the move: clean" "$T/demo.out"
}
ok "make demo: every verdict clean" demo_runs

# The filesystem holds the source tree: the test files themselves are in it.
holds_sources() {
  debugfs -R "ls -l /tests/e2e" "$T/demo/fs.raw" 2>/dev/null | grep -q ' testlib.sh$' &&
    ! debugfs -R "ls -l /tests/unit" "$T/demo/fs.raw" 2>/dev/null | grep -q ' unit_tests$'
}
ok "make demo's filesystem holds the sources, not the build's binaries" holds_sources

shows_progress() {
  grep -q "^Scanning inodes\.\.\.$" "$T/demo.out" &&
    tr '\r' '\n' < "$T/demo.out" | grep -Eq "^Copied ([0-9]+) / \1 blocks \(100%\) in "
}
ok "make demo shows -p progress" shows_progress
done_testing
