#include "qcow2/stream_writer.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

constexpr uint64_t kSectorSize = 512;
constexpr size_t kBufferBytes = 1u << 20;

uint64_t AlignUp(uint64_t n, uint64_t to) {
  return (n + to - 1) / to * to;
}

// Reads the spool through a few windows: the clusters go out in guest
// order, which interleaves the runs of the capture's passes (group tables
// first, then what the scan found), each run read in order.
class SpoolReader {
 public:
  static constexpr size_t kWindows = 8;
  static constexpr size_t kWindowBytes = 256u << 10;

  SpoolReader(const util::File& spool, uint64_t size) : spool_(spool), size_(size) {}
  const util::File& file() const { return spool_; }
  std::span<const uint8_t> Get(uint64_t offset, size_t length) {
    Window* use = nullptr;
    for (Window& w : windows_)
      if (offset >= w.start && offset + length <= w.start + w.bytes.size())
        use = &w;
    if (!use) {
      if (windows_.size() < kWindows) {
        use = &windows_.emplace_back();
      } else {
        use = &*std::min_element(windows_.begin(), windows_.end(),
                                 [](const Window& a, const Window& b) { return a.used < b.used; });
      }
      use->bytes.resize(std::min<uint64_t>(std::max(kWindowBytes, length), size_ - offset));
      spool_.ReadAt(use->bytes, offset);
      use->start = offset;
    }
    use->used = ++clock_;
    return std::span<const uint8_t>(use->bytes).subspan(offset - use->start, length);
  }

 private:
  struct Window {
    uint64_t start = 0;
    uint64_t used = 0;  // when last used, for eviction
    std::vector<uint8_t> bytes;
  };
  const util::File& spool_;
  uint64_t size_;
  std::vector<Window> windows_;
  uint64_t clock_ = 0;
};

// Bytes written to an output in order, through a buffer. Bytes of a file
// (the spool, the source) go into a pipe by splice, runs of them in one
// call, so that they do not pass through this process; into anything else,
// or what the kernel would not splice, they are read and buffered.
class OrderedOut {
 public:
  OrderedOut(const util::File& out, SpoolReader& spool) : out_(out), spool_(spool) {
    buffer_.reserve(kBufferBytes);
    // A larger pipe lets the reader take bigger steps (fails harmlessly on
    // anything but a pipe).
    ::fcntl(out.fd(), F_SETPIPE_SZ, static_cast<int>(kBufferBytes));
    struct stat st;
    splice_ = ::fstat(out.fd(), &st) == 0 && S_ISFIFO(st.st_mode);
  }
  void Put(std::span<const uint8_t> bytes) {
    FlushSpliced();
    if (buffer_.size() + bytes.size() > kBufferBytes)
      FlushBuffer();
    if (bytes.size() >= kBufferBytes)
      out_.Write(bytes);
    else
      buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    position_ += bytes.size();
  }
  // The `length` bytes of the spool at `offset`.
  void PutSpooled(uint64_t offset, size_t length) { PutFrom(spool_.file(), offset, length); }
  // The `length` bytes of the source at `offset`, read a second time.
  void PutFromSource(const util::File& source, uint64_t offset, size_t length) {
    PutFrom(source, offset, length);
  }
  // The same, but zeros in place of all but the `kept` ranges (ascending,
  // from offset on).
  void PutSourceParts(const util::File& source, uint64_t offset, size_t length,
                      const std::vector<util::ByteRange>& kept) {
    const uint64_t start = position_;
    for (const util::ByteRange& r : kept) {
      PutZerosTo(start + r.offset);
      PutFrom(source, offset + r.offset, r.length);
    }
    PutZerosTo(start + length);
  }
  void PutZerosTo(uint64_t offset) {
    if (offset < position_)
      throw util::Error(out_.path() + ": internal error: streamed qcow2 image went backwards");
    static const std::vector<uint8_t> zeros(64 << 10, 0);
    while (position_ < offset) {
      const uint64_t n = std::min<uint64_t>(zeros.size(), offset - position_);
      Put(std::span<const uint8_t>(zeros.data(), n));
    }
  }
  void PutBE64(uint64_t v) {
    uint8_t b[8];
    util::StoreBE64(b, v);
    Put(b);
  }
  void Flush() {
    FlushSpliced();
    FlushBuffer();
  }
  uint64_t position() const { return position_; }

