# Helpers for the tests that need encrypted directories (made by the kernel
# through tests/e2e/fscrypt_dir) and inode flags. Sourced after testlib.sh.

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
