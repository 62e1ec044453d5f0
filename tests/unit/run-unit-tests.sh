#!/bin/sh
# Runs the GoogleTest binary and reports each test case as a TAP result, so
# that `make check` counts test cases, not binaries.
out=$("$UNIT_TESTS" --gtest_color=no 2>&1)
status=$?
printf '%s\n' "$out" | sed 's/^/# /'
printf '%s\n' "$out" | awk '
  /^\[       OK \] / { n++; name=$4; print "ok " n " - " name; next }
  /^\[  FAILED  \] .*\(/ { n++; name=$4; print "not ok " n " - " name; next }
  END { if (n == 0) { print "not ok 1 - unit test binary ran no test"; n = 1 } print "1.." n }'
if [ $status -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^\[  FAILED  \]'; then
  echo "Bail out! unit test binary exited with status $status"
fi
exit 0