 private:
  static constexpr uint64_t kMaxSplice = 16u << 20;

  void PutFrom(const util::File& file, uint64_t offset, size_t length) {
    if (pending_length_ == 0 || pending_file_ != &file ||
        pending_offset_ + pending_length_ != offset || pending_length_ + length > kMaxSplice) {
      FlushSpliced();
      pending_file_ = &file;
      pending_offset_ = offset;
    }
    pending_length_ += length;
    position_ += length;
  }
  void FlushBuffer() {
    if (!buffer_.empty())
      out_.Write(buffer_);
    buffer_.clear();
  }
  void FlushSpliced() {
    if (pending_length_ == 0)
      return;
    FlushBuffer();
    const util::File& file = *pending_file_;
    const uint64_t offset = pending_offset_, length = pending_length_;
    pending_length_ = 0;
    const uint64_t moved = splice_ ? out_.SpliceFrom(file, offset, length) : 0;
    if (moved == 0)
      splice_ = false;  // the kernel cannot, or the read below says why
    for (uint64_t done = moved; done < length;) {
      const size_t n = std::min<uint64_t>(SpoolReader::kWindowBytes, length - done);
      out_.Write(&file == &spool_.file() ? spool_.Get(offset + done, n)
                                         : ReadAgain(file, offset + done, n));
      done += n;
    }
  }
  // Bytes of the source, read again; an error ends the image here.
  std::span<const uint8_t> ReadAgain(const util::File& source, uint64_t offset, size_t length) {
    read_.resize(length);
    try {
      source.ReadAt(read_, offset);
    } catch (const util::Error& e) {
      throw util::Error(std::string(e.what()) +
                        " (reading the source again for the streamed image, which is cut short)");
    }
    return read_;
  }

  const util::File& out_;
  SpoolReader& spool_;
  bool splice_ = false;
  std::vector<uint8_t> buffer_;
  std::vector<uint8_t> read_;  // source bytes read again
  uint64_t position_ = 0;
  const util::File* pending_file_ = nullptr;  // bytes of it not yet spliced
  uint64_t pending_offset_ = 0;
  uint64_t pending_length_ = 0;
};

}  // namespace

DataPlacer::DataPlacer(uint64_t start, uint32_t cluster_bits)
    : start_(start), cluster_bits_(cluster_bits), end_(start) {}

uint64_t DataPlacer::Place(const StreamCluster& c) {
  const uint64_t cs = uint64_t{1} << cluster_bits_;
  uint64_t at = end_;
  if (c.compressed_size == 0) {
    at = AlignUp(at, cs);
    end_ = at + cs;
  } else {
    if (c.compressed_size >= cs)
      throw util::Error("internal error: a compressed cluster as large as a cluster");
    // A host cluster shared by as many frames as its refcount can count is closed.
    if (at % cs != 0 && counts_[(at - start_) >> cluster_bits_] >= kMaxRefcount)
      at = AlignUp(at, cs);
    end_ = at + c.compressed_size;
  }
  const uint64_t last = (end_ - 1 - start_) >> cluster_bits_;
  if (counts_.size() <= last)
    counts_.resize(last + 1, 0);
  for (uint64_t k = (at - start_) >> cluster_bits_; k <= last; ++k)
    ++counts_[k];
  return at;
}

