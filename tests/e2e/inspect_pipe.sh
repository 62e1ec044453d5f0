#!/bin/bash
# qcow2-inspect on standard input: `cat IMG | qcow2-inspect CMD -` must say
# what `qcow2-inspect CMD IMG` says (the image named "standard input", the
# disk size of a piped image unavailable) for images made by our e2image
# (to a file and streamed), Debian's e2image, qemu-img (plain, compressed,
# with a snapshot, with a backing file); a truncated or corrupt stream fails
# as the same file does; `< IMG` reads the file in place; a terminal, a
# backing file that cannot be reached and a full spool are one line each.
. "$TESTLIB"
: "${QCOW2_INSPECT:?QCOW2_INSPECT must point at the built misc/qcow2-inspect}"
: "${IOFAULT_SO:?IOFAULT_SO must point at the built tests/faults/iofault.so}"
# The shim is preloaded ahead of a sanitizer runtime in sanitizer builds.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
Q=$QCOW2_INSPECT

be64() { perl -e 'open F,"<",$ARGV[0] or die; seek F,$ARGV[1],0; read F,$b,8; print unpack("q>",$b)' "$1" "$2"; }
poke16() { perl -e 'open F,"+<",$ARGV[0] or die; seek F,$ARGV[1],0; print F pack("n",$ARGV[2])' "$1" "$2" "$3"; }
poke64() { perl -e 'open F,"+<",$ARGV[0] or die; seek F,$ARGV[1],0; print F pack("q>",$ARGV[2])' "$1" "$2" "$3"; }

make_fs "$T/fs.img" 8M -t ext4 -b 1024 || exit 1
cd "$T" || exit 1
"$E2IMAGE" -Q fs.img ours.qcow2 2> /dev/null
"$E2IMAGE" -Q --compress fs.img ourz.qcow2 2> /dev/null
"$E2IMAGE" -Q --compress=zstd --qcow2-version=3 fs.img - 2> /dev/null > streamed.qcow2
"$ORACLE_E2IMAGE" -Q fs.img deb.qcow2 2> /dev/null  # leaky: check exits 3
qemu-img convert -O qcow2 fs.img qemu.qcow2
qemu-img convert -c -O qcow2 fs.img qemuc.qcow2
qemu-img convert -O qcow2 fs.img snap.qcow2 && qemu-img snapshot -c before snap.qcow2 &&
  qemu-io -c 'write -P 0x5a 1M 128k' snap.qcow2 > /dev/null
qemu-img convert -O qcow2 fs.img bm.qcow2 && qemu-img bitmap --add bm.qcow2 b0 &&
  qemu-img bitmap --add -g 128k bm.qcow2 b1 && qemu-img snapshot -c s1 bm.qcow2
qemu-img create -q -f qcow2 -b qemu.qcow2 -F qcow2 top.qcow2 &&
  qemu-io -c 'write -P 0x33 2M 64k' top.qcow2 > /dev/null
IMAGES="ours ourz streamed deb qemu qemuc snap bm top"

# run_both IMG ARGS...: `qcow2-inspect ARGS IMG` into file.{out,err,rc} and
# `cat IMG | qcow2-inspect ARGS -` into pipe.{out,err,rc}; the file's
# outputs name the image as the pipe's do.
run_both() {
  img=$1; shift
  "$Q" "$@" "$img" > file.out 2> file.err; echo $? > file.rc
  cat "$img" | "$Q" "$@" - > pipe.out 2> pipe.err; echo "${PIPESTATUS[1]}" > pipe.rc
  sed -i "s|$img|standard input|g" file.out file.err
}

# The disk size of a piped image is unknown: the file's is taken out.
without_disk_size() {
  sed -e 's/^disk size: .*/disk size: unavailable/' -e '/^    "actual-size": [0-9]*,$/d' "$1"
}

# same_as_file IMG ARGS...: the same output, errors and exit status.
same_as_file() {
  run_both "$@"
  case " ${*:2} " in
    *" info "*) without_disk_size file.out > file.norm ;;
    *) cp file.out file.norm ;;
  esac
  diff file.norm pipe.out && diff file.err pipe.err && diff file.rc pipe.rc || {
    echo "differs for $*: exit $(cat file.rc) from the file, $(cat pipe.rc) from the pipe"
    return 1
  }
}

# every_command IMG [OPTIONS]: info, check, map (text and JSON) and dump.
every_command() {
  img=$1.qcow2; shift
  for cmd in "info" "info --json" "check" "check --json" "map" "map --json" "dump"; do
    # shellcheck disable=SC2086
    same_as_file "$img" $cmd "$@" || return 1
  done
  # Not every run fails: the comparisons above compared output.
  "$Q" map --json "$@" "$img" | jq -e 'length > 0' > /dev/null
}

for i in $IMAGES; do
  opts=; [ "$i" = top ] && opts=--backing=none
  ok "$i: info, check, map, dump of a pipe as of the file $opts" every_command "$i" $opts
