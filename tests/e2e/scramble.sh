#!/bin/bash
# -s: scrambled images of filesystems with big hash-tree directories (1k and
# 4k blocks, several hash versions), inline-data directories, casefolded
# directories, fast and slow symlinks, and user/trusted xattrs in inodes, in
# blocks and in ea_inode inodes must pass `e2fsck -fn` clean and hold none of
# the original names, targets or values. Every original name, target and
# value carries the marker QZMARK (scrambled names are lower case, so they
# cannot make it up by chance).
. "$TESTLIB"
. "$(dirname "$TESTLIB")/fslib.sh"
MARK=QZMARK

# scramble_tree DIR: the names that matter, each with the marker; /big and
# /cf get most of their entries from $ADD_ENTRIES once indexed.
scramble_tree() {
  dir=$1
  mkdir -p "$dir/big" "$dir/sub/deeper" "$dir/few" "$dir/cf"
  (cd "$dir/big" && seq -f "${MARK}%g" 1 300 | xargs touch && touch a b c zz)
  for i in 1 2 3 4 5; do echo data > "$dir/few/$MARK-small-$i"; done
  echo data > "$dir/sub/deeper/$MARK-deep-file"
  ln -s "$MARK-fast" "$dir/fastlink-$MARK"
  ln -s "$MARK$(printf 'y%.0s' $(seq 1 300))" "$dir/slowlink-$MARK"
  touch "$dir/xattr-in-inode" "$dir/xattr-in-block" "$dir/xattr-ea-inode"
}

ino_of() { debugfs -R "ls -l /" "$1" 2>/dev/null | awk -v n="$2" '$NF == n { print $1 }'; }

# build_fs IMAGE SIZE BIG_ENTRIES HASH MKE2FS-OPTIONS...: the tree, xattrs,
# indexed directories (HASH: the default hash for e2fsck -D to index with).
build_fs() {
  img=$1; size=$2; n=$3; hash=$4; shift 4
  tree="$T/tree"
  [ -d "$tree" ] || scramble_tree "$tree"
  rm -f "$img"
  # A fixed hash seed: which names a leaf's hash range leaves for a short
  # name depends on it, so a failure of the seeded runs below repeats.
  mke2fs -q -F -N $((n + 5000)) -E hash_seed=8c6a7f29-0e6f-4d55-9f6a-5d9f3e7a1b22 -d "$tree" "$@" \
    "$img" "$size" > "$T/mke2fs.log" 2>&1 || {
    cat "$T/mke2fs.log"; return 1; }
  head -c 2000 /dev/zero | tr '\0' 'v' | sed "s/^/$MARK/" > "$T/value.block"
  head -c 9000 /dev/zero | tr '\0' 'w' | sed "s/^/$MARK/" > "$T/value.big"
  features=$(dumpe2fs -h "$img" 2>/dev/null | grep features)
  {
    echo "ssv def_hash_version $hash"
    [ -z "${SB_FLAGS:-}" ] || echo "ssv flags $SB_FLAGS"
    echo "ea_set /xattr-in-inode user.$MARK-name $MARK-value"
    echo "ea_set /xattr-in-inode trusted.name-kept $MARK-trusted"
    echo "ea_set /xattr-in-inode security.keep kept-security-value"
    echo "ea_set -f $T/value.block /xattr-in-block user.$MARK-blockname"
    case $features in *ea_inode*)
      echo "ea_set -f $T/value.big /xattr-ea-inode user.$MARK-eainode" ;; esac
    case $features in *inline_data*)  # a directory and a symlink in inode and system.data
      echo "mkdir /inl"
      for i in 1 2; do echo "write /dev/null /inl/$MARK-i$i"; done
      echo "symlink /inlink $MARK$(printf 'z%.0s' $(seq 1 90))" ;; esac
    # An empty directory may become casefolded.
    case $features in *casefold*)
      flags=$(debugfs -R "stat /cf" "$img" 2>/dev/null | sed -n 's/.*Flags: \(0x[0-9a-f]*\).*/\1/p')
      echo "set_inode_field /cf flags $(printf '0x%x' $((flags | 0x40000000)))" ;; esac
  } > "$T/debugfs.cmds"
  debugfs -w -f "$T/debugfs.cmds" "$img" > "$T/debugfs.log" 2>&1 || { cat "$T/debugfs.log"; return 1; }
  e2fsck -fyD "$img" > "$T/e2fsck-D.log" 2>&1
  "$ADD_ENTRIES" "$img" "$MARK-entry-" "$n" "$(ino_of "$img" big)" || return 1
  "$ADD_ENTRIES" "$img" "$MARK-Case-" 2000 "$(ino_of "$img" cf)" || return 1
  e2fsck -fyD "$img" > "$T/e2fsck-D.log" 2>&1
  e2fsck -fn "$img" > "$T/e2fsck.log" 2>&1 || { echo "original not clean"; cat "$T/e2fsck.log"; return 1; }
}

