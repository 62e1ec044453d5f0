#include "qcow2/writer.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "qcow2/image_file.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

constexpr uint64_t kSectorSize = 512;
// Compressed frames remembered for moving into given-up L2 tables (24 bytes each).
constexpr size_t kMaxTailFrames = 65536;

// Writes a table or the header, leaving its stretches of zeros of 64 KiB or
// more as holes: a 2 MiB L2 table mapping a few clusters costs a few pages
// of disk. Safe where the file holds nothing yet, and for L2 tables stored
// again: their entries are only ever added, so a page written non-zero
// never turns zero.
void WriteLeavingHoles(const util::File& out, std::span<const uint8_t> bytes, uint64_t offset) {
  util::ForEachNonZeroRun(
      bytes, WriteCombiner::kHolePage, WriteCombiner::kMinHole,
      [&](size_t start, std::span<const uint8_t> run) { out.WriteAt(run, offset + start); });
}

}  // namespace

uint32_t SmallestClusterBits(uint64_t virtual_size, uint32_t min_bits) {
  for (uint32_t bits = std::max(min_bits, kMinClusterBits); bits <= kMaxClusterBits; ++bits) {
    Header h;
    h.cluster_bits = bits;
    h.size = virtual_size;
    if (h.l1_entries_needed() * 8 <= kMaxL1Bytes)
      return bits;
  }
  throw util::Error("a qcow2 image of " + std::to_string(virtual_size) +
                    " bytes needs an L1 table over qemu's 32 MiB limit even with 2 MiB clusters");
}

void RefcountTracker::Add(uint64_t host_cluster, uint32_t count) {
  if (host_cluster >= counts_.size())
    counts_.resize(host_cluster + 1, 0);
  const uint32_t sum = counts_[host_cluster] + count;
  if (sum > kMaxRefcount)
    throw util::Error("qcow2 writer: refcount overflow on host cluster " +
                      std::to_string(host_cluster));
  counts_[host_cluster] = static_cast<uint16_t>(sum);
}

void RefcountTracker::Release(uint64_t host_cluster) {
  if (host_cluster >= counts_.size() || counts_[host_cluster] == 0)
    throw util::Error("qcow2 writer: releasing unreferenced host cluster " +
                      std::to_string(host_cluster));
  --counts_[host_cluster];
}

uint64_t RefcountTracker::Get(uint64_t host_cluster) const {
  return host_cluster < counts_.size() ? counts_[host_cluster] : 0;
}

Header NewImageHeader(const WriterOptions& options, const std::string& path) {
  if (options.cluster_bits < kMinClusterBits || options.cluster_bits > kMaxClusterBits)
    throw util::Error(path + ": qcow2 cluster size must be 512 B to 2 MiB");
  if (options.version != 2 && options.version != 3)
    throw util::Error(path + ": qcow2 version must be 2 or 3");
  Header header;
  header.version = options.version;
  header.cluster_bits = options.cluster_bits;
  header.size = options.virtual_size;
  if (options.version >= 3) {
    header.refcount_order = 4;
    header.header_length = kV3HeaderSize + 8;  // room for compression_type
    header.compression_type = options.compression;
    if (options.compression != CompressionType::kZlib)
      header.incompatible_features |= kIncompatCompression;
  } else if (options.compression != CompressionType::kZlib) {
    throw util::Error(path + ": zstd compression needs qcow2 version 3");
  }
  return header;
}

