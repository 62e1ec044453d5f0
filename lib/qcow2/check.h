// Consistency check of a qcow2 image, as `qemu-img check` does it: rebuild
// every host cluster's reference count from the header, the L1/L2 tables of
// the active layer and of the snapshots, the snapshot table, the refcount
// structures and the bitmaps, then compare with the stored refcounts.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "qcow2/image_view.h"

namespace qcow2 {

// How often each host cluster is referenced. Storage comes in chunks
// allocated only where references fall, so memory follows the metadata
// actually read, not the file's apparent size.
class ReferenceCounter {
 public:
  explicit ReferenceCounter(uint64_t max_count) : max_count_(max_count) {}
  // Adds one reference; false (and no change) when the count is at its maximum.
  bool Add(uint64_t cluster);
  uint64_t Get(uint64_t cluster) const;
  // One past the highest cluster ever referenced.
  uint64_t end() const { return end_; }

 private:
  static constexpr uint64_t kChunkBits = 12;
  uint64_t max_count_;
  uint64_t end_ = 0;
  std::unordered_map<uint64_t, std::vector<uint32_t>> chunks_;
};

// The refcounts stored in the image, read through the refcount table with
// one refcount block cached.
class StoredRefcounts {
 public:
  explicit StoredRefcounts(const ImageView& image);
  // The stored refcount, or nothing when its refcount block cannot be read
  // (a misaligned refcount table entry).
  std::optional<uint64_t> Get(uint64_t cluster);
  const std::vector<uint64_t>& table() const { return table_; }

 private:
  const ImageView& image_;
  std::vector<uint64_t> table_;
  uint64_t entries_per_block_;
  uint64_t cached_block_ = 0;  // host offset of the cached block, 0 = none
  std::vector<uint8_t> block_;
};

// What a check found; counts as qemu-img check reports them.
struct CheckReport {
  uint64_t corruptions = 0;
  uint64_t leaks = 0;
  uint64_t check_errors = 0;
  uint64_t image_end_offset = 0;
  uint64_t total_clusters = 0;
  uint64_t allocated_clusters = 0;
  uint64_t fragmented_clusters = 0;
  uint64_t compressed_clusters = 0;
  // qemu-img check's exit code: 1 when the check could not read everything,
  // else 2 on corruptions, 3 on leaks only, 0 when clean.
  int ExitCode() const;
};

// Receives each problem found, one line each, as soon as it is found (an
// image can have millions: they are never all kept in memory).
using ProblemSink = std::function<void(const std::string& line)>;

// Runs the whole check (reads only).
CheckReport CheckImage(const ImageView& image, const ProblemSink& problems);

}  // namespace qcow2