fsck_clean() { e2fsck -fn "$1" > "$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; return 1; }; }
no_marker() {
  if grep -a -o "$MARK[^/]\{0,20\}" "$1" | head -n 5 | grep .; then
    echo "$1 still holds original names"; return 1
  fi
  return 0
}
has_marker() { grep -a -q "$MARK" "$1"; }
# Entries of a directory, by count (names differ, the number may not).
entry_count() { debugfs -R "ls -l $2" "$1" 2>/dev/null | grep -c .; }
is_htree() { debugfs -R "stat $2" "$1" 2>/dev/null | grep -q "Flags: 0x.*1[0-9a-f]\{3\}$"; }

# layout IMAGE DIR: each entry's inode, rec_len and name length, in block order.
# debugfs prints each entry as " INODE  (REC_LEN) NAME   " and breaks lines
# only before an entry. A name may hold spaces (a scrambled one- or two-byte
# name may be any byte), so it runs to the three spaces before the next entry;
# debugfs prints a backslash or a control byte in a name as \xNN: one byte.
layout() {
  debugfs -R "ls $2" "$1" 2>/dev/null | tr -d '\n' | LC_ALL=C awk '{
    s = $0
    while (match(s, /^ [0-9]+  \([0-9]+\) /)) {
      split(substr(s, 2, RLENGTH - 2), head, " "); s = substr(s, RLENGTH + 1)
      if (match(s, /    [0-9]+  \([0-9]+\) /)) { name = substr(s, 1, RSTART - 1); s = substr(s, RSTART + 3) }
      else { name = substr(s, 1, length(s) - 3); s = "" }
      gsub(/\\x[0-9a-fA-F][0-9a-fA-F]/, "x", name)
      print head[1], head[2], length(name)
    }
  }'
}
# same_layout ORIGINAL SCRAMBLED PATH: PATH (looked up in ORIGINAL: its name
# is scrambled in the other) has the same layout in both.
same_layout() {
  ino=$(debugfs -R "stat $3" "$1" 2>/dev/null | sed -n 's/^Inode: \([0-9]*\).*/<\1>/p')
  [ -n "$ino" ] || { echo "$3: not found"; return 1; }
  layout "$1" "$ino" > "$T/layout.orig"; layout "$2" "$ino" > "$T/layout.new"
  [ "$(wc -l < "$T/layout.orig")" -gt 2 ] || { echo "$3: no entries listed"; return 1; }
  diff "$T/layout.orig" "$T/layout.new" > /dev/null || {
    echo "$3: the layout changed (inode, rec_len, name length):"; diff "$T/layout.orig" "$T/layout.new" | head; return 1; }
  return 0
}

# layout must not misread names with spaces, or a scrambled " " fails a
# directory that kept its layout (seen once in some twenty runs).
spaced_names() {
  mke2fs -q -F -t ext4 "$T/spaced.img" 4M && "$ADD_ENTRIES" "$T/spaced.img" " " 3 2 || return 1
  lengths=$(layout "$T/spaced.img" / | awk '{ printf "%s ", $3 }')
  [ "$lengths" = "1 2 10 2 2 2 " ] || { echo "name lengths read: $lengths"; return 1; }
  rm -f "$T/spaced.img"
}
ok "layout reads names holding spaces" spaced_names

