#!/bin/bash
# One image layer, one way of following references: qcow2-inspect info, map
# and check and `e2image -r` open the same chains (a `file:` backing name,
# names relative to the image's directory, an absolute name, a raw backing
# file, external data files) and each agrees with qemu-img: info
# --backing-chain, map --output=json, check, convert -O raw.
. "$TESTLIB"
: "${QCOW2_INSPECT:?QCOW2_INSPECT must point at the built misc/qcow2-inspect}"
Q=$QCOW2_INSPECT

qio() { qemu-io "$@" > "$T/qemu-io.log" 2>&1 || { cat "$T/qemu-io.log"; return 1; }; }

# agree DIR IMAGE [OPTION]: from DIR, every command on IMAGE (given OPTION,
# such as --backing=any) as qemu-img.
agree() {
  (cd "$1" && agree_here "$2" "${3-}")
}
agree_here() {
  img=$1 opt=${2-}
  # info: the same chain of files and formats below the image.
  qemu-img info --backing-chain --output=json "$img" > "$T/qi.json" || return 1
  "$Q" info --json $opt "$img" > "$T/oi.json" || return 1
  q=$(jq -c '[.[1:][] | [.filename, .format]]' "$T/qi.json")
  o=$(jq -c '[."backing-chain"[] | [.filename, .format]]' "$T/oi.json")
  echo "info chain: qemu-img $q; ours $o"
  [ "$q" = "$o" ] && [ "$(jq -c '[.[1:][]] | length' "$T/qi.json")" -ge 1 ] || return 1
  [ "$(jq -c '.[0]."backing-filename"' "$T/qi.json")" = "$(jq -c '."backing-filename"' "$T/oi.json")" ] ||
    return 1
  jq -e '[."backing-chain"[] | select(.problem)] == []' "$T/oi.json" > /dev/null || return 1
  # map: the same ranges, depths and offsets.
  qemu-img map --output=json "$img" | jq -c '.[]' > "$T/qm" || return 1
  "$Q" map --json $opt "$img" | jq -c '.[] | del(.compressed)' > "$T/om" || return 1
  [ -s "$T/om" ] && diff "$T/qm" "$T/om" || return 1
  # check: the same counts and exit code.
  qemu-img check --output=json "$img" > "$T/qc.json" 2> /dev/null; qrc=$?
  "$Q" check --json $opt "$img" > "$T/oc.json"; orc=$?
  keys='[.corruptions // 0, .leaks // 0, ."check-errors" // 0, ."image-end-offset", ."allocated-clusters" // 0]'
  [ "$qrc" = "$orc" ] && [ "$(jq -c "$keys" "$T/qc.json")" = "$(jq -c "$keys" "$T/oc.json")" ] ||
    { echo "check: qemu-img rc=$qrc $(jq -c "$keys" "$T/qc.json"), ours rc=$orc $(jq -c "$keys" "$T/oc.json")"; return 1; }
  # -r: the same bytes.
  qemu-img convert -O raw "$img" "$T/qemu.raw" || return 1
  rm -f "$T/ours.raw"
  "$E2IMAGE" -r $opt "$img" "$T/ours.raw" || return 1
  same_bytes "$T/qemu.raw" "$T/ours.raw"
}

# A top image naming its backing file `file:mid.qcow2`, over a relative
# `base.qcow2`. qemu resolves a `file:` name against its working directory,
# so both run from the chain's directory.
mkdir -p "$T/fp"
(
  cd "$T/fp" &&
    qemu-img create -q -f qcow2 -o cluster_size=4096 base.qcow2 4M &&
    qio -c "write -P 1 0 64k" -c "write -P 4 3M 8k" base.qcow2 &&
    qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2 &&
    qio -c "write -P 2 1M 64k" -c "write -z 3M 4k" mid.qcow2 &&
    qemu-img create -q -f qcow2 -u -b file:mid.qcow2 -F qcow2 top.qcow2 4M &&
    qio -c "write -P 3 2M 64k" -c "write -c -P 5 0 64k" top.qcow2
) || exit 1
ok "backing file named file:mid.qcow2: info reaches depth 2, map, check and -r as qemu-img" \
  agree "$T/fp" top.qcow2
