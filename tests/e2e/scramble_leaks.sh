#!/bin/bash
# -s leaves no original name behind silently: a name in a hash-tree leaf of
# a few hash values gets a same-length one found by search; one that has none
# stops the run (nothing written) naming the directory inode and the entry,
# unless --scramble-keep-names accepts it; in a directory block with a bad
# entry, the entries after it are scrambled too and the bad bytes are named.
. "$TESTLIB"
MARK=PRIVATE_customer_name

# The original: /d, a hash-tree directory (1k blocks, half_md4, no
# metadata_csum, so that its index can be edited) of 35-character names
# and one-character ones; /lin, a linear directory of 35-character names.
mkdir -p "$T/tree/d" "$T/tree/lin"
for i in $(seq 1 300); do : > "$T/tree/d/$(printf '%s_%04d_abcdefgh' $MARK "$i")"; done
for c in A B C D E F G H I J K L M N O P R S T U V W X Y Z; do : > "$T/tree/d/$c"; done
: > "$T/tree/d/$(printf 'tab\there x')"
for i in $(seq 1 20); do : > "$T/tree/lin/$(printf '%s_%04d_lin_abc' $MARK "$i")"; done
img=$T/orig.img
mke2fs -q -F -t ext4 -b 1024 -O ^metadata_csum -E hash_seed=0f3e5c2a-1b2c-4d5e-8f90-a1b2c3d4e5f6 \
  -d "$T/tree" "$img" 8M > "$T/mke2fs.log" 2>&1 || cat "$T/mke2fs.log"
e2fsck -fyD "$img" > /dev/null 2>&1

