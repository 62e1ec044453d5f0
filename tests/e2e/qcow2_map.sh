#!/bin/bash
# qcow2-inspect map against qemu-img map --output=json on qemu-made images:
# extended L2 entries (partly written, zero and discarded subclusters), every
# cluster kind, preallocation, external data files, and backing chains (qcow2
# and raw, relative names, probed formats), which map follows as qemu-img
# does, with the depth of the layer each range comes from.
. "$TESTLIB"
: "${QCOW2_INSPECT:?QCOW2_INSPECT must point at the built misc/qcow2-inspect}"
Q=$QCOW2_INSPECT

# The same ranges as qemu-img map (qemu 7.2 has no "compressed" field).
same_map() {
  qemu-img map --output=json "$1" | jq -c '.[]' > "$T/qm" || return 1
  "$Q" map --json "$1" | jq -c '.[] | del(.compressed)' > "$T/om" || return 1
  echo "qemu-img map: $(wc -l < "$T/qm") ranges"
  [ -s "$T/om" ] && diff "$T/qm" "$T/om"
}
io() {  # io IMAGE QEMU-IO-COMMAND...
  f=$1; shift
  args=()
  for c in "$@"; do args+=(-c "$c"); done
  qemu-io "${args[@]}" "$f" > "$T/io.out" && ! grep -qi "error\|usage" "$T/io.out" || { cat "$T/io.out"; return 1; }
}
# Partial writes, zero writes (plain and on allocated clusters), discards and compressed clusters.
W=("write -P 1 0 6k" "write -P 2 64k 64k" "write -z 200k 2k" "write -z 256k 64k"
   "write -P 4 2M 3k" "write -P 5 2107392 1k" "discard 192k 64k"
   "write -z -u 512k 128k" "write -P 6 3M 200k" "discard 3211264 64k" "write -z 3149824 2k")

made() {  # made IMAGE CREATE-OPTIONS [CLUSTER-SIZE]: an 8 MiB image with the writes of W
  c="write -c -P 3 4M ${3:-64k}"  # compressed writes are of whole clusters
  [ -z "${nocompress:-}" ] || c="write -P 3 4M 64k"
  qemu-img create -q -f qcow2 -o "$2" "$1" 8M && io "$1" "${W[@]}" "$c" && same_map "$1"
}
for cs in 16k 32k 64k 512k 2M; do
  ok "extended L2, cluster_size=$cs: subclusters data, zero, unallocated as qemu-img map" \
    made "$T/x$cs.qcow2" "extended_l2=on,cluster_size=$cs" $cs
done
for cs in 512 4k 64k 2M; do
  ok "compat=1.1, cluster_size=$cs: as qemu-img map" made "$T/s$cs.qcow2" "cluster_size=$cs" $cs
  ok "compat=0.10, cluster_size=$cs: as qemu-img map" made "$T/v$cs.qcow2" "compat=0.10,cluster_size=$cs" $cs
done
ok "zstd compressed clusters: as qemu-img map" made "$T/z.qcow2" "compression_type=zstd"
ok "refcount_bits=1, lazy refcounts: as qemu-img map" \
  made "$T/r1.qcow2" "refcount_bits=1,lazy_refcounts=on,cluster_size=4k"

prealloc() {  # prealloc MODE EXTRA-OPTIONS
  f=$T/p$1$2.qcow2
  qemu-img create -q -f qcow2 -o "preallocation=$1$2" "$f" 8M &&
    io "$f" "write -P 1 0 6k" "write -z 1M 64k" "write -z 2M 4k" "discard 3M 64k" && same_map "$f"
}
for mode in metadata falloc full; do
  ok "preallocation=$mode: as qemu-img map (holes of the file under data clusters too)" prealloc $mode ""
  ok "preallocation=$mode, extended L2: as qemu-img map" prealloc $mode ",extended_l2=on"
done

# External data files hold no compressed clusters.
nocompress=1
ok "external data file (offsets in it, cluster 0 at offset 0): as qemu-img map" \
  made "$T/df.qcow2" "data_file=$T/df.raw"
ok "external data file, data_file_raw: as qemu-img map" \
  made "$T/dfr.qcow2" "data_file=$T/dfr.raw,data_file_raw=on"
ok "external data file, extended L2: as qemu-img map" \
  made "$T/dfx.qcow2" "data_file=$T/dfx.raw,extended_l2=on"
nocompress=

snapshots_bitmaps() {
  f=$T/sn.qcow2
  qemu-img create -q -f qcow2 "$f" 8M && io "$f" "write -P 1 0 128k" &&
    qemu-img snapshot -c s "$f" && io "$f" "write -P 2 64k 64k" "discard 0 64k" &&
    qemu-img bitmap --add "$f" b && same_map "$f"
}
ok "snapshot and bitmap: map shows the active layer, as qemu-img map" snapshots_bitmaps

