#!/bin/bash
# Failing disks: bad sectors of the source (IOFAULT_AT of the LD_PRELOAD
# library tests/faults/iofault.so, which fails pread and read alike) in the
# primary superblock (a backup exists), an inode table, a directory and an
# extent tree. -r, -Q, -Q --compress and -ra must go on past them: one
# warning per bad range, the closing count, exit status 3, the ranges as a
# GNU ddrescue map file (--error-map), and every readable byte as in an
# image of the healthy disk.
. "$TESTLIB"
: "${IOFAULT_SO:?IOFAULT_SO must point at the built tests/faults/iofault.so}"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

# Small inline files (their inode is all they have), a directory of them
# and a fragmented file whose extents fill an extent tree block.
mkdir -p "$T/src/dir"
for i in $(seq 1 60); do echo "small file $i" > "$T/src/dir/file-$i"; done
perl -e 'open(F, ">", $ARGV[0]) or die; for $i (0 .. 119) { seek(F, $i * 2048, 0); print F "x" x 1024 }' \
  "$T/src/frag"
mke2fs -q -F -t ext4 -O inline_data -b 1024 -L failing -d "$T/src" "$T/fs.img" 16M
dbg() { debugfs -R "$1" "$T/fs.img" 2> /dev/null; }

# The bad sectors (byte offsets), one in each place.
sb=1024
itable_block=$(dbg "imap /dir/file-30" | sed -n 's/.*located at block \([0-9]*\).*/\1/p')
itable_off=$(dbg "imap /dir/file-30" | sed -n 's/.*offset \(0x[0-9a-f]*\).*/\1/p')
itable=$(((itable_block * 1024 + itable_off) / 512 * 512))
dir_block=$(dbg "bmap /dir 0")
dir=$((dir_block * 1024 + 512))
etb_block=$(dbg "ex /frag" | awk '$1 == "0/" { print $8; exit }')
etb=$((etb_block * 1024 + 512))
BAD="$sb,$itable,$dir,$etb"
echo "# bad sectors at $BAD (blocks 1 $itable_block $dir_block $etb_block)"

faulty() { env LD_PRELOAD="$IOFAULT_SO" IOFAULT_OP=read IOFAULT_PATH=fs.img IOFAULT_AT="$BAD" "$@"; }

# The unreadable primary superblock sends e2image to the first backup, as
# e2fsck: the oracle is e2image given that backup (-b), which copies it too.
/usr/sbin/e2image -r "$T/fs.img" "$T/plain-oracle.raw"
/usr/sbin/e2image -r -b 8193 -B 1024 "$T/fs.img" "$T/oracle.raw"
/usr/sbin/e2image -ra -b 8193 -B 1024 "$T/fs.img" "$T/oracle-copy.raw"

# outside_equal IMAGE REFERENCE [RANGE...]: the files differ only inside the
# bad sectors and the given "start:length" byte ranges; the bad sectors of
# IMAGE are zeros.
outside_equal() {
  img=$1 ref=$2; shift 2
  ranges="$sb:512 $itable:512 $dir:512 $etb:512 $*"
  cmp -l "$img" "$ref" | awk -v ranges="$ranges" '
    BEGIN { n = split(ranges, r, " "); for (i = 1; i <= n; i++) { split(r[i], p, ":"); lo[i] = p[1]; hi[i] = p[1] + p[2] } }
    { off = $1 - 1; inside = 0
      for (i = 1; i <= n; i++) if (off >= lo[i] && off < hi[i]) inside = 1
      if (!inside) { printf "differs outside the bad ranges at byte %d\n", off; bad = 1; exit } }
    END { exit bad }' || return 1
  for s in $sb $itable $dir $etb; do
    [ "$(od -An -v -tx1 -j "$s" -N 512 "$img" | tr -d ' \n' | tr -d 0)" = "" ] ||
      { echo "bad sector at $s is not zeros in $img"; return 1; }
  done
}