Qcow2Writer::Qcow2Writer(const util::File& out, const WriterOptions& options) : out_(out) {
  header_ = NewImageHeader(options, out.path());
  // Zeros are left as holes, so whatever the file held would show through.
  if (out.Size() != 0)
    throw util::Error(out.path() + ": internal error: the qcow2 writer needs an empty file");
  const uint64_t l1_entries = header_.l1_entries_needed();
  if (l1_entries * 8 > kMaxL1Bytes)
    throw util::Error(out.path() + ": an L1 table of " + std::to_string(l1_entries * 8) +
                      " bytes is over qemu's 32 MiB limit: use a larger cluster size");
  header_.l1_size = static_cast<uint32_t>(l1_entries);
  l1_storage_ = util::LargeBuffer(l1_entries * 8);
  l1_ = l1_storage_.As<uint64_t>();
  const uint64_t cs = header_.cluster_size();
  l1_clusters_ = std::max<uint64_t>(1, (l1_entries * 8 + cs - 1) / cs);
  // Cluster 0 holds the header; then one cluster of refcount table (moved
  // to the end in Finish if the image outgrows it), the first refcount block
  // (it covers at least 256 clusters) and the L1 table.
  refcounts_.Add(0);
  refcount_table_offset_ = cs;
  refcount_table_clusters_ = 1;
  refcounts_.Add(1);
  refcount_blocks_.push_back(2 * cs);
  refcounts_.Add(2);
  next_free_ = 3 * cs;
  header_.l1_table_offset = AllocateClusters(l1_clusters_);

  auto load = [this](uint64_t host, std::span<uint64_t> entries) {
    ReadBigEndianTable(out_, host, entries);
  };
  auto store = [this](uint64_t host, std::span<const uint64_t> entries) {
    std::vector<uint8_t> raw(entries.size() * 8);
    EncodeBigEndianTable(entries, raw);
    WriteLeavingHoles(out_, raw, host);
  };
  l2_cache_ = std::make_unique<L2Cache>(options.l2_cache_tables, header_.l2_entries(), load, store);
}

uint64_t Qcow2Writer::guest_clusters() const {
  const uint64_t cs = header_.cluster_size();
  return header_.size / cs + (header_.size % cs != 0);
}

uint64_t Qcow2Writer::refcounts_per_block() const {
  return cluster_size() * 8 / header_.refcount_bits();
}

bool Qcow2Writer::AllocateRefcountBlocksFor(uint64_t count) {
  const uint64_t per_block = refcounts_per_block();
  bool any = false;
  // The last cluster of the run must be covered; the blocks placed before it
  // then are too (they lie below it, and blocks are added range by range).
  while (((next_free_ >> header_.cluster_bits) + count - 1) / per_block >=
         refcount_blocks_.size()) {
    refcounts_.Add(next_free_ >> header_.cluster_bits);
    refcount_blocks_.push_back(next_free_);
    next_free_ += cluster_size();
    any = true;
  }
  if (any)
    EndCompressedTail();
  return any;
}

uint64_t Qcow2Writer::AllocateClusters(uint64_t count) {
  AllocateRefcountBlocksFor(count);
  const uint64_t at = next_free_;
  const uint64_t first = at >> header_.cluster_bits;
  for (uint64_t i = 0; i < count; ++i)
    refcounts_.Add(first + i);
  next_free_ += count << header_.cluster_bits;
  return at;
}

void Qcow2Writer::EndCompressedTail() {
  tail_frames_.clear();
  tail_floor_ = next_free_;
}

void Qcow2Writer::CheckGuestCluster(uint64_t guest_cluster) const {
  if (finished_)
    throw util::Error(out_.path() + ": qcow2 writer used after Finish");
  if (guest_cluster >= guest_clusters())
    throw util::Error(out_.path() + ": guest cluster " + std::to_string(guest_cluster) +
                      " is past the virtual size");
}

void Qcow2Writer::ReserveL2Tables(std::span<const uint64_t> l1_indices) {
  if (finished_ || next_free_ != header_.l1_table_offset + (l1_clusters_ << header_.cluster_bits))
    throw util::Error(out_.path() + ": qcow2 writer: L2 tables reserved after writing began");
  l2_unused_.resize(l1_.size(), false);
  for (uint64_t i : l1_indices) {
    if (i >= l1_.size())
      throw util::Error(out_.path() + ": qcow2 writer: L1 entry " + std::to_string(i) +
                        " is past the virtual size");
    if (l1_[i] != 0)
      continue;
    l1_[i] = AllocateClusters(1) | kOflagCopied;
    l2_unused_[i] = true;
    reserved_bytes_ += cluster_size();
  }
  EndCompressedTail();
}