StreamLayout::StreamLayout(const Header& header, size_t count,
                           const std::function<StreamCluster(size_t)>& at) {
  cluster_size = header.cluster_size();
  const uint64_t cs = cluster_size;
  const uint64_t l2_entries = header.l2_entries();
  DataPlacer placer(0, header.cluster_bits);
  uint64_t last_l1 = UINT64_MAX;
  for (size_t i = 0; i < count; ++i) {
    const StreamCluster c = at(i);
    placer.Place(c);
    if (c.guest_cluster / l2_entries != last_l1) {
      last_l1 = c.guest_cluster / l2_entries;
      ++l2_tables;
    }
  }
  data_counts = placer.counts();
  const uint64_t data_clusters = data_counts.size();
  l1_clusters = std::max<uint64_t>(1, AlignUp(header.l1_entries_needed() * 8, cs) / cs);
  // The refcount blocks count every cluster, themselves and the table included.
  const uint64_t per_block = cs * 8 / 16;
  refcount_table_clusters = 1;
  refcount_blocks = 1;
  for (;;) {
    const uint64_t clusters =
        1 + refcount_table_clusters + refcount_blocks + l1_clusters + l2_tables + data_clusters;
    const uint64_t blocks = (clusters + per_block - 1) / per_block;
    const uint64_t table = std::max<uint64_t>(1, AlignUp(blocks * 8, cs) / cs);
    if (blocks == refcount_blocks && table == refcount_table_clusters)
      break;
    refcount_blocks = blocks;
    refcount_table_clusters = table;
  }
  if (refcount_table_clusters * cs > kMaxRefcountTableBytes)
    throw util::Error(
        "a streamed qcow2 image this large needs a refcount table over qemu's "
        "8 MiB limit: use a larger cluster size");
  refcount_table_offset = cs;
  refcount_blocks_offset = refcount_table_offset + refcount_table_clusters * cs;
  l1_offset = refcount_blocks_offset + refcount_blocks * cs;
  l2_offset = l1_offset + l1_clusters * cs;
  data_offset = l2_offset + l2_tables * cs;
  file_end = data_offset + AlignUp(placer.end(), kSectorSize);
}

StreamWriter::StreamWriter(const util::File& out, const WriterOptions& options, util::File spool)
    : header_(NewImageHeader(options, out.path())), spool_(std::move(spool)), out_(out) {
  const uint64_t l1_entries = header_.l1_entries_needed();
  if (l1_entries * 8 > kMaxL1Bytes)
    throw util::Error(out.path() + ": an L1 table of " + std::to_string(l1_entries * 8) +
                      " bytes is over qemu's 32 MiB limit: use a larger cluster size");
  header_.l1_size = static_cast<uint32_t>(l1_entries);
  spool_buffer_.reserve(kBufferBytes);
}

void StreamWriter::CheckCluster(uint64_t guest_cluster) const {
  if (finished_)
    throw util::Error(out_.path() + ": qcow2 writer used after Finish");
  const uint64_t cs = cluster_size();
  if (guest_cluster >= (header_.size + cs - 1) / cs)
    throw util::Error(out_.path() + ": guest cluster " + std::to_string(guest_cluster) +
                      " is past the virtual size");
}

void StreamWriter::CheckSourceHolds() const {
  if (!source_)
    return;
  const auto last = std::find_if(records_.rbegin(), records_.rend(),
                                 [](const Record& r) { return r.from_source(); });
  if (last == records_.rend())
    return;
  const uint64_t needed = source_offset_ + (last->guest_cluster + 1) * cluster_size();
  const uint64_t size = source_->Size();
  if (size < needed)
    throw util::Error(source_->path() + ": now ends at byte " + std::to_string(size) +
                      ", before clusters the scan read from it (up to byte " +
                      std::to_string(needed) + "): it changed during the capture; nothing was " +
                      "written");
}

void StreamWriter::FlushSpool() {
  if (!spool_buffer_.empty())
    spool_.WriteAt(spool_buffer_, spool_flushed_);
  spool_flushed_ = spool_end_;
  spool_buffer_.clear();
}

void StreamWriter::ReferToSource(const util::File& source, uint64_t source_offset) {
  if (source_ && source_ != &source)
    throw util::Error(out_.path() + ": internal error: clusters referred to two sources");
  source_ = &source;
  source_offset_ = source_offset;
}

void StreamWriter::MarkChanged(uint64_t guest_offset, uint64_t length) {
  if (length == 0)
    return;
  const uint64_t cs = cluster_size();
  const uint64_t first = guest_offset / cs;
  changed_.Add({first, (guest_offset + length + cs - 1) / cs - first});
}

void StreamWriter::MarkSourcedPart(uint64_t guest_offset, uint64_t length) {
  sourced_parts_.Add({guest_offset, length});
}