# same_as_one_pass IMAGE SCRAMBLED.raw SEED: into a file, the group tables
# are copied during the scan as they are, then the blocks that change again,
# scrambled on one thread per core; the raw image equals the one written in
# one pass to a pipe on one thread, and the qcow2 image (three threads)
# holds the same blocks.
same_as_one_pass() {
  "$E2IMAGE" -r -s --scramble-keep-names --threads=1 --scramble-seed="$3" "$1" - 2> /dev/null | cmp - "$2" ||
    { echo "-r -s into a file and into a pipe differ"; return 1; }
  "$E2IMAGE" -Q -s --scramble-keep-names --threads=3 --scramble-seed="$3" "$1" "$T/one-pass.qcow2" 2> /dev/null &&
    qemu-img check -q "$T/one-pass.qcow2" &&
    qemu-img convert -O raw "$T/one-pass.qcow2" "$T/one-pass.raw" || { echo "-Q -s"; return 1; }
  cmp "$T/one-pass.raw" "$2" || { echo "-Q -s and -r -s hold other bytes"; return 1; }
  rm -f "$T/one-pass.qcow2" "$T/one-pass.raw"
}

check_config() {
  name=$1; shift
  img="$T/$name.img"
  build_fs "$img" "$@" || return 1
  has_marker "$img" || { echo "the original has no marker: the test cannot fail"; return 1; }
  debugfs -R "htree /big" "$img" 2>/dev/null | grep -q "Indirect levels" ||
    { echo "/big is not a hash-tree directory"; return 1; }
  "$E2IMAGE" -r -s --scramble-keep-names --scramble-seed=7 "$img" "$T/$name.s.raw" 2> "$T/$name.err" ||
    { cat "$T/$name.err"; return 1; }
  fsck_clean "$T/$name.s.raw" || return 1
  no_marker "$T/$name.s.raw" || return 1
  same_as_one_pass "$img" "$T/$name.s.raw" 7 || return 1
  # The root keeps lost+found; every directory keeps its number of entries.
  debugfs -R "ls /" "$T/$name.s.raw" 2>/dev/null | grep -q "lost+found" ||
    { echo "lost+found lost its name"; return 1; }
  orig=$(debugfs -R "ls -l /" "$img" 2>/dev/null | wc -l)
  new=$(debugfs -R "ls -l /" "$T/$name.s.raw" 2>/dev/null | wc -l)
  [ "$orig" = "$new" ] || { echo "root had $orig entries, now $new"; return 1; }
  # Lengths are kept: the same inodes, rec_len and name lengths, in the same places.
  for d in / /big /few /sub/deeper; do same_layout "$img" "$T/$name.s.raw" $d || return 1; done
  # '.' and '..' keep their names (lost+found is checked above).
  debugfs -R "ls <$(ino_of "$img" big)>" "$T/$name.s.raw" 2>/dev/null | grep -Eq '^ [0-9]+  \([0-9]+\) \.    [0-9]+  \([0-9]+\) \.\.  ' ||
    { echo "/big: '.' and '..' are not the first two entries"; return 1; }
  rm -f "$T/$name.s.raw"
}

# Each configuration: name, size, entries in /big, hash, mke2fs options.
ok "1k blocks, half_md4, metadata_csum: -s image is clean and nameless" \
  check_config c1k 64M 30000 half_md4 -t ext4 -b 1024 -O metadata_csum
ok "4k blocks, tea, no metadata_csum: -s image is clean and nameless" \
  check_config c4k 128M 30000 tea -t ext4 -b 4096 -O ^metadata_csum
# Some one-character names have no other one-byte name hashing into their
# leaf: --scramble-keep-names writes the image, naming them (they fail -s alone).
ok "one-character names with no replacement are kept with --scramble-keep-names, named" \
  grep -Eq "[0-9]+ name\(s\) kept as they were \(--scramble-keep-names.*directory inode [0-9]+, entry '[abc]'" "$T/c1k.err"
ok "without --scramble-keep-names, -s fails on them and writes nothing" sh -c '
  ! "$E2IMAGE" -r -s --scramble-seed=7 "$1" "$2/nokeep.raw" 2> "$2/nokeep.err" &&
  [ ! -e "$2/nokeep.raw" ] && grep -q "entry .[abc]." "$2/nokeep.err"' _ "$T/c1k.img" "$T"