std::span<uint64_t> Qcow2Writer::L2TableFor(uint64_t guest_cluster) {
  const uint64_t l1_index = guest_cluster / header_.l2_entries();
  uint64_t& l1_entry = l1_[l1_index];
  bool fresh = l1_entry == 0;
  if (!l2_unused_.empty() && l2_unused_[l1_index]) {
    l2_unused_[l1_index] = false;
    fresh = true;  // never written: all zeros, nothing to load
  } else if (fresh) {
    // Packed compressed data may still fill the rest of its host cluster
    // (WriteCompressedCluster never lets it run into this table).
    l1_entry = AllocateClusters(1) | kOflagCopied;
    EndCompressedTail();
  }
  return l2_cache_->Get(l1_index, l1_entry & kL1OffsetMask, fresh, /*for_write=*/true);
}

void Qcow2Writer::WriteCluster(uint64_t guest_cluster, std::span<const uint8_t> data) {
  CheckGuestCluster(guest_cluster);
  if (data.size() != cluster_size())
    throw util::Error(out_.path() + ": qcow2 writer got a partial cluster");
  std::span<uint64_t> l2 = L2TableFor(guest_cluster);
  uint64_t& entry = l2[guest_cluster % header_.l2_entries()];
  if (entry != 0)
    throw util::Error(out_.path() + ": guest cluster " + std::to_string(guest_cluster) +
                      " written twice");
  const uint64_t host = AllocateClusters(1);
  EndCompressedTail();
  data_out_.WriteOverHole(data, host);  // nothing was written there: it is new
  entry = host | kOflagCopied;
}

void Qcow2Writer::OverwriteCluster(uint64_t guest_cluster, std::span<const uint8_t> data) {
  CheckGuestCluster(guest_cluster);
  if (data.size() != cluster_size())
    throw util::Error(out_.path() + ": qcow2 writer got a partial cluster");
  const uint64_t l1_index = guest_cluster / header_.l2_entries();
  const bool has_table = l1_[l1_index] != 0 && (l2_unused_.empty() || !l2_unused_[l1_index]);
  const uint64_t entry =
      has_table ? L2TableFor(guest_cluster)[guest_cluster % header_.l2_entries()] : 0;
  if (entry == 0) {
    if (!util::IsAllZero(data))
      WriteCluster(guest_cluster, data);
    return;
  }
  if (entry & kOflagCompressed)
    throw util::Error(out_.path() + ": internal error: an overwrite of compressed guest cluster " +
                      std::to_string(guest_cluster));
  data_out_.Write(data, entry & kL2OffsetMask);
}

void Qcow2Writer::WriteCompressedCluster(uint64_t guest_cluster,
                                         std::span<const uint8_t> compressed) {
  CheckGuestCluster(guest_cluster);
  if (compressed.empty() || compressed.size() >= cluster_size())
    throw util::Error(out_.path() + ": compressed cluster must be smaller than a cluster");
  std::span<uint64_t> l2 = L2TableFor(guest_cluster);
  uint64_t& entry = l2[guest_cluster % header_.l2_entries()];
  if (entry != 0)
    throw util::Error(out_.path() + ": guest cluster " + std::to_string(guest_cluster) +
                      " written twice");
  const uint64_t cs = cluster_size();
  // Pack into the partly used host cluster when the data ends within the
  // clusters already allocated, or can extend the allocation contiguously.
  uint64_t start = compressed_cursor_;
  // A host cluster shared by so many compressed clusters that its 16-bit
  // refcount would overflow (tiny zstd frames in 2 MiB clusters) is closed.
  if (start != 0 && refcounts_.Get(start / cs) >= kMaxRefcount)
    start = 0;
  // The run may grow past its partly used host cluster only into free space,
  // not into a table or data cluster allocated since, nor over a refcount
  // block that the new clusters need first.
  if (start != 0 && start + compressed.size() > (start / cs + 1) * cs &&
      (next_free_ != (start / cs + 1) * cs ||
       AllocateRefcountBlocksFor((start + compressed.size() - next_free_ + cs - 1) / cs)))
    start = 0;
  if (start == 0) {
    AllocateRefcountBlocksFor((compressed.size() + cs - 1) / cs);  // before the data, not in it
    start = next_free_;
  }
  const uint64_t end = start + compressed.size();
  const uint64_t allocated_before = next_free_;
  if (end > next_free_)
    AllocateClusters((end - next_free_ + cs - 1) / cs);
  // New clusters got their reference from AllocateClusters; the shared one needs another.
  for (uint64_t c = start / cs; c <= (end - 1) / cs && c * cs < allocated_before; ++c)
    refcounts_.Add(c);
  data_out_.Write(compressed, start);
  entry = EncodeCompressedL2Entry(start, compressed.size(), header_.cluster_bits);
  compressed_cursor_ = end % cs == 0 ? 0 : end;
  if (reserved_bytes_ != 0 && start >= tail_floor_) {
    tail_frames_.push_back({guest_cluster, start, compressed.size()});
    // Only as many as the reserved tables could take, and a bounded number.
    while (end - tail_frames_.front().start > reserved_bytes_ ||
           tail_frames_.size() > kMaxTailFrames)
      tail_frames_.pop_front();
  }
}

