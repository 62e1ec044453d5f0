#include "e2img/device_copy.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "util/error.h"

namespace e2img {
namespace {

// A run of blocks to copy in one read.
struct Chunk {
  uint64_t start;
  uint64_t count;
};

std::vector<Chunk> Chunks(BlockSet& blocks, uint64_t first_data_block, uint64_t max_blocks) {
  std::vector<Chunk> chunks;
  for (const BlockExtent& e : blocks.Extents()) {
    for (uint64_t b = std::max(e.start, first_data_block); b < e.end(); b += max_blocks)
      chunks.push_back({b, std::min(max_blocks, e.end() - b)});
  }
  return chunks;
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
  // Moving towards higher offsets: copy the highest blocks first, so that
  // each write lands only on blocks already read.
  if (o.dest_offset > o.source_offset)
    std::reverse(chunks.begin(), chunks.end());
  DeviceCopyResult result;
  std::vector<uint8_t> buf, old;
  uint64_t done = 0;
  for (const Chunk& c : chunks) {
    buf.resize(c.count * bs);
    const uint64_t from = o.source_offset + c.start * bs;
    const size_t got = source.ReadUpTo(buf, from);
    if (got < buf.size()) {
      std::fill(buf.begin() + static_cast<std::ptrdiff_t>(got), buf.end(), 0);
      warn(util::AtOffset(source.path(), from + got,
                          "source ends before block " + std::to_string(c.start + got / bs) +
                              "; the missing blocks are written as zeros"));
      ++result.problems;
    }
    const uint64_t to = o.dest_offset + c.start * bs;
    if (o.compare) {
      old.assign(buf.size(), 0);
      dest.ReadUpTo(old, to);
    }
    // Write runs of blocks that need it (all of them without compare).
    uint64_t i = 0;
    while (i < c.count) {
      auto differs = [&](uint64_t k) {
        return !o.compare || std::memcmp(buf.data() + k * bs, old.data() + k * bs, bs) != 0;
      };
      if (!differs(i)) {
        ++result.skipped;
        ++i;
        continue;
      }
      uint64_t j = i + 1;
      while (j < c.count && differs(j))
        ++j;
      if (o.print_only) {
        for (uint64_t k = i; k < j; ++k)
          std::printf("Writing block %llu\n", static_cast<unsigned long long>(c.start + k));
      } else {
        dest.WriteAt(std::span<const uint8_t>(buf.data() + i * bs, (j - i) * bs), to + i * bs);
      }
      result.written += j - i;
      i = j;
    }
    done += c.count;
    if (progress)
      progress(done);
  }
  return result;
}

}  // namespace e2img
