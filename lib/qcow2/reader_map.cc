// Qcow2Reader's guest-to-host mapping: L2 entries are decoded and checked
// as they are first used, runs of like (sub)clusters are coalesced, and
// unallocated runs fall through to the backing chain.
#include <algorithm>
#include <bit>

#include "qcow2/compress.h"
#include "qcow2/metadata_layout.h"
#include "qcow2/reader.h"
#include "util/error.h"

namespace qcow2 {

ClusterDescriptor Qcow2Reader::Descriptor(uint64_t guest_cluster) {
  const Header& h = header_;
  const uint64_t cs = h.cluster_size();
  const uint64_t per = h.l2_entries();
  const uint64_t l1_index = guest_cluster / per;
  if (l1_index >= l1_.size() || l1_[l1_index] == 0)
    return DecodeDescriptor(0, 0, h, has_data_file_);
  const uint64_t index = guest_cluster % per;
  std::span<uint64_t> table = l2_cache_->Get(l1_index, l1_[l1_index], false, false);
  const bool extended = h.extended_l2();
  const uint64_t raw = extended ? table[2 * index] : table[index];
  const uint64_t bitmap = extended ? table[2 * index + 1] : 0;
  const ClusterDescriptor d = DecodeDescriptor(raw, bitmap, h, has_data_file_);

  const uint64_t where = l1_[l1_index] + index * h.l2_entry_bytes();
  const uint64_t guest = guest_cluster * cs;
  // Messages are built only on failure: this runs for every cluster.
  auto fail = [&](const std::string& problem) {
    Fail(where, "L2 table " + HexString(l1_[l1_index]) + " (L1 entry " + std::to_string(l1_index) +
                    ") entry " + std::to_string(index) + " (guest cluster " +
                    std::to_string(guest_cluster) + "): " + problem);
  };
  if (std::string problem = DescriptorProblem(d, h, has_data_file_); !problem.empty())
    fail(problem);
  if (d.compressed) {
    if (d.host_offset < cs)
      fail("compressed data at " + HexString(d.host_offset) + " points into the header cluster");
    if (d.host_offset >= file_size_)
      fail("compressed data at " + HexString(d.host_offset) +
           " is past the end of the file (size " + std::to_string(file_size_) + ")");
    if (std::string problem = layout_->DataProblem(d.host_offset, 1); !problem.empty())
      fail("compressed data " + problem);
    return d;
  }
  const bool reads_host = extended ? (d.bitmap & 0xffffffffull) != 0 : d.has_host && !d.zero;
  if (!reads_host)
    return d;
  if (has_data_file_) {
    if (d.host_offset != guest)
      fail("data file offset " + HexString(d.host_offset) + " differs from the guest offset " +
           HexString(guest));
  } else {
    // Only the allocated part inside the virtual size is ever read (qemu
    // writes just the allocated subclusters of a fresh cluster).
    uint64_t used = cs;
    if (extended) {
      const uint32_t last =
          31 -
          static_cast<uint32_t>(std::countl_zero(static_cast<uint32_t>(d.bitmap & 0xffffffffull)));
      used = (uint64_t{last} + 1) * (cs / kSubclustersPerCluster);
    }
    const std::string problem = layout_->DataProblem(d.host_offset, std::min(used, h.size - guest));
    if (!problem.empty())
      fail("data cluster " + problem);
  }
  return d;
}

Mapping Qcow2Reader::Map(uint64_t guest_offset) {
  const Header& h = header_;
  const uint64_t cs = h.cluster_size();
  Mapping m;
  m.guest_offset = guest_offset;
  if (guest_offset >= h.size)
    return m;
  const uint64_t sub_size = h.extended_l2() ? cs / kSubclustersPerCluster : cs;
  const uint64_t per = h.l2_entries();
  uint64_t cluster = guest_offset / cs;
  const uint64_t in_cluster = guest_offset % cs;
  const uint64_t table_end = std::min(h.size, (cluster / per + 1) * per * cs);
  if (cluster / per >= l1_.size() || l1_[cluster / per] == 0) {
    // No L2 table: all of its range is unallocated, and so is that of the
    // empty L1 entries after it (a 15 TiB image has millions of them).
    uint64_t l1_index = cluster / per + 1;
    while (l1_index < l1_.size() && l1_[l1_index] == 0)
      ++l1_index;
    m.length = std::max(table_end, std::min(h.size, l1_index * per * cs)) - guest_offset;
    return m;
  }
  ClusterDescriptor d = Descriptor(cluster);
  if (d.compressed) {
    m.kind = ClusterKind::kCompressed;
    m.host_offset = d.host_offset;
    m.compressed_size = d.compressed_size;
    m.layer = this;
    m.length = std::min(cs - in_cluster, h.size - guest_offset);
    return m;
  }
  const uint32_t sub = static_cast<uint32_t>(in_cluster / sub_size);
  m.kind = d.SubclusterKind(sub);
  if (m.kind == ClusterKind::kNormal) {
    m.host_offset = d.host_offset + in_cluster;
    m.file = has_data_file_ ? &data_file_ : &file_;
    m.pad_past_eof = has_data_file_;
    m.file_size = data_file_size_;
  }
  // Extend over following subclusters of the same kind (host-contiguous for data).
  uint64_t end = cluster * cs + (uint64_t{sub} + 1) * sub_size;
  while (end < table_end) {
    const uint64_t next_cluster = end / cs;
    if (next_cluster != cluster) {
      d = Descriptor(next_cluster);
      cluster = next_cluster;
    }
    if (d.compressed)
      break;
    const uint64_t at = end % cs;
    if (d.SubclusterKind(static_cast<uint32_t>(at / sub_size)) != m.kind)
      break;
    if (m.kind == ClusterKind::kNormal &&
        d.host_offset + at != m.host_offset + (end - guest_offset))
      break;
    // A whole cluster of one kind is taken in one step.
    end += at == 0 && d.Uniform() ? cs : sub_size;
  }
  m.length = std::min(end, h.size) - guest_offset;
  return m;
}

Mapping Qcow2Reader::Resolve(uint64_t guest_offset, uint64_t max_length) {
  Mapping m = Map(guest_offset);
  m.length = std::min(m.length, max_length);
  if (m.kind != ClusterKind::kUnallocated || !has_backing_ || guest_offset >= backing_size_)
    return m;
  const uint64_t length = std::min(m.length, backing_size_ - guest_offset);
  if (backing_qcow2_)
    return backing_qcow2_->Resolve(guest_offset, length);
  m.kind = ClusterKind::kNormal;
  m.length = length;
  m.host_offset = guest_offset;
  m.file = &backing_raw_;
  return m;
}

std::span<const uint8_t> Qcow2Reader::CompressedCluster(const Mapping& m) {
  const uint64_t cs = header_.cluster_size();
  if (m.host_offset == cached_compressed_offset_ && cached_cluster_.size() == cs)
    return cached_cluster_;
  cached_compressed_offset_ = ~uint64_t{0};
  const uint64_t available = file_size_ > m.host_offset ? file_size_ - m.host_offset : 0;
  const uint64_t n = std::min(m.compressed_size, available);
  if (n == 0)
    Fail(m.host_offset, "compressed cluster past end of file");
  std::vector<uint8_t> in(n);
  file_.ReadAt(in, m.host_offset);
  cached_cluster_.resize(cs);
  ++decompressions_;
  if (!DecompressCluster(header_.compression_type, in, cached_cluster_))
    Fail(m.host_offset, "cannot decompress " + CompressionName(header_.compression_type) +
                            " cluster at guest offset " +
                            std::to_string(m.guest_offset - m.guest_offset % cs));
  cached_compressed_offset_ = m.host_offset;
  return cached_cluster_;
}

}  // namespace qcow2
