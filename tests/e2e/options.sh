# Reads the option lists of a program's --help and of a man page, for the
# tests that check the man page and the bash completion against --help.

# The options of a --help text on stdin: the first column of the lines that
# start with spaces and a dash ("  -h, --help   show this help"), up to the
# description, which follows two or more spaces.
help_options() {
  sed -n 's/^ \{1,\}\(-[^ ].*\)$/\1/p' | sed 's/   *.*$//' |
    grep -o -- '--\?[A-Za-z0-9][-A-Za-z0-9]*' | sort -u
}

# The options of a man page: the tag line after each .TP of its OPTIONS
# section ('.BI \-b " superblock"', '.BR \-h ", " \-\-help').
man_options() {
  awk '/^\.SH/ { in_options = ($0 ~ /^\.SH "?OPTIONS"?$/) }
       in_options && tag { print; tag = 0 }
       in_options && /^\.TP/ { tag = 1 }' "$1" |
    sed 's/\\-/-/g; s/\\f[BIRP]//g; s/"/ /g' |
    grep -o -- '\(^\| \)--\?[A-Za-z0-9][-A-Za-z0-9]*' | tr -d ' ' | sort -u
}
