#!/bin/bash
# The sources keep the project's style: every C++ file is as clang-format
# (with the repository's .clang-format) would write it, and no source or
# test file grows past 600 lines (split along concepts instead).
. "$TESTLIB"
SRC=$(cd "$(dirname "$TESTLIB")/../.." && pwd)
MAX_LINES=600

# tests/tmp holds the other suites' scratch files, made and removed while this runs.
cxx_files() {
  find "$SRC/lib" "$SRC/misc" "$SRC/tests" \( -name corpus -o -path "$SRC/tests/tmp" \) -prune -o \
    \( -name '*.cc' -o -name '*.h' \) -type f -print | sort
}

formatted() {
  command -v clang-format > /dev/null || { echo "clang-format is not installed (apt-get install clang-format)"; return 1; }
  [ -f "$SRC/.clang-format" ] || { echo "no .clang-format in $SRC"; return 1; }
  n=$(cxx_files | wc -l)
  [ "$n" -gt 50 ] || { echo "only $n C++ files found under $SRC: the test cannot judge"; return 1; }
  (cd "$SRC" && cxx_files | xargs clang-format --style=file --dry-run --Werror 2>&1 | head -n 30)
  (cd "$SRC" && cxx_files | xargs clang-format --style=file --dry-run --Werror > /dev/null 2>&1)
}
ok "every C++ file is clang-formatted" formatted

short_files() {
  long=$( { cxx_files; find "$SRC/tests" "$SRC/bench" "$SRC/demo" -path "$SRC/tests/tmp" -prune -o \
    -name '*.sh' -type f -print; } |
    xargs wc -l | awk -v max=$MAX_LINES '$2 != "total" && $1 > max { print $2 ": " $1 " lines" }')
  [ -z "$long" ] || { echo "$long"; return 1; }
}
ok "no source or test file is over $MAX_LINES lines" short_files

done_testing
