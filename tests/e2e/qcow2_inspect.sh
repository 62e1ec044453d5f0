#!/bin/bash
# qcow2-inspect against qemu-img: info --output=json fields, check counts and
# exit codes (clean images, Debian e2image's leaky ones, images corrupted by
# hand), map --output=json ranges; and bad input: one error line, exit 1.
. "$TESTLIB"
: "${QCOW2_INSPECT:?QCOW2_INSPECT must point at the built misc/qcow2-inspect}"
Q=$QCOW2_INSPECT

# Big-endian 64/16-bit reads and writes at a byte offset.
be64() { perl -e 'open F,"<",$ARGV[0] or die; seek F,$ARGV[1],0; read F,$b,8; print unpack("q>",$b)' "$1" "$2"; }
poke64() { perl -e 'open F,"+<",$ARGV[0] or die; seek F,$ARGV[1],0; print F pack("q>",$ARGV[2])' "$1" "$2" "$3"; }
poke32() { perl -e 'open F,"+<",$ARGV[0] or die; seek F,$ARGV[1],0; print F pack("N",$ARGV[2])' "$1" "$2" "$3"; }
poke16() { perl -e 'open F,"+<",$ARGV[0] or die; seek F,$ARGV[1],0; print F pack("n",$ARGV[2])' "$1" "$2" "$3"; }
# Sets cs, l1, rt (refcount table), rb0 (first refcount block), l2_0 and l2_1.
layout() {
  cs=$((1 << $(od -An -tu1 -j23 -N1 "$1")))
  l1=$(be64 "$1" 40); rt=$(be64 "$1" 48); rb0=$(be64 "$1" "$rt")
  l2_0=$(( $(be64 "$1" "$l1") & 0x00fffffffffffe00 ))
  l2_1=$(( $(be64 "$1" $((l1 + 8))) & 0x00fffffffffffe00 ))
}
refcount_at() { echo $(( rb0 + ($1 / cs) * 2 )); }

# Same corruption, leak and error counts, image end offset and exit code as qemu-img check.
same_check() {
  qemu-img check --output=json "$1" > "$T/q.json" 2> "$T/q.err"; qrc=$?
  "$Q" check --json "$1" > "$T/o.json" 2> "$T/o.err"; orc=$?
  q=$(jq -c '[.corruptions // 0, .leaks // 0, ."check-errors" // 0, ."image-end-offset",
              ."allocated-clusters" // 0, ."fragmented-clusters" // 0, ."compressed-clusters" // 0]' "$T/q.json")
  o=$(jq -c '[.corruptions, .leaks, ."check-errors", ."image-end-offset",
              ."allocated-clusters", ."fragmented-clusters", ."compressed-clusters"]' "$T/o.json")
  echo "qemu-img: rc=$qrc $q; ours: rc=$orc $o"
  cat "$T/o.err"
  [ "$qrc" = "$orc" ] && [ "$q" = "$o" ] || return 1
  # Each problem is one line, and there is one per counted problem at least.
  n=$(wc -l < "$T/o.err")
  [ "$n" -ge "$(jq '.corruptions + .leaks' "$T/o.json")" ]
}
# The text form agrees with the JSON one.
check_text_agrees() {
  "$Q" check "$1" > "$T/c.txt" 2>/dev/null; rc=$?
  "$Q" check --json "$1" > "$T/c.json" 2>/dev/null
  [ "$rc" = "$2" ] || { echo "exit $rc, expected $2"; return 1; }
  grep -q "Image end offset: $(jq '."image-end-offset"' "$T/c.json")" "$T/c.txt"
}
same_info() {
  keys='{"virtual-size", "cluster-size", "format", "actual-size", "dirty-flag", "format-specific",
         "snapshots", "backing-filename", "backing-filename-format"}'
  qemu-img info --output=json "$1" | jq -S "$keys" > "$T/qi.json" || return 1
  "$Q" info --json "$1" | jq -S "$keys" > "$T/oi.json" || return 1
  diff "$T/qi.json" "$T/oi.json"
}
same_map() {
  qemu-img map --output=json "$1" | jq -c '.[]' > "$T/qm" || return 1
  "$Q" map --json "$1" | jq -c '.[] | del(.compressed)' > "$T/om" || return 1
  [ -s "$T/om" ] && diff "$T/qm" "$T/om"
}
same_all() { same_info "$1" && same_map "$1" && same_check "$1"; }

