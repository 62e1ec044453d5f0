// One L2 entry decoded for reading: a standard or extended (128-bit) entry,
// the kind of each of its subclusters, and the spec's rules it must obey.
// Without extended L2 entries a cluster is a single "subcluster".
#pragma once

#include <cstdint>
#include <string>

#include "qcow2/format.h"

namespace qcow2 {

inline constexpr uint32_t kSubclustersPerCluster = 32;

// A guest cluster's L2 entry (descriptor word plus, when extended, the
// subcluster allocation bitmap) as the reader sees it.
struct ClusterDescriptor {
  uint64_t raw = 0;
  uint64_t bitmap = 0;  // extended L2 only
  bool extended = false;
  bool compressed = false;
  bool has_host = false;     // a host cluster is assigned (offset, or offset 0 in a data file)
  bool zero = false;         // standard entry with the v3 zero flag
  uint64_t host_offset = 0;  // cluster offset, or byte offset when compressed
  uint64_t compressed_size = 0;

  // Kind of subcluster `index` (always 0 without extended L2): kNormal,
  // kZero, kUnallocated or kCompressed (kZeroAllocated folds into kZero).
  ClusterKind SubclusterKind(uint32_t index) const;
  // True when every subcluster has the same kind.
  bool Uniform() const;
};

// Decodes an entry; `has_data_file` makes offset 0 with the copied flag a
// real host cluster, as the spec says for external data files.
ClusterDescriptor DecodeDescriptor(uint64_t raw, uint64_t bitmap, const Header& header,
                                   bool has_data_file);

// Checks the rules of the spec that need no file: reserved bits, alignment,
// the zero flag only in version 3 standard entries, a consistent subcluster
// bitmap, no compressed clusters in external data files. Returns an empty
// string when the entry is valid, otherwise what is wrong.
std::string DescriptorProblem(const ClusterDescriptor& d, const Header& header, bool has_data_file);

}  // namespace qcow2