SB_FLAGS=2  # EXT2_FLAGS_UNSIGNED_HASH
ok "1k blocks, legacy unsigned hash, ext3: -s image is clean and nameless" \
  check_config clegacy 32M 5000 legacy -t ext3 -b 1024
ok "1k blocks, tea unsigned, metadata_csum: -s image is clean and nameless" \
  check_config ctea-u 32M 5000 tea -t ext4 -b 1024 -O metadata_csum
ok "4k blocks, half_md4 unsigned, no metadata_csum: -s image is clean and nameless" \
  check_config cmd4-u 64M 10000 half_md4 -t ext4 -b 4096 -O ^metadata_csum
SB_FLAGS=
ok "inline_data, ea_inode, casefold: -s image is clean and nameless" \
  check_config cfeat 64M 5000 half_md4 -t ext4 -b 4096 -O inline_data,ea_inode,casefold

img="$T/c1k.img"
ok "-s -Q image converts to a clean, nameless raw image" sh -c '
  "$E2IMAGE" -Q -s --scramble-keep-names --scramble-seed=3 "$1" "$2/q.qcow2" &&
  "$E2IMAGE" -r "$2/q.qcow2" "$2/q.raw" && e2fsck -fn "$2/q.raw" >/dev/null 2>&1 &&
  ! grep -a -q QZMARK "$2/q.qcow2" && ! grep -a -q QZMARK "$2/q.raw"' _ "$img" "$T"
ok "the same --scramble-seed gives the same image" sh -c '
  "$E2IMAGE" -r -s --scramble-keep-names --scramble-seed=11 "$1" "$2/a.raw" &&
  "$E2IMAGE" -r -s --scramble-keep-names --scramble-seed=11 "$1" "$2/b.raw" && cmp "$2/a.raw" "$2/b.raw"' _ "$img" "$T"
ok "another seed gives other names" sh -c '
  "$E2IMAGE" -r -s --scramble-keep-names --scramble-seed=12 "$1" "$2/c.raw" && ! cmp -s "$2/a.raw" "$2/c.raw"' _ "$img" "$T"
rm -f "$T/a.raw" "$T/b.raw" "$T/c.raw" "$T/q.raw" "$T/q.qcow2"

img="$T/cfeat.img"
# --scramble-keep-names: the short names of /big may have no replacement.
"$E2IMAGE" -r -s --scramble-keep-names --scramble-seed=5 "$img" "$T/f.raw"
ok "security.* xattrs keep their values, user.* ones do not" sh -c '
  debugfs -R "ea_list <$1>" "$2/f.raw" 2>/dev/null > "$2/ea.out"
  grep -q kept-security-value "$2/ea.out" && ! grep -q "QZMARK" "$2/ea.out" &&
    grep -q "^  user\." "$2/ea.out"' _ "$(ino_of "$img" xattr-in-inode)" "$T"
ok "inline-data and casefolded directories keep their entry counts" sh -c '
  debugfs -R "stat /inl" "$1" 2>/dev/null | grep -q "Flags: 0x10000000" || {
    echo "/inl is not an inline-data directory"; exit 1; }
  debugfs -R "stat /cf" "$1" 2>/dev/null | grep -q "Flags: 0x4008" || {
    echo "/cf is not casefolded"; exit 1; }
  for d in "$3" "$4"; do
    a=$(debugfs -R "ls -l <$d>" "$1" 2>/dev/null | wc -l)
    b=$(debugfs -R "ls -l <$d>" "$2/f.raw" 2>/dev/null | wc -l)
    [ "$a" -gt 2 ] && [ "$a" = "$b" ] || { echo "inode $d: $a entries, then $b"; exit 1; }
  done' _ "$img" "$T" "$(ino_of "$img" inl)" "$(ino_of "$img" cf)"

ok "-a -s: ea_inode values are scrambled too, hashes follow" sh -c '
  "$E2IMAGE" -r -a "$1" "$2/plain-a.raw" && grep -a -q "QZMARKwwww" "$2/plain-a.raw" || {
    echo "the ea_inode value is not in the -a image: the test cannot fail"; exit 1; }
  "$E2IMAGE" -r -a -s --scramble-keep-names --scramble-seed=5 "$1" "$2/s-a.raw" &&
    e2fsck -fn "$2/s-a.raw" &&
    ! grep -a -q QZMARK "$2/s-a.raw"' _ "$img" "$T"
