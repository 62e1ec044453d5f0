#include "qcow2/l2_cache.h"

#include <algorithm>

namespace qcow2 {

L2Cache::L2Cache(size_t capacity, size_t entries_per_table, LoadFn load, StoreFn store)
    : capacity_(std::max<size_t>(capacity, 1)),
      entries_per_table_(entries_per_table),
      load_(std::move(load)),
      store_(std::move(store)) {}

std::span<uint64_t> L2Cache::Get(uint64_t l1_index, uint64_t host_offset, bool fresh,
                                 bool for_write) {
  auto found = tables_.find(l1_index);
  if (found != tables_.end()) {
    lru_.splice(lru_.begin(), lru_, found->second);
    Table& t = *found->second;
    t.dirty |= for_write;
    return t.entries;
  }
  // The table is loaded before the cache changes: a load that throws
  // leaves the cache as it was (nothing evicted, nothing half-inserted).
  std::vector<uint64_t> entries(entries_per_table_, 0);
  if (!fresh) {
    load_(host_offset, entries);
    ++loads_;
  }
  if (tables_.size() >= capacity_)
    EvictOldest();
  lru_.push_front(Table{l1_index, host_offset, for_write || fresh, std::move(entries)});
  tables_.emplace(l1_index, lru_.begin());
  return lru_.front().entries;
}

void L2Cache::EvictOldest() {
  Table& victim = lru_.back();
  if (victim.dirty) {  // a store that throws leaves the victim cached and dirty
    store_(victim.host_offset, victim.entries);
    ++stores_;
  }
  tables_.erase(victim.l1_index);
  lru_.pop_back();
}

void L2Cache::Flush() {
  std::vector<Table*> dirty;
  for (Table& t : lru_)
    if (t.dirty)
      dirty.push_back(&t);
  std::sort(dirty.begin(), dirty.end(),
            [](const Table* a, const Table* b) { return a->host_offset < b->host_offset; });
  for (Table* t : dirty) {
    store_(t->host_offset, t->entries);
    ++stores_;
    t->dirty = false;
  }
}

}  // namespace qcow2