# warned ERRFILE: one line per bad sector with its offset and block, the
# fallback to the backup superblock, and the closing count.
warned() {  # warned ERRFILE image|copy
  err=$1
  cat "$err"
  for s in $sb $itable $dir $etb; do
    [ "$(grep -c "fs\.img: unreadable: 512 bytes at offset $s (block $((s / 1024))); left out of the $2 (zeros)$" "$err")" = 1 ] ||
      { echo "no single warning for the bad sector at $s"; return 1; }
  done
  grep -q "primary superblock: Input/output error; using the backup superblock at block 8193" "$err" &&
    grep -q "^e2image: incomplete: 4 unreadable ranges of .*fs\.img (2048 bytes, 4 blocks) left out$" "$err"
}

# map_ok MAPFILE: ddrescue's layout: comments, the status line, then
# contiguous "pos size status" lines in hex from 0 to the filesystem's end,
# '-' exactly for the bad sectors and '+' for the rest.
map_ok() {
  cat "$1"
  want=$(printf '%s\n' $sb $itable $dir $etb | sort -n | tr '\n' ' ')
  got="" next=0 status=""
  while read -r pos size st rest; do
    case $pos in '#'*) continue ;; esac
    if [ -z "$status" ]; then
      [[ "$pos $size $st" =~ ^0x[0-9A-F]+\ \+\ 1\ ?$ ]] || { echo "bad status line: $pos $size $st"; return 1; }
      status=1; continue
    fi
    [[ $pos =~ ^0x[0-9A-F]{8,}$ && $size =~ ^0x[0-9A-F]{8,}$ && $st =~ ^[-+]$ && -z $rest ]] ||
      { echo "bad block line: $pos $size $st $rest"; return 1; }
    [ $((pos)) = $next ] || { echo "not contiguous at $pos"; return 1; }
    if [ "$st" = - ]; then
      [ $((size)) = 512 ] || { echo "a bad block of $((size)) bytes"; return 1; }
      got="$got$((pos)) "
    fi
    next=$((pos + size))
  done < "$1"
  [ $next = 16777216 ] || { echo "the map ends at $next"; return 1; }
  [ "$got" = "$want" ] || { echo "bad blocks $got, expected $want"; return 1; }
}

capture() {  # capture NAME OPTIONS...: a faulted capture, exit status 3
  name=$1; shift
  faulty "$E2IMAGE" "$@" --error-map="$T/$name.map" "$T/fs.img" "$T/$name" 2> "$T/$name.err"
  rc=$?
  [ $rc = 3 ] || { cat "$T/$name.err"; echo "exit status $rc, expected 3"; return 1; }
}

raw_capture() {
  capture out.raw -r && warned "$T/out.raw.err" image && map_ok "$T/out.raw.map" &&
    outside_equal "$T/out.raw" "$T/oracle.raw"
}
ok "-r past 4 bad sectors: warnings, exit 3, ddrescue map, the rest as e2image's" raw_capture

qcow2_capture() {
  name=$1; shift
  capture "$name" -Q "$@" && warned "$T/$name.err" image && map_ok "$T/$name.map" &&
    qcow2_clean "$T/$name" && "$E2IMAGE" -r "$T/$name" "$T/$name.raw" &&
    outside_equal "$T/$name.raw" "$T/oracle.raw"
}
ok "-Q past 4 bad sectors: the same, and a clean qcow2 image" qcow2_capture out.qcow2
ok "-Q --compress past 4 bad sectors: the same" qcow2_capture outc.qcow2 --compress

