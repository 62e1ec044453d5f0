#include "e2img/block_set.h"

#include <algorithm>

namespace e2img {

void BlockSet::Add(uint64_t block, uint64_t count) {
  if (count == 0)
    return;
  if (!extents_.empty()) {
    BlockExtent& last = extents_.back();
    if (block >= last.start && block <= last.end()) {  // extends or overlaps the last run
      last.count = std::max(last.end(), block + count) - last.start;
      return;
    }
    if (block < last.start)
      normalized_ = false;
  }
  extents_.push_back({block, count});
  // Keep memory in check when blocks arrive out of order.
  if (!normalized_ && extents_.size() > 4096 && (extents_.size() & (extents_.size() - 1)) == 0)
    Normalize();
}

void BlockSet::Normalize() {
  if (normalized_)
    return;
  std::sort(extents_.begin(), extents_.end(),
            [](const BlockExtent& a, const BlockExtent& b) { return a.start < b.start; });
  std::vector<BlockExtent> merged;
  merged.reserve(extents_.size());
  for (const BlockExtent& e : extents_) {
    if (!merged.empty() && e.start <= merged.back().end())
      merged.back().count = std::max(merged.back().end(), e.end()) - merged.back().start;
    else
      merged.push_back(e);
  }
  extents_ = std::move(merged);
  normalized_ = true;
}

const std::vector<BlockExtent>& BlockSet::Extents() {
  Normalize();
  return extents_;
}

uint64_t BlockSet::BlockCount() {
  uint64_t n = 0;
  for (const BlockExtent& e : Extents())
    n += e.count;
  return n;
}

bool BlockSet::Contains(uint64_t block) {
  const auto& ex = Extents();
  auto it = std::upper_bound(ex.begin(), ex.end(), block,
                             [](uint64_t b, const BlockExtent& e) { return b < e.start; });
  if (it == ex.begin())
    return false;
  --it;
  return block < it->end();
}

BlockSet Subtract(const std::vector<BlockExtent>& a, const std::vector<BlockExtent>& b) {
  BlockSet rest;
  size_t j = 0;
  for (const BlockExtent& e : a) {
    uint64_t from = e.start;
    while (j < b.size() && b[j].end() <= from)
      ++j;
    for (size_t k = j; k < b.size() && b[k].start < e.end(); ++k) {
      if (b[k].start > from)
        rest.Add(from, b[k].start - from);
      from = std::max(from, b[k].end());
    }
    if (from < e.end())
      rest.Add(from, e.end() - from);
  }
  return rest;
}

BlockSet Intersect(const std::vector<BlockExtent>& a, const std::vector<BlockExtent>& b) {
  BlockSet both;
  size_t j = 0;
  for (const BlockExtent& e : a) {
    while (j < b.size() && b[j].end() <= e.start)
      ++j;
    for (size_t k = j; k < b.size() && b[k].start < e.end(); ++k) {
      const uint64_t from = std::max(e.start, b[k].start);
      const uint64_t to = std::min(e.end(), b[k].end());
      both.Add(from, to - from);
    }
  }
  return both;
}

BlockSet CoveringUnits(const std::vector<BlockExtent>& extents, uint64_t unit_blocks) {
  BlockSet units;
  for (const BlockExtent& e : extents) {
    const uint64_t first = e.start / unit_blocks * unit_blocks;
    const uint64_t last = (e.end() + unit_blocks - 1) / unit_blocks * unit_blocks;
    units.Add(first, last - first);
  }
  return units;
}

BlockSet WholeUnits(const std::vector<BlockExtent>& extents, uint64_t unit_blocks) {
  BlockSet whole;
  for (const BlockExtent& e : extents) {
    const uint64_t first = (e.start + unit_blocks - 1) / unit_blocks * unit_blocks;
    const uint64_t last = e.end() / unit_blocks * unit_blocks;
    if (first < last)
      whole.Add(first, last - first);
  }
  return whole;
}

}  // namespace e2img
