#!/bin/bash
# The man pages and --help agree: every option --help lists has an entry in
# the man page's OPTIONS section, and every entry there is in --help. Both
# lists are read from the files, so new options only need documenting.
. "$TESTLIB"
. "$(dirname "$TESTLIB")/options.sh"
MAN_DIR=$(cd "$(dirname "$TESTLIB")/../../misc" && pwd)

# help_matches_man PROGRAM MAN-PAGE: the two option lists are equal.
help_matches_man() {
  "$1" --help | help_options > "$T/help.list" || return 1
  man_options "$2" > "$T/man.list"
  [ -s "$T/help.list" ] || { echo "no options found in $1 --help"; return 1; }
  [ -s "$T/man.list" ] || { echo "no options found in $2"; return 1; }
  comm -23 "$T/help.list" "$T/man.list" | sed 's/^/in --help but not in the man page: /'
  comm -13 "$T/help.list" "$T/man.list" | sed 's/^/in the man page but not in --help: /'
  cmp -s "$T/help.list" "$T/man.list"
}

# The man page renders without groff warnings (as lintian checks it).
renders_cleanly() {
  LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$1" > /dev/null 2> "$T/groff.err"
  cat "$T/groff.err"
  [ ! -s "$T/groff.err" ]
}

# The parsers themselves, on a known help text and man page.
parsers_work() {
  printf '%s\n' 'Usage: x [-a]' '' '  -a, --all     do all; see -z' '                continued -y' \
    '      --size=N    a size' '  -n, -s, -c    three' > "$T/fake.help"
  [ "$(help_options < "$T/fake.help" | tr '\n' ' ')" = "--all --size -a -c -n -s " ] || return 1
  printf '%s\n' '.SH OPTIONS' '.TP' '.BI \-b " sb"' 'text -q' '.TP' '.BR \-h ", " \-\-help' \
    '.TP' '.BI \-\-cluster\-size= n' '.SH EXAMPLES' '.TP' '.B \-x' > "$T/fake.8"
  [ "$(man_options "$T/fake.8" | tr '\n' ' ')" = "--cluster-size --help -b -h " ]
}

ok "the option parsers read help texts and man pages" parsers_work
# Each man page of misc/ goes with the program of its name built next to
# e2image (misc/e2image.8 with misc/e2image, misc/qcow2-inspect.1 with
# misc/qcow2-inspect).
ok "misc/ has the man page of e2image" test -f "$MAN_DIR/e2image.8"
for page in "$MAN_DIR"/*.[1-8]; do
  name=$(basename "$page")
  program=$(dirname "$E2IMAGE")/${name%.*}
  ok "${name%.*} --help and $name list the same options" help_matches_man "$program" "$page"
  ok "$name renders without warnings" renders_cleanly "$page"
done
done_testing
