#!/bin/bash
# damaged.sh with -s: on each damaged filesystem, e2fsck -fn says of the
# scrambled image what it says of the original, names and paths aside.
SCRAMBLE_ARGS="-s --scramble-seed=5"
. "$(dirname "$TESTLIB")/damaged.sh"
