#!/bin/bash
# `e2image -Q`: qemu-img must find the image clean and equal to the raw
# image; our own reader must give back the same bytes as qemu-img convert.
. "$TESTLIB"

capture() {
  name=$1; size=$2; opts=$3; shift 3
  make_fs "$T/$name.img" "$size" "$@" || return 1
  raw_opts=""; case " $opts " in *" -a "*) raw_opts=-a ;; esac
  "$E2IMAGE" -r $raw_opts "$T/$name.img" "$T/$name.raw" || return 1
  "$E2IMAGE" -Q $opts "$T/$name.img" "$T/$name.qcow2" || return 1
  qcow2_clean "$T/$name.qcow2" || return 1
  qemu-img compare -f qcow2 -F raw "$T/$name.qcow2" "$T/$name.raw" || return 1
  qemu-img convert -O raw "$T/$name.qcow2" "$T/$name.qemu.raw" || return 1
  "$E2IMAGE" -r "$T/$name.qcow2" "$T/$name.back.raw" || return 1
  same_bytes "$T/$name.qemu.raw" "$T/$name.back.raw" || return 1
  same_bytes "$T/$name.raw" "$T/$name.back.raw" || return 1
  e2fsck -fn "$T/$name.back.raw" || return 1
  rm -f "$T/$name".*
}

ok "-Q of ext4 4k: qemu-img check clean, compare identical" capture ext4-4k 64M "" -t ext4
ok "-Q of ext4 1k" capture ext4-1k 32M "" -t ext4 -b 1024
ok "-Q of ext2 2k" capture ext2-2k 32M "" -t ext2 -b 2048
ok "-Q of ext3 1k with many groups" capture ext3-groups 128M "" -t ext3 -b 1024 -g 1024
ok "-Q --qcow2-version=3" capture v3 64M "--qcow2-version=3" -t ext4
ok "-Q --cluster-size=65536 (16 blocks per cluster)" capture c64k 64M "--cluster-size=65536" -t ext4
ok "-Q --cluster-size=512 (a block spans clusters)" capture c512 16M "--cluster-size=512" -t ext4 -b 1024
ok "-Q --compress (zlib)" capture zlib 64M "--compress" -t ext4
ok "-Q --compress=zstd" capture zstd 64M "--compress=zstd" -t ext4
ok "-Qa keeps file data too" capture alldata 32M "-a" -t ext4

no_leak_vs_oracle() {
  make_fs "$T/o.img" 64M -t ext4 || return 1
  "$ORACLE_E2IMAGE" -Q "$T/o.img" "$T/o.oracle.qcow2" 2>/dev/null || return 1
  "$E2IMAGE" -Q "$T/o.img" "$T/o.ours.qcow2" || return 1
  qemu-img compare "$T/o.oracle.qcow2" "$T/o.ours.qcow2" || return 1
  qcow2_clean "$T/o.ours.qcow2"
}
ok "same content as Debian e2image -Q, without its leaks" no_leak_vs_oracle

done_testing
