#!/bin/bash
# Images from strangers name files outside themselves: by default only files
# inside the directory of the image naming them are opened (--backing=any
# allows others, converted as qemu-img converts them); whatever they name,
# a FIFO, socket or character device is never opened (nothing hangs), and
# a data file gives no more than its size (/proc files, shorter files):
# reads past its end are zeros, as qemu-img reads them.
. "$TESTLIB"
: "${QCOW2_INSPECT:?QCOW2_INSPECT must point at the built misc/qcow2-inspect}"
Q=$QCOW2_INSPECT

qio() { qemu-io "$@" > "$T/qemu-io.log" 2>&1 || { cat "$T/qemu-io.log"; return 1; }; }

# rename_reference IMAGE OLD NEW: the name OLD in the image's header becomes
# NEW (of the same length).
rename_reference() {
  at=$(LC_ALL=C grep -obUaF "$2" "$1" | head -1 | cut -d: -f1)
  [ -n "$at" ] && [ ${#2} = ${#3} ] && printf '%s' "$3" | dd of="$1" bs=1 seek="$at" conv=notrunc status=none
}

# converts_as_qemu DIR IMAGE [OPTION]: e2image -r (given OPTION) gives
# qemu-img convert's bytes.
converts_as_qemu() {
  (cd "$1" && qemu-img convert -O raw "$2" "$T/qemu.raw") || return 1
  rm -f "$T/ours.raw"
  (cd "$1" && "$E2IMAGE" -r ${3-} "$2" "$T/ours.raw") || return 1
  same_bytes "$T/qemu.raw" "$T/ours.raw"
}

# refused_everywhere IMAGE PATTERN: e2image -r and each qcow2-inspect
# command that follows references fail within seconds with one line
# matching PATTERN, and write nothing.
refused_everywhere() {
  rm -f "$T/out.raw"
  timeout 10 "$E2IMAGE" -r "$1" "$T/out.raw" > "$T/err" 2>&1; rc=$?
  cat "$T/err"
  [ $rc = 1 ] && [ "$(wc -l < "$T/err")" = 1 ] && grep -q -- "$2" "$T/err" && [ ! -e "$T/out.raw" ] ||
    return 1
  for cmd in map info; do
    timeout 10 "$Q" $cmd "$1" > "$T/out" 2> "$T/err"; rc=$?
    echo "$cmd: exit $rc"; cat "$T/err"
    if [ $cmd = map ]; then
      [ $rc = 1 ] && [ ! -s "$T/out" ] && grep -q -- "$2" "$T/err" || return 1
    else  # info reports the chain's problem and exits 0
      [ $rc = 0 ] && grep -q -- "$2" "$T/out" || return 1
    fi
  done
}

# A data file shorter than the disk.
mkdir -p "$T/short"
(cd "$T/short" && qemu-img create -q -f qcow2 -o data_file=data.bin img.qcow2 4M &&
  qio -c "write -P 3 0 3M" img.qcow2 && truncate -s 1000000 data.bin) || exit 1
ok "a data file shorter than the disk: zeros past its end, as qemu-img" converts_as_qemu "$T/short" img.qcow2

# A data file named /proc/self/environ: reads past its size (0) would give
# the process's environment.
mkdir -p "$T/proc"
(cd "$T/proc" && qemu-img create -q -f qcow2 -o data_file=abcdefghijklmn.bin img.qcow2 1M &&
  qio -c "write -P 7 0 256k" img.qcow2 &&
  rename_reference img.qcow2 abcdefghijklmn.bin /proc/self/environ) || exit 1
proc_environ() {
  rm -f "$T/ours.raw"
  "$E2IMAGE" -r "$T/proc/img.qcow2" "$T/ours.raw" 2> "$T/err" && return 1
  cat "$T/err"
  [ ! -e "$T/ours.raw" ] && [ "$(wc -l < "$T/err")" = 1 ] &&
    grep -q "external data file '/proc/self/environ' is outside the image's directory; --backing=any allows it" "$T/err" &&
    converts_as_qemu "$T/proc" img.qcow2 --backing=any && cmp "$T/ours.raw" <(head -c 1M /dev/zero)
}
ok "a data file /proc/self/environ: refused by default; --backing=any reads zeros, as qemu-img" proc_environ

# A FIFO named as backing file or data file: never opened, so nothing hangs.
mkdir -p "$T/fifo"
(cd "$T/fifo" && mkfifo pipe1234 pipe123456 &&
  qemu-img create -q -f qcow2 -u -b fifo.qcow2 -F raw b.qcow2 1M &&
  rename_reference b.qcow2 fifo.qcow2 pipe123456 &&
  qemu-img create -q -f qcow2 -o data_file=fifo.bin d.qcow2 1M && rm fifo.bin &&
  rename_reference d.qcow2 fifo.bin pipe1234) || exit 1
ok "a FIFO as backing file: refused at once by e2image -r, map and info" \
  refused_everywhere "$T/fifo/b.qcow2" "backing file 'pipe123456'.* is not a regular file or block device"
ok "a FIFO as data file: refused at once by e2image -r and map" sh -c '
  timeout 10 "$1" -r "$3/fifo/d.qcow2" "$3/d.raw" 2>&1 | grep -q "is not a regular file or block device" &&
  timeout 10 "$2" map "$3/fifo/d.qcow2" 2>&1 | grep -q "is not a regular file or block device"' \
  - "$E2IMAGE" "$Q" "$T"

# A character device: never opened (reading /dev/zero would give zeros for
# ever; other devices have side effects on open).
mkdir -p "$T/dev"
(cd "$T/dev" && qemu-img create -q -f qcow2 -u -b abcdefghi -F raw z.qcow2 1M &&
  rename_reference z.qcow2 abcdefghi /dev/zero) || exit 1
ok "a character device as backing file: refused by e2image -r, map and info" \
  refused_everywhere "$T/dev/z.qcow2" "backing file '/dev/zero' is not a regular file or block device"

# A small sparse file claiming a 2^61-byte disk, 2 MiB clusters and an
# all-zero L1 table: map answers each empty L1 entry for its whole range
# (probing 1 GiB at a time, as qemu-img map does, took over 15 minutes).
huge_sparse_map() {
  qemu-img create -q -f qcow2 -o cluster_size=2M "$T/huge.qcow2" $((1 << 61)) || return 1
  timeout 20 "$Q" map --json "$T/huge.qcow2" > "$T/huge.json" || return 1
  jq -e "length == 1 and .[0].length == $((1 << 61)) and .[0].present == false" "$T/huge.json"
}
ok "map of a 2^61-byte sparse disk answers at once" huge_sparse_map

# --backing=image-dir: only files inside the directory of the image naming
# them, after resolving symlinks and "..".
mkdir -p "$T/esc/img" "$T/esc/other"
(cd "$T/esc" && head -c 1M /dev/urandom > other/secret.raw &&
  ln -s ../other/secret.raw img/link.raw && head -c 1M /dev/urandom > img/inside.raw &&
  qemu-img create -q -f qcow2 -u -b ../other/secret.raw -F raw img/dotdot.qcow2 1M &&
  qemu-img create -q -f qcow2 -u -b "$T/esc/other/secret.raw" -F raw img/absolute.qcow2 1M &&
  qemu-img create -q -f qcow2 -u -b link.raw -F raw img/symlink.qcow2 1M &&
  qemu-img create -q -f qcow2 -u -b inside.raw -F raw img/inside.qcow2 1M) || exit 1
# escape_refused IMAGE NAME: by default (and with --backing=image-dir),
# e2image -r and map refuse with one line naming the image, the name and the
# option; info reports it. With --backing=any, -r gives qemu-img's bytes.
escape_refused() {
  rm -f "$T/out.raw"
  "$E2IMAGE" -r "$1" "$T/out.raw" 2> "$T/err"; rc=$?
  cat "$T/err"
  [ $rc = 1 ] && [ ! -e "$T/out.raw" ] && [ "$(wc -l < "$T/err")" = 1 ] &&
    grep -qF "e2image: $1: backing file '$2'" "$T/err" &&
    grep -q "is outside the image's directory; --backing=any allows it$" "$T/err" || return 1
  for opt in "" --backing=image-dir; do
    "$Q" map $opt "$1" > "$T/out" 2> "$T/err"; rc=$?
    cat "$T/err"
    [ $rc = 1 ] && [ ! -s "$T/out" ] && [ "$(wc -l < "$T/err")" = 1 ] &&
      grep -qF "qcow2-inspect: $1: backing file '$2'" "$T/err" &&
      grep -q "is outside the image's directory; --backing=any allows it" "$T/err" || return 1
    "$Q" info $opt "$1" | grep -q "outside the image's directory" || return 1
  done
  "$Q" map --backing=any "$1" > /dev/null &&  # followed when allowed
    converts_as_qemu "${1%/*}" "${1##*/}" --backing=any &&
    ! cmp -s "$T/ours.raw" <(head -c 1M /dev/zero)  # the secret's bytes, as qemu-img reads them
}
ok "by default a .. escape is refused, naming image, name and option; --backing=any converts" escape_refused "$T/esc/img/dotdot.qcow2" ../other/secret.raw
ok "by default an absolute name outside is refused; --backing=any converts" escape_refused "$T/esc/img/absolute.qcow2" "$T/esc/other/secret.raw"
ok "by default a symlink pointing out is refused; --backing=any converts" escape_refused "$T/esc/img/symlink.qcow2" link.raw
ok "--backing=image-dir follows a file inside, as qemu-img map" sh -c '
  qemu-img map --output=json "$2" | jq -c ".[]" > "$3/qm" &&
  "$1" map --json --backing=image-dir "$2" | jq -c ".[] | del(.compressed)" > "$3/om" &&
  diff "$3/qm" "$3/om" && grep -q "\"depth\":1" "$3/om"' - "$Q" "$T/esc/img/inside.qcow2" "$T"
# By default a backing file inside the image's directory is followed: -r
# converts as qemu-img and names the file in one line on stderr.
inside_followed() {
  (cd "$T/esc/img" && qemu-img convert -O raw inside.qcow2 "$T/qemu.raw") || return 1
  rm -f "$T/ours.raw"
  "$E2IMAGE" -r "$T/esc/img/inside.qcow2" "$T/ours.raw" 2> "$T/err" || return 1
  cat "$T/err"
  [ "$(cat "$T/err")" = "e2image: $T/esc/img/inside.qcow2: backing file 'inside.raw' ($T/esc/img/inside.raw)" ] &&
    same_bytes "$T/qemu.raw" "$T/ours.raw" || return 1
  "$Q" map "$T/esc/img/inside.qcow2" 2>&1 > /dev/null |
    grep -qxF "qcow2-inspect: $T/esc/img/inside.qcow2: backing file 'inside.raw' ($T/esc/img/inside.raw)"
}
ok "by default a backing file inside is followed, converted as qemu-img, named on stderr" inside_followed

none_as_backing_null() {
  qemu-img map --output=json \
    "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/esc/img/dotdot.qcow2\"},\"backing\":null}" |
    jq -c '.[]' > "$T/qm" || return 1
  "$Q" map --json --backing=none "$T/esc/img/dotdot.qcow2" | jq -c '.[] | del(.compressed)' > "$T/om" &&
    diff "$T/qm" "$T/om"
}
ok "--backing=none reads the image as if it had none, as qemu's backing: null" none_as_backing_null

# e2fsprogs' e2image reads a version 2 image with a backing file as if it
# had none (silently): --backing=none gives its bytes.
mkdir -p "$T/e2fs"
(cd "$T/e2fs" && mke2fs -q -F -t ext4 base.raw 4M &&
  qemu-img create -q -f qcow2 -o compat=0.10 -b base.raw -F raw top.qcow2 &&
  qio -c "write -P 5 64k 64k" top.qcow2) || exit 1
none_as_e2fsprogs() {
  rm -f "$T/oracle.raw" "$T/ours.raw"
  "$ORACLE_E2IMAGE" -r "$T/e2fs/top.qcow2" "$T/oracle.raw" 2> /dev/null || return 1
  "$E2IMAGE" -r --backing=none "$T/e2fs/top.qcow2" "$T/ours.raw" 2> "$T/err" || return 1
  [ ! -s "$T/err" ] && same_bytes "$T/oracle.raw" "$T/ours.raw" &&
    converts_as_qemu "$T/e2fs" top.qcow2 && ! cmp -s "$T/oracle.raw" "$T/ours.raw"
}
ok "-r --backing=none gives e2fsprogs' bytes (backing ignored); the default gives qemu-img's" \
  none_as_e2fsprogs

# --backing is for a qcow2 source of -r; its scopes are any, image-dir, none.
backing_usage() {
  mke2fs -q -F -t ext4 "$T/fs.img" 4M || return 1
  "$E2IMAGE" -r --backing=any "$T/fs.img" "$T/fs.raw" 2> "$T/err" && return 1
  cat "$T/err"
  [ "$(cat "$T/err")" = "e2image: --backing goes with -r and a qcow2 image as the source" ] &&
    [ ! -e "$T/fs.raw" ] || return 1
  "$E2IMAGE" -r --backing=all "$T/e2fs/top.qcow2" "$T/x.raw" 2> "$T/err" && return 1
  grep -qx "e2image: unknown --backing scope 'all' (any, image-dir or none)" "$T/err" || return 1
  "$Q" check --backing=all "$T/e2fs/top.qcow2" 2> "$T/err" && return 1
  grep -qx "qcow2-inspect: unknown --backing scope 'all' (any, image-dir or none)" "$T/err" &&
    "$Q" check --backing=none "$T/e2fs/top.qcow2" > /dev/null &&
    "$Q" dump --backing=any "$T/e2fs/top.qcow2" > /dev/null
}
ok "--backing: only with -r of a qcow2 image; unknown scopes refused; check and dump take it" \
  backing_usage

# Escape sequences in names an image gives: escaped in text, exact in JSON.
esc_name=$(printf '\033[31mred\033]0;title\007')
qemu-img create -q -f qcow2 -u -b "$esc_name" -F raw "$T/esc.qcow2" 1M || exit 1
names_escaped() {
  "$Q" info "$T/esc.qcow2" > "$T/info.txt"; "$Q" map "$T/esc.qcow2" 2> "$T/map.err"
  "$E2IMAGE" -r "$T/esc.qcow2" "$T/esc.raw" 2> "$T/r.err"
  cat "$T/info.txt" "$T/map.err" "$T/r.err"
  for f in "$T/info.txt" "$T/map.err" "$T/r.err"; do
    ! LC_ALL=C grep -q "$(printf '\033')" "$f" && ! LC_ALL=C grep -q "$(printf '\007')" "$f" &&
      grep -qF '\x1b[31mred\x1b]0;title\x07' "$f" || { echo "$f"; return 1; }
  done
  [ "$("$Q" info --json "$T/esc.qcow2" | jq -r '."backing-filename"')" = "$esc_name" ] &&
    [ "$(qemu-img info --output=json "$T/esc.qcow2" | jq -r '."backing-filename"')" = "$esc_name" ]
}
ok "escape sequences in a backing file name: escaped in text and errors, exact in JSON" names_escaped

# Internal snapshots, each with its own L1 table: check walks them all
# (empty entries answered at once, slices of a table in a hole of the file
# not read) and agrees with qemu-img check. qemu-img makes the snapshots
# without syncing the file, one process each (300: each costs more than the
# last, a thousand take minutes to make).
snapshots() {  # snapshots IMAGE COUNT
  i=1
  while [ $i -le "$2" ]; do
    qemu-img snapshot --image-opts -c s$i "driver=qcow2,file.filename=$1,cache.no-flush=on,overlap-check=none" ||
      return 1
    i=$((i + 1))
  done
}
check_agrees() {  # check_agrees IMAGE: clean, with qemu-img check's counts
  qemu-img check --output=json "$1" > "$T/qc.json" 2> /dev/null; qrc=$?
  "$Q" check --json "$1" > "$T/oc.json"; orc=$?
  keys='[.corruptions // 0, .leaks // 0, ."check-errors" // 0, ."image-end-offset", ."allocated-clusters" // 0]'
  echo "$1: qemu-img rc=$qrc $(jq -c "$keys" "$T/qc.json"), ours rc=$orc $(jq -c "$keys" "$T/oc.json")"
  [ "$qrc" = 0 ] && [ "$orc" = 0 ] && [ "$(jq -c "$keys" "$T/qc.json")" = "$(jq -c "$keys" "$T/oc.json")" ]
}
mkdir -p "$T/snap"
(cd "$T/snap" && qemu-img create -q -f qcow2 -o cluster_size=4096 many.qcow2 64M &&
  qio -c "write -P 1 0 64k" -c "write -P 2 32M 64k" many.qcow2 && snapshots many.qcow2 300 &&
  qemu-img create -q -f qcow2 -o cluster_size=4096 sparse.qcow2 256G &&
  qio -c "write -P 3 0 64k" -c "write -P 4 100G 64k" sparse.qcow2 && snapshots sparse.qcow2 20 &&
  fallocate -d sparse.qcow2) || exit 1
many_snapshots() {
  check_agrees "$T/snap/many.qcow2" &&
    "$Q" info --json "$T/snap/many.qcow2" | jq -e '.snapshots | length == 300' > /dev/null
}
ok "check of 300 snapshots: clean, as qemu-img check" many_snapshots
ok "check of snapshots whose 1 MiB L1 tables end in a hole (second half): clean, as qemu-img check" \
  check_agrees "$T/snap/sparse.qcow2"

done_testing
