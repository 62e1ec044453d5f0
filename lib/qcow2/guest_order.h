// The order in which a raw output that takes data in guest order only (a
// pipe, a device) can be given the clusters of a qcow2 image read front to
// back: which guest clusters are still to be written, which came ahead of
// their turn, and which tables, still to come, may yet map more.
#pragma once

#include <cstdint>
#include <optional>
#include <queue>
#include <set>
#include <vector>

#include "qcow2/format.h"

namespace qcow2 {

// A guest cluster (or L1 entry), a length of 1 byte to 4 MiB and a 2-bit
// tag in one word, so that the millions of clusters a stream reader may
// await or hold cost little. qemu's limits bound each field: an L1 table of
// at most 2^22 entries, each mapping at most 2^18 clusters (2 MiB
// clusters), keeps guest clusters below 2^40; a compressed cluster spans at
// most 2^13 sectors (4 MiB), a data cluster or an L2 table at most 2 MiB.
class ClusterWord {
 public:
  static constexpr uint64_t kGuestLimit = uint64_t{1} << 40;  // guest clusters are below
  static constexpr uint64_t kMaxLength = uint64_t{1} << 22;
  static constexpr unsigned kTags = 4;

  ClusterWord(uint64_t guest, uint64_t length, unsigned tag);
  uint64_t guest() const { return bits_ & (kGuestLimit - 1); }
  uint64_t length() const { return ((bits_ >> 40) & (kMaxLength - 1)) + 1; }
  unsigned tag() const { return static_cast<unsigned>(bits_ >> 62); }

 private:
  uint64_t bits_;
};
static_assert((kMaxL1Bytes / 8) << (kMaxClusterBits - 3) <= ClusterWord::kGuestLimit);
static_assert(uint64_t{512} << (kMaxClusterBits - 8) <= ClusterWord::kMaxLength);

// A data cluster that came before its turn, kept at `host` in a spool.
class HeldCluster {
 public:
  // length: the bytes kept (a compressed cluster's frame, which the
  // stream's end may cut), 1 to ClusterWord::kMaxLength.
  HeldCluster(uint64_t guest_cluster, uint64_t host, uint64_t length, bool compressed)
      : host_(host), word_(guest_cluster, length, compressed) {}
  uint64_t guest_cluster() const { return word_.guest(); }
  uint64_t host() const { return host_; }
  uint64_t length() const { return word_.length(); }
  bool compressed() const { return word_.tag() != 0; }

 private:
  uint64_t host_;
  ClusterWord word_;
};
static_assert(sizeof(HeldCluster) == 16);

// The guest clusters still to write: runs of mapped clusters not yet
// written, the clusters held, and the L2 tables still to come. Its memory
// grows with the runs of mapped clusters and the clusters held, never with
// their data.
class GuestOrder {
 public:
  // l2_entries: the guest clusters one L2 table maps.
  explicit GuestOrder(uint64_t l2_entries) : l2_entries_(l2_entries) {}

  // Until the L1 table is read, any guest cluster may still be mapped.
  void L1Read() { l1_read_ = true; }
  void TableDue(uint64_t l1_index) { tables_due_.insert(l1_index); }
  void TableRead(uint64_t l1_index) { tables_due_.erase(l1_index); }
  // Guest clusters [first, end), mapped to data by a table just read;
  // disjoint from every run mapped before.
  void Map(uint64_t first, uint64_t end);
  // Whether mapped guest cluster `c` is the next to write: every mapped
  // cluster below it is written, and no table still to come maps below it.
  bool IsNext(uint64_t c) const;
  // Mapped guest cluster `c`, the next (IsNext), is written: an invariant of
  // the caller, asserted.
  void Written(uint64_t c);
  void Hold(const HeldCluster& cluster) { held_.push(cluster); }
  // The held cluster that is next, if any; Written and DropHeld follow.
  std::optional<HeldCluster> NextHeld() const;
  void DropHeld() { held_.pop(); }
  // Every mapped cluster written, none held.
  bool Done() const { return runs_.empty() && held_.empty(); }

 private:
  struct Run {
    uint64_t first;
    uint64_t end;
    bool operator>(const Run& o) const { return first > o.first; }
  };
  struct LaterGuest {
    bool operator()(const HeldCluster& a, const HeldCluster& b) const {
      return a.guest_cluster() > b.guest_cluster();
    }
  };
  uint64_t l2_entries_;
  bool l1_read_ = false;
  std::set<uint64_t> tables_due_;  // L1 entries whose L2 table is still to come
  std::vector<Run> runs_;          // a min-heap on first
  std::priority_queue<HeldCluster, std::vector<HeldCluster>, LaterGuest> held_;
};

}  // namespace qcow2