# Renaming the backing format extensions leaves unknown ones (skipped): every
# tool then probes each backing file's format.
probed() {
  cd "$T/fp" && cp top.qcow2 ptop.qcow2 && cp mid.qcow2 pmid.qcow2 || return 1
  qemu-img rebase -q -u -b file:pmid.qcow2 -F qcow2 ptop.qcow2 || return 1
  for f in ptop.qcow2 pmid.qcow2; do
    at=$(LC_ALL=C grep -obUaP '\xe2\x79\x2a\xca' "$f" | head -1 | cut -d: -f1)
    [ -n "$at" ] && printf '\x12\x34\x56\x78' | dd of="$f" bs=1 seek="$at" conv=notrunc 2> /dev/null &&
      qemu-img info --output=json "$f" | jq -e '."backing-filename-format" == null' > /dev/null ||
      return 1
  done
  agree_here ptop.qcow2
}
ok "the same chain with no backing format extensions (formats probed)" probed

# Names relative to each image's own directory, one absolute name, and a raw
# backing file at the bottom; run from elsewhere with a relative image path.
mkdir -p "$T/rel/a" "$T/rel/b" "$T/rel/raw"
head -c 3000000 /dev/urandom > "$T/rel/raw/bottom.raw"
(
  cd "$T/rel" &&
    qemu-img create -q -f qcow2 -b "$T/rel/raw/bottom.raw" -F raw b/base.qcow2 4M &&
    qio -c "write -P 7 512k 64k" b/base.qcow2 &&
    qemu-img create -q -f qcow2 -u -b ../b/base.qcow2 -F qcow2 a/top.qcow2 4M &&
    qio -c "write -P 8 1M 128k" -c "write -z 0 64k" a/top.qcow2
) || exit 1
ok "relative names against each image's directory, an absolute name, a raw bottom: as qemu-img" \
  agree "$T" rel/a/top.qcow2 --backing=any
# The same chain leaves the top image's directory: refused by default.
outside_refused() {
  cd "$T" || return 1
  rm -f "$T/ours.raw"
  "$E2IMAGE" -r rel/a/top.qcow2 "$T/ours.raw" 2> "$T/err"; rc=$?
  cat "$T/err"
  [ $rc = 1 ] && [ ! -e "$T/ours.raw" ] && [ "$(wc -l < "$T/err")" = 1 ] &&
    grep -q "^e2image: rel/a/top.qcow2: backing file '../b/base.qcow2' (rel/a/../b/base.qcow2) is outside the image's directory; --backing=any allows it$" "$T/err" ||
    return 1
  "$Q" map rel/a/top.qcow2 > "$T/out" 2> "$T/err"; rc=$?
  [ $rc = 1 ] && [ ! -s "$T/out" ] && grep -q "outside the image's directory; --backing=any allows it" "$T/err" ||
    return 1
  "$Q" info --json rel/a/top.qcow2 | jq -e '."backing-chain"[0].problem | test("outside")' > /dev/null
}
ok "the same chain by default (image-dir): refused, one line naming image, name and option" \
  outside_refused

# External data files at two depths. qemu resolves a relative data file
# name against its working directory (ours, as backing file names, against
# the image's directory): the chain is run from its own directory.
mkdir -p "$T/df"
(
  cd "$T/df" &&
    qemu-img create -q -f qcow2 -o data_file=base.data base.qcow2 2M &&
    qio -c "write -P 9 0 256k" base.qcow2 &&
    qemu-img create -q -f qcow2 -o data_file=top.data -b base.qcow2 -F qcow2 top.qcow2 2M &&
    qio -c "write -P 10 128k 64k" -c "write -z 1M 64k" top.qcow2
) || exit 1
ok "external data files at two depths: info, map, check and -r as qemu-img" agree "$T/df" top.qcow2

# Run from elsewhere, the difference is deliberate: qemu-img looks for the
# relative data file names in its working directory and fails; ours finds
# them beside the image, so the result does not depend on where it runs.
data_files_from_elsewhere() {
  (cd "$T/df" && qemu-img convert -O raw top.qcow2 "$T/qemu.raw") || return 1
  (cd "$T" && ! qemu-img convert -O raw df/top.qcow2 "$T/elsewhere.raw" 2> /dev/null) || return 1
  rm -f "$T/ours.raw"
  (cd "$T" && "$E2IMAGE" -r df/top.qcow2 "$T/ours.raw") || return 1
  same_bytes "$T/qemu.raw" "$T/ours.raw"
}
ok "external data files, run from another directory: ours beside the image, qemu-img's not found" \
  data_files_from_elsewhere

done_testing