# To standard output, clusters the source gave as they are would be read
# again after the scan; once it has failed a read they are spooled instead,
# so a failing disk is read no more often than for an image file.
piped_capture() {
  faulty env IOFAULT_COUNT="$T/file.reads" "$E2IMAGE" -Q "$T/fs.img" "$T/counted.qcow2" 2> /dev/null
  [ $? = 3 ] || return 1
  faulty env IOFAULT_COUNT="$T/pipe.reads" "$E2IMAGE" -Q "$T/fs.img" - > "$T/piped.qcow2" 2> "$T/piped.err"
  rc=$?
  [ $rc = 3 ] || { cat "$T/piped.err"; echo "exit status $rc, expected 3"; return 1; }
  warned "$T/piped.err" image && qcow2_clean "$T/piped.qcow2" &&
    "$E2IMAGE" -r "$T/piped.qcow2" "$T/piped.raw" && outside_equal "$T/piped.raw" "$T/oracle.raw" ||
    return 1
  echo "reads of the source: $(cat "$T/file.reads") for a file, $(cat "$T/pipe.reads") for stdout"
  [ "$(cat "$T/pipe.reads")" = "$(cat "$T/file.reads")" ]
}
ok "-Q - past 4 bad sectors: the same, and nothing read twice" piped_capture

# A version 3 image marks the unreadable guest ranges in a persistent dirty
# bitmap, which qemu lists, keeps valid and serves: qemu-nbd exports it and
# qemu-img map shows its dirty ranges as "data": false.
bitmap_v3() {
  capture out3.qcow2 -Q --qcow2-version=3 && warned "$T/out3.qcow2.err" image &&
    ! grep -q "cannot mark" "$T/out3.qcow2.err" && qcow2_clean "$T/out3.qcow2" || return 1
  qemu-img info "$T/out3.qcow2" | tee "$T/info" | grep -q "name: e2image-unreadable" &&
    grep -q "granularity: 512" "$T/info" || { cat "$T/info"; return 1; }
  "$QCOW2_INSPECT" dump "$T/out3.qcow2" | grep -q 'name "e2image-unreadable"' || return 1
  rm -f "$T/nbd.sock"
  qemu-nbd -r -f qcow2 -B e2image-unreadable -k "$T/nbd.sock" "$T/out3.qcow2" & pid=$!
  for _ in $(seq 50); do [ -S "$T/nbd.sock" ] && break; sleep 0.1; done
  qemu-img map --output=json --image-opts \
    "driver=nbd,server.type=unix,server.path=$T/nbd.sock,x-dirty-bitmap=qemu:dirty-bitmap:e2image-unreadable" \
    > "$T/dirty.json"
  kill $pid 2> /dev/null; wait $pid 2> /dev/null
  dirty=$(sed -n 's/.*"start": \([0-9]*\), "length": \([0-9]*\),.*"data": false.*/\1:\2/p' "$T/dirty.json" | tr '\n' ' ')
  want=$(printf '%s:512\n' $sb $itable $dir $etb | sort -n | tr '\n' ' ')
  [ "$dirty" = "$want" ] || { cat "$T/dirty.json"; echo "dirty: $dirty, expected $want"; return 1; }
}
ok "-Q --qcow2-version=3: a dirty bitmap of the bad sectors, as qemu reads it" bitmap_v3

v2_says_so() {
  grep -q "out\.qcow2: a version 2 qcow2 image cannot mark the unreadable ranges" "$T/out.qcow2.err" &&
    ! "$QCOW2_INSPECT" dump "$T/out.qcow2" | grep -qi "bitmap directory at"
}
ok "-Q (version 2): no bitmap, and a warning that says so" v2_says_so

ra_copy() {
  # The data of the fragmented file past the bad sector of its extent tree
  # cannot be found: left out of the comparison.
  frag_data=""
  for b in $(dbg "blocks /frag"); do frag_data="$frag_data $((b * 1024)):1024"; done
  capture copy.img -ra && warned "$T/copy.img.err" image && map_ok "$T/copy.img.map" &&
    outside_equal "$T/copy.img" "$T/oracle-copy.raw" $frag_data
}
ok "-ra past 4 bad sectors: the same, the rest as e2image -ra's copy" ra_copy