# A qemu-made v3 image with data, zero and compressed clusters, a snapshot and two bitmaps.
base=$T/base.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4096 "$base" 8M
qemu-io -c "write -P 1 0 64k" -c "write -z 128k 8k" -c "write -c -P 3 1M 4k" "$base" > /dev/null
qemu-img snapshot -c s1 "$base"
qemu-io -c "write -P 2 0 8k" -c "write -P 6 4M 4k" "$base" > /dev/null
qemu-img bitmap --add "$base" b0
qemu-img bitmap --add -g 65536 "$base" b1
qemu-io -c "write -P 5 2M 4k" "$base" > /dev/null
layout "$base"

ok "qemu-made image (snapshot, bitmaps, zero, compressed): info, map, check as qemu-img" same_all "$base"
ok "text check output agrees, exit 0" check_text_agrees "$base" 0
ok "info --json names the snapshot and both bitmaps" \
  sh -c "'$Q' info --json '$base' | jq -e '.snapshots[0].name == \"s1\" and
    ([.\"format-specific\".data.bitmaps[].name] == [\"b0\", \"b1\"])'"

backing_chain() {
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$T/ov1.qcow2" &&
  qemu-img create -q -f qcow2 -b ov1.qcow2 -F qcow2 "$T/ov2.qcow2" || return 1
  keys='{"virtual-size", "backing-filename", "backing-filename-format", "full-backing-filename"}'
  qemu-img info --output=json "$T/ov2.qcow2" | jq -S "$keys" > "$T/qb.json"
  "$Q" info --json "$T/ov2.qcow2" | jq -S "$keys" > "$T/ob.json"
  diff "$T/qb.json" "$T/ob.json" || return 1
  "$Q" info --json "$T/ov2.qcow2" |
    jq -e "[.\"backing-chain\"[].filename] == [\"$T/ov1.qcow2\", \"$T/base.qcow2\"]" || return 1
  same_check "$T/ov2.qcow2"
}
ok "info: backing chain of two overlays, as qemu-img names it" backing_chain
backing_loop() {
  qemu-img create -q -u -f qcow2 -b loop2.qcow2 -F qcow2 "$T/loop1.qcow2" 1M &&
  qemu-img create -q -u -f qcow2 -b loop1.qcow2 -F qcow2 "$T/loop2.qcow2" 1M || return 1
  timeout 10 "$Q" info "$T/loop1.qcow2" | grep -q "backing chain loops"
}
ok "info: a backing loop is reported, not followed forever" backing_loop

refcount_width() {
  qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=$1 "$T/rc$1.qcow2" 4M &&
  qemu-io -c "write -P 1 0 100k" -c "write -c -P 2 1M 2k" -c "write -z 2M 4k" "$T/rc$1.qcow2" > /dev/null ||
    return 1
  # Snapshots need refcounts of 2 and more (qemu refuses them below 4 bits).
  [ "$1" -lt 4 ] || qemu-img snapshot -c s "$T/rc$1.qcow2" || return 1
  same_all "$T/rc$1.qcow2" || return 1
  # Break one stored refcount, whatever its width: zero the first refcount block.
  rb=$(be64 "$T/rc$1.qcow2" "$(be64 "$T/rc$1.qcow2" 48)")
  poke64 "$T/rc$1.qcow2" "$rb" 0
  same_check "$T/rc$1.qcow2" && [ "$(jq .corruptions "$T/o.json")" -gt 0 ]
}
for bits in 1 2 4 8 16 32 64; do
  ok "refcount_bits=$bits image: info, map, check as qemu-img, then with a damaged refcount block" refcount_width $bits
done
header_bits() {  # header_bits BIT: sets an incompatible feature bit on a copy of base
  cp "$base" "$T/h$1.qcow2"
  poke64 "$T/h$1.qcow2" 72 $(( $(be64 "$base" 72) | $1 ))
  same_info "$T/h$1.qcow2" && same_check "$T/h$1.qcow2"
}
ok "dirty bit: info dirty-flag and check as qemu-img" header_bits 1
ok "corrupt bit: info corrupt and check as qemu-img" header_bits 2

qemu_v2_image() {
  qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=1024 "$T/v2.qcow2" 4M &&
  qemu-io -c "write -P 1 0 100k" -c "write -c -P 2 1M 2k" "$T/v2.qcow2" > /dev/null &&
  qemu-img snapshot -c s "$T/v2.qcow2" &&
  qemu-io -c "write -P 3 0 10k" -c "write -z 2M 4k" "$T/v2.qcow2" > /dev/null || return 1
  same_all "$T/v2.qcow2"
}
ok "qemu-made version 2 image with a snapshot: info, map, check as qemu-img" qemu_v2_image

extended_l2() {
  qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=65536 "$T/x.qcow2" 8M &&
  qemu-io -c "write -P 1 0 6k" -c "write -P 2 64k 64k" -c "write -z 200k 2k" \
    -c "write -c -P 3 1M 64k" "$T/x.qcow2" > /dev/null || return 1
  same_info "$T/x.qcow2" && same_check "$T/x.qcow2" || return 1
  xl2=$(( $(be64 "$T/x.qcow2" "$(be64 "$T/x.qcow2" 40)") & 0x00fffffffffffe00 ))
  # Subcluster 0 both allocated and zero; then a bitmap on the compressed cluster.
  cp "$T/x.qcow2" "$T/x1.qcow2"
  poke64 "$T/x1.qcow2" $((xl2 + 8)) $(( $(be64 "$T/x.qcow2" $((xl2 + 8))) | (1 << 32) | 1 ))
  same_check "$T/x1.qcow2" || return 1
  cp "$T/x.qcow2" "$T/x2.qcow2"
  poke64 "$T/x2.qcow2" $((xl2 + 16 * 16 + 8)) 5
  same_check "$T/x2.qcow2"
}
ok "extended L2 entries: info and check as qemu-img, with bad subcluster bitmaps" extended_l2
ok "extended L2 entries: map as qemu-img" same_map "$T/x.qcow2"
extended_dump() {
  # 6 KiB in cluster 0 (3 subclusters), all of cluster 1, a zero subcluster
  # in cluster 3 (no host cluster), cluster 16 compressed.
  "$Q" dump "$T/x.qcow2" > "$T/xd.txt" || return 1
  grep "L2 table at" "$T/xd.txt"
  grep -q "^  entry 0: L2 table at 0x[0-9a-f]* (copied): 2 data, 1 compressed, 1 zero, 0 zero allocated, 4092 unallocated; 2 copied; subclusters 35 allocated, 1 zero; host offsets " "$T/xd.txt"
}
ok "extended L2 entries: dump summarises clusters and subclusters" extended_dump
unallocated_with_subclusters() {
  xl2=$(( $(be64 "$T/x.qcow2" "$(be64 "$T/x.qcow2" 40)") & 0x00fffffffffffe00 ))
  cp "$T/x.qcow2" "$T/x3.qcow2"
  # Entry 20 has no host cluster: an allocated subcluster there is a corruption, once.
  poke64 "$T/x3.qcow2" $((xl2 + 20 * 16 + 8)) $(( (1 << 32) | 1 ))
  same_check "$T/x3.qcow2" && [ "$(jq .corruptions "$T/o.json")" = 1 ]
}
ok "extended L2: subclusters allocated in an unallocated cluster, counted as qemu-img check" \
  unallocated_with_subclusters

# External data files: data clusters live there and have no refcounts.
data_file_image() {  # data_file_image NAME OPTIONS
  qemu-img create -q -f qcow2 -o "cluster_size=4096,data_file=$T/$1.raw,$2" "$T/$1.qcow2" 4M &&
    qemu-io -c "write -P 1 0 8k" -c "write -P 2 1M 4k" -c "write -z 2M 4k" -c "write -P 3 3M 64k" \
      "$T/$1.qcow2" > /dev/null && same_all "$T/$1.qcow2"
}
ok "external data file: info, map, check as qemu-img" data_file_image df data_file_raw=off
ok "external data file, data_file_raw: info, map, check as qemu-img" data_file_image dfr data_file_raw=on
ok "external data file, extended L2: info, map, check as qemu-img" \
  data_file_image dfx extended_l2=on,cluster_size=16384
data_file_damage() {
  dl2=$(( $(be64 "$T/df.qcow2" "$(be64 "$T/df.qcow2" 40)") & 0x00fffffffffffe00 ))
  cp "$T/df.qcow2" "$T/df1.qcow2"
  poke64 "$T/df1.qcow2" $((dl2 + 16)) $(( (1 << 62) | 0x5000 ))  # a compressed cluster
  same_check "$T/df1.qcow2" && [ "$(jq .corruptions "$T/o.json")" = 1 ] || return 1
  cp "$T/df.qcow2" "$T/df2.qcow2"
  poke64 "$T/df2.qcow2" $((dl2 + 8)) 4096  # copied flag cleared on a data file cluster
  same_check "$T/df2.qcow2" && [ "$(jq .corruptions "$T/o.json")" = 1 ]
}
ok "external data file: compressed cluster and cleared copied flag, counted as qemu-img check" \
  data_file_damage

# Images written by our e2image and by Debian's (which leaks clusters).
make_fs "$T/fs.img" 32M -t ext4 || exit 1
for opts in "" "--qcow2-version=3" "--compress" "--compress=zstd" "--cluster-size=65536" \
    "--cluster-size=512 --qcow2-version=3"; do
  rm -f "$T/ours.qcow2"
  "$E2IMAGE" -Q $opts "$T/fs.img" "$T/ours.qcow2" 2> /dev/null
  ok "e2image -Q $opts: info, map, check as qemu-img" same_all "$T/ours.qcow2"
done
"$ORACLE_E2IMAGE" -Q "$T/fs.img" "$T/deb.qcow2" 2> /dev/null
ok "Debian e2image -Q image: same leaks and exit code 3 as qemu-img" same_all "$T/deb.qcow2"
ok "Debian e2image -Q image: text check exits 3" check_text_agrees "$T/deb.qcow2" 3
ok "Debian e2image -Q image: leaked clusters named one per line" \
  sh -c "'$Q' check '$T/deb.qcow2' 2>&1 >/dev/null | grep -q '^Leaked cluster [0-9]* (offset 0x'"

# Corruptions made by hand, each compared with qemu-img check.
corrupt() {  # corrupt NAME DESCRIPTION COMMAND...: applies COMMAND to a copy of base
  name=$1; desc=$2; shift 2
  cp "$base" "$T/$name.qcow2"
  "$@" "$T/$name.qcow2"
  ok "corrupted: $desc" same_check "$T/$name.qcow2"
}
data0=$(( $(be64 "$base" "$l2_0") & 0x00fffffffffffe00 ))
zero_l2_refcount() { poke16 "$1" "$(refcount_at "$l2_0")" 0; }
data_refcount_2() { poke16 "$1" "$(refcount_at "$data0")" 2; }
past_eof() { poke64 "$1" "$l2_0" $(( (1 << 63) | (($(stat -c %s "$1") / cs + 10) * cs) )); }
double_ref() { poke64 "$1" $((l2_0 + 8)) "$(be64 "$1" "$l2_0")"; }
misaligned_data() { poke64 "$1" "$l2_0" $(( $(be64 "$1" "$l2_0") + 512 )); }
misaligned_refblock() { poke64 "$1" "$rt" $((rb0 + 512)); }
misaligned_l2() { poke64 "$1" "$l1" $(( $(be64 "$1" "$l1") + 512 )); }
l2_reserved() { poke64 "$1" $((l2_0 + 8 * 300)) 2; }
l1_shared() { poke64 "$1" $((l1 + 16)) $(( l2_1 | (1 << 63) )); }
refblock_twice() { poke64 "$1" $((rt + 16)) "$rb0"; }
refblock_outside() { poke64 "$1" $((rt + 16)) $((1 << 40)); }
copied_cleared() { poke64 "$1" "$l2_0" "$data0"; }
compressed_copied() {
  for i in $(seq 0 511); do
    v=$(be64 "$1" $((l2_0 + 8 * i)))
    if [ $(( (v >> 62) & 1 )) = 1 ]; then poke64 "$1" $((l2_0 + 8 * i)) $(( v | (1 << 63) )); return; fi
  done
  echo "no compressed cluster"; return 1
}
corrupt c1 "refcount of an L2 table zeroed (exit 2)" zero_l2_refcount
corrupt c2 "refcount of a data cluster raised to 2 (leak and copied flag)" data_refcount_2
corrupt c3 "L2 entry pointing past the end of the file" past_eof
corrupt c4 "two L2 entries sharing a cluster" double_ref
corrupt c5 "L2 entry not cluster aligned" misaligned_data
corrupt c6 "refcount table entry not cluster aligned (exit 1)" misaligned_refblock
corrupt c7 "L1 entry not cluster aligned" misaligned_l2
corrupt c8 "reserved bit in an unallocated L2 entry" l2_reserved
corrupt c9 "two L1 entries sharing an L2 table" l1_shared
corrupt c10 "one refcount block in two refcount table entries" refblock_twice
corrupt c11 "refcount table entry outside the image" refblock_outside
corrupt c12 "copied flag cleared on a data cluster" copied_cleared
corrupt c13 "copied flag set on a compressed cluster" compressed_copied
ok "refcount mismatch names the cluster, its offset and both counts" \
  sh -c "'$Q' check '$T/c1.qcow2' 2>&1 | grep -q '^ERROR cluster [0-9]* (offset 0x[0-9a-f]*): refcount=0 reference=1'"

# Bad input: exit 1, one line on stderr naming the file, nothing on stdout.
bad_input() {  # bad_input NAME EXPECTED-STDERR-PATTERN COMMAND-ON-COPY...
  name=$1; pattern=$2; shift 2
  cp "$base" "$T/$name.qcow2"
  "$@" "$T/$name.qcow2"
  for cmd in info check map dump; do
    timeout 20 "$Q" $cmd "$T/$name.qcow2" > "$T/bad.out" 2> "$T/bad.err"; rc=$?
    [ $rc = 1 ] || { echo "$cmd: exit $rc"; cat "$T/bad.err"; return 1; }
    [ ! -s "$T/bad.out" ] || { echo "$cmd: wrote to stdout"; return 1; }
    [ "$(wc -l < "$T/bad.err")" = 1 ] || { echo "$cmd: stderr:"; cat "$T/bad.err"; return 1; }
    grep -q "$name.qcow2.*$pattern" "$T/bad.err" || { cat "$T/bad.err"; return 1; }
  done
}
truncate_to_100() { truncate -s 100 "$1"; }
bad_magic() { poke32 "$1" 0 0x12345678; }
huge_l1() { poke32 "$1" 36 $((1 << 30)); }
l1_past_eof() { poke64 "$1" 40 $((1 << 40)); }
reftable_past_eof() { poke64 "$1" 48 $((1 << 40)); }
many_snapshots() { poke32 "$1" 60 $((1 << 30)); }
snapshots_past_eof() { poke64 "$1" 64 $((1 << 40)); }
bad_cluster_bits() { poke32 "$1" 20 40; }
ok "bad input: truncated header" bad_input t1 "too short" truncate_to_100
ok "bad input: bad magic" bad_input t2 "magic" bad_magic
ok "bad input: L1 table over 32 MiB" bad_input t3 "L1 table" huge_l1
ok "bad input: L1 table past the end of the file" bad_input t4 "L1 table" l1_past_eof
ok "bad input: refcount table past the end of the file" bad_input t5 "refcount table" reftable_past_eof
ok "bad input: 2^30 snapshots" bad_input t6 "snapshots" many_snapshots
ok "bad input: snapshot table past the end of the file" bad_input t7 "snapshot table" snapshots_past_eof
ok "bad input: cluster_bits 40" bad_input t8 "cluster_bits" bad_cluster_bits
cp "$base" "$T/m.qcow2"; past_eof "$T/m.qcow2"
map_names_entry() {
  "$Q" map "$T/m.qcow2" > "$T/m.out" 2> "$T/m.err"; rc=$?
  cat "$T/m.err"
  [ $rc = 1 ] && [ ! -s "$T/m.out" ] && grep -q "L2 table of L1 entry 0, entry 0: data offset .* at offset $l2_0" "$T/m.err"
}
ok "map: bad L2 entry is one line naming table, entry and offset" map_names_entry

# Random damage never crashes or hangs: exit 0..3, within the time limit.
fuzz() {
  for seed in $(seq 1 30); do
    cp "$base" "$T/f.qcow2"
    perl -e 'srand($ARGV[1]); open F,"+<",$ARGV[0] or die; my $size = -s F;
      for (1..8) { my $at = $ARGV[1] % 3 ? int(rand(512)) : int(rand($size));
        seek F, $at, 0; print F chr(int(rand(256))); }' "$T/f.qcow2" "$seed"
    for cmd in info check map dump; do
      timeout 20 "$Q" $cmd "$T/f.qcow2" > /dev/null 2>&1; rc=$?
      [ $rc -le 3 ] || { echo "seed $seed: $cmd exit $rc"; return 1; }
    done
  done
}
ok "30 randomly damaged images: no crash, no hang" fuzz

dump_lists_everything() {
  "$Q" dump "$base" > "$T/dump.txt" || return 1
  grep -q "^  refcount_table_offset  *0x" "$T/dump.txt" &&
  grep -q "type 0x23852875 (bitmaps)" "$T/dump.txt" &&
  grep -q "name \"b0\"" "$T/dump.txt" && grep -q "name \"b1\"" "$T/dump.txt" &&
  grep -q "^      entry 0: serialized, size 4096, offset 0x" "$T/dump.txt" &&
  grep -q "id \"1\" name \"s1\"" "$T/dump.txt" &&
  grep -q "^  entry 0: L2 table at $(printf 0x%x "$l2_0") (copied): " "$T/dump.txt"
}
ok "dump: header fields, extensions, snapshots, bitmap tables, L1/L2 summary" dump_lists_everything
bitmap_entry_kinds() {
  cp "$base" "$T/b.qcow2"
  bt=$(be64 "$T/b.qcow2" "$(be64 "$T/b.qcow2" 136)")  # table of the first bitmap
  poke64 "$T/b.qcow2" "$bt" 1
  "$Q" dump "$T/b.qcow2" | grep -q "^      entry 0: all-ones, size 0, offset 0x0" || return 1
  poke64 "$T/b.qcow2" "$bt" 0
  "$Q" dump "$T/b.qcow2" | grep -q "^      entry 0: all-zeroes, size 0, offset 0x0" || return 1
  poke64 "$T/b.qcow2" "$bt" $((0x20000 | 1))
  "$Q" dump "$T/b.qcow2" > "$T/b.out" 2> "$T/b.err"; rc=$?
  cat "$T/b.err"
  [ $rc = 1 ] && grep -q "^      entry 0: invalid, size 0, offset 0x20000" "$T/b.out" &&
    grep -q "bitmap table of bitmap 0, entry 0: invalid bitmap table entry 0x20001 at offset $bt" "$T/b.err"
}
ok "dump: bitmap table entry kinds all-ones, all-zeroes, invalid" bitmap_entry_kinds

usage() {
  "$Q" --help | grep -q "^Usage: qcow2-inspect info" || return 1
  for args in "" "info" "bogus $base" "dump --json $base" "info a b" "check --frobnicate $base"; do
    "$Q" $args > "$T/u.out" 2>&1 && { echo "'$args' succeeded"; return 1; }
    [ $? = 1 ] || { echo "'$args' did not exit 1"; return 1; }
  done
  "$Q" info "$base" --json | jq -e '.format == "qcow2"'
}
ok "usage: --help exits 0; bad usage exits 1; --json may follow the image" usage

done_testing