uint64_t StreamWriter::Spool(std::span<const uint8_t> bytes) {
  if (spool_end_ + bytes.size() >= Record::kPartFromSource)
    throw util::Error(spool_.path() + ": over 8 TiB spooled");
  if (spool_buffer_.size() + bytes.size() > kBufferBytes)
    FlushSpool();
  spool_buffer_.insert(spool_buffer_.end(), bytes.begin(), bytes.end());
  const uint64_t at = spool_end_;
  spool_end_ += bytes.size();
  return at;
}

void StreamWriter::AddRecord(uint64_t guest_cluster, uint64_t packed) {
  CheckCluster(guest_cluster);
  if (records_.size() > run_start_ && guest_cluster <= records_.back().guest_cluster)
    MergeRun();
  records_.push_back({guest_cluster, packed});
}

void StreamWriter::MergeRun() {
  const auto by_guest = [](const Record& a, const Record& b) {
    return a.guest_cluster < b.guest_cluster;
  };
  std::inplace_merge(records_.begin(), records_.begin() + static_cast<ptrdiff_t>(run_start_),
                     records_.end(), by_guest);
  run_start_ = records_.size();
}

StreamWriter::Record* StreamWriter::Find(uint64_t guest_cluster) {
  const auto search = [&](auto first, auto last) -> Record* {
    auto it = std::lower_bound(first, last, guest_cluster,
                               [](const Record& r, uint64_t g) { return r.guest_cluster < g; });
    return it != last && it->guest_cluster == guest_cluster ? &*it : nullptr;
  };
  const auto split = records_.begin() + static_cast<ptrdiff_t>(run_start_);
  if (Record* r = search(records_.begin(), split))
    return r;
  return search(split, records_.end());
}

void StreamWriter::WriteCluster(uint64_t guest_cluster, std::span<const uint8_t> data) {
  if (data.size() != cluster_size())
    throw util::Error(out_.path() + ": qcow2 writer got a partial cluster");
  if (source_ && !changed_.Contains(guest_cluster)) {
    const uint64_t cs = cluster_size();
    const bool part = !sourced_parts_.Within({guest_cluster * cs, cs}).empty();
    AddRecord(guest_cluster, (part ? Record::kPartFromSource : Record::kFromSource) << 21);
    return;
  }
  AddRecord(guest_cluster, Spool(data) << 21);
}

void StreamWriter::WriteCompressedCluster(uint64_t guest_cluster,
                                          std::span<const uint8_t> compressed) {
  if (compressed.empty() || compressed.size() >= cluster_size())
    throw util::Error(out_.path() + ": compressed cluster must be smaller than a cluster");
  AddRecord(guest_cluster, Spool(compressed) << 21 | compressed.size());
}

void StreamWriter::OverwriteCluster(uint64_t guest_cluster, std::span<const uint8_t> data) {
  CheckCluster(guest_cluster);
  if (data.size() != cluster_size())
    throw util::Error(out_.path() + ": qcow2 writer got a partial cluster");
  Record* r = Find(guest_cluster);
  if (!r) {
    if (!util::IsAllZero(data))
      WriteCluster(guest_cluster, data);
    return;
  }
  if (r->size() != 0)
    throw util::Error(out_.path() + ": internal error: an overwrite of compressed guest cluster " +
                      std::to_string(guest_cluster));
  if (r->from_source()) {
    r->packed = Spool(data) << 21;
    return;
  }
  const uint64_t at = r->spool_offset();
  if (at >= spool_flushed_) {
    std::copy(data.begin(), data.end(), spool_buffer_.begin() + (at - spool_flushed_));
  } else {
    spool_.WriteAt(data, at);
  }
}

std::vector<util::ByteRange> StreamWriter::PartsOf(uint64_t guest_offset) const {
  std::vector<util::ByteRange> parts = sourced_parts_.Within({guest_offset, cluster_size()});
  for (util::ByteRange& r : parts)
    r.offset -= guest_offset;
  return parts;
}

void StreamWriter::AddHeaderExtension(HeaderExtension extension) {
  if (finished_)
    throw util::Error(out_.path() + ": qcow2 writer used after Finish");
  header_.extensions.push_back(std::move(extension));
}

