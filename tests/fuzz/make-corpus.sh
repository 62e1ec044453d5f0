#!/bin/bash
# Regenerates the seed corpora in tests/fuzz/corpus (committed; run this only
# to change them): small qcow2 images from qemu-img/qemu-io, small ext2/3/4
# filesystems from mke2fs -d, and images streamed by e2image -Q ... - of
# them (E2IMAGE: the built program, by default the build tree's beside). Regression inputs found by fuzzing are added
# to the same directories by hand, named regression-*.
set -euo pipefail
PATH=/usr/sbin:/sbin:$PATH
export E2FSPROGS_FAKE_TIME=1700000000
here=$(cd "$(dirname "$0")" && pwd)
corpus=$here/corpus
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

hdr=$corpus/fuzz_qcow2_header
rdr=$corpus/fuzz_qcow2_reader
fs=$corpus/fuzz_metadata_scan
str=$corpus/fuzz_stream_reader
E2IMAGE=${E2IMAGE:-$here/../../misc/e2image}
mkdir -p "$hdr" "$rdr" "$fs" "$str"
rm -f "$hdr"/seed-* "$rdr"/seed-* "$fs"/seed-* "$str"/seed-*

# A small raw disk with data, a zero run and a hole.
head -c 65536 /dev/urandom > "$t/data.raw"
seq 1 5000 >> "$t/data.raw"
truncate -s 196608 "$t/data.raw"

qcow() {  # qcow NAME OPTIONS...: converts data.raw with qemu-img options
  name=$1; shift
  qemu-img convert -q -f raw -O qcow2 "$@" "$t/data.raw" "$t/$name.qcow2"
}
qcow v2-512 -o compat=0.10,cluster_size=512
qcow v3-1k -o compat=1.1,cluster_size=1024
qcow v3-zlib -c -o compat=1.1,cluster_size=4096
qcow v3-zstd -c -o compat=1.1,cluster_size=4096,compression_type=zstd
qcow v2-zlib -c -o compat=0.10,cluster_size=2048
qcow v3-lazy -o compat=1.1,cluster_size=4096,lazy_refcounts=on,refcount_bits=8
cp "$t/v3-1k.qcow2" "$t/v3-zero.qcow2"
qemu-io -f qcow2 -c 'write -z 4096 8192' -c 'discard 16384 4096' "$t/v3-zero.qcow2" > /dev/null
qemu-img create -q -f qcow2 -o compat=1.1,cluster_size=512 -b data.raw -F raw "$t/backing.qcow2" 128K
qemu-img create -q -f qcow2 -o compat=1.1,cluster_size=16384,extended_l2=on "$t/ext-l2.qcow2" 64K
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4096 "$t/empty-v2.qcow2" 0
# Data clusters out of guest order: qemu places them in the order written.
qemu-img create -q -f qcow2 -o cluster_size=1024 "$t/out-of-order.qcow2" 64K
qemu-io -f qcow2 -c 'write -P 0x11 48K 2K' -c 'write -P 0x22 0 3K' -c 'write -P 0x33 20K 1K' \
  "$t/out-of-order.qcow2" > /dev/null

for f in "$t"/*.qcow2; do
  n=$(basename "$f" .qcow2)
  head -c 4096 "$f" > "$hdr/seed-$n"
  cp "$f" "$rdr/seed-$n"
  cp "$f" "$str/seed-$n"
done

# Filesystems: a tree with a directory, small files, a long file (indirect
# blocks or extents) and both kinds of symlink.
mkdir -p "$t/tree/dir"
for i in $(seq 1 40); do echo "entry $i" > "$t/tree/dir/file-with-a-name-$i"; done
seq 1 30000 > "$t/tree/numbers"
ln -s numbers "$t/tree/fast"
ln -s "$(printf 'y%.0s' $(seq 1 200))" "$t/tree/slow"
mkfs() {  # mkfs NAME SIZE OPTIONS...
  name=$1 size=$2; shift 2
  mke2fs -q -F -d "$t/tree" "$@" "$fs/seed-$name" "$size"
}
mkfs ext2-1k 256K -t ext2 -b 1024 -N 64
mkfs ext4-1k 512K -t ext4 -b 1024 -N 64 -O ^has_journal
mkfs ext4-4k 1M -t ext4 -b 4096 -N 64 -O ^has_journal,^resize_inode
mkfs ext4-inline 512K -t ext4 -b 1024 -N 64 -O ^has_journal,inline_data,metadata_csum
"$E2IMAGE" -Q "$fs/seed-ext4-1k" - > "$str/seed-streamed"
"$E2IMAGE" -Q --cluster-size=4096 "$fs/seed-ext4-1k" - > "$str/seed-streamed-4k"
"$E2IMAGE" -Q --compress "$fs/seed-ext4-1k" - > "$str/seed-streamed-zlib"
ls -l "$hdr" "$rdr" "$fs" "$str"
