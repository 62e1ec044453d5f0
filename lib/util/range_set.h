// Byte (or block, or cluster) ranges, and a set of them kept as disjoint
// ranges that do not touch: adding a range merges it with those it meets
// and says which of its parts are new. Pure data: no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace util {

// The values [offset, offset + length).
struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t end() const { return offset + length; }
  bool operator==(const ByteRange&) const = default;
};

// A set of values held as ranges, ascending.
class RangeSet {
 public:
  // Adds [offset, offset + length); returns its parts that were not in the
  // set before, ascending and non-empty.
  std::vector<ByteRange> Add(ByteRange range);
  bool Contains(uint64_t value) const;
  // The parts of the set inside `range`, ascending.
  std::vector<ByteRange> Within(ByteRange range) const;
  bool empty() const { return ranges_.empty(); }
  // The ranges, ascending, merged: start -> end.
  const std::map<uint64_t, uint64_t>& ranges() const { return ranges_; }

 private:
  std::map<uint64_t, uint64_t> ranges_;  // start -> end, disjoint, not touching
};

}  // namespace util