rm -f "$T/plain-a.raw" "$T/s-a.raw" "$T/f.raw"

# Old blocks in a clean journal (here: a transaction written by debugfs,
# then replayed by e2fsck) carry names too.
journal_names() {
  img="$T/journal.img"
  make_fs "$img" 32M -t ext4 || return 1
  head -c 4096 /dev/zero | tr '\0' 'j' | sed "s/^/$MARK-in-the-journal/" > "$T/jblock"
  printf 'jo\njw -b 7000 %s\njc\n' "$T/jblock" | debugfs -w -f - "$img" > /dev/null 2>&1
  # A dirty journal's log is scrambled (scramble_leaks.sh checks it): no warning.
  "$E2IMAGE" -r -s --scramble-seed=5 "$img" "$T/dirty.raw" 2> "$T/dirty.err" ||
    { cat "$T/dirty.err"; return 1; }
  [ ! -s "$T/dirty.err" ] || { cat "$T/dirty.err"; return 1; }
  e2fsck -fy "$img" > /dev/null 2>&1
  "$E2IMAGE" -r "$img" "$T/j.raw" && grep -a -q "$MARK-in-the-journal" "$T/j.raw" || {
    echo "the journal holds no marker: the test cannot fail"; return 1; }
  "$E2IMAGE" -r -s --scramble-seed=5 "$img" "$T/js.raw" && fsck_clean "$T/js.raw" && no_marker "$T/js.raw"
}
ok "a clean journal's old blocks are zeroed; a dirty one is scrambled without a warning" journal_names
rm -f "$T/journal.img" "$T/dirty.raw" "$T/j.raw" "$T/js.raw"

# Encrypted names and targets are ciphertext already: left as they are,
# while the names around them are scrambled.
encrypted_kept() {
  img="$T/enc.img"
  mkdir -p "$T/enc-tree/plain"
  for i in 1 2 3; do echo x > "$T/enc-tree/plain/$MARK-plain-$i"; done
  mke2fs -q -F -t ext4 -b 4096 -O "$1" -d "$T/enc-tree" "$img" 16M || return 1
  encrypt_dir "$img" || return 1
  enc_ino() { awk -v n="$1" '$1 == n { print "<" $2 ">" }' "$T/enc.inodes"; }
  has_marker "$img" || { echo "the original has no marker: the test cannot fail"; return 1; }
  debugfs -R "htree /enc" "$img" 2>/dev/null | grep -q "Indirect levels" ||
    { echo "/enc is not a hash-tree directory"; return 1; }
  "$E2IMAGE" -r -s --scramble-seed=5 "$img" "$T/enc.s.raw" || return 1
  fsck_clean "$T/enc.s.raw" && no_marker "$T/enc.s.raw" || return 1
  # The ciphertext names, raw, and the slow symlink's block.
  enc=$(enc_ino .)
  diff <(debugfs -R "ls -r $enc" "$img" 2>/dev/null) <(debugfs -R "ls -r $enc" "$T/enc.s.raw" 2>/dev/null) ||
    return 1
  [ "$(debugfs -R "ls -r $enc" "$img" 2>/dev/null | grep -c '\\x')" -gt 10 ] ||
    { echo "no raw encrypted names listed"; return 1; }
  slow=$(enc_ino slow)
  blocks=$(debugfs -R "blocks $slow" "$img" 2>/dev/null)
  [ -n "$blocks" ] || { echo "$slow has no blocks"; return 1; }
  for b in $blocks; do
    cmp <(dd if="$img" bs=4096 skip="$b" count=1 2>/dev/null) \
        <(dd if="$T/enc.s.raw" bs=4096 skip="$b" count=1 2>/dev/null) ||
      { echo "$slow: block $b changed"; return 1; }
  done
  # The inode of the fast symlink (its ciphertext target) is left too.
  fast=$(enc_ino fast)
  debugfs -R "stat $fast" "$img" 2>&1 | grep -qi "fast link" || { echo "$fast is not a fast symlink"; return 1; }
  diff <(debugfs -R "stat $fast" "$img" 2>&1 | grep -i "fast link") \
       <(debugfs -R "stat $fast" "$T/enc.s.raw" 2>&1 | grep -i "fast link") || return 1
  rm -f "$T/enc.img" "$T/enc.s.raw"
}
ok "encrypted directories and symlinks keep their ciphertext; the -s image is clean" \
  encrypted_kept encrypt
