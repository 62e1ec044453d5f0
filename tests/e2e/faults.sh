#!/bin/bash
# I/O faults: failed, short and interrupted reads and writes (injected with
# the LD_PRELOAD library tests/faults/iofault.so), a full filesystem, the
# file size limit, and SIGINT/SIGTERM part way. Every failure must give one
# error line naming the file and the offset, exit 1, leave no temporary file
# and leave an existing destination untouched; short transfers and EINTR
# must not change a single output byte.
. "$TESTLIB"
: "${IOFAULT_SO:?IOFAULT_SO must point at the built tests/faults/iofault.so}"
# The shim is preloaded ahead of a sanitizer runtime in sanitizer builds.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

make_fs "$T/fs.img" 16M -t ext4 -b 1024
# A filesystem with 3 MiB of file data, for -a.
mkdir -p "$T/datatree"
head -c 3145728 /dev/urandom > "$T/datatree/random.bin"
mke2fs -q -F -t ext4 -d "$T/datatree" "$T/data.img" 16M
/usr/sbin/e2image -r "$T/fs.img" "$T/oracle.raw"
"$E2IMAGE" -Q "$T/fs.img" "$T/clean.qcow2"

faulty() {  # faulty VAR=VALUE... -- COMMAND...: runs COMMAND with the shim
  env LD_PRELOAD="$IOFAULT_SO" "$@"
}

# fails_cleanly NAME DEST PATTERN COMMAND...: exit 1, exactly one line on
# stderr matching PATTERN, DEST still "precious", no temporary file in $T.
fails_cleanly() {
  dest=$1 pattern=$2; shift 2
  echo precious > "$dest"
  "$@" 2> "$T/err"; rc=$?
  cat "$T/err"
  [ $rc = 1 ] || { echo "exit status $rc, expected 1"; return 1; }
  [ "$(wc -l < "$T/err")" = 1 ] || { echo "expected one error line"; return 1; }
  grep -Eq "$pattern" "$T/err" || { echo "error does not match: $pattern"; return 1; }
  [ "$(cat "$dest")" = precious ] || { echo "destination changed"; return 1; }
  ! ls -A "$T" | grep -q 'e2image-' || { echo "temporary file left:"; ls -A "$T"; return 1; }
}

ok "ENOSPC on the 3rd write of a raw capture: error names the output and offset" \
  fails_cleanly "$T/out.raw" 'out\.raw: write error: No space left on device at offset [0-9]+' \
  faulty IOFAULT_PATH=out.raw IOFAULT_NTH=3 IOFAULT_ERRNO=ENOSPC "$E2IMAGE" -r "$T/fs.img" "$T/out.raw"
ok "EIO on the 2nd write of a qcow2 capture" \
  fails_cleanly "$T/out.qcow2" 'out\.qcow2: write error: Input/output error at offset [0-9]+' \
  faulty IOFAULT_PATH=out.qcow2 IOFAULT_NTH=2 IOFAULT_ERRNO=EIO "$E2IMAGE" -Q "$T/fs.img" "$T/out.qcow2"
ok "EFBIG on the 1st write of a qcow2-to-raw conversion" \
  fails_cleanly "$T/conv.raw" 'conv\.raw: write error: File too large at offset [0-9]+' \
  faulty IOFAULT_PATH=conv.raw IOFAULT_NTH=1 IOFAULT_ERRNO=EFBIG "$E2IMAGE" -r "$T/clean.qcow2" "$T/conv.raw"
ok "EIO reading the qcow2 source: error names the source and offset" \
  fails_cleanly "$T/conv.raw" 'clean\.qcow2: read error: Input/output error at offset [0-9]+' \
  faulty IOFAULT_OP=read IOFAULT_PATH=clean.qcow2 IOFAULT_NTH=6 "$E2IMAGE" -r "$T/clean.qcow2" "$T/conv.raw"