# -ra -c onto an up-to-date copy (made before the disk failed) writes only
# what differs: the bad sectors stay as the copy has them, not zeros.
ra_compare() {
  cp "$T/oracle-copy.raw" "$T/update.img"
  faulty "$E2IMAGE" -rac --error-map="$T/update.map" "$T/fs.img" "$T/update.img" 2> "$T/update.err"; rc=$?
  cat "$T/update.err"
  [ $rc = 3 ] || { echo "exit status $rc, expected 3"; return 1; }
  grep -q "fs\.img: unreadable: 512 bytes at offset $itable (block $((itable / 1024))); left as the destination has it$" \
    "$T/update.err" && map_ok "$T/update.map" && cmp "$T/update.img" "$T/oracle-copy.raw"
}
ok "-ra -c past 4 bad sectors: the copy keeps its own bytes there" ra_compare

unfaulted() {
  "$E2IMAGE" -r --error-map="$T/clean.map" "$T/fs.img" "$T/clean.raw" && same_bytes "$T/clean.raw" "$T/plain-oracle.raw" &&
    grep -q '^0x00000000  0x01000000  +$' "$T/clean.map" && [ "$(grep -vc '^#' "$T/clean.map")" = 2 ]
}
ok "without faults: exit 0, e2image's bytes, a map of one finished block" unfaulted

# An e2i image holds the superblock as opened (the backup's): the scan's
# reads (inode table, directory, extent tree) are the ones left out.
e2i_capture() {
  capture out.e2i && cat "$T/out.e2i.err" || return 1
  for at in $itable $dir $etb; do
    grep -q "fs\.img: unreadable: 512 bytes at offset $at (block $((at / 1024))); left out of the image (zeros)$" \
      "$T/out.e2i.err" || { echo "no warning for $at"; return 1; }
  done
  grep -q "^e2image: incomplete: 3 unreadable ranges of .*fs\.img (1536 bytes, 3 blocks) left out$" "$T/out.e2i.err" &&
    [ "$(grep -c '^0x[0-9A-F]*  0x00000200  -$' "$T/out.e2i.map")" = 3 ] &&
    dumpe2fs -i -h "$T/out.e2i" > /dev/null 2>&1
}
ok "an e2i image past the bad sectors: warnings, map and exit 3" e2i_capture

# Every qcow2 image describes its capture in a header extension of its own.
uuid=$(dumpe2fs -h "$T/fs.img" 2> /dev/null | sed -n 's/^Filesystem UUID: *//p')
described() {
  "$QCOW2_INSPECT" info --json "$T/out3.qcow2" > "$T/info.json" &&
    "$QCOW2_INSPECT" info "$T/out3.qcow2" > "$T/info.txt" || return 1
  cat "$T/info.json" "$T/info.txt"
  for field in '"program": "e2image-ng [0-9.]*"' '"time": 1700000000' '"mode": "metadata"' \
    '"scrambled": false' '"compression": "none"' '"source-size": 16777216' \
    '"filesystem-size": 16777216' '"block-size": 1024' "\"uuid\": \"$uuid\"" '"label": "failing"' \
    '"mounted": false' '"journal-needed-recovery": false' '"unreadable-blocks": 4'; do
    grep -q "^        $field,\?$" "$T/info.json" || { echo "missing: $field"; return 1; }
  done
  grep -q "^e2image capture: e2image-ng .*, 2023-11-14 22:13:20 UTC: metadata; .*UUID $uuid, label \"failing\"; not mounted; 4 unreadable blocks$" "$T/info.txt" &&
    "$QCOW2_INSPECT" dump "$T/out3.qcow2" | grep -A1 "type 0xe2196e67 (e2image capture)" | grep -q "4 unreadable blocks"
}
ok "the capture extension: qcow2-inspect info (text, --json) and dump show it" described

scrambled_compressed() {
  "$E2IMAGE" -Q -s --compress=zstd --compress-level=5 "$T/fs.img" "$T/s.qcow2" 2> /dev/null &&
    "$QCOW2_INSPECT" info --json "$T/s.qcow2" > "$T/s.json" || return 1
  cat "$T/s.json"
  grep -q '"scrambled": true' "$T/s.json" && grep -q '"compression": "zstd"' "$T/s.json" &&
    grep -q '"compression-level": 5' "$T/s.json" && ! grep -q '"uuid"\|"label"' "$T/s.json" &&
    ! grep -aq failing "$T/s.qcow2"
}
ok "a scrambled image records -s and the codec, and neither UUID nor label" scrambled_compressed

