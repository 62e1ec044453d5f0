#!/bin/bash
# Replays every input of tests/fuzz/corpus (seeds and regression-* files,
# the inputs that once crashed a harness) through the harnesses built with
# the ordinary compiler: one TAP result per input.
set -u
: "${FUZZ_REPLAY_DIR:?FUZZ_REPLAY_DIR must point at the built replay programs}"
corpus=$(cd "$(dirname "$0")" && pwd)/corpus
n=0
for dir in "$corpus"/*/; do
  harness=$(basename "$dir")
  prog="$FUZZ_REPLAY_DIR/${harness/fuzz_/replay_}"
  if [ ! -x "$prog" ]; then  # a corpus without its replay program is a build mistake
    n=$((n + 1)); echo "not ok $n - $harness: no replay program $prog"; continue
  fi
  for input in "$dir"*; do
    n=$((n + 1))
    if out=$("$prog" "$input" 2>&1); then
      echo "ok $n - $harness $(basename "$input")"
    else
      echo "not ok $n - $harness $(basename "$input")"
      printf '%s\n' "$out" | tail -n 20 | sed 's/^/# /'
    fi
  done
done
[ $n -gt 0 ] || { echo "not ok 1 - no corpus input found"; n=1; }
echo "1..$n"
