#!/bin/bash
# A source mounted read-write is refused without -f, through the loop device
# and through the image file behind it; mounted read-only it is accepted;
# with -f it is captured. Each case runs in a private mount namespace with a
# loop mount, so that nothing stays mounted whatever happens.
. "$TESTLIB"

ok "a small ext4 filesystem" make_fs "$T/fs.img" 8M -t ext4

# in_mount OPTIONS SCRIPT: runs SCRIPT with $DEV (the loop device) and $IMG
# while the image is mounted with OPTIONS in a private mount namespace.
in_mount() {
  unshare --mount bash -c '
    set -u
    mkdir -p "$T/mnt"
    mount --make-rprivate / 2> /dev/null
    mount -o "loop,$1" "$T/fs.img" "$T/mnt" || { echo "cannot loop-mount here"; exit 1; }
    DEV=$(findmnt -n -o SOURCE "$T/mnt")
    IMG="$T/fs.img"
    eval "$2"; rc=$?
    umount "$T/mnt"
    exit $rc' _ "$1" "$2"
}
export T E2IMAGE

refused() {  # refused SOURCE-VARIABLE: -r refuses it, one line, no output
  "$E2IMAGE" -r "$1" "$T/out.raw" 2> "$T/err"; rc=$?
  cat "$T/err"
  [ $rc = 1 ] && [ "$(wc -l < "$T/err")" = 1 ] && grep -q "mounted read-write" "$T/err" &&
    grep -q -- "-f" "$T/err" && [ ! -e "$T/out.raw" ]
}
export -f refused

ok "mounted read-write: the loop device is refused without -f" \
  in_mount rw 'refused "$DEV"'
ok "mounted read-write: the image file behind the loop device is refused too" \
  in_mount rw 'refused "$IMG"'
ok "mounted read-write with -f: captured, with the image written" \
  in_mount rw '"$E2IMAGE" -r -f "$DEV" "$T/forced.raw" && [ -s "$T/forced.raw" ]'
ok "mounted read-only: captured without -f" \
  in_mount ro '"$E2IMAGE" -Q "$DEV" "$T/ro.qcow2" && qemu-img check -q "$T/ro.qcow2"'

# An e2i image (no -r or -Q) of a filesystem mounted read-write is taken
# without -f by e2fsprogs' e2image, whose man page suggests taking them
# regularly: ours takes it too, and both refuse -r there.
e2i_of_mounted() {
  for prog in "$E2IMAGE" "$ORACLE_E2IMAGE"; do
    rm -f "$T/m.e2i" "$T/m.raw"
    "$prog" "$DEV" "$T/m.e2i" 2> /dev/null || { echo "$prog refused the e2i image"; return 1; }
    dumpe2fs -i "$T/m.e2i" > /dev/null 2>&1 || { echo "$prog: dumpe2fs -i fails"; return 1; }
    if "$prog" -r "$DEV" "$T/m.raw" 2> /dev/null; then echo "$prog took -r"; return 1; fi
  done
}
export ORACLE_E2IMAGE
export -f e2i_of_mounted
ok "mounted read-write: an e2i image is taken without -f, as by e2fsprogs' e2image" \
  in_mount rw e2i_of_mounted

done_testing