recovery_and_data() {
  cp "$T/fs.img" "$T/rec.img" && debugfs -w -R "feature needs_recovery" "$T/rec.img" > /dev/null 2>&1 &&
    "$E2IMAGE" -Q -a "$T/rec.img" "$T/rec.qcow2" 2> /dev/null &&
    "$QCOW2_INSPECT" info --json "$T/rec.qcow2" > "$T/rec.json" || return 1
  grep -q '"journal-needed-recovery": true' "$T/rec.json" && grep -q '"mode": "metadata-and-data"' "$T/rec.json"
}
ok "a journal needing recovery and -a are recorded" recovery_and_data

# qemu keeps the extension and ignores it: check, convert and amend work as
# on any image, and amend (which rewrites the header) keeps it.
# Mounted sources: a loop mount in a private mount namespace, so that nothing
# stays mounted whatever happens.
mounted_recorded() {
  cp "$T/fs.img" "$T/m.img"
  unshare --mount bash -c '
    set -u
    mkdir -p "$1/mnt"
    mount --make-rprivate / 2> /dev/null
    for mode in ro rw; do
      mount -o "loop,$mode" "$1/m.img" "$1/mnt" || { echo "cannot loop-mount here"; exit 1; }
      dev=$(findmnt -n -o SOURCE "$1/mnt")
      force=""; [ $mode = rw ] && force=-f
      "$2" -Q $force "$dev" "$1/$mode.qcow2" 2> /dev/null; rc=$?
      umount "$1/mnt"
      [ $rc = 0 ] || exit 1
    done' _ "$T" "$E2IMAGE" || return 1
  "$QCOW2_INSPECT" info "$T/ro.qcow2" | grep "^e2image capture:" | tee "$T/ro.txt" | grep -q "; mounted read-only;" &&
    "$QCOW2_INSPECT" info "$T/rw.qcow2" | grep "^e2image capture:" | tee "$T/rw.txt" | grep -q "; mounted read-write (-f);"
}
ok "a mounted source is recorded: read-only, and read-write with -f" mounted_recorded

# A cluster wholly unreadable is left unallocated in a qcow2 image.
unallocated() {
  whole=$((dir_block * 1024))
  env LD_PRELOAD="$IOFAULT_SO" IOFAULT_OP=read IOFAULT_PATH=fs.img IOFAULT_AT="$whole,$((whole + 512))" \
    "$E2IMAGE" -Q "$T/fs.img" "$T/whole.qcow2" 2> /dev/null
  [ $? = 3 ] || return 1
  qemu-img map --output=json "$T/whole.qcow2" > "$T/whole.map"
  sed -n 's/.*"start": \([0-9]*\), "length": \([0-9]*\), .*"data": \([a-z]*\).*/\1 \2 \3/p' "$T/whole.map" |
    while read -r start length data; do
      if [ "$start" -le $whole ] && [ $whole -lt $((start + length)) ]; then
        echo "block $dir_block in: $start $length data=$data"
        [ "$data" = false ] && [ $((whole + 1024)) -le $((start + length)) ]
        exit
      fi
    done
}
ok "a wholly unreadable cluster is unallocated in the qcow2 image" unallocated