# The journal's superblock is read by the block copier alone (the scan reads
# the tables and directories): its read fails, whichever thread reads when.
# A read error of the medium (EIO) is left out and the capture goes on
# (failing_disks.sh); any other read error ends it.
journal_sb=$(debugfs -R "bmap <8> 0" "$T/fs.img" 2> /dev/null)
ok "a read error other than the medium's while copying blocks (the journal's superblock)" \
  fails_cleanly "$T/out.raw" "fs\\.img: read error: No space left on device at offset [0-9]+" \
  faulty IOFAULT_OP=read IOFAULT_PATH=fs.img IOFAULT_AT=$((journal_sb * 1024)) IOFAULT_ERRNO=ENOSPC \
  "$E2IMAGE" -r "$T/fs.img" "$T/out.raw"
ok "fsync failing before the rename: nothing is renamed into place" \
  fails_cleanly "$T/out.qcow2" 'out\.qcow2: fsync failed: Input/output error' \
  faulty IOFAULT_OP=fsync IOFAULT_PATH=out.qcow2 IOFAULT_NTH=1 "$E2IMAGE" -Q "$T/fs.img" "$T/out.qcow2"

# A large output is written out to the disk in the background as it grows
# (every 8 MiB): a write error met there is reported, though the kernel
# reports it only once and the final fsync then succeeds.
mkdir -p "$T/bigtree"
head -c 41943040 /dev/urandom > "$T/bigtree/random.bin"
mke2fs -q -F -t ext4 -d "$T/bigtree" "$T/big.img" 64M
background_flush_fails() {
  fails_cleanly "$T/big.raw" 'big\.raw: fsync failed: Input/output error' \
    faulty IOFAULT_OP=fsync IOFAULT_PATH=big.raw IOFAULT_NTH=1 IOFAULT_ONCE=1 \
    IOFAULT_LOG="$T/flush.log" "$E2IMAGE" -ra "$T/big.img" "$T/big.raw" &&
    grep -q '^sync_file_range ' "$T/flush.log"
}
ok "a background write-out failing once fails the run, as the final fsync would" background_flush_fails
/usr/sbin/e2image -ra "$T/big.img" "$T/big-oracle.raw"
ok "the same run without the fault writes what e2image writes" \
  sh -c '"$1" -ra "$2" "$3" && cmp "$3" "$4"' - "$E2IMAGE" "$T/big.img" "$T/big.raw" "$T/big-oracle.raw"
rm -rf "$T/bigtree" "$T/big.img" "$T/big.raw" "$T/big-oracle.raw"

stdout_error() {
  faulty IOFAULT_NTH=2 IOFAULT_ERRNO=EIO "$E2IMAGE" -r "$T/fs.img" - 2> "$T/err" > "$T/stdout.raw"; rc=$?
  cat "$T/err"
  [ $rc = 1 ] && [ "$(wc -l < "$T/err")" = 1 ] &&
    grep -Eq 'standard output: write error: Input/output error at offset [0-9]+' "$T/err"
}
ok "a write error on standard output names it and the offset" stdout_error

# Short transfers and EINTR: every matching call is first interrupted, then
# moves half of what was asked.
short_raw() {
  faulty IOFAULT_PATH=short.raw IOFAULT_SHORT=1 "$E2IMAGE" -r "$T/fs.img" "$T/short.raw" &&
    same_bytes "$T/short.raw" "$T/oracle.raw"
}
ok "short writes and EINTR: raw capture identical to e2image's" short_raw
short_qcow2() {
  faulty IOFAULT_PATH=short.qcow2 IOFAULT_SHORT=1 "$E2IMAGE" -Q "$T/fs.img" "$T/short.qcow2" &&
    same_bytes "$T/short.qcow2" "$T/clean.qcow2"
}
ok "short writes and EINTR: qcow2 capture identical to an unfaulted one" short_qcow2
short_convert() {
  faulty IOFAULT_OP=read IOFAULT_PATH=clean.qcow2 IOFAULT_SHORT=1 \
    "$E2IMAGE" -r "$T/clean.qcow2" "$T/short-conv.raw" && same_bytes "$T/short-conv.raw" "$T/oracle.raw"
}
ok "short reads and EINTR: qcow2-to-raw identical to e2image's raw image" short_convert
short_stdout() {
  faulty IOFAULT_SHORT=1 IOFAULT_PATH=pipe "$E2IMAGE" -r "$T/fs.img" - | cat > "$T/piped.raw" &&
    same_bytes "$T/piped.raw" "$T/oracle.raw"
}
ok "short writes and EINTR on a pipe: same bytes" short_stdout
one_eintr() {
  faulty IOFAULT_PATH=eintr.qcow2 IOFAULT_NTH=2 IOFAULT_ERRNO=EINTR \
    "$E2IMAGE" -Q "$T/fs.img" "$T/eintr.qcow2" && same_bytes "$T/eintr.qcow2" "$T/clean.qcow2"
}
ok "one write interrupted with EINTR is retried" one_eintr

