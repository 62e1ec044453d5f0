#!/bin/bash
# The benchmark of e2image-ng against its references: for each
# filesystem built by make-fs.sh and each operation, runs ours and the
# reference alternately BENCH_RUNS times, with the page cache dropped before
# every run, and prints the medians, the ratio ours/reference, the peak memory
# and whether each target is met, as a Markdown table.
#
#   bench.sh E2IMAGE
#
# Environment (defaults give the full-size run of `make bench`):
#   BENCH_SCALE=1     size of the usr and small filesystems (0.1 = a tenth)
#   BENCH_RUNS=5      runs of each program per measurement
#   BENCH_CACHE=/var/tmp/e2image-ng-bench   where filesystems are kept
#   BENCH_FS="usr small huge"               which filesystems
#   BENCH_OPS="Q Q-durable r r-durable Qa q2r q2r-durable zQ zQt Qs Q2m Qpipe rpipe floor"
#                                           which operations. Qpipe: -Q - and -Q
#                                           --compress - into a pipe (| cat > FILE)
#                                           against the same capture into FILE;
#                                           rpipe: cat IMAGE | -r - OUT against
#                                           -r IMAGE OUT. The -durable ones time
#                                           the reference with its output synced, as
#                                           ours always is (Q-, r-durable: e2image
#                                           then `sync FILE`; q2r-durable: qemu-img
#                                           -t writeback); zQt: compressed -Q on all
#                                           cores against --threads=1, at zstd level
#                                           9 and at the default level, and with
#                                           --threads=256 at level 9 for memory; Qs: -Q -s
#                                           against our own -Q, on the small-files
#                                           filesystem; Q2m: on huge, -Q with 2 MiB
#                                           clusters (time against our default's:
#                                           information) and that image back to raw
#                                           against qemu-img; floor: after -Q, -r and
#                                           qcow2 to raw (not on huge), the time to
#                                           write our image's bytes from memory,
#                                           laid out as in it, and sync them: the
#                                           output disk's floor (write-floor.pl),
#                                           and after qcow2 to raw, cat of the qcow2
#                                           file: the input disk's floor; rows of
#                                           information, no target
#   BENCH_RESULTS=FILE                      also write the table there
set -euo pipefail

ours=${1:?usage: bench.sh PATH/TO/e2image}
ours=$(readlink -f "$ours")
bench_dir=$(cd "$(dirname "$0")" && pwd)
runs=${BENCH_RUNS:-5}
cache=${BENCH_CACHE:-/var/tmp/e2image-ng-bench}
fs_names=${BENCH_FS:-usr small huge}
ops=${BENCH_OPS:-Q Q-durable r r-durable Qa q2r q2r-durable zQ zQt Qs Q2m Qpipe rpipe floor}
ref_e2image=/usr/sbin/e2image
time_bin=/usr/bin/time
mem_target_mib=64

for tool in "$ref_e2image" "$time_bin" qemu-img mke2fs perl; do
  command -v "$tool" > /dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done

drop_note=""
drop_caches() {
  sync
  if ! { echo 3 > /proc/sys/vm/drop_caches; } 2> /dev/null; then
    drop_note="The page cache could not be dropped (not root): the times are warm-cache times."
  fi
}

declare -A fs_path
mkdir -p "$cache"
"$bench_dir/make-fs.sh" "$cache" > "$cache/paths"
while read -r name path; do fs_path[$name]=$path; done < "$cache/paths"

work="$cache/work"
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

# run_timed FILE OUTPUT CMD: drops the caches, removes OUTPUT, runs CMD under
# /usr/bin/time and appends "seconds maxrss_kib" to FILE.
run_timed() {
  local file=$1 output=$2
  shift 2
  rm -f "$output"
  drop_caches
  if ! "$time_bin" -f '%e %M' -o "$work/time.out" "$@" > /dev/null 2> "$work/stderr.out"; then
    echo "bench: failed: $*" >&2
    cat "$work/stderr.out" >&2
    exit 1
  fi
  tail -n 1 "$work/time.out" >> "$file"
}