void StreamWriter::Finish() {
  if (finished_)
    return;
  FlushSpool();
  MergeRun();
  for (size_t i = 1; i < records_.size(); ++i)
    if (records_[i].guest_cluster == records_[i - 1].guest_cluster)
      throw util::Error(out_.path() + ": guest cluster " +
                        std::to_string(records_[i].guest_cluster) + " written twice");
  finished_ = true;
  CheckSourceHolds();
  const auto cluster_at = [&](size_t i) {
    return StreamCluster{records_[i].guest_cluster, records_[i].size()};
  };
  const StreamLayout layout(header_, records_.size(), cluster_at);
  const uint64_t cs = cluster_size();
  const uint64_t l2_entries = header_.l2_entries();
  SpoolReader spool(spool_, spool_end_);
  OrderedOut out(out_, spool);

  Header h = header_;
  h.l1_table_offset = layout.l1_offset;
  h.refcount_table_offset = layout.refcount_table_offset;
  h.refcount_table_clusters = static_cast<uint32_t>(layout.refcount_table_clusters);
  std::vector<uint8_t> head = h.Encode();
  if (head.size() > cs)
    throw util::Error(out_.path() + ": qcow2 header larger than a cluster");
  out.Put(head);
  out.PutZerosTo(layout.refcount_table_offset);

  for (uint64_t b = 0; b < layout.refcount_blocks; ++b)
    out.PutBE64(layout.refcount_blocks_offset + b * cs);
  out.PutZerosTo(layout.refcount_blocks_offset);
  // Every cluster before the data is one table's or the header's.
  const uint64_t metadata_clusters = layout.data_offset / cs;
  const uint64_t total_clusters = metadata_clusters + layout.data_counts.size();
  std::vector<uint8_t> block(cs);
  const uint64_t per_block = cs / 2;
  for (uint64_t b = 0; b < layout.refcount_blocks; ++b) {
    std::fill(block.begin(), block.end(), 0);
    for (uint64_t i = 0; i < per_block && b * per_block + i < total_clusters; ++i) {
      const uint64_t c = b * per_block + i;
      util::StoreBE16(&block[i * 2], c < metadata_clusters
                                         ? uint16_t{1}
                                         : layout.data_counts[c - metadata_clusters]);
    }
    out.Put(block);
  }

  // L1: one L2 table for each range holding clusters, in guest order.
  uint64_t next_table = layout.l2_offset;
  size_t r = 0;
  for (uint64_t i = 0; i < header_.l1_size; ++i) {
    uint64_t entry = 0;
    if (r < records_.size() && records_[r].guest_cluster / l2_entries == i) {
      entry = next_table | kOflagCopied;
      next_table += cs;
      while (r < records_.size() && records_[r].guest_cluster / l2_entries == i)
        ++r;
    }
    out.PutBE64(entry);
  }
  out.PutZerosTo(layout.l2_offset);

  DataPlacer tables(layout.data_offset, header_.cluster_bits);
  std::vector<uint8_t> table(cs);
  for (r = 0; r < records_.size();) {
    std::fill(table.begin(), table.end(), 0);
    const uint64_t l1_index = records_[r].guest_cluster / l2_entries;
    for (; r < records_.size() && records_[r].guest_cluster / l2_entries == l1_index; ++r) {
      const StreamCluster c = cluster_at(r);
      const uint64_t host = tables.Place(c);
      const uint64_t entry =
          c.compressed_size ? EncodeCompressedL2Entry(host, c.compressed_size, header_.cluster_bits)
                            : host | kOflagCopied;
      util::StoreBE64(&table[(c.guest_cluster % l2_entries) * 8], entry);
    }
    out.Put(table);
  }

  DataPlacer data(layout.data_offset, header_.cluster_bits);
  for (r = 0; r < records_.size(); ++r) {
    const StreamCluster c = cluster_at(r);
    out.PutZerosTo(data.Place(c));
    const uint64_t guest = c.guest_cluster * cs;
    if (records_[r].spool_offset() == Record::kPartFromSource)
      out.PutSourceParts(*source_, source_offset_ + guest, cs, PartsOf(guest));
    else if (records_[r].from_source())
      out.PutFromSource(*source_, source_offset_ + guest, cs);
    else
      out.PutSpooled(records_[r].spool_offset(), c.compressed_size ? c.compressed_size : cs);
  }
  out.PutZerosTo(layout.file_end);
  out.Flush();
}

}  // namespace qcow2