# The file size limit: e2image must get EFBIG (not die of SIGXFSZ) and clean up.
fsize_limit() {
  fails_cleanly "$T/big.raw" 'big\.raw: (write error|cannot set file size): File too large at offset [0-9]+' \
    bash -c 'ulimit -f 1024; exec "$0" -r -a "$1" "$2"' "$E2IMAGE" "$T/data.img" "$T/big.raw"
}
ok "RLIMIT_FSIZE: EFBIG is one error line, exit 1, no temporary file" fsize_limit

# A really full filesystem: a 1 MiB tmpfs in a private mount namespace.
full_tmpfs() {
  mkdir -p "$T/small"
  unshare --mount bash -c '
    set -e
    mount -t tmpfs -o size=1m tmpfs "$1"
    echo precious > "$1/full.raw"
    rc=0; "$2" -r -a "$3" "$1/full.raw" 2> "$1/err" || rc=$?
    cat "$1/err"
    [ $rc = 1 ] && [ "$(wc -l < "$1/err")" = 1 ]
    grep -Eq "full\.raw: write error: No space left on device at offset [0-9]+" "$1/err"
    [ "$(cat "$1/full.raw")" = precious ]
    [ "$(ls -A "$1")" = "$(printf "err\nfull.raw")" ]
  ' bash "$T/small" "$E2IMAGE" "$T/data.img"
}
if unshare --mount true 2> /dev/null; then
  ok "a full 1 MiB tmpfs: ENOSPC is one error line, no temporary file left" full_tmpfs
else  # no mount namespaces here (an unprivileged container): every write fails instead
  ok "ENOSPC on every write of a -a capture (no tmpfs allowed here)" \
    fails_cleanly "$T/full.raw" 'full\.raw: write error: No space left on device at offset [0-9]+' \
    faulty IOFAULT_PATH=full.raw IOFAULT_NTH=1 IOFAULT_ERRNO=ENOSPC "$E2IMAGE" -r -a "$T/data.img" "$T/full.raw"
fi

# SIGINT and SIGTERM part way through a slowed-down -a capture.
interrupted() {
  sig=$1 dest="$T/sig-$1.qcow2"
  echo precious > "$dest"
  env --default-signal=INT,TERM LD_PRELOAD="$IOFAULT_SO" IOFAULT_PATH="sig-$1.qcow2" \
    IOFAULT_DELAY_MS=50 "$E2IMAGE" -Q -a "$T/data.img" "$dest" 2> "$T/sig-err" &
  pid=$!
  for _ in $(seq 1 400); do  # up to 20 s for the temporary file to appear
    ls -A "$T" | grep -q "sig-$1.qcow2.e2image-" && break
    sleep 0.05
  done
  ls -A "$T" | grep -q "sig-$1.qcow2.e2image-" || { kill $pid; wait $pid; echo "no temporary file appeared"; return 1; }
  sleep 0.3
  kill -s "$sig" $pid || { echo "e2image had already finished"; return 1; }
  wait $pid; rc=$?
  cat "$T/sig-err"
  [ $rc -gt 128 ] || { echo "exit status $rc: not killed by the signal"; return 1; }
  [ "$(cat "$dest")" = precious ] || { echo "destination changed"; return 1; }
  ! ls -A "$T" | grep -q 'e2image-' || { echo "temporary file left:"; ls -A "$T"; return 1; }
}
ok "SIGINT part way: temporary file removed, existing destination untouched" interrupted INT
ok "SIGTERM part way: temporary file removed, existing destination untouched" interrupted TERM