# Backing chains: a 6 MiB qcow2 base under an 8 MiB extended-L2 overlay under a 10 MiB top.
chain() {
  qemu-img create -q -f qcow2 -o cluster_size=4k "$T/base.qcow2" 6M &&
    io "$T/base.qcow2" "write -P 1 0 1M" "write -z 1M 64k" "write -c -P 2 2M 64k" &&
    qemu-img create -q -f qcow2 -o extended_l2=on -b base.qcow2 -F qcow2 "$T/mid.qcow2" 8M &&
    io "$T/mid.qcow2" "write -P 3 4k 4k" "write -z 200k 2k" "write -P 4 5M 100k" &&
    qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 "$T/top.qcow2" 10M &&
    io "$T/top.qcow2" "write -P 5 0 2k" "write -z 300k 64k" || return 1
  same_map "$T/mid.qcow2" && same_map "$T/top.qcow2" || return 1
  # Ranges from every depth, and past the end of a shorter backing file.
  jq -e '[.[].depth] | unique == [0, 1, 2]' < <("$Q" map --json "$T/top.qcow2")
}
ok "chain of three, an extended L2 layer in the middle: depths as qemu-img map" chain
raw_backing() {
  mkdir -p "$T/sub" && truncate -s 3M "$T/sub/r.raw" &&
    head -c 20480 /dev/urandom | dd of="$T/sub/r.raw" bs=4k seek=100 conv=notrunc 2> /dev/null &&
    printf abc >> "$T/sub/r.raw" &&
    qemu-img create -q -f qcow2 -b r.raw -F raw "$T/sub/ro.qcow2" 8M &&
    io "$T/sub/ro.qcow2" "write -P 1 0 4k" || return 1
  same_map "$T/sub/ro.qcow2" || return 1
  qemu-img create -q -f qcow2 -o extended_l2=on -b ro.qcow2 -F qcow2 "$T/sub/ro2.qcow2" 8M &&
    io "$T/sub/ro2.qcow2" "write -P 1 64k 4k" "write -z 1M 2k" && same_map "$T/sub/ro2.qcow2"
}
ok "raw backing file with holes and an odd size, named relative to the overlay: as qemu-img map" raw_backing
probed_format() {
  # Renaming the backing format extension leaves an unknown one (skipped):
  # both tools then probe the backing file's format.
  cp "$T/top.qcow2" "$T/probe.qcow2"
  at=$(LC_ALL=C grep -obUaP '\xe2\x79\x2a\xca' "$T/probe.qcow2" | head -1 | cut -d: -f1)
  [ -n "$at" ] && printf '\x12\x34\x56\x78' | dd of="$T/probe.qcow2" bs=1 seek="$at" conv=notrunc 2> /dev/null &&
    qemu-img info --output=json "$T/probe.qcow2" | jq -e '."backing-filename-format" == null' > /dev/null &&
    same_map "$T/probe.qcow2"
}
ok "backing format probed (no backing format extension): as qemu-img map" probed_format

text_output() {
  "$Q" map "$T/sub/ro.qcow2" > "$T/text" || return 1
  cat "$T/text"
  head -1 "$T/text" | grep -q "^Offset  *Length  *Mapped to  *Depth  *Kind  *File$" &&
    grep -q "^0x0  *0x10000  *0x[0-9a-f]*  *0  *data  *$T/sub/ro.qcow2$" "$T/text" &&
    grep -q "^0x[0-9a-f]*  *0x[0-9a-f]*  *0x[0-9a-f]*  *1  *data  *$T/sub/r.raw$" "$T/text" &&
    grep -q "^0x[0-9a-f]*  *0x[0-9a-f]*  *-  *0  *unallocated  *-$" "$T/text"
}
ok "text output: offset, length, host offset, depth, kind and file of each range" text_output

missing_backing() {
  qemu-img create -q -f qcow2 -b gone.qcow2 -F qcow2 -u "$T/orphan.qcow2" 4M || return 1
  ! qemu-img map "$T/orphan.qcow2" > /dev/null 2>&1 || { echo "qemu-img map succeeded"; return 1; }
  "$Q" map --json "$T/orphan.qcow2" > "$T/o.out" 2> "$T/o.err"; rc=$?
  cat "$T/o.err"
  [ $rc = 1 ] && [ ! -s "$T/o.out" ] && [ "$(wc -l < "$T/o.err")" = 1 ] &&
    grep -q "orphan.qcow2: cannot open backing file 'gone.qcow2'" "$T/o.err"
}
ok "missing backing file: one error line naming it, exit 1, no output (qemu-img map fails too)" missing_backing
backing_loop() {
  qemu-img create -q -u -f qcow2 -b l2.qcow2 -F qcow2 "$T/l1.qcow2" 1M &&
    qemu-img create -q -u -f qcow2 -b l1.qcow2 -F qcow2 "$T/l2.qcow2" 1M || return 1
  timeout 10 "$Q" map "$T/l1.qcow2" > "$T/o.out" 2> "$T/o.err"; rc=$?
  cat "$T/o.err"
  [ $rc = 1 ] && [ ! -s "$T/o.out" ] && grep -q "loops back in the chain" "$T/o.err"
}
ok "backing loop: an error, not followed forever" backing_loop
bad_subclusters() {
  cp "$T/x64k.qcow2" "$T/bad.qcow2"
  l1=$(od -An -tx8 --endian=big -j40 -N8 "$T/bad.qcow2" | tr -d ' ')
  l2=$(( $(od -An -tu8 --endian=big -j$((0x$l1)) -N8 "$T/bad.qcow2") & 0x00fffffffffffe00 ))
  # Entry 0's subcluster 0 both allocated and zero.
  perl -e 'open F,"+<",$ARGV[0] or die; seek F,$ARGV[1],0; print F pack("Q>",0x0000000100000001)' \
    "$T/bad.qcow2" $((l2 + 8))
  "$Q" map "$T/bad.qcow2" > "$T/o.out" 2> "$T/o.err"; rc=$?
  cat "$T/o.err"
  [ $rc = 1 ] && [ ! -s "$T/o.out" ] && [ "$(wc -l < "$T/o.err")" = 1 ] &&
    grep -q "L2 table of L1 entry 0, entry 0: subclusters both allocated and zero .* at offset $l2" "$T/o.err"
}
ok "bad subcluster bitmap: one line naming table, entry and offset, exit 1, no output" bad_subclusters

done_testing
