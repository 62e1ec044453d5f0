#!/bin/bash
# Damaged qcow2 images made from a qemu-img image by overwriting one field:
# `e2image -r` must print one error line naming the table, the entry and
# the file offset, exit 1, and leave no output file behind.
. "$TESTLIB"

be64() {  # be64 FILE OFFSET: the big-endian 64-bit value there (signed, as bash counts)
  echo $((16#$(od -An -tx1 -j "$2" -N 8 "$1" | tr -d ' \n')))
}
put() {  # put FILE OFFSET BYTES VALUE: stores VALUE big-endian in BYTES bytes
  hex=$(printf "%0$(($3 * 2))x" "$4")
  printf "$(echo "$hex" | sed 's/../\\x&/g')" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# A v3 image, 4 KiB clusters: data at guest 0..64k, a compressed cluster at 128k.
qemu-img create -q -f qcow2 -o cluster_size=4096 "$T/good.qcow2" 1M
qemu-io -c "write -P 0x5a 0 64k" -c "write -c -P 0x6b 128k 4k" "$T/good.qcow2" > /dev/null
L1=$(be64 "$T/good.qcow2" 40)
RT=$(be64 "$T/good.qcow2" 48)
L2=$(( $(be64 "$T/good.qcow2" "$L1") & 0x00fffffffffffe00 ))
DATA0=$(( $(be64 "$T/good.qcow2" "$L2") & 0x00fffffffffffe00 ))
COMPRESSED=$(( $(be64 "$T/good.qcow2" $((L2 + 32 * 8))) & ((1 << 52) - 1) ))

# damaged "DESCRIPTION" EXPECTED-PATTERN OFFSET BYTES VALUE
damaged() {
  pattern=$1; shift
  cp "$T/good.qcow2" "$T/bad.qcow2"
  while [ $# -ge 3 ]; do put "$T/bad.qcow2" "$1" "$2" "$3"; shift 3; done
  rm -f "$T/out.raw"
  "$E2IMAGE" -r "$T/bad.qcow2" "$T/out.raw" > "$T/err" 2>&1; rc=$?
  cat "$T/err"
  [ $rc = 1 ] && [ "$(wc -l < "$T/err")" = 1 ] && grep -Eq -- "$pattern" "$T/err" &&
    [ ! -e "$T/out.raw" ] && ! ls -A "$T" | grep -q e2image-
}

ok "the undamaged image converts" sh -c '"$E2IMAGE" -r "$1/good.qcow2" "$1/ok.raw"' - "$T"
ok "cluster_bits out of range" damaged "cluster_bits 30 .* at offset 20" 20 4 30
ok "unknown incompatible bit" damaged "unknown incompatible .*bit 33 at offset 72" 72 8 $((1 << 33))
ok "header extension longer than the cluster" damaged "header extension .*9999 bytes runs past the first cluster at offset 112" 112 4 $((0x12345678)) 116 4 9999
ok "L1 table offset unaligned" damaged "L1 table 0x$(printf %x $((L1 + 8))) is not cluster aligned at offset 40" 40 8 $((L1 + 8))
ok "L1 table past the end of the file" damaged "L1 table .* runs past the end of the file .* at offset 40" 40 8 $((1 << 40))
ok "L1 entry with reserved bits" damaged "L1 table entry 0: reserved bits .* at offset $L1" "$L1" 8 $((L2 | 1))
ok "L2 table over the refcount table" damaged "L1 table entry 0: L2 table .* overlaps refcount table .* at offset $L1" "$L1" 8 "$RT"
ok "refcount table past the end of the file" damaged "refcount table .* past the end .* at offset 48" 48 8 $((1 << 36))
ok "data cluster past the end of the file" damaged "entry 0 \(guest cluster 0\): data cluster .* past the end .* at offset $L2" "$L2" 8 $(((1 << 40) | (1 << 63)))
ok "data cluster unaligned" damaged "entry 1 \(guest cluster 1\): host offset .* not cluster aligned at offset $((L2 + 8))" $((L2 + 8)) 8 $((DATA0 + 512))
ok "data cluster is the L1 table" damaged "entry 2 \(guest cluster 2\): data cluster .* overlaps L1 table .* at offset $((L2 + 16))" $((L2 + 16)) 8 "$L1"
ok "L2 entry with reserved bits" damaged "entry 3 \(guest cluster 3\): reserved bits .* at offset $((L2 + 24))" $((L2 + 24)) 8 $((DATA0 + 3 * 4096 + 2))
ok "corrupt compressed data" damaged "cannot decompress zlib .* at offset $COMPRESSED" "$COMPRESSED" 4 $((0xffffffff))
ok "too many snapshots" damaged "more than 65536 at offset 60" 60 4 100000
ok "encryption" damaged "AES-encrypted .* at offset 32" 32 4 1

truncated() {
  head -c $((DATA0 + 8192)) "$T/good.qcow2" > "$T/short.qcow2"
  rm -f "$T/out.raw"
  "$E2IMAGE" -r "$T/short.qcow2" "$T/out.raw" > "$T/err" 2>&1; rc=$?
  cat "$T/err"
  [ $rc = 1 ] && [ "$(wc -l < "$T/err")" = 1 ] && grep -q "past the end of the file" "$T/err" &&
    [ ! -e "$T/out.raw" ]
}
ok "a truncated image" truncated

done_testing
