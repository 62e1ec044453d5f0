#include "e2img/device_copy.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "e2img/interrupted_copy.h"
#include "util/error.h"

namespace e2img {
namespace {

// A run of blocks to copy in one read.
struct Chunk {
  uint64_t start;
  uint64_t count;
};

// Bytes [begin, end) of a chunk's buffer to write in one call.
struct Piece {
  uint64_t begin;
  uint64_t end;
};

std::vector<Chunk> Chunks(BlockSet& blocks, uint64_t first_data_block, uint64_t max_blocks) {
  std::vector<Chunk> chunks;
  for (const BlockExtent& e : blocks.Extents()) {
    for (uint64_t b = std::max(e.start, first_data_block); b < e.end(); b += max_blocks)
      chunks.push_back({b, std::min(max_blocks, e.end() - b)});
  }
  return chunks;
}

// The largest write of a move that cannot land on source bytes not yet at
// the destination (even when it fails after landing in part): the move's
// distance, in whole blocks when it is at least one block.
uint64_t SafeWriteBytes(const DeviceCopyOptions& o, bool in_place) {
  if (!in_place)
    return std::numeric_limits<uint64_t>::max();
  const uint64_t distance = o.source_offset > o.dest_offset ? o.source_offset - o.dest_offset
                                                            : o.dest_offset - o.source_offset;
  if (distance == 0)
    return std::numeric_limits<uint64_t>::max();
  return distance >= o.block_size ? distance / o.block_size * o.block_size : distance;
}

// Splits the runs [first, second) of blocks into pieces of at most `limit`
// bytes, in copy order: descending for a backwards move.
std::vector<Piece> Pieces(const std::vector<std::pair<uint64_t, uint64_t>>& runs, uint64_t bs,
                          uint64_t limit, bool highest_first) {
  std::vector<Piece> pieces;
  for (const auto& [i, j] : runs) {
    for (uint64_t b = i * bs; b < j * bs; b += std::min(limit, j * bs - b))
      pieces.push_back({b, b + std::min(limit, j * bs - b)});
  }
  if (highest_first)
    std::reverse(pieces.begin(), pieces.end());
  return pieces;
}

// Copies into buf, from old, the bytes of the unreadable ranges (device
// offsets) inside the chunk read at `from`.
void KeepUnreadable(const std::vector<ByteRange>& ranges, uint64_t from, std::vector<uint8_t>& buf,
                    const std::vector<uint8_t>& old) {
  const uint64_t end = from + buf.size();
  for (const ByteRange& r : ranges) {
    const uint64_t lo = std::max(r.offset, from), hi = std::min(r.end(), end);
    if (lo < hi)
      std::copy(old.begin() + static_cast<std::ptrdiff_t>(lo - from),
                old.begin() + static_cast<std::ptrdiff_t>(hi - from),
                buf.begin() + static_cast<std::ptrdiff_t>(lo - from));
  }
}

}  // namespace

DeviceCopyResult CopyToDevice(const util::File& source, const util::File& dest, BlockSet& blocks,
                              const DeviceCopyOptions& o,
                              const std::function<void(uint64_t)>& progress,
                              const std::function<void(const std::string&)>& warn) {
  constexpr uint64_t kChunkBytes = 4u << 20;
  const uint64_t bs = o.block_size;
  std::vector<Chunk> chunks =
      Chunks(blocks, o.first_data_block, std::max<uint64_t>(1, kChunkBytes / bs));
  InterruptedCopy state;
  state.source_path = source.path();
  state.dest_path = dest.path();
  state.source_offset = o.source_offset;
  state.dest_offset = o.dest_offset;
  state.block_size = o.block_size;
  state.in_place = &source == &dest;
  if (!chunks.empty()) {
    state.first_block = chunks.front().start;
    state.end_block = chunks.back().start + chunks.back().count;
  }
  // Moving towards higher offsets: copy the highest blocks first, so that
  // each write lands only on blocks already read (and already copied).
  state.highest_first = state.in_place && o.dest_offset > o.source_offset;
  if (state.highest_first)
    std::reverse(chunks.begin(), chunks.end());
  const uint64_t write_limit = SafeWriteBytes(o, state.in_place);
  const uint64_t source_lo = o.source_offset + state.first_block * bs;
  const uint64_t source_hi = o.source_offset + state.end_block * bs;

  DeviceCopyResult result;
  std::vector<uint8_t> buf, old;
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  uint64_t done = 0;
  try {
    for (const Chunk& c : chunks) {
      const uint64_t chunk_lo = c.start * bs, chunk_hi = (c.start + c.count) * bs;
      state.frontier = state.highest_first ? chunk_hi : chunk_lo;
      buf.resize(c.count * bs);
      const uint64_t from = o.source_offset + chunk_lo;
      const size_t got = o.unreadable ? ReadSalvaging(source, buf, from, *o.unreadable)
                                      : source.ReadUpTo(buf, from);
      if (got < buf.size()) {
        std::fill(buf.begin() + static_cast<std::ptrdiff_t>(got), buf.end(), 0);
        warn(util::AtOffset(source.path(), from + got,
                            "source ends before block " + std::to_string(c.start + got / bs) +
                                "; the missing blocks are written as zeros"));
        ++result.problems;
      }
      const uint64_t to = o.dest_offset + chunk_lo;
      if (o.compare) {
        old.assign(buf.size(), 0);
        dest.ReadUpTo(old, to);
        // What the source could not give is left as the destination has it
        // (a copy made before the disk failed), not overwritten with zeros.
        if (o.unreadable)
          KeepUnreadable(o.unreadable->Ranges(), from, buf, old);
      }
      // Runs of blocks that need writing (all of them without compare).
      runs.clear();
      auto differs = [&](uint64_t k) {
        return !o.compare || std::memcmp(buf.data() + k * bs, old.data() + k * bs, bs) != 0;
      };
      for (uint64_t i = 0; i < c.count;) {
        if (!differs(i)) {
          ++result.skipped;
          ++i;
          continue;
        }
        uint64_t j = i + 1;
        while (j < c.count && differs(j))
          ++j;
        runs.emplace_back(i, j);
        result.written += j - i;
        i = j;
      }
      if (o.print_only) {
        for (const auto& [i, j] : runs)
          for (uint64_t k = i; k < j; ++k)
            std::printf("Writing block %llu\n", static_cast<unsigned long long>(c.start + k));
      } else {
        for (const Piece& p : Pieces(runs, bs, write_limit, state.highest_first)) {
          state.frontier = chunk_lo + (state.highest_first ? p.end : p.begin);
          if (state.in_place && to + p.begin < source_hi && to + p.end > source_lo)
            state.source_overwritten = true;
          dest.WriteAt(std::span<const uint8_t>(buf.data() + p.begin, p.end - p.begin),
                       to + p.begin);
        }
      }
      done += c.count;
      if (progress)
        progress(done);
    }
  } catch (const util::Error& e) {
    if (o.print_only)
      throw;
    throw util::Error(std::string(e.what()) + "; " + DescribeInterruptedCopy(state));
  }
  return result;
}

}  // namespace e2img
