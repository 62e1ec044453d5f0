# Filesystem contents beyond make_tree, for the feature matrix (features.sh,
# scramble.sh): xattrs, ea_inode values, casefolded and encrypted directories
# (the latter made by the kernel through tests/e2e/fscrypt_dir), hash-tree
# directories. Sourced after testlib.sh.

# has_flag IMAGE PATH FLAG: the inode's i_flags has FLAG.
has_flag() {
  flags=$(debugfs -R "stat $2" "$1" 2>/dev/null | sed -n 's/.*Flags: \(0x[0-9a-f]*\).*/\1/p')
  [ -n "$flags" ] && [ $((flags & $3)) != 0 ]
}

# encrypt_dir IMAGE: /enc, an encrypted directory made by the kernel (a loop
# mount in a private mount namespace, so nothing stays mounted) holding a
# file, a subdirectory, a fast and a slow symlink and enough names for a
# hash-tree directory. Writes the inode numbers of /enc (".") and of its
# entries a-file, a-dir, fast and slow to $T/enc.inodes, one "NAME INODE" a
# line: debugfs cannot look up encrypted names.
encrypt_dir() {
  unshare --mount bash -c '
    set -eu
    mount --make-rprivate / 2> /dev/null
    mkdir -p "$2"; mount -o loop "$1" "$2"
    trap "umount \"$2\"" EXIT
    mkdir "$2/enc"; "$FSCRYPT_DIR" "$2/enc"
    echo secret > "$2/enc/a-file"; mkdir "$2/enc/a-dir"
    ln -s short "$2/enc/fast"; ln -s "$(printf "t%.0s" $(seq 1 200))" "$2/enc/slow"
    for i in $(seq 1 200); do : > "$2/enc/an-encrypted-name-$i"; done
    (cd "$2/enc" && stat -c "%n %i" . a-file a-dir fast slow) > "$3"' _ "$1" "$T/mnt" "$T/enc.inodes" ||
    { echo "cannot make an encrypted directory"; return 1; }
  has_flag "$1" /enc 0x800 || { echo "/enc is not encrypted"; return 1; }
}

# enrich IMAGE: what the features are for, beyond make_tree: xattrs in the
# inode and in a block, an ea_inode value, a casefolded directory, an
# encrypted directory (through the kernel, see encrypt_dir), and hash-tree
# directories (e2fsck -D indexes them).
enrich() {
  img=$1
  features=$(dumpe2fs -h "$img" 2>/dev/null | grep features)
  head -c 1500 /dev/zero | tr '\0' 'b' > "$T/value.block"
  head -c 20000 /dev/zero | tr '\0' 'e' > "$T/value.big"
  {
    echo "ea_set /sub user.small in-the-inode"
    echo "ea_set -f $T/value.block /sub/deeper user.block"
    case $features in *ea_inode*) echo "ea_set -f $T/value.big /sub/random.bin user.big" ;; esac
    case $features in *casefold*)
      echo "mkdir /cf"
      flags=$(debugfs -R "stat /sub" "$img" 2>/dev/null | sed -n 's/.*Flags: \(0x[0-9a-f]*\).*/\1/p')
      echo "set_inode_field /cf flags $(printf '0x%x' $((flags | 0x40000000)))"
      for i in $(seq 1 150); do echo "write /dev/null /cf/Folded-Name-$i"; done ;; esac
  } > "$T/enrich.cmds"
  debugfs -w -f "$T/enrich.cmds" "$img" > "$T/enrich.log" 2>&1 || { cat "$T/enrich.log"; return 1; }
  # Enough entries in /big for several blocks of 64 KiB.
  big=$(debugfs -R "stat /big" "$img" 2>/dev/null | sed -n 's/^Inode: \([0-9]*\).*/\1/p')
  "$ADD_ENTRIES" "$img" an-added-entry-with-a-long-name- 3000 "$big" || return 1
  case $features in *encrypt*) encrypt_dir "$img" || return 1 ;; esac
  e2fsck -fyD "$img" > "$T/enrich.log" 2>&1
  e2fsck -fn "$img" > "$T/enrich.log" 2>&1 || { echo "enriched original not clean"; cat "$T/enrich.log"; return 1; }
  case $features in *dir_index*)
    debugfs -R "htree /big" "$img" 2>/dev/null | grep -q "Indirect levels" ||
      { echo "/big is not a hash-tree directory"; return 1; } ;; esac
  case $features in *casefold*)
    has_flag "$img" /cf 0x40000000 || { echo "/cf is not casefolded"; return 1; } ;; esac
  return 0
}
