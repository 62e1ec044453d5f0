#include "e2img/verify.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace e2img {

namespace {

// The filesystem blocks that hold a byte of the ranges (filesystem offsets).
std::vector<BlockExtent> BlocksOf(const std::vector<ByteRange>& ranges, uint64_t block_size) {
  BlockSet set;
  for (const ByteRange& r : ranges) {
    const uint64_t first = r.offset / block_size;
    const uint64_t end = (r.end() + block_size - 1) / block_size;
    set.Add(first, end - first);
  }
  return set.Extents();
}

bool Overlaps(const std::vector<BlockExtent>& sorted, uint64_t block) {
  const auto it = std::upper_bound(sorted.begin(), sorted.end(), block,
                                   [](uint64_t b, const BlockExtent& e) { return b < e.start; });
  return it != sorted.begin() && std::prev(it)->end() > block;
}

// Gathers consecutive differing blocks into one warning line each.
class DifferenceRuns {
 public:
  DifferenceRuns(std::string device, const std::function<void(const std::string&)>& warn)
      : device_(std::move(device)), warn_(warn) {}
  ~DifferenceRuns() { Flush(); }
  DifferenceRuns(const DifferenceRuns&) = delete;
  DifferenceRuns& operator=(const DifferenceRuns&) = delete;

  void Add(uint64_t block) {
    if (count_ && first_ + count_ == block) {
      ++count_;
      return;
    }
    Flush();
    first_ = block;
    count_ = 1;
  }
  void Flush() {
    if (!count_)
      return;
    const std::string which = count_ == 1 ? "block " + std::to_string(first_)
                                          : "blocks " + std::to_string(first_) + "-" +
                                                std::to_string(first_ + count_ - 1);
    warn_(device_ + ": " + which + (count_ == 1 ? " differs" : " differ") +
          " between the source and the image (changed since copied)");
    count_ = 0;
  }

 private:
  std::string device_;
  const std::function<void(const std::string&)>& warn_;
  uint64_t first_ = 0;
  uint64_t count_ = 0;
};

}  // namespace

VerifyResult VerifyBlocks(const VerifySource& source, BlockSet& blocks,
                          const ImageBlockReader& read_image,
                          const std::function<void(const std::string&)>& warn) {
  constexpr uint64_t kChunkBytes = 1u << 20;
  const uint64_t bs = source.block_size;
  const uint64_t chunk_blocks = std::max<uint64_t>(1, kChunkBytes / bs);
  // Unreadable now (the disk got worse) is skipped like unreadable then.
  UnreadableLog now(source.file->path(), source.offset, source.block_size, nullptr);
  std::vector<BlockExtent> skipped;
  if (source.unreadable)
    skipped = BlocksOf(source.unreadable->GuestRanges(), bs);
  std::vector<uint8_t> from_source, from_image;
  VerifyResult result;
  DifferenceRuns runs(source.file->path(), warn);
  for (const BlockExtent& extent : blocks.Extents()) {
    for (uint64_t start = std::max(extent.start, source.first_data_block); start < extent.end();) {
      const uint64_t count = std::min(chunk_blocks, extent.end() - start);
      from_source.assign(count * bs, 0);
      from_image.assign(count * bs, 0);
      ReadSalvaging(*source.file, from_source, source.offset + start * bs, now);
      read_image(start, from_image);
      const std::vector<BlockExtent> now_bad = BlocksOf(now.GuestRanges(), bs);
      for (uint64_t i = 0; i < count; ++i) {
        const uint64_t block = start + i;
        if (Overlaps(skipped, block) || Overlaps(now_bad, block)) {
          ++result.unreadable;
          continue;
        }
        uint64_t length = bs;
        if (source.stale_tails) {
          const auto tail = source.stale_tails->find(block);
          if (tail != source.stale_tails->end())
            length = tail->second;
        }
        ++result.compared;
        if (std::memcmp(&from_source[i * bs], &from_image[i * bs], length) != 0) {
          ++result.differ;
          runs.Add(block);
        }
      }
      start += count;
    }
  }
  return result;
}

}  // namespace e2img