done

# A file's holes do not cross a pipe: qemu's guess that an image was made
# with preallocation=metadata (its data clusters in holes read as zeros) is
# not made, and the map is the one of the file with every byte written.
holes_not_seen() {
  qemu-img create -q -f qcow2 -o preallocation=metadata pre.qcow2 4M &&
    qemu-io -c 'write -P 0x11 1M 64k' pre.qcow2 > /dev/null || return 1
  cp --sparse=never pre.qcow2 dense.qcow2
  "$Q" map --json pre.qcow2 | jq -e 'map(select(.zero)) | length == 2' > /dev/null &&
    cat pre.qcow2 | "$Q" map --json - > pipe.json &&
    "$Q" map --json dense.qcow2 | diff - pipe.json &&
    jq -e 'map(select(.zero)) | length == 0' pipe.json
}
ok "preallocation=metadata: the file's holes are not seen through a pipe" holes_not_seen

# info keeps of a pipe only what it reads (header cluster, snapshot table,
# bitmap directory); check keeps it all. The spool's writes are counted.
spool_writes() {
  LD_PRELOAD="$IOFAULT_SO" IOFAULT_PATH="$T/count" IOFAULT_NTH=0 IOFAULT_COUNT="$T/$1.count" \
    TMPDIR=$T/count "$Q" "$@" - > /dev/null
}
info_spool_small() {
  mkdir -p count
  qemu-img create -q -f qcow2 large.qcow2 64M &&
    qemu-io -c 'write -P 7 0 24M' large.qcow2 > /dev/null && qemu-img snapshot -c s large.qcow2 &&
    qemu-img bitmap --add large.qcow2 b || return 1
  spool_writes info < <(cat large.qcow2) && spool_writes check < <(cat large.qcow2) || return 1
  cat info.count check.count
  [ "$(cat info.count)" -le 4 ] && [ "$(cat check.count)" -ge 24 ] &&
    same_as_file large.qcow2 info && same_as_file large.qcow2 info --json
}
ok "info from a pipe spools only the structures it reads" info_spool_small

check_codes() {
  run_both deb.qcow2 check && [ "$(cat pipe.rc)" = 3 ] && [ "$(cat file.rc)" = 3 ]
}
ok "Debian's leaky image: check exits 3 from a pipe too" check_codes

piped_disk_size() {
  cat qemu.qcow2 | "$Q" info - | grep -x "disk size: unavailable" &&
    cat qemu.qcow2 | "$Q" info --json - > p.json &&
    jq -e '(has("actual-size") | not) and ."file-size" == '"$(stat -c %s qemu.qcow2)"' and
           .filename == "standard input"' p.json
}
ok "a piped image: disk size unavailable, file size read, named standard input" piped_disk_size

# `< IMG`: the file itself, so even the disk size is the file's.
redirected() {
  for img in ours.qcow2 qemuc.qcow2 snap.qcow2; do
    for cmd in "info" "info --json" "check --json" "map --json"; do
      # shellcheck disable=SC2086
      "$Q" $cmd "$img" > file.out 2>&1; frc=$?
      # shellcheck disable=SC2086
      "$Q" $cmd - < "$img" > redir.out 2>&1; rrc=$?
      sed -i "s|$img|standard input|g" file.out
      diff file.out redir.out && [ $frc = $rrc ] || { echo "$img $cmd differs"; return 1; }
    done
  done
  grep -q "^disk size: [0-9]" <("$Q" info - < ours.qcow2)
}
ok "< IMG reads the file in place: the same output, disk size included" redirected

# Read part way, a redirected file is the rest of it: here, not an image.
redirected_part_way() {
  { head -c 1 > /dev/null; "$Q" info -; } < qemu.qcow2 > out 2> err && return 1
  cat err
  [ "$(wc -l < err)" = 1 ] && grep -q "^qcow2-inspect: standard input: not a qcow2 image" err
}
ok "a redirected file already read from is read from where it stands" redirected_part_way

# one_line FILE PATTERN: exactly one line on stderr, matching.
one_line() {
  cat "$1"
  [ "$(wc -l < "$1")" = 1 ] && grep -q "$2" "$1"
}

# The top image names qemu.qcow2: a pipe has no directory to find it in.
backing_unreachable() {
  run_both top.qcow2 map
  [ "$(cat file.rc)" = 0 ] && [ "$(cat pipe.rc)" = 1 ] && [ ! -s pipe.out ] &&
    one_line pipe.err "^qcow2-inspect: standard input: backing file 'qemu.qcow2' is not looked for: an image from standard input has no directory" &&
    run_both top.qcow2 info &&
    [ "$(cat pipe.rc)" = 0 ] && [ ! -s pipe.err ] &&
    grep -x "backing file: qemu.qcow2 \[standard input: backing file 'qemu.qcow2' is not looked for: .*\]" pipe.out &&
    run_both top.qcow2 info --json &&
    jq -e '."backing-filename" == "qemu.qcow2" and (."backing-chain"[0].problem | test("not looked for"))' pipe.out &&
    same_as_file top.qcow2 check
}
ok "backing file from a pipe: map refused in one line, info names it, check as the file" backing_unreachable

