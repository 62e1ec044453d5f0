#!/bin/bash
# The bash completion of e2image and qcow2-inspect, run as bash runs it:
# COMP_WORDS/COMP_CWORD set, the completion function called, COMPREPLY read.
# Each case runs twice: in a bare bash, and with bash-completion loaded.
. "$TESTLIB"
. "$(dirname "$TESTLIB")/options.sh"
SRC=$(cd "$(dirname "$TESTLIB")/../.." && pwd)
COMPLETIONS=$SRC/misc/bash-completion
BASH_COMPLETION=/usr/share/bash-completion/bash_completion

# offers MODE FILE FUNCTION WORD...: the sorted completions of the last WORD
# (an empty last word completes a new argument), in $T/files.
offers() {
  mode=$1 file=$2 function=$3; shift 3
  (cd "$T/files" && bash -c '
    if [ "$1" = bash-completion ]; then
      . "$2" && declare -F _filedir > /dev/null || { echo "cannot load $2"; exit 1; }
    fi
    . "$3"; function=$4; shift 4
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
    "$function"
    printf "%s\n" "${COMPREPLY[@]}"' \
    sh "$mode" "$BASH_COMPLETION" "$COMPLETIONS/$file" "$function" "$@") | sed '/^$/d' | sort
}
e2image_offers() { offers "$mode" e2image _e2image_ng "$@"; }
inspect_offers() { offers "$mode" qcow2-inspect _qcow2_inspect "$@"; }

# expect LIST COMMAND...: the command prints the words of LIST, one a line.
expect() {
  want=$(printf '%s\n' $1 | sort); shift
  got=$("$@")
  [ "$got" = "$want" ] || { echo "expected: $want"; echo "got: $got"; return 1; }
}

mkdir -p "$T/files/dir"
touch "$T/files/fs.img" "$T/files/fs.qcow2" "$T/files/other"

# Every option of the man page (which man_page.sh holds equal to --help) is
# offered after "-", with "--x=" for the options that take a value.
all_options() {
  man_options "$SRC/misc/e2image.8" > "$T/man.list"
  e2image_offers "$E2IMAGE" - | sed 's/=$//' | sort -u > "$T/offered.list"
  diff "$T/man.list" "$T/offered.list"
}

for mode in bare bash-completion; do
  ok "$mode: e2image - offers the options of the man page" all_options
  ok "$mode: e2image --q completes --qcow2-version=" \
    expect "--qcow2-version=" e2image_offers "$E2IMAGE" -Q --q
  ok "$mode: e2image --qcow2-version= offers 2 and 3" \
    expect "2 3" e2image_offers "$E2IMAGE" -Q --qcow2-version =
  ok "$mode: e2image --compress=zs completes zstd" \
    expect "zstd" e2image_offers "$E2IMAGE" -Q --compress = zs
  ok "$mode: e2image --cluster-size=2 offers the sizes starting with 2" \
    expect "2048 262144 2097152" e2image_offers "$E2IMAGE" --cluster-size = 2
  ok "$mode: e2image -B offers block sizes" \
    expect "1024 2048 4096 65536" e2image_offers "$E2IMAGE" -B ""
  ok "$mode: e2image -b offers nothing (a block number)" \
    expect "" e2image_offers "$E2IMAGE" -r -b ""
  ok "$mode: e2image -Q f completes file names" \
    expect "fs.img fs.qcow2" e2image_offers "$E2IMAGE" -Q f
  ok "$mode: e2image gets e2fsprogs' options from a program without --help" \
    expect "-a -b -B -c -f -I -n -o -O -p -Q -r -s -h -V --help --version" \
    e2image_offers /usr/sbin/e2image.none -
  ok "$mode: qcow2-inspect - offers -h, --help, -V and --version" \
    expect "-h --help -V --version" inspect_offers qcow2-inspect -
  ok "$mode: qcow2-inspect offers the subcommands" \
    expect "check dump info map" inspect_offers qcow2-inspect ""
  ok "$mode: qcow2-inspect i completes info" expect "info" inspect_offers qcow2-inspect i
  ok "$mode: qcow2-inspect map -- offers --backing=, --json and --help" \
    expect "--backing= --help --json" inspect_offers qcow2-inspect map --
  ok "$mode: qcow2-inspect dump -- offers --backing= and --help (dump has no --json)" \
    expect "--backing= --help" inspect_offers qcow2-inspect dump --
  ok "$mode: qcow2-inspect info --backing= offers the scopes" \
    expect "any image-dir none" inspect_offers qcow2-inspect info --backing = ""
  ok "$mode: e2image --backing=i completes image-dir" \
    expect "image-dir" e2image_offers "$E2IMAGE" -r --backing = i
  ok "$mode: qcow2-inspect check --json fs.q completes the image" \
    expect "fs.qcow2" inspect_offers qcow2-inspect check --json fs.q
  ok "$mode: qcow2-inspect dump o completes files after the subcommand" \
    expect "other" inspect_offers qcow2-inspect dump o
done

done_testing