ok "the same without metadata_csum (the hash-tree index of an encrypted directory is kept)" \
  encrypted_kept encrypt,^metadata_csum

# -s over the feature matrix (make_tree and fslib.sh's enrich): raw, qcow2
# and e2i images are clean and hold none of the names or values looked for.
matrix_names="entry-with-a-longish-name|an-added-entry-with|Folded-Name-|numbers\.txt|in-the-inode|bbbbbbbbbbbbbbbb|eeeeeeeeeeeeeeee"
matrix_case() {
  name=$1; size=$2; shift 2
  img="$T/m-$name.img"
  [ -d "$T/mtree" ] || make_tree "$T/mtree"
  mke2fs -q -F -d "$T/mtree" "$@" "$img" "$size" > "$T/mke2fs.log" 2>&1 || { cat "$T/mke2fs.log"; return 1; }
  enrich "$img" || return 1
  grep -a -q -E "$matrix_names" "$img" || { echo "nothing to look for in the original"; return 1; }
  "$E2IMAGE" -r -s --scramble-seed=9 "$img" "$T/m.raw" 2> "$T/m.err" || { cat "$T/m.err"; return 1; }
  fsck_clean "$T/m.raw" && same_as_one_pass "$img" "$T/m.raw" 9 || return 1
  ! grep -a -o -E "$matrix_names" "$T/m.raw" | head -n 3 | grep . || { echo "names left in the raw image"; return 1; }
  "$E2IMAGE" -Q -s --scramble-seed=9 "$img" "$T/m.qcow2" 2> /dev/null && "$E2IMAGE" -r "$T/m.qcow2" "$T/mq.raw" &&
    fsck_clean "$T/mq.raw" || { echo "-Q -s"; return 1; }
  "$E2IMAGE" -s --scramble-seed=9 "$img" "$T/m.e2i" 2> /dev/null && dumpe2fs -i "$T/m.e2i" > /dev/null 2>&1 ||
    { echo "-s e2i image"; return 1; }
  ! grep -a -q -E "$matrix_names" "$T/m.e2i" || { echo "names left in the e2i image"; return 1; }
  rm -f "$img" "$T/m.raw" "$T/m.qcow2" "$T/mq.raw" "$T/m.e2i"
}
for spec in "ext2 16M -t ext2" "ext3 16M -t ext3" "ext4-64k 128M -t ext4 -b 65536 -N 4096" \
  "64bit-meta_bg 32M -t ext4 -O 64bit,meta_bg,^resize_inode" "bigalloc 64M -t ext4 -O bigalloc -C 16384" \
  "inline_data 16M -t ext4 -O inline_data" "ea_inode 16M -t ext4 -O ea_inode" \
  "casefold 16M -t ext4 -O casefold" "encrypt 16M -t ext4 -O encrypt" \
  "quota-orphan_file 32M -t ext4 -O quota,project,orphan_file -I 256"; do
  set -- $spec
  ok "feature matrix, $1: -s raw, qcow2 and e2i images are clean and nameless" matrix_case "$@"
done

# A damaged filesystem: the scrambled image shows the same problems.
damaged() {
  img="$T/c1k.img"
  debugfs -w -R "sif /sub/deeper/$MARK-deep-file links_count 5" "$img" > /dev/null 2>&1 || return 1
  debugfs -w -R "freeb 3000 20" "$img" > /dev/null 2>&1 || return 1
  # A name whose hash no longer fits its hash-tree leaf (and a bad checksum).
  off=$(grep -a -b -o "$MARK-entry-12345" "$img" | head -n 1 | cut -d: -f1)
  printf 'x' | dd of="$img" bs=1 seek=$((off + 17)) conv=notrunc 2> /dev/null
  "$E2IMAGE" -r -s --scramble-keep-names --scramble-seed=5 "$img" "$T/d.raw" || return 1
  # Names (in quotes or parentheses) may differ; nothing else may.
  e2fsck -fn "$img" 2>&1 | tail -n +2 | sed "s|$img||; s/([^)]*)/(NAME)/g" > "$T/d.orig"
  e2fsck -fn "$T/d.raw" 2>&1 | tail -n +2 | sed "s|$T/d.raw||; s/([^)]*)/(NAME)/g" > "$T/d.scr"
  grep -q "ref count is 5" "$T/d.orig" || { echo "the damage did not show"; return 1; }
  grep -q "bad m.. hash" "$T/d.orig" || { echo "the htree damage did not show"; return 1; }
  diff "$T/d.orig" "$T/d.scr"
}
ok "a damaged filesystem's -s image shows the same e2fsck problems" damaged

