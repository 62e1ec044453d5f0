#!/bin/bash
# `e2image -r` against `qemu-img convert -O raw` for images that refer to
# other files or carry extra structures: backing chains (raw and qcow2,
# relative names, probed formats), external data files, internal snapshots,
# persistent bitmaps; and the refusals (missing backing file, loops,
# encryption) with one error line, exit 1 and no output.
. "$TESTLIB"

convert_matches() {  # convert_matches IMAGE: same bytes as qemu-img, from any cwd
  qemu-img convert -O raw "$1" "$T/qemu.raw" || return 1
  rm -f "$T/ours.raw"
  (cd / && "$E2IMAGE" -r "$1" "$T/ours.raw") || return 1
  same_bytes "$T/qemu.raw" "$T/ours.raw"
}

refused() {  # refused IMAGE PATTERN: one error line matching PATTERN, exit 1, no output
  # (besides a line naming each backing or data file opened)
  rm -f "$T/out.raw"
  "$E2IMAGE" -r "$1" "$T/out.raw" > "$T/err" 2>&1; rc=$?
  cat "$T/err"
  [ $rc = 1 ] && [ "$(error_lines "$T/err" | wc -l)" = 1 ] && grep -q -- "$2" "$T/err" &&
    [ ! -e "$T/out.raw" ] &&
    [ -z "$(ls -A "$T" | grep e2image-)" ]
}

qio() { qemu-io "$@" > "$T/qemu-io.log" 2>&1 || { cat "$T/qemu-io.log"; return 1; }; }

raw_backing() {
  rm -rf "$T/rb" && mkdir "$T/rb" && cd "$T/rb" || return 1
  head -c 3000000 /dev/urandom > base.raw
  qemu-img create -q -f qcow2 -b base.raw -F raw top.qcow2 4M || return 1
  qio -c "write -P 1 64k 64k" -c "write -z 1M 128k" -c "discard 2M 64k" -c "write -P 2 3M 4k" top.qcow2 &&
    convert_matches "$T/rb/top.qcow2"
}
ok "raw backing file, smaller than the image; zero writes hide it" raw_backing

v2_over_qcow2() {  # version 2 keeps the backing format in a header extension too
  rm -rf "$T/v2" && mkdir "$T/v2" && cd "$T/v2" || return 1
  qemu-img create -q -f qcow2 -o cluster_size=4096 base.qcow2 3M || return 1
  qio -c "write -P 23 0 3M" base.qcow2 || return 1
  qemu-img create -q -f qcow2 -o compat=0.10 -b base.qcow2 -F qcow2 top.qcow2 || return 1
  qio -c "write -P 24 1M 64k" -c "write -z 2M 64k" top.qcow2 &&
    qemu-img info top.qcow2 | grep -q "backing file format: qcow2" && convert_matches "$T/v2/top.qcow2"
}
ok "version 2 image over a qcow2 backing file" v2_over_qcow2

qcow2_backing_sizes() {
  rm -rf "$T/qb" && mkdir "$T/qb" && cd "$T/qb" || return 1
  qemu-img create -q -f qcow2 -o cluster_size=4096 base.qcow2 6M || return 1
  qio -c "write -P 3 0 6M" -c "write -z 1M 8k" base.qcow2 || return 1
  qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 small.qcow2 2M || return 1
  qemu-img create -q -f qcow2 -o cluster_size=65536 -b base.qcow2 -F qcow2 big.qcow2 9M || return 1
  qio -c "write -P 4 100k 10k" -c "discard 1M 64k" big.qcow2 || return 1
  convert_matches "$T/qb/small.qcow2" && convert_matches "$T/qb/big.qcow2"
}
ok "qcow2 backing file larger and smaller than the image" qcow2_backing_sizes

