#!/bin/bash
# A source that is not what the program reads is refused in one line saying
# what it holds, as libblkid identifies it: qcow2-inspect on raw images
# (an ext4 filesystem, a swap area, zeros, unknown bytes), e2image on
# sources that are not ext2/3/4 (also at an offset, and qcow2 images).
. "$TESTLIB"
: "${QCOW2_INSPECT:?QCOW2_INSPECT must point at the built misc/qcow2-inspect}"
Q=$QCOW2_INSPECT

mke2fs -q -F -t ext4 "$T/fs.raw" 4M > /dev/null
truncate -s 1M "$T/swap.img" && mkswap "$T/swap.img" > /dev/null 2>&1
truncate -s 1M "$T/zeros.img"
pseudo_random 65536 > "$T/random.img"
truncate -s 4M "$T/minix-at-1m.img"
truncate -s 3M "$T/minix.img" && mkfs.minix "$T/minix.img" > /dev/null
dd if="$T/minix.img" of="$T/minix-at-1m.img" bs=1M seek=1 conv=notrunc status=none
qemu-img create -q -f qcow2 "$T/disk.qcow2" 4M

# refused EXPECTED-STDERR COMMAND...: exit 1, nothing on stdout, stderr is
# the one line given.
refused() {
  expected=$1; shift
  "$@" > "$T/out" 2> "$T/err"; rc=$?
  cat "$T/err"
  [ "$rc" = 1 ] && [ ! -s "$T/out" ] && [ "$(cat "$T/err")" = "$expected" ]
}
inspect_refuses() {  # inspect_refuses FILE WHAT: every command says the same
  for cmd in info check map dump; do
    refused "qcow2-inspect: $1: not a qcow2 image$2" "$Q" $cmd "$1" || return 1
  done
}
ok "qcow2-inspect on a raw ext4 image: says it holds an ext4 filesystem" \
  inspect_refuses "$T/fs.raw" ": ext4 filesystem"
ok "qcow2-inspect on a swap area: says so" inspect_refuses "$T/swap.img" ": swap"
ok "qcow2-inspect on zeros: says so" inspect_refuses "$T/zeros.img" ": all zeros"
ok "qcow2-inspect on unknown bytes: no qcow2 magic" \
  inspect_refuses "$T/random.img" " (no qcow2 magic at offset 0)"

e2image_refuses() {  # e2image_refuses FILE WHAT [OPTIONS]: -r fails, names what FILE holds
  file=$1; what=$2; shift 2
  refused "e2image: $file: cannot open filesystem: Bad magic number in super-block (found: $what)" \
    "$E2IMAGE" -r "$@" "$file" "$T/out.raw" && [ ! -e "$T/out.raw" ]
}
ok "e2image on a minix filesystem: says so" e2image_refuses "$T/minix.img" "minix filesystem"
ok "e2image -o 1M on a minix filesystem at 1 MiB: says so" \
  e2image_refuses "$T/minix-at-1m.img" "minix filesystem" -o 1048576
ok "e2image on a swap area: says so" e2image_refuses "$T/swap.img" "swap"
ok "e2image -Q on a qcow2 image: says it is one" \
  refused "e2image: $T/disk.qcow2: cannot open filesystem: Bad magic number in super-block (found: qcow2 image)" \
  "$E2IMAGE" -Q "$T/disk.qcow2" "$T/out.qcow2"
# Debian's e2image names the same kind (libblkid's words, through its own check).
ok "e2fsprogs' e2image names the same filesystem" \
  sh -c '"$1" -r "$2" "$3" 2>&1 | grep -q "contains a minix file system"' sh "$ORACLE_E2IMAGE" "$T/minix.img" "$T/o.raw"
done_testing