# A damaged hash-tree index (a root with a bad depth, a node with a count of
# 0): the index blocks are kept as they are and the names stay in the root's
# hash ranges, so that e2fsck finds the same damage in the -s image.
damaged_index() {
  img="$T/dx.img"
  rm -rf "$T/dx-tree" && mkdir -p "$T/dx-tree/d" && touch "$T/dx-tree/d/$MARK"
  mke2fs -q -F -t ext4 -b 1024 -N 20000 -d "$T/dx-tree" "$img" 32M || return 1
  "$ADD_ENTRIES" "$img" "$MARK-name-that-is-long-" 15000 "$(ino_of "$img" d)" || return 1
  e2fsck -fyD "$img" > /dev/null 2>&1
  debugfs -R "htree /d" "$img" 2>/dev/null | grep -q "Indirect levels: 1" || { echo "/d has no index node"; return 1; }
  root=$(debugfs -R "bmap /d 0" "$img" 2>/dev/null)
  first=$(debugfs -R "htree /d" "$img" 2>/dev/null | sed -n 's/^Entry #0: Hash 0x[0-9a-f]*, block \([0-9]*\)$/\1/p' | head -n 1)
  node=$(debugfs -R "bmap /d $first" "$img" 2>/dev/null)
  case $1 in
    depth) printf '\x09' | dd of="$img" bs=1 seek=$((root * 1024 + 30)) conv=notrunc 2> /dev/null ;;
    count) printf '\x00\x00' | dd of="$img" bs=1 seek=$((node * 1024 + 10)) conv=notrunc 2> /dev/null ;;
  esac
  e2fsck -fn "$img" 2>&1 | tail -n +2 | sed "s|$img||; s/([^)]*)/(NAME)/g" > "$T/dx.orig"
  grep -q "HTREE" "$T/dx.orig" || { echo "the damage did not show"; cat "$T/dx.orig"; return 1; }
  "$E2IMAGE" -r -s --scramble-seed=5 "$img" "$T/dx.raw" || return 1
  no_marker "$T/dx.raw" || return 1
  e2fsck -fn "$T/dx.raw" 2>&1 | tail -n +2 | sed "s|$T/dx.raw||; s/([^)]*)/(NAME)/g" > "$T/dx.scr"
  diff "$T/dx.orig" "$T/dx.scr" | head -n 20
  cmp -s "$T/dx.orig" "$T/dx.scr" && rm -f "$img" "$T/dx.raw"
}
ok "a hash-tree root with a bad depth: the -s image shows the same e2fsck problems" damaged_index depth
ok "an index node with a bad count: the -s image shows the same e2fsck problems" damaged_index count

# A damaged filesystem whose directory block is its block bitmap: the
# bitmap, copied during the scan as it is, must come again scrambled.
dir_in_bitmap() {
  img="$T/role.img"
  rm -rf "$T/role-tree" && mkdir -p "$T/role-tree/d"
  for i in 1 2 3; do touch "$T/role-tree/d/$MARK-in-the-bitmap-$i"; done
  mke2fs -q -F -t ext2 -b 1024 -d "$T/role-tree" "$img" 8M || return 1
  bitmap=$(dumpe2fs "$img" 2> /dev/null | sed -n 's/^ *Block bitmap at \([0-9]*\).*/\1/p' | head -n 1)
  dirblk=$(debugfs -R "bmap /d 0" "$img" 2> /dev/null)
  [ -n "$bitmap" ] && [ -n "$dirblk" ] || { echo "no bitmap or directory block"; return 1; }
  dd if="$img" of="$img" bs=1024 skip="$dirblk" seek="$bitmap" count=1 conv=notrunc 2> /dev/null
  debugfs -w -R "sif /d block[0] $bitmap" "$img" > /dev/null 2>&1 || return 1
  debugfs -R "ls /d" "$img" 2> /dev/null | grep -q "$MARK-in-the-bitmap-2" ||
    { echo "/d does not read its entries from the bitmap"; return 1; }
  "$E2IMAGE" -r -s --scramble-seed=3 "$img" "$T/role.s.raw" 2> /dev/null || return 1
  no_marker "$T/role.s.raw" && same_as_one_pass "$img" "$T/role.s.raw" 3 || return 1
  rm -f "$img" "$T/role.s.raw"
}
ok "a directory block that is the block bitmap is scrambled, as in one pass" dir_in_bitmap

