// A set of filesystem blocks stored as sorted, merged extents: memory follows
// the number of runs, never the size of the device.
#pragma once

#include <cstdint>
#include <vector>

namespace e2img {

// A run of consecutive blocks.
struct BlockExtent {
  uint64_t start = 0;
  uint64_t count = 0;
  uint64_t end() const { return start + count; }
};

// Blocks added in any order; Extents() gives them sorted and merged.
class BlockSet {
 public:
  void Add(uint64_t block, uint64_t count = 1);
  // Sorted, non-overlapping, non-adjacent runs.
  const std::vector<BlockExtent>& Extents();
  uint64_t BlockCount();
  bool Contains(uint64_t block);

 private:
  void Normalize();
  std::vector<BlockExtent> extents_;
  bool normalized_ = true;
};

// The blocks of `a` that are not in `b` (both sorted and merged, as Extents() gives them).
BlockSet Subtract(const std::vector<BlockExtent>& a, const std::vector<BlockExtent>& b);

// The blocks in both (sorted and merged, as Extents() gives them).
BlockSet Intersect(const std::vector<BlockExtent>& a, const std::vector<BlockExtent>& b);

// The whole aligned units of unit_blocks blocks that the extents touch.
BlockSet CoveringUnits(const std::vector<BlockExtent>& extents, uint64_t unit_blocks);

// The parts of the extents (sorted) that fill whole aligned units of unit_blocks blocks.
BlockSet WholeUnits(const std::vector<BlockExtent>& extents, uint64_t unit_blocks);

}  // namespace e2img