qemu_unaffected() {
  qcow2_clean "$T/out3.qcow2" && qemu-img convert -O raw "$T/out3.qcow2" "$T/qemu.raw" &&
    "$E2IMAGE" -r "$T/out3.qcow2" "$T/ours.raw" 2> "$T/conv.err" && cmp "$T/qemu.raw" "$T/ours.raw" || return 1
  cp "$T/out3.qcow2" "$T/amended.qcow2" && qemu-img amend -o lazy_refcounts=on "$T/amended.qcow2" &&
    qcow2_clean "$T/amended.qcow2" || return 1
  "$QCOW2_INSPECT" info "$T/amended.qcow2" | grep -q "^e2image capture: .*4 unreadable blocks$" &&
    "$QCOW2_INSPECT" info --json "$T/amended.qcow2" | grep -q '"lazy-refcounts": true' &&
    qemu-img info "$T/amended.qcow2" | grep -q "name: e2image-unreadable"
}
ok "qemu-img check, convert and amend are unaffected; amend keeps the extension" qemu_unaffected

oracle_reads_it() {
  /usr/sbin/e2image -r "$T/out.qcow2" "$T/oracle-conv.raw" && "$E2IMAGE" -r "$T/out.qcow2" "$T/ours-conv.raw" 2> /dev/null &&
    cmp "$T/oracle-conv.raw" "$T/ours-conv.raw"
}
ok "e2fsprogs' e2image -r converts a version 2 image with the extension as we do" oracle_reads_it

convert_summary() {
  cat "$T/conv.err"
  [ "$(wc -l < "$T/conv.err")" = 1 ] &&
    grep -q "^e2image: .*out3\.qcow2: e2image-ng .*, 2023-11-14 22:13:20 UTC: metadata; .*4 unreadable blocks$" "$T/conv.err"
}
ok "e2image -r prints the capture's summary when converting" convert_summary

# --verify reads every block of the image again, from the source and from the
# image. A live filesystem changing after its capture: the image's reads
# are slowed down (0.25 s each) and, as soon as the image has its name, a
# directory block of the source is changed.
verify_finds_change() {
  cp "$T/fs.img" "$T/live.img" && rm -f "$T/live.qcow2"
  env LD_PRELOAD="$IOFAULT_SO" IOFAULT_OP=read IOFAULT_PATH=live.qcow2 IOFAULT_DELAY_MS=250 \
    "$E2IMAGE" -Q --verify "$T/live.img" "$T/live.qcow2" 2> "$T/verify.err" & pid=$!
  for _ in $(seq 200); do [ -e "$T/live.qcow2" ] && break; sleep 0.05; done
  printf 'CHANGED!' | dd of="$T/live.img" bs=1 seek=$((dir_block * 1024 + 40)) conv=notrunc 2> /dev/null
  wait $pid; rc=$?
  cat "$T/verify.err"
  [ $rc = 4 ] || { echo "exit status $rc, expected 4"; return 1; }
  grep -q "^e2image: warning: .*live\.img: block $dir_block differs between the source and the image (changed since copied)$" "$T/verify.err" &&
    grep -q "^e2image: verify: 1 of [0-9]* blocks differ from the source$" "$T/verify.err"
}
ok "--verify: a block changed after its copy is named, counted, exit 4" verify_finds_change

verify_quiet() {
  "$E2IMAGE" -r -a --verify "$T/fs.img" "$T/v.raw" 2> "$T/v.err"; rc=$?
  cat "$T/v.err"
  [ $rc = 0 ] && [ "$(cat "$T/v.err")" = "e2image: verify: 0 of $(wc -l < "$T/blocks") blocks differ from the source" ]
}
"$E2IMAGE" -r -a -n "$T/fs.img" /dev/null 2> /dev/null | grep '^Writing block ' > "$T/blocks"
ok "--verify of an unchanged -ra capture: every block compared, exit 0" verify_quiet

verify_faulted() {
  faulty "$E2IMAGE" -Q --verify "$T/fs.img" "$T/vf.qcow2" 2> "$T/vf.err"; rc=$?
  cat "$T/vf.err"
  [ $rc = 3 ] && grep -q "^e2image: verify: 0 of [0-9]* blocks differ from the source$" "$T/vf.err" &&
    ! grep -q "differs between" "$T/vf.err"
}
ok "--verify skips the unreadable blocks; exit 3 comes before 4" verify_faulted

done_testing
exit $((tap_failed > 0))
