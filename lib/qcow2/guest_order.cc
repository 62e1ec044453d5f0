#include "qcow2/guest_order.h"

#include <algorithm>
#include <cassert>
#include <functional>

namespace qcow2 {

ClusterWord::ClusterWord(uint64_t guest, uint64_t length, unsigned tag)
    : bits_(uint64_t{tag} << 62 | (length - 1) << 40 | guest) {
  assert(guest < kGuestLimit && length >= 1 && length <= kMaxLength && tag < kTags &&
         "a cluster within qemu's limits");
}

void GuestOrder::Map(uint64_t first, uint64_t end) {
  runs_.push_back({first, end});
  std::push_heap(runs_.begin(), runs_.end(), std::greater<>());
}

bool GuestOrder::IsNext(uint64_t c) const {
  const uint64_t unknown_from = !l1_read_             ? 0
                                : tables_due_.empty() ? UINT64_MAX
                                                      : *tables_due_.begin() * l2_entries_;
  return !runs_.empty() && runs_.front().first == c && c < unknown_from;
}

void GuestOrder::Written(uint64_t c) {
  assert(!runs_.empty() && runs_.front().first == c && "guest cluster written out of order");
  // The runs are disjoint: the least one, shrunk from its front, stays
  // below every other, and the heap stays ordered.
  if (++runs_.front().first == runs_.front().end) {
    std::pop_heap(runs_.begin(), runs_.end(), std::greater<>());
    runs_.pop_back();
  }
}

std::optional<HeldCluster> GuestOrder::NextHeld() const {
  if (held_.empty() || !IsNext(held_.top().guest_cluster()))
    return std::nullopt;
  return held_.top();
}

}  // namespace qcow2
