#!/bin/bash
# qcow2-inspect's JSON against qemu-img's for names that are not plain ASCII:
# UTF-8 letters, control characters and bytes that are not UTF-8 (which both
# print as U+FFFD) in the image, backing file, data file, snapshot and bitmap
# names. jq parses both outputs, so the values compare, not their escapes.
. "$TESTLIB"
: "${QCOW2_INSPECT:?QCOW2_INSPECT must point at the built misc/qcow2-inspect}"
Q=$QCOW2_INSPECT
cd "$T" || exit 1

backing=$'caf\xc3\xa9 \x01\n\x7f\xff\xe2\x82\xac\xf0\x9f\x98\x80.qcow2'
data=$'d\xc3\xa4ta\x1f\t.raw'
top=$'t\xc3\xb6p\x02.qcow2'
snapshot=$'sn\xc3\xa4p\x02\\"'
bitmap=$'b\xc3\xaftm\x1b'
qemu-img create -q -f qcow2 "$backing" 1M &&
  qemu-img snapshot -c "$snapshot" "$backing" &&
  qemu-img bitmap --add "$backing" "$bitmap" &&
  qemu-img create -q -f qcow2 -o data_file="$data" "$top" 1M &&
  qemu-img rebase -u -b "$backing" -F qcow2 "$top" || echo "Bail out! cannot make the images"

# same_json COMMAND KEYS IMAGE: qemu-img COMMAND --output=json and
# qcow2-inspect COMMAND --json agree on the values of KEYS (a jq object).
same_json() {
  qemu-img "$1" --output=json "$3" | jq -S "$2" > q.json || return 1
  "$Q" "$1" --json "$3" | jq -S "$2" > o.json || return 1
  cat o.json
  diff q.json o.json
}
info_keys='{filename, "backing-filename", "full-backing-filename", "backing-filename-format",
  "format-specific", snapshots: [.snapshots[]? | {id, name}]}'

ok "info: image, backing and data file names with UTF-8, control and non-UTF-8 bytes" \
  same_json info "$info_keys" "$top"
ok "info: snapshot and bitmap names with UTF-8, control characters and quotes" \
  same_json info "$info_keys" "$backing"
ok "check: the image name" same_json check '{filename, "image-end-offset"}' "$top"
# The names are there, not just equally mangled on both sides.
ok "info: the names read back as the bytes they were made from (invalid byte as U+FFFD)" \
  sh -c '"$1" info --json "$2" | jq -e --arg b "$3" --arg d "$4" --arg t "$5" \
    ".\"backing-filename\" == \$b and .\"format-specific\".data.\"data-file\" == \$d and .filename == \$t"' \
  sh "$Q" "$top" "${backing/$'\xff'/$'\xef\xbf\xbd'}" "$data" "$top"
done_testing