deep_chain() {
  rm -rf "$T/dc" && mkdir -p "$T/dc/a/b" && cd "$T/dc/a/b" || return 1
  qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=512 base.qcow2 5M || return 1
  qio -c "write -P 5 0 5M" base.qcow2 || return 1
  cd "$T/dc/a" || return 1
  qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size=32768 -b b/base.qcow2 -F qcow2 \
    mid1.qcow2 || return 1
  qio -c "write -P 6 4k 4k" -c "write -z 40k 8k" -c "write -P 7 1M 100k" mid1.qcow2 || return 1
  cd "$T/dc" || return 1
  qemu-img create -q -f qcow2 -o compression_type=zstd -b a/mid1.qcow2 -F qcow2 mid2.qcow2 || return 1
  qio -c "write -c -P 8 2M 64k" -c "write -z 1M 4k" mid2.qcow2 || return 1
  qemu-img create -q -f qcow2 -o cluster_size=4096 -b mid2.qcow2 -F qcow2 top.qcow2 6M || return 1
  qio -c "write -P 9 2052k 1k" -c "write -P 10 5M 8k" top.qcow2 || return 1
  convert_matches "$T/dc/top.qcow2" &&
    (cd "$T/dc" && "$E2IMAGE" -r top.qcow2 - | cmp - "$T/qemu.raw")
}
ok "a chain of four with relative names in subdirectories, and to stdout" deep_chain

# Renames the backing format extension to an unknown type: the extension
# is skipped by its length and the backing format is probed (as qemu does).
unknown_extension_probe() {
  rm -rf "$T/pr" && mkdir "$T/pr" && cd "$T/pr" || return 1
  qemu-img create -q -f qcow2 base.qcow2 2M && qio -c "write -P 11 0 2M" base.qcow2 || return 1
  head -c 1000000 /dev/urandom > base.raw
  for b in base.qcow2 base.raw; do
    fmt=qcow2; [ $b = base.raw ] && fmt=raw
    qemu-img create -q -f qcow2 -b $b -F $fmt top.qcow2 2M || return 1
    qio -c "write -P 12 64k 64k" top.qcow2 || return 1
    at=$(LC_ALL=C grep -obUaP '\xe2\x79\x2a\xca' top.qcow2 | head -n 1 | cut -d: -f1)
    [ -n "$at" ] || return 1
    printf '\x12\x34\x56\x78' | dd of=top.qcow2 bs=1 seek="$at" conv=notrunc status=none
    qemu-img info top.qcow2 | grep -q "backing file format" && return 1
    convert_matches "$T/pr/top.qcow2" || return 1
  done
}
ok "an unknown header extension is skipped; backing format probed (qcow2, raw)" unknown_extension_probe

subclusters_over_compressed_backing() {
  rm -rf "$T/sc" && mkdir "$T/sc" && cd "$T/sc" || return 1
  head -c 2097152 /dev/urandom | od -An -tx1 | head -c 2097152 > text.raw
  qemu-img convert -q -f raw -O qcow2 -c -o compression_type=zlib text.raw base.qcow2 || return 1
  qemu-img create -q -f qcow2 -o extended_l2=on -b base.qcow2 -F qcow2 top.qcow2 || return 1
  qio -c "write -P 13 2k 2k" -c "write -z 10k 2k" -c "write -P 14 66k 6k" -c "write -P 15 1M 64k" \
    -c "discard 1M 2k" top.qcow2 || return 1
  convert_matches "$T/sc/top.qcow2"
}
ok "extended L2 subclusters over a compressed backing image" subclusters_over_compressed_backing

missing_backing() {
  qemu-img create -q -f qcow2 -u -b does-not-exist.qcow2 -F qcow2 "$T/orphan.qcow2" 1M || return 1
  refused "$T/orphan.qcow2" "cannot open backing file 'does-not-exist.qcow2'"
}
ok "a missing backing file is an error, not zeros" missing_backing

backing_loop() {
  qemu-img create -q -f qcow2 -u -b loop2.qcow2 -F qcow2 "$T/loop1.qcow2" 1M || return 1
  qemu-img create -q -f qcow2 -u -b loop1.qcow2 -F qcow2 "$T/loop2.qcow2" 1M || return 1
  refused "$T/loop1.qcow2" "loops back"
}
ok "a backing chain that loops is refused" backing_loop

too_deep() {
  rm -rf "$T/deep" && mkdir "$T/deep" && cd "$T/deep" || return 1
  qemu-img create -q -f qcow2 l0.qcow2 1M || return 1
  i=1
  while [ $i -le 65 ]; do
    qemu-img create -q -f qcow2 -u -b l$((i - 1)).qcow2 -F qcow2 l$i.qcow2 1M || return 1
    i=$((i + 1))
  done
  convert_matches "$T/deep/l64.qcow2" && refused "$T/deep/l65.qcow2" "deeper than 64"
}
ok "a chain of 64 backing files converts; 65 is refused" too_deep