uint64_t Qcow2Writer::MoveTailIntoHoles(const std::vector<uint64_t>& holes) {
  const uint64_t cs = cluster_size();
  if (holes.empty() || tail_frames_.empty())
    return 0;
  const Frame& last = tail_frames_.back();
  if ((last.start + last.size + cs - 1) / cs * cs != next_free_)
    return 0;  // something else ends the file
  data_out_.Flush();
  size_t hole = 0;
  uint64_t used = 0;  // bytes of holes[hole] taken
  uint64_t new_end = 0;
  std::vector<uint8_t> bytes;
  while (!tail_frames_.empty() && hole < holes.size()) {
    const Frame f = tail_frames_.back();
    if (used + f.size > cs) {
      ++hole;
      used = 0;
      continue;
    }
    const uint64_t to = holes[hole] + used;
    if (to >= f.start)
      break;  // never later in the file
    bytes.resize(f.size);
    out_.ReadAt(bytes, f.start);
    out_.WriteAt(bytes, to);
    for (uint64_t c = f.start / cs; c <= (f.start + f.size - 1) / cs; ++c)
      refcounts_.Release(c);
    refcounts_.Add(to / cs);
    std::span<uint64_t> l2 = L2TableFor(f.guest_cluster);
    l2[f.guest_cluster % header_.l2_entries()] =
        EncodeCompressedL2Entry(to, f.size, header_.cluster_bits);
    used += f.size;
    new_end = f.start;
    tail_frames_.pop_back();
  }
  if (new_end == 0)
    return 0;
  next_free_ = (new_end + cs - 1) / cs * cs;
  return new_end;
}

void Qcow2Writer::WriteRefcounts() {
  const uint64_t cs = cluster_size();
  const uint64_t per_block = refcounts_per_block();
  const uint64_t entries_per_cluster = cs / 8;
  auto clusters_for = [&](uint64_t blocks) {
    return (blocks + entries_per_cluster - 1) / entries_per_cluster;
  };
  if (clusters_for(refcount_blocks_.size()) > refcount_table_clusters_) {
    // Outgrown: a larger table at the end. One spare cluster holds the
    // entries of the blocks that allocating the table itself may add.
    const uint64_t clusters = clusters_for(refcount_blocks_.size()) + 1;
    if (clusters * cs > kMaxRefcountTableBytes)
      throw util::Error(out_.path() +
                        ": refcount table over qemu's limit: use a larger cluster size");
    const uint64_t at = AllocateClusters(clusters);
    if (clusters_for(refcount_blocks_.size()) > clusters)
      throw util::Error(out_.path() + ": internal error: refcount table too small");
    for (uint64_t c = 0; c < refcount_table_clusters_; ++c)
      refcounts_.Release((refcount_table_offset_ >> header_.cluster_bits) + c);
    refcount_table_offset_ = at;
    refcount_table_clusters_ = clusters;
  }

  std::vector<uint8_t> buf(cs);
  std::vector<uint8_t> table(refcount_table_clusters_ * cs, 0);
  for (uint64_t b = 0; b < refcount_blocks_.size(); ++b) {
    std::fill(buf.begin(), buf.end(), 0);
    for (uint64_t i = 0; i < per_block; ++i) {
      const uint64_t count = refcounts_.Get(b * per_block + i);
      if (count)
        util::StoreBE16(&buf[i * 2], static_cast<uint16_t>(count));
    }
    WriteLeavingHoles(out_, buf, refcount_blocks_[b]);
    util::StoreBE64(&table[b * 8], refcount_blocks_[b]);
  }
  WriteLeavingHoles(out_, table, refcount_table_offset_);
  header_.refcount_table_offset = refcount_table_offset_;
  header_.refcount_table_clusters = static_cast<uint32_t>(refcount_table_clusters_);
}

