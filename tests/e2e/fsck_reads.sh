#!/bin/bash
# damaged.sh measured: on each damaged filesystem, every byte e2fsck -fn
# reads from the original (traced by fsck_reads.pl) is in the -r image, in
# the -Q image converted back, in the -s image unless in a block holding
# names, and (the inode tables) in the e2i image.
MEASURE_READS=1
. "$(dirname "$TESTLIB")/damaged.sh"