# info --backing=none names the backing file it ignores (text and JSON).
backing_none_named() {
  "$Q" info --backing=none top.qcow2 | grep -x "backing file: qemu.qcow2 \[not opened under --backing=none\]" &&
    "$Q" info --json --backing=none top.qcow2 > n.json &&
    jq -e '."full-backing-filename" == "qemu.qcow2" and ."backing-chain"[0].problem == "not opened under --backing=none"' n.json
}
ok "info --backing=none names the ignored backing file" backing_none_named

data_file() {
  qemu-img create -q -f qcow2 -o data_file=df.raw df.qcow2 4M || return 1
  same_as_file df.qcow2 check && same_as_file df.qcow2 map --backing=none || return 1
  run_both df.qcow2 map
  [ "$(cat file.rc)" = 0 ] && [ "$(cat pipe.rc)" = 1 ] &&
    one_line pipe.err "^qcow2-inspect: standard input: external data file 'df.raw' is not looked for"
}
ok "external data file from a pipe: map refused in one line; check, --backing=none as the file" data_file

# Streams cut in the header, in the L1 table and in the data: as the file
# cut there; where the header or a table is cut, one line and exit 1.
truncated() {
  size=$(stat -c %s qemu.qcow2); l1=$(be64 qemu.qcow2 40)
  for n in 0 3 50 $((l1 + 4)) $((size - 70000)) $((size - 4096)); do
    head -c "$n" qemu.qcow2 > cut.qcow2
    for cmd in "info" "check --json" "map --json"; do
      # shellcheck disable=SC2086
      same_as_file cut.qcow2 $cmd || { echo "cut at $n"; return 1; }
      [ "$n" -gt "$l1" ] && continue
      [ "$(cat pipe.rc)" = 1 ] && [ ! -s pipe.out ] && one_line pipe.err "^qcow2-inspect: standard input: " ||
        { echo "$cmd cut at $n"; return 1; }
    done
  done
}
ok "truncated streams fail as the same file cut there: one line, exit 1" truncated

corrupt() {
  cp qemu.qcow2 bad.qcow2
  rt=$(be64 bad.qcow2 48); rb0=$(be64 bad.qcow2 "$rt")
  poke16 bad.qcow2 "$rb0" 0  # the header cluster's refcount
  same_as_file bad.qcow2 check && [ "$(cat pipe.rc)" = 2 ] || return 1
  cp qemu.qcow2 badl1.qcow2
  l1=$(be64 badl1.qcow2 40)
  poke64 badl1.qcow2 "$l1" $(( $(be64 badl1.qcow2 "$l1") | 2 ))  # reserved bit
  same_as_file badl1.qcow2 map && [ "$(cat pipe.rc)" = 1 ] && one_line pipe.err "L1 table entry 0"
}
ok "corrupt images: the same exit status and error lines from a pipe" corrupt

not_qcow2() {
  same_as_file fs.img info && [ "$(cat pipe.rc)" = 1 ] &&
    one_line pipe.err "^qcow2-inspect: standard input: not a qcow2 image: ext4 filesystem"
}
ok "not a qcow2 image: one line naming standard input and what it holds" not_qcow2

full_spool() {
  mkdir -p spool
  cat qemu.qcow2 | TMPDIR=$T/spool LD_PRELOAD="$IOFAULT_SO" IOFAULT_PATH="$T/spool" \
    IOFAULT_ERRNO=ENOSPC IOFAULT_NTH=1 "$Q" info - > out 2> err && return 1
  [ ! -s out ] && [ -z "$(ls -A spool)" ] &&
    one_line err "^qcow2-inspect: $T/spool/(standard input spool): write error: No space left on device at offset 0$"
}
ok "a full spool: one line naming it, exit 1, nothing left" full_spool

no_spool_dir() {
  cat qemu.qcow2 | TMPDIR=$T/missing "$Q" check - > out 2> err && return 1
  [ ! -s out ] && one_line err "missing: cannot create a temporary file for standard input spool"
}
ok "no spool directory: one line" no_spool_dir

terminal() {
  # A program that read the terminal would wait: timeout ends it.
  timeout 10 script -qec "'$Q' info -" /dev/null < /dev/null > tty.out 2>&1; rc=$?
  cat tty.out
  [ $rc = 1 ] && [ "$(grep -c . tty.out)" = 1 ] &&
    grep -q "^qcow2-inspect: standard input is a terminal: pipe the image into it" tty.out
}
ok "standard input a terminal: refused in one line, nothing read" terminal

done_testing