void Qcow2Writer::AddHeaderExtension(HeaderExtension extension) {
  if (finished_)
    throw util::Error(out_.path() + ": qcow2 writer used after Finish");
  header_.extensions.push_back(std::move(extension));
}

void Qcow2Writer::SetAutoclearFeatures(uint64_t bits) {
  if (header_.version < 3)
    throw util::Error(out_.path() + ": qcow2 version 2 has no autoclear feature bits");
  header_.autoclear_features |= bits;
}

uint64_t Qcow2Writer::WriteMetadataClusters(std::span<const uint8_t> bytes) {
  if (finished_)
    throw util::Error(out_.path() + ": qcow2 writer used after Finish");
  const uint64_t cs = cluster_size();
  const uint64_t clusters = std::max<uint64_t>(1, (bytes.size() + cs - 1) / cs);
  data_out_.Flush();
  const uint64_t at = AllocateClusters(clusters);
  EndCompressedTail();
  WriteLeavingHoles(out_, bytes, at);
  return at;
}

void Qcow2Writer::Finish() {
  if (finished_)
    return;
  data_out_.Flush();
  // Reserved tables nothing went into are given up: no L1 entry, refcount 0;
  // the last compressed data moves into them.
  std::vector<uint64_t> holes;
  for (size_t i = 0; i < l2_unused_.size(); ++i) {
    if (!l2_unused_[i])
      continue;
    holes.push_back(l1_[i] & kL1OffsetMask);
    refcounts_.Release(holes.back() >> header_.cluster_bits);
    l1_[i] = 0;
  }
  uint64_t compressed_end = compressed_cursor_;
  if (const uint64_t moved_end = MoveTailIntoHoles(holes))
    compressed_end = moved_end % cluster_size() == 0 ? 0 : moved_end;
  l2_cache_->Flush();
  compressed_cursor_ = 0;
  WriteRefcounts();
  finished_ = true;
  const uint64_t cs = cluster_size();
  // A partly filled last cluster of compressed data ends the file where its
  // data does, rounded up to a sector as qemu-img does; otherwise the file
  // ends with its last cluster.
  uint64_t file_end = next_free_;
  if (compressed_end != 0 && compressed_end / cs == next_free_ / cs - 1)
    file_end = (compressed_end + kSectorSize - 1) / kSectorSize * kSectorSize;

  // The L1 table in pieces (for 15 TiB it is 15 MiB, beside its own copy in
  // memory), zeros to the end of its last cluster.
  constexpr size_t kL1PieceEntries = 1u << 17;
  const size_t l1_slots = l1_clusters_ * cs / 8;
  std::vector<uint8_t> piece;
  for (size_t first = 0; first < l1_slots; first += kL1PieceEntries) {
    const size_t n = std::min(kL1PieceEntries, l1_slots - first);
    piece.assign(n * 8, 0);
    for (size_t i = 0; i < n && first + i < l1_.size(); ++i)
      util::StoreBE64(&piece[i * 8], l1_[first + i]);
    WriteLeavingHoles(out_, piece, header_.l1_table_offset + first * 8);
  }

  std::vector<uint8_t> head = header_.Encode();
  if (head.size() > cs)
    throw util::Error(out_.path() + ": qcow2 header larger than a cluster");
  head.resize(cs, 0);
  WriteLeavingHoles(out_, head, 0);
  out_.Truncate(file_end);
}

}  // namespace qcow2
