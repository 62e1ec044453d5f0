#include "qcow2/write_combiner.h"

namespace qcow2 {

WriteCombiner::WriteCombiner(const util::File& out, size_t capacity)
    : out_(out), capacity_(capacity) {
  run_.reserve(capacity_);
}

void WriteCombiner::Write(std::span<const uint8_t> data, uint64_t offset) {
  const bool extends = !run_.empty() && offset == run_offset_ + run_.size();
  if (extends && run_.size() + data.size() <= capacity_) {
    run_.insert(run_.end(), data.begin(), data.end());
    return;
  }
  Flush();
  if (data.size() >= capacity_) {
    out_.WriteAt(data, offset);
    return;
  }
  run_offset_ = offset;
  run_.assign(data.begin(), data.end());
}

void WriteCombiner::WriteOverHole(std::span<const uint8_t> data, uint64_t offset) {
  if (data.size() < kMinHole) {  // no room for a hole
    Write(data, offset);
    return;
  }
  util::ForEachNonZeroRun(
      data, kHolePage, kMinHole,
      [&](size_t start, std::span<const uint8_t> run) { Write(run, offset + start); });
}

void WriteCombiner::Flush() {
  if (run_.empty())
    return;
  out_.WriteAt(run_, run_offset_);
  run_.clear();
}

}  // namespace qcow2
