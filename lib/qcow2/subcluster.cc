#include "qcow2/subcluster.h"

#include <cstdio>

namespace qcow2 {
namespace {

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Standard descriptor bits 1-8 and 56-61 are reserved; bit 0 is the zero flag.
constexpr uint64_t kStandardReserved = 0x3f000000000001feull;

}  // namespace

ClusterDescriptor DecodeDescriptor(uint64_t raw, uint64_t bitmap, const Header& header,
                                   bool has_data_file) {
  ClusterDescriptor d;
  d.raw = raw;
  d.bitmap = bitmap;
  d.extended = header.extended_l2();
  if (raw & kOflagCompressed) {
    const L2Entry e = DecodeL2Entry(raw, header);
    d.compressed = true;
    d.host_offset = e.host_offset;
    d.compressed_size = e.compressed_size;
    return d;
  }
  d.host_offset = raw & kL2OffsetMask;
  d.has_host = d.host_offset != 0 || (has_data_file && (raw & kOflagCopied));
  d.zero = !d.extended && (raw & kOflagZero);
  return d;
}

ClusterKind ClusterDescriptor::SubclusterKind(uint32_t index) const {
  if (compressed)
    return ClusterKind::kCompressed;
  if (!extended) {
    if (zero)
      return ClusterKind::kZero;
    return has_host ? ClusterKind::kNormal : ClusterKind::kUnallocated;
  }
  if (bitmap & (uint64_t{1} << index))
    return ClusterKind::kNormal;
  if (bitmap & (uint64_t{1} << (32 + index)))
    return ClusterKind::kZero;
  return ClusterKind::kUnallocated;
}

bool ClusterDescriptor::Uniform() const {
  if (!extended || compressed)
    return true;
  const uint64_t allocated = bitmap & 0xffffffffull;
  const uint64_t zeros = bitmap >> 32;
  const uint64_t all = 0xffffffffull;
  return (allocated == all && zeros == 0) || (allocated == 0 && (zeros == all || zeros == 0));
}

std::string DescriptorProblem(const ClusterDescriptor& d, const Header& header,
                              bool has_data_file) {
  if (d.compressed) {
    if (has_data_file)
      return "compressed cluster in an image with an external data file";
    if (d.host_offset >> 56)
      return "compressed data offset " + Hex(d.host_offset) + " is beyond 2^56";
    if (d.extended && d.bitmap != 0)
      return "compressed cluster with a nonzero subcluster bitmap " + Hex(d.bitmap);
    return {};
  }
  if (d.raw & kStandardReserved)
    return "reserved bits set in " + Hex(d.raw);
  if ((d.raw & kOflagZero) && (header.version < 3 || d.extended))
    return std::string("zero flag set in ") +
           (d.extended ? "an extended L2 entry" : "a version 2 image") + ": " + Hex(d.raw);
  if (d.host_offset % header.cluster_size() != 0)
    return "host offset " + Hex(d.host_offset) + " is not cluster aligned";
  if (d.extended) {
    const uint64_t allocated = d.bitmap & 0xffffffffull;
    const uint64_t zeros = d.bitmap >> 32;
    if (allocated & zeros)
      return "subclusters both allocated and zero in bitmap " + Hex(d.bitmap);
    if (allocated && !d.has_host)
      return "subclusters allocated without a host cluster in bitmap " + Hex(d.bitmap);
  }
  return {};
}

}  // namespace qcow2
