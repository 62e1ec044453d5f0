#!/bin/bash
# Builds (once) the three benchmark filesystems in the cache directory and
# prints their paths, one per line as NAME PATH. Each image is built under a
# temporary name and renamed when complete, with a stamp holding the
# parameters it was built with, so a changed parameter rebuilds it.
#
#   usr:   an ext4 of 16 GiB x BENCH_SCALE holding a copy of BENCH_USR_SRC
#          (default /usr at full scale, /usr/share when scaled down)
#   small: an ext4 of 24 GiB x BENCH_SCALE holding 1,000,000 x BENCH_SCALE
#          small files in 2,000 x BENCH_SCALE directories (mke2fs -d)
#   huge:  a sparse 15 TiB ext4 (mke2fs -E lazy_itable_init=1) with a few
#          files: the size of the filesystem, not its contents, is the load
set -euo pipefail

cache=${1:?usage: make-fs.sh CACHE_DIR}
scale=${BENCH_SCALE:-1}
mkdir -p "$cache"

# Integer arithmetic on a decimal scale: scaled N prints N x scale, at least MIN.
scaled() { awk -v n="$1" -v s="$scale" -v min="${2:-1}" 'BEGIN { v = int(n * s); print (v < min ? min : v) }'; }

usr_src=${BENCH_USR_SRC:-$(awk -v s="$scale" 'BEGIN { print (s >= 1 ? "/usr" : "/usr/share") }')}
usr_mib=$(scaled 16384 256)
# Never smaller than the tree needs (the scaled-down runs).
usr_need=$(du -smx "$usr_src" 2> /dev/null | awk '{ print int($1 * 1.6) + 64 }')
[ "$usr_mib" -ge "$usr_need" ] || usr_mib=$usr_need
small_files=$(scaled 1000000 100)
small_dirs=$(scaled 2000 1)
small_mib=$(scaled 24576 256)
huge_size=${BENCH_HUGE_SIZE:-15T}

# stamp_ok NAME PARAMS: is NAME built with these parameters?
stamp_ok() { [ -f "$cache/$1.img" ] && [ "$(cat "$cache/$1.stamp" 2>/dev/null)" = "$2" ]; }
finish() { mv "$cache/$1.img.tmp" "$cache/$1.img"; printf '%s\n' "$2" > "$cache/$1.stamp"; }

# usr: a real tree.
params="usr src=$usr_src mib=$usr_mib"
if ! stamp_ok usr "$params"; then
  echo "bench: building usr.img ($usr_mib MiB from $usr_src; this takes a while)" >&2
  rm -f "$cache/usr.img.tmp"
  truncate -s "${usr_mib}M" "$cache/usr.img.tmp"
  mke2fs -q -F -t ext4 -d "$usr_src" "$cache/usr.img.tmp" >&2
  finish usr "$params"
fi
echo "usr $cache/usr.img"

# small: many small files. The tree is staged on disk for mke2fs -d, then removed.
params="small files=$small_files dirs=$small_dirs mib=$small_mib"
if ! stamp_ok small "$params"; then
  echo "bench: building small.img ($small_files files in $small_dirs directories)" >&2
  stage="$cache/small-stage"
  rm -rf "$stage" "$cache/small.img.tmp"
  mkdir -p "$stage"
  # Files of 1 byte to 12 KiB with varied, incompressible-enough contents.
  perl -e '
    my ($root, $files, $dirs) = @ARGV;
    srand(42);
    my $blob = join("", map { chr(int(rand(256))) } 1 .. 65536);
    for my $d (0 .. $dirs - 1) { mkdir(sprintf("%s/d%04d", $root, $d)) or die "mkdir: $!"; }
    for my $i (0 .. $files - 1) {
      my $path = sprintf("%s/d%04d/f%07d", $root, $i % $dirs, $i);
      open(my $fh, ">", $path) or die "$path: $!";
      my $size = 1 + int(rand(12288));
      print $fh substr($blob, int(rand(65536 - $size)), $size);
      close($fh);
    }' "$stage" "$small_files" "$small_dirs"
  truncate -s "${small_mib}M" "$cache/small.img.tmp"
  mke2fs -q -F -t ext4 -N $((small_files + small_files / 4 + 1024)) -d "$stage" \
    "$cache/small.img.tmp" >&2
  rm -rf "$stage"
  finish small "$params"
fi
echo "small $cache/small.img"

# huge: a sparse filesystem whose size is the load.
params="huge size=$huge_size"
if ! stamp_ok huge "$params"; then
  echo "bench: building huge.img ($huge_size, sparse)" >&2
  stage="$cache/huge-stage"
  rm -rf "$stage" "$cache/huge.img.tmp"
  mkdir -p "$stage/etc"
  cp /etc/hostname /etc/os-release "$stage/etc/" 2>/dev/null || true
  echo "a few files on a very large filesystem" > "$stage/README"
  truncate -s "$huge_size" "$cache/huge.img.tmp"
  mke2fs -q -F -t ext4 -E lazy_itable_init=1,lazy_journal_init=1 -d "$stage" \
    "$cache/huge.img.tmp" >&2
  rm -rf "$stage"
  finish huge "$params"
fi
echo "huge $cache/huge.img"