ok "-s with a qcow2 source (conversion) is refused" sh -c '
  "$E2IMAGE" -Q "$1" "$2/src.qcow2" && ! "$E2IMAGE" -r -s "$2/src.qcow2" "$2/x.raw" 2>/dev/null &&
  [ ! -e "$2/x.raw" ]' _ "$T/c1k.img" "$T"
ok "--threads without --compress or -s is refused" sh -c '
  out=$("$E2IMAGE" -r --threads=2 "$1" "$2/x.raw" 2>&1); rc=$?
  [ $rc = 1 ] && [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q -- "--threads" &&
    [ ! -e "$2/x.raw" ]' _ "$T/c1k.img" "$T"
# Scrambling and compressing share one budget: the scrambler's lanes queue
# up to 16 MiB of blocks, the compression's codecs and queue get the other
# 32 MiB (48 MiB without -s). --threads=256 asks for more than either holds.
compression_budget_said() {
  expected=$1
  shift
  rm -f "$T/budget.qcow2"
  "$E2IMAGE" -Q "$@" --compress=zstd --threads=256 "$T/c1k.img" "$T/budget.qcow2" \
    2> "$T/budget.err" || { cat "$T/budget.err"; return 1; }
  cat "$T/budget.err"
  [ "$(grep -c "^e2image: compressing on" "$T/budget.err")" = 1 ] &&
    grep -q "^e2image: compressing on [0-9]* threads, not 256: a zstd codec at its default level for [0-9]* [KM]iB clusters takes [0-9]* [KM]iB, and the compression holds $expected MiB at most$" \
      "$T/budget.err"
}
ok "-Q -s --compress --threads=256: the compression holds 32 MiB, the scrambler's lanes 16" \
  compression_budget_said 32 -s --scramble-keep-names --scramble-seed=5
ok "-Q --compress --threads=256 without -s: the compression holds 48 MiB" compression_budget_said 48
ok "--scramble-seed without -s is refused" sh -c '! "$E2IMAGE" -r --scramble-seed=1 "$1" "$2/x.raw" 2>/dev/null && [ ! -e "$2/x.raw" ]' _ "$T/c1k.img" "$T"

# The e2i image holds inode tables: fast symlink targets, inline data and
# in-inode xattrs are scrambled there too.
e2i_scrambled() {
  "$E2IMAGE" "$T/c1k.img" "$T/plain.e2i" || return 1
  has_marker "$T/plain.e2i" || { echo "the plain e2i image has no marker: the test cannot fail"; return 1; }
  "$E2IMAGE" -s --scramble-seed=7 "$T/c1k.img" "$T/s.e2i" || return 1
  no_marker "$T/s.e2i" || return 1
  dumpe2fs -i -h "$T/s.e2i" > /dev/null 2>&1 || { echo "dumpe2fs -i cannot read it"; return 1; }
  rm -f "$T/plain.e2i" "$T/s.e2i"
}
ok "-s on an e2i image: inode tables hold no original target or value" e2i_scrambled
ok "-ra -c -s (a copy in place) is refused, the destination untouched" sh -c '
  cp "$1" "$2/dest.img" && sum=$(md5sum < "$2/dest.img") &&
  ! "$E2IMAGE" -ra -c -s "$1" "$2/dest.img" 2> "$2/err" && [ "$(wc -l < "$2/err")" = 1 ] &&
  [ "$(md5sum < "$2/dest.img")" = "$sum" ]' _ "$T/c1k.img" "$T"

done_testing
