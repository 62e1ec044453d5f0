#include "e2img/interrupted_copy.h"

#include <algorithm>
#include <cctype>
#include <string_view>

namespace e2img {
namespace {

std::string Num(uint64_t n) {
  return std::to_string(n);
}

// A path as a shell word: unchanged when it needs no quoting.
std::string ShellWord(const std::string& s) {
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("/._-+,:=@").find(c) != std::string_view::npos;
  });
  if (plain)
    return s;
  std::string quoted = "'";
  for (char c : s)
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

// Filesystem bytes [lo, hi) in blocks, naming the bytes when a block is cut.
std::string RangeText(uint64_t lo, uint64_t hi, uint64_t bs) {
  const uint64_t first = lo / bs, last = (hi - 1) / bs;
  std::string blocks =
      first == last ? "block " + Num(first) : "blocks " + Num(first) + ".." + Num(last);
  if (lo % bs == 0 && hi % bs == 0)
    return blocks;
  return "bytes " + Num(lo) + ".." + Num(hi - 1) + " of the filesystem (" + blocks +
         ", the end ones in part)";
}

}  // namespace

std::string DescribeInterruptedCopy(const InterruptedCopy& c) {
  const uint64_t bs = c.block_size;
  const uint64_t start = c.first_block * bs, end = c.end_block * bs;
  const uint64_t x = std::clamp(c.frontier, start, end);
  const uint64_t done_lo = c.highest_first ? x : start, done_hi = c.highest_first ? end : x;
  const uint64_t rest_lo = c.highest_first ? start : x, rest_hi = c.highest_first ? x : end;
  const std::string dest_at = c.in_place ? "at offset " + Num(c.dest_offset) : "in " + c.dest_path;

  std::string s = c.in_place ? "moving the filesystem in " + c.source_path + " from offset " +
                                   Num(c.source_offset) + " to offset " + Num(c.dest_offset)
                             : "copying the filesystem in " + c.source_path + " to " + c.dest_path;
  s += " stopped part way (";
  s += c.highest_first ? "backwards: highest blocks first" : "forwards: lowest blocks first";
  s += ", blocks " + Num(c.first_block) + ".." + Num(c.end_block - 1) + "): ";
  s += done_lo < done_hi ? RangeText(done_lo, done_hi, bs) + " are done " + dest_at
                         : "nothing is done " + dest_at;
  s += ", " + RangeText(rest_lo, rest_hi, bs) + " are not";
  if (!c.source_overwritten)
    return s + "; the source is untouched: rerun the same command to finish";

  // An overlapping move overwrote source blocks already moved: a rerun
  // would read them as the filesystem. The rest is intact at the source.
  const std::string file = ShellWord(c.source_path);
  const uint64_t from = c.source_offset + rest_lo, to = c.dest_offset + rest_lo;
  const uint64_t count = rest_hi - rest_lo;
  s += " and are still intact at offset " + Num(c.source_offset) + ", but the " +
       (c.highest_first ? "upper" : "lower") +
       " part of the source is overwritten, so do NOT rerun this command; finish with: ";
  if (!c.highest_first)  // dd copies upwards, which is safe towards lower offsets
    return s + "dd if=" + file + " of=" + file +
           " bs=1M iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc skip=" + Num(from) +
           " seek=" + Num(to) + " count=" + Num(count);
  // Towards higher offsets the rest goes through a temporary file.
  const std::string tmp = "/var/tmp/e2image-rest";
  return s + "dd if=" + file + " of=" + tmp +
         " bs=1M iflag=skip_bytes,count_bytes skip=" + Num(from) + " count=" + Num(count) +
         " && dd if=" + tmp + " of=" + file +
         " bs=1M oflag=seek_bytes conv=notrunc seek=" + Num(to) + " && rm " + tmp + " (" +
         Num(count) + " bytes of temporary space)";
}

}  // namespace e2img