# median FILE COLUMN; peak FILE COLUMN (max, in MiB)
median() { cut -d' ' -f"$2" "$1" | sort -g | awk '{ v[NR] = $1 } END { m = int((NR + 1) / 2); if (NR % 2) print v[m]; else printf "%.2f\n", (v[m] + v[m + 1]) / 2 }'; }
peak_mib() { cut -d' ' -f"$2" "$1" | sort -g | tail -n 1 | awk '{ printf "%.0f\n", $1 / 1024 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
# ratio_of A B: A / B to two decimals, n/a when B is 0.
ratio_of() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

rows=()
last_ours_s="" last_ours_mem="" last_ref_s="" last_ref_mem=""
missed=0
total=0

# measure FS OP_LABEL REF_LABEL TARGET_RATIO OURS_OUT REF_OUT -- OURS_CMD... -- REF_CMD...
# Alternates ours and the reference; records a table row.
measure() {
  local fs=$1 label=$2 ref_label=$3 target=$4 ours_out=$5 ref_out=$6
  shift 6
  [ "$1" = -- ] && shift
  local ours_cmd=() ref_cmd=()
  while [ "$1" != -- ]; do ours_cmd+=("$1"); shift; done
  shift
  ref_cmd=("$@")
  local ours_times="$work/ours.times" ref_times="$work/ref.times"
  : > "$ours_times"
  : > "$ref_times"
  echo "bench: $fs: $label vs $ref_label ($runs runs each)" >&2
  for ((i = 0; i < runs; i++)); do
    run_timed "$ours_times" "$ours_out" "${ours_cmd[@]}"
    run_timed "$ref_times" "$ref_out" "${ref_cmd[@]}"
  done
  local ours_s ref_s ratio ours_mem ref_mem met note=""
  ours_s=$(median "$ours_times" 1)
  ref_s=$(median "$ref_times" 1)
  ratio=$(ratio_of "$ours_s" "$ref_s")
  ours_mem=$(peak_mib "$ours_times" 2)
  ref_mem=$(peak_mib "$ref_times" 2)
  met=yes
  local target_text="≤ $target" time_met=yes rest_met=yes
  if [ -n "${TIME_INFO:-}" ]; then
    target_text="none (time: information)"
    note="time not judged: $TIME_INFO"
  elif [ "$ratio" = n/a ] || awk -v r="$ratio" -v t="$target" 'BEGIN { exit !(r > t) }'; then
    met=no time_met=no
    note="time"
  fi
  if [ "$ours_mem" -gt "$mem_target_mib" ]; then
    met=no rest_met=no
    note="${note:+$note, }memory"
  fi
  if [ -n "${EXTRA_CHECK:-}" ]; then
    if ! eval "$EXTRA_CHECK"; then
      met=no rest_met=no
      note="${note:+$note, }${EXTRA_NOTE:-check}"
    fi
  fi
  [ -n "${EXTRA_INFO:-}" ] && note="${note:+$note; }$EXTRA_INFO"
  total=$((total + 1))
  [ "$met" = yes ] || missed=$((missed + 1))
  last_row_index=${#rows[@]}
  last_row_head="| $fs | $label | $ours_s | $ref_label | $ref_s | $ratio"
  last_row_tail="$ours_mem | $ref_mem"
  last_time_met=$time_met last_rest_met=$rest_met last_target_text=$target_text last_note=$note
  rows+=("$last_row_head | $target_text | $last_row_tail | $met${note:+ ($note)} |")
  EXTRA_CHECK="" EXTRA_NOTE="" EXTRA_INFO="" TIME_INFO=""
  last_ours_s=$ours_s last_ours_mem=$ours_mem last_ref_s=$ref_s last_ref_mem=$ref_mem
}

# judge_against_floor FLOOR_S MULTIPLE: after a measure whose reference
# target may lie below the output disk's floor, the row is met on time also
# when ours takes at most MULTIPLE times FLOOR_S, whichever is looser. The row
# is rewritten in place and the count of missed targets follows it.
judge_against_floor() {
  local floor_s=$1 multiple=$2 met note
  local target_text="$last_target_text, or ≤ $multiple × the disk's floor ($floor_s s)"
  met=$last_time_met note=$last_note
  if [ "$last_time_met" = no ] &&
     awk -v o="$last_ours_s" -v f="$floor_s" -v m="$multiple" 'BEGIN { exit !(o <= m * f) }'; then
    met=yes
    note="${note#time}"; note="${note#, }"
    note="time met against the floor${note:+, $note}"
    [ "$last_rest_met" = yes ] && missed=$((missed - 1))
  fi
  [ "$last_rest_met" = yes ] || met=no
  rows[$last_row_index]="$last_row_head | $target_text | $last_row_tail | $met${note:+ ($note)} |"
}

# sync_cost_row FS LABEL REF_LABEL REF_S REF_MEM: after a -durable measure,
# ours as by default (synced) against the reference as it is (unsynced,
# REF_S and REF_MEM from the row before): what syncing costs. A row of
# information.
sync_cost_row() {
  rows+=("| $1 | $2 (synced, by default) | $last_ours_s | $3, unsynced (the times of the two rows above) | $4 | $(ratio_of "$last_ours_s" "$4") | none | $last_ours_mem | $5 | information: the cost of syncing |")
}

# floor_row FS LABEL IMAGE [MULTIPLE]: after a measure whose last run of ours
# left IMAGE, the time write-floor.pl takes to write IMAGE's bytes from memory
# (same layout) and sync them, against ours: how far above the output disk's
# floor ours is. A row of information, counted in no total. With MULTIPLE
# (measured then even without the floor op), the measure's row is also judged
# against MULTIPLE times the floor (judge_against_floor).
floor_row() {
  local fs=$1 label=$2 image=$3 judge=${4:-} times="$work/floor.times" floor_s extents ratio
  { has_op floor || [ -n "$judge" ]; } && [ "$fs" != huge ] || return 0
  : > "$times"
  echo "bench: $fs: $label: the output disk's floor for our image ($runs runs)" >&2
  for ((i = 0; i < runs; i++)); do
    perl "$bench_dir/write-floor.pl" "$image" "$work/floor.out" >> "$times"
  done
  floor_s=$(median "$times" 1)
  extents=$(tail -n 1 "$times" | cut -d' ' -f2)
  ratio=$(ratio_of "$last_ours_s" "$floor_s")
  [ -n "$judge" ] && judge_against_floor "$floor_s" "$judge"
  rows+=("| $fs | $label | $last_ours_s | our image written from memory, then fsync: the disk's floor ($extents extents) | $floor_s | $ratio | none | $last_ours_mem | | information |")
}

# read_floor_row FS LABEL FILE: after a measure of ours reading FILE, the
# time `cat FILE > /dev/null` takes from a dropped cache, against ours: how
# far above the input disk's floor ours is. A row of information, counted
# in no total.
read_floor_row() {
  local fs=$1 label=$2 file=$3 times="$work/read-floor.times" floor_s
  has_op floor || return 0
  : > "$times"
  echo "bench: $fs: $label: the input disk's floor, cat of the input ($runs runs)" >&2
  for ((i = 0; i < runs; i++)); do
    run_timed "$times" "$work/none" bash -c 'exec cat "$1" > /dev/null' cat "$file"
  done
  floor_s=$(median "$times" 1)
  rows+=("| $fs | $label | $last_ours_s | cat of the input > /dev/null: the disk's floor for reading it ($(mib "$(stat -c %s "$file")")) | $floor_s | $(ratio_of "$last_ours_s" "$floor_s") | none | $last_ours_mem | | information |")
}

# The sizes of the last run's images, noted in the row (called from EXTRA_CHECK).
note_sizes() {
  local ours_b ref_b
  ours_b=$(stat -c %s "$out_ours")
  ref_b=$(stat -c %s "$out_ref")
  EXTRA_INFO="sizes: ours $(mib "$ours_b") ($ours_b B), ref $(mib "$ref_b") ($ref_b B)"
}

note_disk_used() {
  EXTRA_INFO="disk used: ours $(mib $(($(stat -c %b "$out_ours") * 512))), ref $(mib $(($(stat -c %b "$out_ref") * 512)))"
}

has_op() { [[ " $ops " == *" $1 "* ]]; }

for fs in $fs_names; do
  img=${fs_path[$fs]:?unknown filesystem $fs}
  out_ours="$work/ours.out"
  out_ref="$work/ref.out"
  # Debian's e2image and qemu-img's default cache mode leave their images in
  # the page cache; ours syncs each image before renaming it into place
  # unless --no-sync. Each operation is timed like for like: ours
  # with --no-sync against the reference as it is, and ours as by default
  # against the reference made as durable (the -durable operations: e2image,
  # then `sync FILE`; qemu-img -t writeback). A row of information then sets
  # ours as by default against the reference as it is: what syncing costs.
  # On huge, where e2image takes minutes, ours runs as by default against
  # the references as they are, and nothing more.
  no_sync=(--no-sync)
  [ "$fs" = huge ] && no_sync=()
  if has_op Q; then
    EXTRA_CHECK='qemu-img info "$out_ours" > /dev/null 2>&1 && qemu-img check -q "$out_ours" > /dev/null 2>&1'
    EXTRA_NOTE="qemu-img cannot open or check our image"
    measure "$fs" "-Q${no_sync[*]:+ --no-sync}" "e2image -Q" 0.5 "$out_ours" "$out_ref" \
      -- "$ours" "${no_sync[@]}" -Q "$img" "$out_ours" -- "$ref_e2image" -Q "$img" "$out_ref"
    plain=("$last_ref_s" "$last_ref_mem")
  fi
  if has_op Q-durable && [ "$fs" != huge ]; then
    measure "$fs" "-Q" "e2image -Q, then sync FILE (synced, as ours)" 0.5 "$out_ours" "$out_ref" \
      -- "$ours" -Q "$img" "$out_ours" \
      -- bash -c '"$1" -Q "$2" "$3" && exec sync "$3"' e2image "$ref_e2image" "$img" "$out_ref"
    has_op Q && sync_cost_row "$fs" "-Q" "e2image -Q" "${plain[@]}"
    floor_row "$fs" "-Q" "$out_ours"
  fi
  if has_op r; then
    measure "$fs" "-r${no_sync[*]:+ --no-sync}" "e2image -r" 0.5 "$out_ours" "$out_ref" \
      -- "$ours" "${no_sync[@]}" -r "$img" "$out_ours" -- "$ref_e2image" -r "$img" "$out_ref"
    plain=("$last_ref_s" "$last_ref_mem")
  fi
  if has_op r-durable && [ "$fs" != huge ]; then
    measure "$fs" "-r" "e2image -r, then sync FILE (synced, as ours)" 0.5 "$out_ours" "$out_ref" \
      -- "$ours" -r "$img" "$out_ours" \
      -- bash -c '"$1" -r "$2" "$3" && exec sync "$3"' e2image "$ref_e2image" "$img" "$out_ref"
    has_op r && sync_cost_row "$fs" "-r" "e2image -r" "${plain[@]}"
    floor_row "$fs" "-r" "$out_ours"
  fi
  # Reading a 15 TiB sparse file end to end measures nothing useful: no -Qa on huge.
  if has_op Qa && [ "$fs" != huge ]; then
    measure "$fs" "-Qa" "cat image > /dev/null" 1.5 "$out_ours" "$work/none" \
      -- "$ours" -Qa "$img" "$out_ours" -- bash -c 'exec cat "$1" > /dev/null' cat "$img"
  fi
  if has_op q2r || has_op q2r-durable; then
    qcow2_in="$work/$fs.qcow2"
    "$ours" -Q "$img" "$qcow2_in"
    if has_op q2r; then
      measure "$fs" "qcow2 to raw (-r${no_sync[*]:+ --no-sync})" "qemu-img convert -O raw" 0.5 \
        "$out_ours" "$out_ref" -- "$ours" "${no_sync[@]}" -r "$qcow2_in" "$out_ours" \
        -- qemu-img convert -O raw "$qcow2_in" "$out_ref"
      plain=("$last_ref_s" "$last_ref_mem")
      if [ "$fs" != huge ]; then
        read_floor_row "$fs" "qcow2 to raw (-r${no_sync[*]:+ --no-sync})" "$qcow2_in"
      fi
    fi
    # -t writeback: one fdatasync at the end, as durable as ours.
    if has_op q2r-durable; then
      measure "$fs" "qcow2 to raw (-r)" "qemu-img convert -t writeback -O raw (synced, as ours)" \
        0.5 "$out_ours" "$out_ref" -- "$ours" -r "$qcow2_in" "$out_ours" \
        -- qemu-img convert -t writeback -O raw "$qcow2_in" "$out_ref"
      # Synced, this target can lie below the disk's floor for writing the
      # image: it is met at most 0.5 times qemu-img's time or at most 1.5
      # times that floor, whichever is looser.
      has_op q2r && sync_cost_row "$fs" "qcow2 to raw (-r)" "qemu-img convert -O raw" "${plain[@]}"
      floor_row "$fs" "qcow2 to raw (-r)" "$out_ours" 1.5
    fi
    rm -f "$qcow2_in"
  fi
  if has_op zQ; then
    meta_raw="$work/$fs.meta.raw"
    "$ours" -r "$img" "$meta_raw"
    EXTRA_CHECK='[ "$(stat -c %s "$out_ours")" -lt "$(stat -c %s "$out_ref")" ]'
    EXTRA_NOTE="image not smaller"
    EXTRA_CHECK="note_sizes; $EXTRA_CHECK"
    measure "$fs" "-Q --compress=zstd" "qemu-img convert -c zstd (of the -r image)" 0.5 \
      "$out_ours" "$out_ref" \
      -- "$ours" -Q --compress=zstd "$img" "$out_ours" \
      -- qemu-img convert -c -O qcow2 -o compression_type=zstd "$meta_raw" "$out_ref"
    rm -f "$meta_raw"
  fi
  # Compression scales with cores: the default (all cores) against one
  # thread, at a level where compressing is what the run waits for (zstd 9:
  # three times the CPU of level 3; the run also reads and writes, so the
  # ratio cannot reach 1/cores). At the default level one compressing thread
  # keeps up with the inode scan (the compressed capture is no slower than
  # the uncompressed one; on huge, compression is a tenth of the one-thread
  # run, the rest being the opening of its 122,880 groups and the writing of
  # the image's tables), so more threads cannot show: that row is
  # information, its memory still counts.
  if has_op zQt; then
    for level in 9 default; do
      level_opt=(--compress-level="$level")
      if [ "$level" = default ]; then
        level_opt=()
        TIME_INFO="at the default level one compressing thread keeps up with the scan"
      fi
      measure "$fs" "-Q --compress=zstd ${level_opt[*]:---compress-level=3 (default)} (all $(nproc) cores)" \
        "ours, --threads=1" 0.9 "$out_ours" "$out_ref" \
        -- "$ours" -Q --compress=zstd "${level_opt[@]}" "$img" "$out_ours" \
        -- "$ours" -Q --compress=zstd "${level_opt[@]}" --threads=1 "$img" "$out_ref"
    done
    # Memory follows the metadata, not the threads: 256 asked for (a large
    # machine's default) at level 9, where batches wait for all of them, get
    # what the compression's 48 MiB budget holds. Its time is information.
    TIME_INFO="more threads than cores, a row for memory"
    measure "$fs" "-Q --compress=zstd --compress-level=9 --threads=256" \
      "ours, all $(nproc) cores" 0.9 "$out_ours" "$out_ref" \
      -- "$ours" -Q --compress=zstd --compress-level=9 --threads=256 "$img" "$out_ours" \
      -- "$ours" -Q --compress=zstd --compress-level=9 "$img" "$out_ref"
  fi
  # The cost of -s (its target: under 1.5 times plain -Q on the 1,000,000-file
  # filesystem), measured where names are the load.
  if has_op Qs && [ "$fs" = small ]; then
    EXTRA_CHECK='qemu-img check -q "$out_ours" > /dev/null 2>&1'
    EXTRA_NOTE="qemu-img cannot check our scrambled image"
    measure "$fs" "-Q -s" "-Q (ours, not scrambled)" 1.5 "$out_ours" "$out_ref" \
      -- "$ours" -Q -s --scramble-seed=1 "$img" "$out_ours" -- "$ours" -Q "$img" "$out_ref"
  fi
  # The largest clusters on the largest filesystem: each 2 MiB cluster holds
  # a few metadata blocks, the rest zeros that must stay holes of the image
  # (written, they were 16 GB and 34 s) and be left unread on the way back
  # (read, 31 s against qemu-img's 6 to 15 s).
  if has_op Q2m && [ "$fs" = huge ]; then
    EXTRA_CHECK='note_disk_used; qemu-img check -q "$out_ours" > /dev/null 2>&1'
    EXTRA_NOTE="qemu-img cannot check our image"
    TIME_INFO="the same capture with other clusters, a row for its disk and memory"
    measure "$fs" "-Q --cluster-size=2097152" "ours, -Q (default clusters)" 0.9 \
      "$out_ours" "$out_ref" -- "$ours" -Q --cluster-size=2097152 "$img" "$out_ours" \
      -- "$ours" -Q "$img" "$out_ref"
    qcow2_in="$work/$fs.2m.qcow2"
    "$ours" -Q --cluster-size=2097152 "$img" "$qcow2_in"
    measure "$fs" "qcow2 to raw (-r), 2 MiB clusters" "qemu-img convert -O raw" 0.5 \
      "$out_ours" "$out_ref" -- "$ours" -r "$qcow2_in" "$out_ours" \
      -- qemu-img convert -O raw "$qcow2_in" "$out_ref"
    rm -f "$qcow2_in"
  fi
  # qcow2 through pipes: the capture to standard output goes through a spool
  # of its clusters and is laid out front to back; the restore from a pipe
  # reads the image once, in order. Each against the same run on files;
  # the captures' files are left unsynced, as cat leaves the piped image.
  if has_op Qpipe; then
    for compress in "" --compress; do
      EXTRA_CHECK='qemu-img check -q "$out_ours" > /dev/null 2>&1'
      EXTRA_NOTE="qemu-img cannot check our streamed image"
      measure "$fs" "-Q${compress:+ $compress} - into a pipe, cat > FILE" \
        "ours, -Q${compress:+ $compress} --no-sync FILE" 1.2 "$out_ours" "$out_ref" \
        -- bash -c 'set -o pipefail; "$1" -Q ${4:+"$4"} "$2" - | cat > "$3"' e2image \
        "$ours" "$img" "$out_ours" "$compress" \
        -- "$ours" --no-sync -Q ${compress:+"$compress"} "$img" "$out_ref"
    done
  fi
  if has_op rpipe; then
    qcow2_in="$work/$fs.qcow2"
    "$ours" -Q "$img" "$qcow2_in"
    measure "$fs" "-r${no_sync[*]:+ --no-sync} - OUT, the image piped in by cat" \
      "ours, -r${no_sync[*]:+ --no-sync} image OUT" 1.2 "$out_ours" "$out_ref" \
      -- bash -c 'set -o pipefail; cat "$1" | "$2" "${@:4}" -r - "$3"' cat \
      "$qcow2_in" "$ours" "$out_ours" "${no_sync[@]}" \
      -- "$ours" "${no_sync[@]}" -r "$qcow2_in" "$out_ref"
    rm -f "$qcow2_in"
  fi
  rm -f "$out_ours" "$out_ref"
done

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
{
  echo "Machine: $(nproc) cores ($cpu), $mem RAM, Linux $(uname -r), images on $(df -T "$cache" | awk 'NR == 2 { print $2 " (" $1 ")" }')."
  echo "Scale: BENCH_SCALE=${BENCH_SCALE:-1}, BENCH_RUNS=$runs; filesystems:"
  for fs in $fs_names; do
    echo "- $fs: $(cat "$cache/$fs.stamp"), $(du -h --apparent-size "${fs_path[$fs]}" | cut -f1) apparent, $(du -h "${fs_path[$fs]}" | cut -f1) allocated"
  done
  [ -n "$drop_note" ] && echo "$drop_note"
  echo
  echo "| fs | ours | ours (s) | reference | ref (s) | ours/ref | target | ours peak (MiB) | ref peak (MiB) | met |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Times are medians of $runs runs, page cache dropped before each run; memory targets: ≤ $mem_target_mib MiB."
  echo "Ours runs with --no-sync where the reference leaves its image unsynced, and as by default"
  echo "(synced) where the reference is synced too; the rows marked \"the cost of syncing\" set ours as"
  echo "by default against the reference as it is."
  if has_op floor; then
    echo "Rows of information (no target, in no count): our image's bytes written from memory as laid out"
    echo "in it, holes left, then fsync (bench/write-floor.pl): what making that image durable takes on"
    echo "this disk with nothing to read or compute; and cat of the qcow2 file that qcow2 to raw reads."
  fi
  echo "Synced qcow2 to raw is met at most 0.5 times qemu-img's time or at most 1.5 times the output"
  echo "disk's floor for its image, whichever is looser: on a slow disk the first can lie below the floor."
  if [ "$missed" = 0 ]; then
    echo "All $total targets met."
  else
    echo "$missed of $total targets missed."
  fi
} | tee "$work/results.md"
[ -n "${BENCH_RESULTS:-}" ] && cp "$work/results.md" "$BENCH_RESULTS"
if [ "${BENCH_STRICT:-0}" = 1 ] && [ "$missed" != 0 ]; then exit 1; fi
exit 0
