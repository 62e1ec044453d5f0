#include "util/range_set.h"

#include <algorithm>
#include <iterator>

namespace util {

std::vector<ByteRange> RangeSet::Add(ByteRange range) {
  std::vector<ByteRange> fresh;
  if (range.length == 0)
    return fresh;
  uint64_t lo = range.offset, hi = range.end();
  // The first range that may touch: the last one starting at or before lo.
  auto it = ranges_.upper_bound(lo);
  if (it != ranges_.begin() && std::prev(it)->second >= lo)
    --it;
  uint64_t cursor = range.offset;  // where the part not yet accounted for starts
  while (it != ranges_.end() && it->first <= hi) {
    if (it->first > cursor)
      fresh.push_back({cursor, std::min(it->first, range.end()) - cursor});
    cursor = std::max(cursor, it->second);
    lo = std::min(lo, it->first);
    hi = std::max(hi, it->second);
    it = ranges_.erase(it);
  }
  if (cursor < range.end())
    fresh.push_back({cursor, range.end() - cursor});
  ranges_[lo] = hi;
  return fresh;
}

bool RangeSet::Contains(uint64_t value) const {
  auto it = ranges_.upper_bound(value);
  return it != ranges_.begin() && value < std::prev(it)->second;
}

std::vector<ByteRange> RangeSet::Within(ByteRange range) const {
  std::vector<ByteRange> parts;
  auto it = ranges_.upper_bound(range.offset);
  if (it != ranges_.begin() && std::prev(it)->second > range.offset)
    --it;
  for (; it != ranges_.end() && it->first < range.end(); ++it) {
    const uint64_t from = std::max(it->first, range.offset);
    parts.push_back({from, std::min(it->second, range.end()) - from});
  }
  return parts;
}

}  // namespace util