# leaf_of IMAGE DIR NAME: "index hash count" of NAME's leaf in DIR's root.
leaf_of() {
  debugfs -R "htree_dump $2" "$1" 2>/dev/null | awk -v n="$3" '
    /^Number of entries \(count\)/ { count = $NF }
    /^Entry #[0-9]+: Hash/ { k = substr($2, 2) + 0 }
    /^[0-9]+ 0x/ { for (i = 1; i + 3 <= NF; i += 4) if ($i != 0 && $(i + 3) == n) {
      split($(i + 1), h, "-"); print k, h[1], count; exit } }'
}
# leaf_names IMAGE DIR K: the names in leaf K (debugfs lists short ones
# several to a line: inode, hash-minor, (rec_len), name).
leaf_names() {
  debugfs -R "htree_dump $2" "$1" 2>/dev/null | awk -v want="$3" '
    /^Entry #[0-9]+: Hash/ { k = substr($2, 2) + 0 }
    /^[0-9]+ 0x/ && k == want { for (i = 4; i <= NF; i += 4) if ($(i - 3) != 0) print $i }'
}
put32() {  # put32 IMAGE OFFSET VALUE: a little-endian word
  perl -e 'print pack("V", $ARGV[0])' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# narrow IMAGE DIR NAME WIDTH: NAME's leaf keeps NAME alone, and its range
# becomes [hash, hash + WIDTH): the index stays right (e2fsck -fn clean).
narrow() {
  set -- "$1" "$2" "$3" "$4" $(leaf_of "$1" "$2" "$3")
  [ -n "${7:-}" ] && [ "$5" -ge 1 ] && [ "$5" -le $(($7 - 2)) ] ||
    { echo "$3: not in a middle leaf"; return 1; }
  leaf_names "$1" "$2" "$5" | grep -vxF "$3" | sed "s|^|rm $2/|" > "$T/rm.cmds"
  debugfs -w -f "$T/rm.cmds" "$1" > /dev/null 2>&1
  root=$(debugfs -R "bmap $2 0" "$1" 2>/dev/null)
  put32 "$1" $((root * 1024 + 32 + 8 * $5)) $(($6))
  put32 "$1" $((root * 1024 + 40 + 8 * $5)) $(($6 + $4))
}
ino() { debugfs -R "stat $2" "$1" 2>/dev/null | sed -n 's/^Inode: \([0-9]*\).*/\1/p'; }

# The long name: in a middle leaf; a one-character one in another.
long=$(leaf_names "$img" /d 4 | grep "^$MARK" | head -n 1)
short=""
for c in A B C D E F G H I J K L M N O P R S T U V W X Y Z; do
  set -- $(leaf_of "$img" /d $c)
  # A middle leaf, not next to the long name's (leaf 4): their bounds stay apart.
  if [ "$1" -ge 1 ] && [ "$1" -le $(($3 - 2)) ] && { [ "$1" -le 2 ] || [ "$1" -ge 6 ]; }; then
    short=$c
    break
  fi
done
narrow "$img" /d "$long" 64
narrow "$img" /d "$short" 2
d_ino=$(ino "$img" /d)
no_mark() {  # no original long name in the file
  if grep -a -o "${MARK}_[0-9]*_[a-z]*" "$1" | head -n 3 | grep .; then return 1; fi
}

# leaf_width IMAGE DIR K: how many hash values leaf K's range holds.
leaf_width() {
  set -- $(debugfs -R "htree_dump $2" "$1" 2>/dev/null | awk -v k="$3" '
    /^Entry #[0-9]+: Hash/ { h[substr($2, 2) + 0] = $4 } /^$/ { exit }
    END { print h[k], h[k + 1] }' | tr -d ,)
  echo $(($2 - $1))
}
fixture_ok() {
  e2fsck -fn "$img" > "$T/fsck" 2>&1 || { cat "$T/fsck"; return 1; }
  for n in "$long:64" "$short:2"; do
    k=$(leaf_of "$img" /d "${n%:*}" | cut -d" " -f1)
    [ "$(leaf_names "$img" /d "$k")" = "${n%:*}" ] || { echo "$n: not alone in leaf $k"; return 1; }
    [ "$(leaf_width "$img" /d "$k")" = "${n#*:}" ] ||
      { echo "$n: leaf $k holds $(leaf_width "$img" /d "$k") values"; return 1; }
  done
  grep -a -q "$long" "$img" || { echo "the original lacks $long: the test cannot fail"; return 1; }
}
ok "the fixture is clean; leaves of 32 and 1 even hash values hold $long and $short alone" fixture_ok

# stops MODE: -s fails with one line naming the inode, entry and option; no image.
stops() {
  rm -f "$T/out"
  "$E2IMAGE" $1 -s --scramble-seed=1 "$img" "$T/out" 2> "$T/err" && { echo "exit 0"; return 1; }
  [ ! -e "$T/out" ] || { echo "an image was written"; return 1; }
  [ "$(wc -l < "$T/err")" = 1 ] || { cat "$T/err"; return 1; }
  grep -q "directory inode $d_ino, entry '$short'" "$T/err" &&
    grep -q -- "--scramble-keep-names" "$T/err" || { cat "$T/err"; return 1; }
}
for mode in -r -Q; do
  ok "-s $mode: a name with no replacement stops the run, naming inode, entry, option" stops $mode
done
# An e2i image holds no directory block: nothing is left there.
ok "-s (e2i) is written: it holds no directory block" "$E2IMAGE" -s "$img" "$T/e2i"

kept() {
  "$E2IMAGE" -r -s --scramble-seed=1 --scramble-keep-names "$img" "$T/keep.raw" 2> "$T/err" ||
    { cat "$T/err"; return 1; }
  grep -q "1 name(s) kept as they were (--scramble-keep-names.*directory inode $d_ino, entry '$short'" \
    "$T/err" || { cat "$T/err"; return 1; }
  e2fsck -fn "$T/keep.raw" > "$T/fsck" 2>&1 || { cat "$T/fsck"; return 1; }
  no_mark "$T/keep.raw"
}
ok "--scramble-keep-names: a clean image, the kept name named, every long name replaced" kept

# A damaged copy: in /lin (linear, 35-character names, 44 bytes each after
# '.' and '..'), the header of the fourth entry is overwritten with 0xff.
dmg=$T/damaged.img
cp "$img" "$dmg"
lin_ino=$(ino "$img" /lin)
lin_block=$(debugfs -R "bmap /lin 0" "$img" 2> /dev/null)
bad_at=$((24 + 44 * 3))
perl -e 'print "\xff" x 8' |
  dd of="$dmg" bs=1 seek=$((lin_block * 1024 + bad_at)) conv=notrunc status=none
lin_names() { grep -a -o "${MARK}_[0-9]*_lin_abc" "$1" | sort -u | wc -l; }
# fsck_said IMAGE: what e2fsck -fy says and does on a copy, names and paths aside.
fsck_said() {
  cp "$1" "$T/fsck.img"
  e2fsck -fy "$T/fsck.img" 2>&1 | sed -E "s/'[^']*'/N/g; s|/[^ ()]*|/P|g" | grep -v "^e2fsck 1"
}
damaged() {
  [ "$(lin_names "$dmg")" = 20 ] || { echo "the original lacks the names: the test cannot fail"; return 1; }
  "$E2IMAGE" -r -s --scramble-keep-names --scramble-seed=2 "$dmg" "$T/dmg.raw" 2> "$T/err" ||
    { cat "$T/err"; return 1; }
  # Only the name whose header was lost stays (named in the warning); the 16 after it are gone.
  [ "$(lin_names "$T/dmg.raw")" = 1 ] || { echo "$(lin_names "$T/dmg.raw") names left"; return 1; }
  grep -q "1 directory block(s) hold bytes that parse as no entry.*directory inode $lin_ino block $lin_block from byte $bad_at" \
    "$T/err" || { cat "$T/err"; return 1; }
  fsck_said "$dmg" > "$T/fsck.orig"
  fsck_said "$T/dmg.raw" > "$T/fsck.scrambled"
  grep -q "offset 156: directory corrupted" "$T/fsck.orig" || { cat "$T/fsck.orig"; echo "e2fsck finds no damage"; return 1; }
  diff "$T/fsck.orig" "$T/fsck.scrambled"
}
ok "a damaged directory block: the entries after the bad one are scrambled, the bad bytes named" \
  damaged

# --scramble-map: inode TAB old TAB new, escaped; 0600 whatever the umask.
# map_names MAP INO old|new: the names of one directory in the map, unescaped.
map_names() {
  awk -F '\t' -v d="$2" -v f="$3" '$1 == d { print (f == "old" ? $2 : $3) }' "$1" |
    perl -pe 's/\\(x([0-9a-f]{2})|(.))/defined $2 ? chr(hex $2) : $3/ge' | LC_ALL=C sort
}
ls_names() {  # ls_names IMAGE INO: the live names in a directory, '.' and '..' aside
  debugfs -R "ls -p <$2>" "$1" 2> /dev/null | awk -F / 'NF > 6 && $2 != 0 && $6 != "." && $6 != ".." { print $6 }' |
    LC_ALL=C sort
}
mapped() {
  rm -f "$T/map.tsv" "$T/map.raw"
  (umask 000 && "$E2IMAGE" -r -s --scramble-keep-names --scramble-seed=4 \
    --scramble-map="$T/map.tsv" "$img" "$T/map.raw") || return 1
  [ "$(stat -c %a "$T/map.tsv")" = 600 ] || { stat -c %a "$T/map.tsv"; return 1; }
  head -n 1 "$T/map.tsv" | grep -q '^# ' || return 1
  # Every line: a number, then two names of the same length, no raw tab or space in them.
  awk -F '\t' 'NR > 1 && (NF != 3 || $1 !~ /^[0-9]+$/ || $2 ~ / / || $3 ~ / /) { print; bad = 1 }
    END { exit bad }' "$T/map.tsv" || return 1
  grep -qF "$(printf '\ttab\\x09here\\x20x\t')" "$T/map.tsv" || { echo "no escaped name"; return 1; }
  # /d's old names are the original's, its new names the image's.
  lin=$(ino "$img" /lin)
  for dir in "$d_ino" "$lin"; do
    ls_names "$img" "$dir" > "$T/orig.names"
    ls_names "$T/map.raw" "$dir" > "$T/new.names"
    map_names "$T/map.tsv" "$dir" old > "$T/map.old"
    map_names "$T/map.tsv" "$dir" new > "$T/map.new"
    [ "$(wc -l < "$T/orig.names")" -ge 20 ] || { echo "dir $dir: few names listed"; return 1; }
    diff "$T/orig.names" "$T/map.old" > /dev/null ||
      { echo "dir $dir: old names differ"; diff "$T/orig.names" "$T/map.old" | head; return 1; }
    diff "$T/new.names" "$T/map.new" > /dev/null ||
      { echo "dir $dir: new names differ"; diff "$T/new.names" "$T/map.new" | head; return 1; }
  done
  ! grep -a -q "e2image -s map" "$T/map.raw" || { echo "the map is in the image"; return 1; }
}
ok "--scramble-map: 0600, each directory's old names are the original's, new ones the image's" mapped
map_refused() {
  ln -sf "$T/elsewhere" "$T/link.tsv"
  for m in "$T/map.tsv" "$T/link.tsv"; do
    rm -f "$T/x.raw"
    "$E2IMAGE" -r -s --scramble-keep-names --scramble-map="$m" "$img" "$T/x.raw" 2> "$T/err" &&
      { echo "$m: written"; return 1; }
    [ ! -e "$T/x.raw" ] && [ ! -e "$T/elsewhere" ] && grep -q "never written over" "$T/err" ||
      { cat "$T/err"; return 1; }
  done
  # A failed run leaves no map.
  "$E2IMAGE" -r -s --scramble-map="$T/fail.tsv" "$img" "$T/x.raw" 2> /dev/null && return 1
  [ ! -e "$T/fail.tsv" ] || { echo "a map without its image"; return 1; }
}
ok "--scramble-map refuses an existing file and a symlink; a failed run leaves none" map_refused

# Filesystems copied while mounted (their journal needs recovery), made for
# real on a loop device: files created, renamed and deleted, then sync.
loop=""
trap '[ -z "$loop" ] || { umount "$T/mnt" 2> /dev/null; losetup -d "$loop"; }; rm -rf "$T"' EXIT
journal_fs() {  # journal_fs NAME MKE2FS-OPTIONS...
  name=$1
  shift
  mkdir -p "$T/mnt"
  mke2fs -q -F -t ext4 "$@" "$T/$name.live" 16M || return 1
  loop=$(losetup -f --show "$T/$name.live") || return 1
  mount "$loop" "$T/mnt" || return 1
  mkdir "$T/mnt/dir"
  (
    cd "$T/mnt/dir" || exit 1
    for i in $(seq 1 200); do echo x > "JMARK_file_$i"; done
    for i in $(seq 1 50); do mv "JMARK_file_$i" "JMARK_renamed_$i"; done
    rm JMARK_file_1[0-9][0-9]
    ln -s JMARK_fast_target JMARK_link
    ln -s "JMARK_slow_$(printf 'y%.0s' $(seq 1 100))" JMARK_slowlink
    mkdir JMARK_subdir && touch JMARK_subdir/JMARK_inner
  )
  sync
  cp "$T/$name.live" "$T/$name.img"
  umount "$T/mnt" && losetup -d "$loop" && loop=""
}
# replayed IMAGE COPY: e2fsck -fy on a copy (the journal replayed), its
# output with the image's name taken out; the copy must then be clean.
replayed() {
  cp "$1" "$2"
  e2fsck -fy "$2" 2>&1 | sed "s|$2|IMAGE|g"
  e2fsck -fn "$2" > /dev/null 2>&1 || echo "not clean after e2fsck -fy"
}
# translate MAP INO: old names on stdin, new ones out (the names are plain ASCII).
translate() {
  awk -F '\t' -v d="$2" 'NR == FNR { if ($1 == d) new[$2] = $3; next }
    { print ($0 in new) ? new[$0] : "UNMAPPED " $0 }' "$1" - | LC_ALL=C sort
}
journal_check() {
  img=$T/$1.img
  dumpe2fs -h "$img" 2> /dev/null | grep -q "needs_recovery" ||
    { echo "the copy needs no recovery: the test cannot fail"; return 1; }
  [ "$(grep -a -c JMARK "$img")" -gt 0 ] || { echo "no names in the original"; return 1; }
  "$E2IMAGE" -r -s --scramble-seed=5 --scramble-map="$T/$1.map" "$img" "$T/$1.s.raw" \
    2> "$T/err" || { cat "$T/err"; return 1; }
  if grep -a -o "JMARK[A-Za-z_0-9]*" "$T/$1.s.raw" | head -n 3 | grep .; then
    echo "original names in the scrambled image"; return 1
  fi
  replayed "$img" "$T/a.img" > "$T/a.out"
  replayed "$T/$1.s.raw" "$T/b.img" > "$T/b.out"
  grep -q "recovering journal" "$T/a.out" || { cat "$T/a.out"; return 1; }
  diff "$T/a.out" "$T/b.out" || return 1
  # After replay, /dir holds the same inodes under the names the map gives.
  dir=$(ino "$T/a.img" /dir)
  ls_names "$T/a.img" "$dir" | translate "$T/$1.map" "$dir" > "$T/a.names"
  ls_names "$T/b.img" "$dir" > "$T/b.names"
  [ "$(wc -l < "$T/a.names")" -gt 100 ] || { echo "few names in /dir"; return 1; }
  diff "$T/a.names" "$T/b.names" > /dev/null ||
    { echo "/dir after replay:"; diff "$T/a.names" "$T/b.names" | head; return 1; }
}
journal_fs v3 -b 1024 -O metadata_csum > /dev/null 2>&1
ok "a journal needing recovery (1k blocks, metadata_csum, checksum v3): scrambled, replays the same" \
  journal_check v3
journal_fs plain -b 4096 -O ^metadata_csum > /dev/null 2>&1
ok "a journal needing recovery (4k blocks, no checksums): scrambled, replays the same" \
  journal_check plain

done_testing