data_file() {  # data_file EXTRA-OPTIONS
  rm -rf "$T/df" && mkdir "$T/df" && cd "$T/df" || return 1
  qemu-img create -q -f qcow2 -o "data_file=data.bin,$1" img.qcow2 5000192 || return 1
  qio -c "write -P 16 0 100k" -c "write -z 64k 8k" -c "write -P 17 1M 64k" -c "discard 1M 32k" \
    -c "write -P 18 4999168 1024" img.qcow2 || return 1
  convert_matches "$T/df/img.qcow2"
}
ok "external data file" data_file data_file_raw=off
ok "external data file, data_file_raw" data_file data_file_raw=on
ok "external data file with extended L2, 16 KiB clusters" data_file extended_l2=on,cluster_size=16384

data_file_with_backing() {
  rm -rf "$T/db" && mkdir "$T/db" && cd "$T/db" || return 1
  head -c 2000000 /dev/urandom > base.raw
  qemu-img create -q -f qcow2 -o data_file=data.bin -b base.raw -F raw img.qcow2 3M || return 1
  qio -c "write -P 19 512k 64k" -c "write -z 0 4k" img.qcow2 || return 1
  convert_matches "$T/db/img.qcow2"
}
ok "external data file over a raw backing file" data_file_with_backing

missing_data_file() {
  rm -rf "$T/md" && mkdir "$T/md" && cd "$T/md" || return 1
  qemu-img create -q -f qcow2 -o data_file=data.bin img.qcow2 1M && rm data.bin
  refused "$T/md/img.qcow2" "cannot open external data file"
}
ok "a missing external data file is an error" missing_data_file

snapshots() {  # snapshots COMPAT
  qemu-img create -q -f qcow2 -o "compat=$1,cluster_size=4096" "$T/s.qcow2" 4M || return 1
  qio -c "write -P 20 0 1M" "$T/s.qcow2" && qemu-img snapshot -c first "$T/s.qcow2" || return 1
  qio -c "write -P 21 512k 1M" -c "discard 0 64k" "$T/s.qcow2" || return 1
  qemu-img snapshot -c second "$T/s.qcow2" && qio -c "write -z 1M 8k" "$T/s.qcow2" || return 1
  convert_matches "$T/s.qcow2" && ! cmp -s "$T/ours.raw" <(qemu-img convert -O raw -l first \
    "$T/s.qcow2" /dev/stdout)
}
ok "internal snapshots (v3): the active layer converts" snapshots 1.1
ok "internal snapshots (v2): the active layer converts" snapshots 0.10

bitmaps() {
  qemu-img create -q -f qcow2 -o cluster_size=65536 "$T/b.qcow2" 8M || return 1
  qemu-img bitmap --add "$T/b.qcow2" tracked && qemu-img bitmap --add -g 4096 "$T/b.qcow2" fine &&
    qemu-img bitmap --add --disable "$T/b.qcow2" off || return 1
  qio -c "write -P 22 0 300k" -c "write -z 1M 64k" "$T/b.qcow2" || return 1
  qemu-img info "$T/b.qcow2" | grep -q "name: fine" || return 1
  convert_matches "$T/b.qcow2"
}
ok "persistent dirty bitmaps" bitmaps

encrypted() {  # encrypted FORMAT
  # qemu-img times PBKDF2 to size LUKS key slots; on a busy machine that
  # measurement fails now and then ("Unable to get accurate CPU usage"): retry.
  for _ in 1 2 3 4 5; do
    qemu-img create -q --object secret,id=s0,data=pw -f qcow2 \
      -o "encrypt.format=$1,encrypt.key-secret=s0" "$T/enc.qcow2" 1M && break
    rm -f "$T/enc.qcow2"
  done
  [ -f "$T/enc.qcow2" ] || return 1
  refused "$T/enc.qcow2" "$2"
}
ok "AES encryption is refused" encrypted aes "AES-encrypted"
ok "LUKS encryption is refused" encrypted luks "LUKS-encrypted"

done_testing
