#!/bin/bash
# Damaged qcow2 images made from qemu-img images by overwriting one field
# (58 of them, and a truncated one):
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

# damaged_from BASE EXPECTED-PATTERN [OFFSET BYTES VALUE]...: the damaged copy
# of BASE gives one error line matching the pattern, exit 1 and no output.
damaged_from() {
  base=$1; shift
  damaged_base=$base damaged "$@"
}
# damaged EXPECTED-PATTERN [OFFSET BYTES VALUE]...: the same for good.qcow2
damaged() {
  pattern=$1; shift
  cp "${damaged_base:-$T/good.qcow2}" "$T/bad.qcow2"
  while [ $# -ge 3 ]; do put "$T/bad.qcow2" "$1" "$2" "$3"; shift 3; done
  rm -f "$T/out.raw"
  "$E2IMAGE" -r "$T/bad.qcow2" "$T/out.raw" > "$T/err" 2>&1; rc=$?
  cat "$T/err"
  [ $rc = 1 ] && [ "$(error_lines "$T/err" | wc -l)" = 1 ] && grep -Eq -- "$pattern" "$T/err" &&
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

# --- more hand-made damage, one field each, on qemu-made images ---------------
RB=$(be64 "$T/good.qcow2" "$RT")
H="qcow2 header:"
ok "version 4" damaged "$H unsupported version 4 at offset 4" 4 4 4
ok "version 1" damaged "$H unsupported version 1 at offset 4" 4 4 1
ok "header_length not a multiple of 8" damaged "$H bad header_length 100 at offset 100" 100 4 100
ok "refcount_order 7" damaged "$H refcount_order 7 out of range 0..6 at offset 96" 96 4 7
ok "unknown compression type" damaged "unknown compression type 2 at offset 104" 72 8 8 104 1 2
ok "extended L2 with 4 KiB clusters" damaged "at least 16 KiB, not 4096 at offset 20" 72 8 16
ok "LUKS encryption" damaged "LUKS-encrypted .* at offset 32" 32 4 2
ok "backing file name longer than 1023 bytes" damaged "$H backing file name longer than 1023 bytes at offset 16" 8 8 512 16 4 2000
ok "backing file name outside the first cluster" damaged "$H backing file name outside the first cluster at offset 8" 8 8 $((1 << 20)) 16 4 8
ok "backing file name inside the fixed header" damaged "$H backing file name overlaps the fixed header at offset 8" 8 8 50 16 4 8
ok "L1 table in the header cluster" damaged "L1 table 0x0 overlaps the header cluster at offset 40" 40 8 0
ok "L1 table too small for the virtual size" damaged "L1 table has 0 entries, too few for virtual size 1048576 at offset 36" 36 4 0
ok "L1 table over 32 MiB" damaged "L1 table of 8388608 entries is over the 32 MiB limit at offset 36" 36 4 $((1 << 23))
ok "L2 table past the end of the file" damaged "L1 table entry 0: L2 table 0x10000000000 .* runs past the end of the file .* at offset $L1" "$L1" 8 $(((1 << 63) | (1 << 40)))
ok "refcount table unaligned" damaged "refcount table 0x$(printf %x $((RT + 512))) is not cluster aligned at offset 48" 48 8 $((RT + 512))
ok "refcount table of no clusters" damaged "refcount table has no clusters at offset 56" 56 4 0
ok "refcount table entry with reserved bits" damaged "refcount table entry 0: reserved bits set in .* at offset $RT" "$RT" 8 $((RB | 1))
ok "refcount block unaligned" damaged "refcount table entry 0: refcount block 0x$(printf %x $((RB + 512))) is not cluster aligned at offset $RT" "$RT" 8 $((RB + 512))
ok "refcount block past the end of the file" damaged "refcount table entry 0: refcount block .* runs past the end of the file .* at offset $RT" "$RT" 8 $((1 << 40))
ok "refcount block is the L1 table" damaged "refcount table entry 0: refcount block .* overlaps L1 table .* at offset $RT" "$RT" 8 "$L1"
ok "L2 entry with a high reserved bit" damaged "entry 0 \(guest cluster 0\): reserved bits set in 0x81.* at offset $L2" "$L2" 8 $((DATA0 | (1 << 63) | (1 << 56)))
ok "data cluster is the refcount block" damaged "entry 2 \(guest cluster 2\): data cluster .* overlaps refcount table entry 0: refcount block .* at offset $((L2 + 16))" $((L2 + 16)) 8 $(((1 << 63) | RB))
ok "data cluster is the L2 table" damaged "entry 1 \(guest cluster 1\): data cluster .* overlaps L1 table entry 0: L2 table .* at offset $((L2 + 8))" $((L2 + 8)) 8 $(((1 << 63) | L2))
C=$((L2 + 32 * 8))
ok "compressed data in the header cluster" damaged "entry 32 \(guest cluster 32\): compressed data at 0x64 points into the header cluster at offset $C" "$C" 8 $(((1 << 62) | 100))
ok "compressed data past the end of the file" damaged "entry 32 \(guest cluster 32\): compressed data at 0x10000000000 is past the end of the file .* at offset $C" "$C" 8 $(((1 << 62) | (1 << 40)))
ok "compressed data inside the refcount block" damaged "entry 32 \(guest cluster 32\): compressed data .* overlaps refcount table entry 0: refcount block .* at offset $C" "$C" 8 $(((1 << 62) | (RB + 16)))

# A 4 MiB image (two L1 entries) with a snapshot and a bitmap.
S=$T/sb.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4096 "$S" 4M
qemu-io -c "write -P 1 0 64k" "$S" > /dev/null && qemu-img snapshot -c s1 "$S" &&
  qemu-io -c "write -P 2 0 8k" "$S" > /dev/null && qemu-img bitmap --add "$S" b0
SL1=$(be64 "$S" 40)
SN=$(be64 "$S" 64)
EXT=$(LC_ALL=C grep -obUaP '\x23\x85\x28\x75' "$S" | head -1 | cut -d: -f1)  # bitmaps extension
DIR=$(be64 "$S" $((EXT + 24)))
ok "two L1 entries, one L2 table" damaged_from "$S" "L1 table entry 1: L2 table .* overlaps L1 table entry 0: L2 table .* at offset $((SL1 + 8))" $((SL1 + 8)) 8 "$(be64 "$S" "$SL1")"
ok "snapshot table unaligned" damaged_from "$S" "snapshot table 0x$(printf %x $((SN + 512))) is not cluster aligned at offset 64" 64 8 $((SN + 512))
ok "snapshot table past the end of the file" damaged_from "$S" "snapshot table entry 0 runs past the end of the file at offset $((1 << 40))" 64 8 $((1 << 40))
ok "snapshot L1 table unaligned" damaged_from "$S" "snapshot table entry 0: L1 table .* is not cluster aligned at offset $SN" "$SN" 8 $(($(be64 "$S" "$SN") + 512))
ok "snapshot L1 table is the active L1 table" damaged_from "$S" "snapshot table entry 0: L1 table .* overlaps L1 table .* at offset $SN" "$SN" 8 "$SL1"
ok "bitmap directory unaligned" damaged_from "$S" "bitmap directory 0x$(printf %x $((DIR + 512))) is not cluster aligned at offset $((EXT + 24))" $((EXT + 24)) 8 $((DIR + 512))
ok "bitmap directory past the end of the file" damaged_from "$S" "bitmap directory .* runs past the end of the file .* at offset $((EXT + 24))" $((EXT + 24)) 8 $((1 << 40))
ok "bitmap directory of 8 bytes" damaged_from "$S" "bitmap directory size 8 out of range .* at offset $((EXT + 16))" $((EXT + 16)) 8 8
ok "bitmap table is the refcount table" damaged_from "$S" "bitmap directory entry 0: bitmap table .* overlaps refcount table .* at offset $DIR" "$DIR" 8 "$(be64 "$S" 48)"

# Extended L2 entries (16 KiB clusters): entry 0 data, entry 4 compressed.
X=$T/x.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=16384 "$X" 4M
qemu-io -c "write -P 1 0 6k" -c "write -c -P 2 64k 16k" "$X" > /dev/null
XL2=$(( $(be64 "$X" "$(be64 "$X" 40)") & 0x00fffffffffffe00 ))
ok "subcluster both allocated and zero" damaged_from "$X" "entry 0 \(guest cluster 0\): subclusters both allocated and zero in bitmap 0x100000001 at offset $XL2" $((XL2 + 8)) 8 $(((1 << 32) | 1))
ok "subclusters allocated without a host cluster" damaged_from "$X" "entry 1 \(guest cluster 1\): subclusters allocated without a host cluster .* at offset $((XL2 + 16))" $((XL2 + 24)) 8 1
ok "compressed cluster with a subcluster bitmap" damaged_from "$X" "entry 4 \(guest cluster 4\): compressed cluster with a nonzero subcluster bitmap 0x5 at offset $((XL2 + 64))" $((XL2 + 72)) 8 5
ok "zero flag in an extended L2 entry" damaged_from "$X" "entry 0 \(guest cluster 0\): zero flag set in an extended L2 entry: .* at offset $XL2" "$XL2" 8 $(($(be64 "$X" "$XL2") | 1))

V=$T/v2.qcow2
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4096 "$V" 4M
qemu-io -c "write -P 1 0 8k" "$V" > /dev/null
VL2=$(( $(be64 "$V" "$(be64 "$V" 40)") & 0x00fffffffffffe00 ))
ok "zero flag in a version 2 image" damaged_from "$V" "entry 1 \(guest cluster 1\): zero flag set in a version 2 image: .* at offset $((VL2 + 8))" $((VL2 + 8)) 8 $(($(be64 "$V" $((VL2 + 8))) | 1))

D=$T/df.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4096,data_file="$T/df.raw" "$D" 4M
qemu-io -c "write -P 1 0 8k" "$D" > /dev/null
DL2=$(( $(be64 "$D" "$(be64 "$D" 40)") & 0x00fffffffffffe00 ))
ok "data file offset not the guest offset" damaged_from "$D" "entry 1 \(guest cluster 1\): data file offset 0x5000 differs from the guest offset 0x1000 at offset $((DL2 + 8))" $((DL2 + 8)) 8 $(((1 << 63) | 0x5000))
ok "compressed cluster in a data file image" damaged_from "$D" "entry 2 \(guest cluster 2\): compressed cluster in an image with an external data file at offset $((DL2 + 16))" $((DL2 + 16)) 8 $(((1 << 62) | 0x5000))
ok "snapshots in a data file image" damaged_from "$D" "internal snapshots in an image with an external data file at offset 60" 60 4 1

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
