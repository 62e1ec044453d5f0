// A least-recently-used cache of L2 tables, write-back: a table modified in
// the cache reaches the file only when it is evicted or flushed. e2image
// keeps 512 tables; so do we, which bounds memory whatever the image size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace qcow2 {

inline constexpr size_t kDefaultL2CacheTables = 512;

// Cache of decoded (host-endian) L2 tables keyed by their L1 index.
class L2Cache {
 public:
  // Reads or writes one whole table at a host offset (entries are host-endian).
  using LoadFn = std::function<void(uint64_t host_offset, std::span<uint64_t> entries)>;
  using StoreFn = std::function<void(uint64_t host_offset, std::span<const uint64_t> entries)>;

  L2Cache(size_t capacity, size_t entries_per_table, LoadFn load, StoreFn store);

  // The table of l1_index living at host_offset. A fresh table starts as all
  // zeros without being read; otherwise a miss loads it. for_write marks it
  // dirty so that it is stored on eviction or Flush().
  std::span<uint64_t> Get(uint64_t l1_index, uint64_t host_offset, bool fresh, bool for_write);
  // Stores every dirty table (in host-offset order) and keeps them cached clean.
  void Flush();

  size_t capacity() const { return capacity_; }
  size_t size() const { return tables_.size(); }
  uint64_t loads() const { return loads_; }
  uint64_t stores() const { return stores_; }

 private:
  struct Table {
    uint64_t l1_index;
    uint64_t host_offset;
    bool dirty;
    std::vector<uint64_t> entries;
  };
  void EvictOldest();

  size_t capacity_;
  size_t entries_per_table_;
  LoadFn load_;
  StoreFn store_;
  std::list<Table> lru_;  // most recently used first
  std::unordered_map<uint64_t, std::list<Table>::iterator> tables_;
  uint64_t loads_ = 0;
  uint64_t stores_ = 0;
};

}  // namespace qcow2
