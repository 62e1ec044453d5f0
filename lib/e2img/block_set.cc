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

}  // namespace e2img
