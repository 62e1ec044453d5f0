# Shared helpers for the end-to-end tests: TAP output, a scratch directory,
# and filesystem builders. Tests run the e2image built in this tree ($E2IMAGE);
# the oracle is always /usr/sbin/e2image.
set -u
ORACLE_E2IMAGE=/usr/sbin/e2image
PATH=/usr/sbin:/sbin:$PATH
export E2FSPROGS_FAKE_TIME=1700000000

: "${E2IMAGE:?E2IMAGE must point at the built misc/e2image}"
: "${TESTS_TMPDIR:=/tmp}"
mkdir -p "$TESTS_TMPDIR"
T=$(mktemp -d "$TESTS_TMPDIR/$(basename "$0" .sh).XXXXXX")
trap 'rm -rf "$T"' EXIT

tap_n=0
tap_failed=0
ok() {  # ok DESCRIPTION COMMAND...: runs the command, reports its status.
  desc=$1; shift
  tap_n=$((tap_n + 1))
  if "$@" > "$T/last.out" 2>&1; then
    echo "ok $tap_n - $desc"
  else
    echo "not ok $tap_n - $desc"
    sed 's/^/# /' "$T/last.out" | head -n 40
    tap_failed=$((tap_failed + 1))
  fi
}
done_testing() { echo "1..$tap_n"; }

# Allocated bytes of a file.
allocated() { echo $(( $(stat -c %b "$1") * $(stat -c %B "$1") )); }

# pseudo_random BYTES [SEED]: the same incompressible bytes on every run and
# machine (perl is essential in Debian), so that a failure can be reproduced.
pseudo_random() {
  perl -e 'srand($ARGV[1]); my $n = $ARGV[0];
    while ($n > 0) { my $k = $n < 65536 ? $n : 65536; $n -= $k;
      print pack("C*", map { int(rand(256)) } 1 .. $k) }' "$1" "${2:-1}"
}

# A directory tree with the shapes metadata cares about: nested dirs, a big
# directory (hash tree), fast and slow symlinks, small and larger files.
make_tree() {
  dir=$1
  mkdir -p "$dir/sub/deeper" "$dir/big"
  i=0
  while [ $i -lt 400 ]; do
    echo "file $i" > "$dir/big/entry-with-a-longish-name-$i"
    i=$((i + 1))
  done
  pseudo_random 200000 > "$dir/sub/random.bin"
  seq 1 20000 > "$dir/sub/deeper/numbers.txt"
  ln -s short "$dir/fastlink"
  ln -s "$(printf 'x%.0s' $(seq 1 300))" "$dir/slowlink"
  # Forty text files of 1 to 13 KB, the same in every checkout (a copy of
  # the tree's own sources changed every fixture's layout with each file
  # added there).
  mkdir -p "$dir/sources"
  perl -e '
    my $dir = shift;
    for my $i (0 .. 39) {
      my $size = 1000 + ($i * 2731) % 12000;
      open(my $f, ">", sprintf("%s/source-%02d.txt", $dir, $i)) or die "$!";
      my ($text, $n) = ("", 0);
      $text .= sprintf("line %d of file %d: %s\n", ++$n, $i, "x" x (($n * 7 + $i) % 50))
        while length($text) < $size;
      print $f substr($text, 0, $size);
    }' "$dir/sources"
}

# make_fs IMAGE SIZE MKE2FS-OPTIONS...: a filesystem populated by make_tree.
make_fs() {
  img=$1; size=$2; shift 2
  tree="$T/tree"
  [ -d "$tree" ] || make_tree "$tree"
  rm -f "$img"
  mke2fs -q -F -d "$tree" "$@" "$img" "$size" > "$T/mke2fs.log" 2>&1 || {
    cat "$T/mke2fs.log"; return 1; }
}

# The lines of a program's stderr (file $1) other than the notices naming
# each backing or data file used ("prog: IMAGE: backing file 'NAME' (PATH)").
error_lines() {
  grep -Ev "^[a-z0-9-]+: .*: (backing file|external data file) '.*' \(.*\)$" "$1"
}

# Fails unless two files have the same size and bytes.
same_bytes() {
  [ "$(stat -c %s "$1")" = "$(stat -c %s "$2")" ] || {
    echo "sizes differ: $1 $(stat -c %s "$1"), $2 $(stat -c %s "$2")"; return 1; }
  cmp "$1" "$2"
}

# qemu-img check that reports neither errors nor leaks.
qcow2_clean() {
  qemu-img check "$1" > "$T/check.out" 2>&1; rc=$?
  cat "$T/check.out"
  [ $rc -eq 0 ] && grep -q "No errors were found" "$T/check.out" && ! grep -qi leak "$T/check.out"
}
