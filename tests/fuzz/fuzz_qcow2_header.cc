// Fuzzes the qcow2 header and header-extension parser: DecodeHeader must
// either throw util::Error or return a header whose fields respect the
// limits it promises, and that header must encode and decode to itself.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "qcow2/format.h"
#include "util/error.h"

namespace {

// Aborts (a finding for libFuzzer) naming the property that failed.
void CheckAt(bool condition, const char* what) {
  if (condition)
    return;
  std::fprintf(stderr, "property failed: %s\n", what);
  std::abort();
}
#define Check(x) CheckAt((x), #x)

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  qcow2::Header h;
  try {
    h = qcow2::DecodeHeader(bytes, "fuzz.qcow2");
  } catch (const util::Error&) {
    return 0;
  }
  Check(h.version == 2 || h.version == 3);
  Check(h.cluster_bits >= qcow2::kMinClusterBits && h.cluster_bits <= qcow2::kMaxClusterBits);
  Check(h.backing_file.size() <= 1023);
  (void)h.l1_entries_needed();
  for (const auto& ext : h.extensions)
    Check(ext.data.size() < h.cluster_size());

  // Round trip: what we decoded re-encodes to a header that decodes the same.
  // The reader decodes a whole first cluster, so pad the encoding to one.
  std::vector<uint8_t> encoded = h.Encode();
  const bool fits = encoded.size() <= h.cluster_size();
  if (fits)
    encoded.resize(h.cluster_size(), 0);
  qcow2::Header again;
  try {
    again = qcow2::DecodeHeader(encoded, "re-encoded");
  } catch (const util::Error& e) {
    // The extensions may no longer fit a cluster once re-aligned: only
    // then may the re-encoded header be refused.
    if (fits)
      std::fprintf(stderr, "re-decoding failed: %s\n", e.what());
    Check(!fits);
    return 0;
  }
  Check(again.version == h.version);
  Check(again.size == h.size);
  Check(again.cluster_bits == h.cluster_bits);
  Check(again.l1_size == h.l1_size);
  Check(again.l1_table_offset == h.l1_table_offset);
  Check(again.incompatible_features == h.incompatible_features);
  Check(again.compression_type == h.compression_type);
  Check(again.backing_file == h.backing_file);
  Check(again.extensions.size() == h.extensions.size());

  // Every L2 entry decodes without trouble under this header.
  if (size >= 8) {
    uint64_t raw = 0;
    for (size_t i = 0; i < 8; ++i)
      raw = raw << 8 | data[size - 8 + i];
    const qcow2::L2Entry e = qcow2::DecodeL2Entry(raw, h);
    if (e.kind == qcow2::ClusterKind::kCompressed)
      Check(e.compressed_size > 0);
  }
  return 0;
}