through_symlink() {
  echo old > "$T/target.raw"
  ln -sf target.raw "$T/link.raw"
  "$E2IMAGE" -r "$T/fs.img" "$T/link.raw" && [ -L "$T/link.raw" ] &&
    same_bytes "$T/target.raw" "$T/oracle.raw"
}
ok "an existing symlink as output: the image replaces its target, the link stays" through_symlink

output_mode() {
  (umask 022 && "$E2IMAGE" -r "$T/fs.img" "$T/mode.raw") && [ "$(stat -c %a "$T/mode.raw")" = 600 ] &&
    (umask 0277 && "$E2IMAGE" -r "$T/fs.img" "$T/mode2.raw") && [ "$(stat -c %a "$T/mode2.raw")" = 400 ]
}
ok "a new image is 0600, as e2fsprogs' e2image makes it (the umask only narrows it)" output_mode

# --no-sync: the same image gets its name with no fsync or background
# write-out of it or of its directory; without the option, both are synced.
# The images go to a directory of their own: the source is not counted.
mkdir -p "$T/out"
# syncs COMMAND...: the fsync and sync_file_range calls on $T/out and its files.
syncs() {
  rm -f "$T/syncs"
  faulty IOFAULT_OP=fsync IOFAULT_PATH="$T/out" IOFAULT_COUNT="$T/syncs" "$@" > /dev/null || return 1
  cat "$T/syncs"
}
# no_sync_same OUT ARGS...: e2image ARGS $T/out/OUT with and without --no-sync.
no_sync_same() {
  out=$1; shift
  synced=$(syncs "$E2IMAGE" "$@" "$T/out/synced.$out") || return 1
  unsynced=$(syncs "$E2IMAGE" --no-sync "$@" "$T/out/$out") || return 1
  echo "syncs: $synced without --no-sync, $unsynced with it"
  [ "$synced" -ge 2 ] && [ "$unsynced" = 0 ] && same_image "$T/out/synced.$out" "$T/out/$out" &&
    ! ls -A "$T/out" | grep -q 'e2image-'
}
# same_image A B: equal bytes, but for an e2i header's image inode and time
# (bytes 244-251), which differ from one image file to the next.
same_image() {
  case $1 in
    *.e2i) cmp -n 244 "$1" "$2" && cmp -i 252 "$1" "$2" ;;
    *) cmp "$1" "$2" ;;
  esac
}
ok "--no-sync: a qcow2 capture, unsynced, same bytes" no_sync_same nosync.qcow2 -Q "$T/fs.img"
ok "--no-sync: a raw capture, unsynced, same bytes" no_sync_same nosync.raw -r "$T/fs.img"
ok "--no-sync: an e2i image, unsynced, same bytes" no_sync_same nosync.e2i "$T/fs.img"
ok "--no-sync: qcow2 to raw, unsynced, same bytes" no_sync_same nosync.conv.raw -r "$T/clean.qcow2"
ok "--no-sync: a copy of the filesystem to a new file (-ra), unsynced, same bytes" \
  no_sync_same nosync.copy.img -ra "$T/data.img"
no_sync_refused() {
  cp "$T/fs.img" "$T/inplace.img"
  for args in "-ra -c $T/fs.img $T/inplace.img" "-ra -O 1048576 $T/inplace.img" \
    "-I $T/inplace.img $T/nosync.e2i"; do
    # shellcheck disable=SC2086
    "$E2IMAGE" --no-sync $args 2> "$T/err" && { echo "accepted: $args"; return 1; }
    cat "$T/err"
    [ "$(wc -l < "$T/err")" = 1 ] && grep -q -- '--no-sync\|-I takes no other' "$T/err" || return 1
    cmp "$T/fs.img" "$T/inplace.img" || { echo "written: $args"; return 1; }
  done
}
ok "--no-sync is refused where a filesystem is written in place (-ra -c, a move, -I)" no_sync_refused

done_testing
