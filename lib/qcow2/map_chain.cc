#include "qcow2/map_chain.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "qcow2/backing.h"
#include "qcow2/check.h"
#include "qcow2/subcluster.h"
#include "util/error.h"
#include "util/file.h"

namespace qcow2 {
namespace {

// qemu's length of a file: whole 512-byte sectors.
uint64_t SectorRoundedSize(const util::File& file) {
  return (file.Size() + 511) / 512 * 512;
}

// What a plain file holds at offset, as qemu's file driver reports it from
// SEEK_DATA and SEEK_HOLE: a data run or a hole, at most `length` bytes.
struct Extent {
  uint64_t length = 0;
  bool zero = false;
};
Extent FileExtent(const util::File& file, uint64_t offset, uint64_t length) {
  const off_t data = lseek(file.fd(), static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0)  // past the last data (ENXIO) is a hole; without SEEK_DATA all is data
    return Extent{length, errno == ENXIO};
  if (static_cast<uint64_t>(data) > offset)
    return Extent{std::min(length, static_cast<uint64_t>(data) - offset), true};
  const off_t hole = lseek(file.fd(), static_cast<off_t>(offset), SEEK_HOLE);
  if (hole <= data)
    return Extent{length, false};
  return Extent{std::min(length, static_cast<uint64_t>(hole) - offset), false};
}

// qemu's guess that an image was made with preallocation=metadata: more
// clusters have a refcount than the file has blocks allocated. qemu then
// also reports the holes of the file under data clusters as zeros.
bool LooksMetadataPreallocated(const ImageView& image) {
  if (!image.disk_size_known())
    return false;  // a copy of a stream has none of the original's holes
  const uint64_t cs = image.cluster_size();
  const uint64_t real_clusters = image.allocated_bytes() / cs;
  const uint64_t threshold = std::max(real_clusters * 10 / 9, real_clusters + 2);
  const uint64_t end_cluster = (SectorRoundedSize(image.file()) + cs - 1) / cs;
  try {
    StoredRefcounts refcounts(image);
    uint64_t count = 0;
    for (uint64_t i = 0; i < end_cluster && count < threshold; ++i) {
      const std::optional<uint64_t> r = refcounts.Get(i);
      if (!r)
        return false;  // qemu gives up on an unreadable refcount
      count += *r != 0;
    }
    return count >= threshold;
  } catch (const util::Error&) {
    return false;
  }
}

// A qcow2 file: its L1/L2 tables, one L2 table read at a time.
class Qcow2Layer : public MapLayer {
 public:
  // Only the L1 entries that map the virtual size are read.
  Qcow2Layer(const ImageView& image, const ReferencePolicy& policy)
      : image_(image),
        h_(image.header()),
        cs_(h_.cluster_size()),
        l1_(image.ReadL1(0, std::min<uint64_t>(h_.l1_size, h_.l1_entries_needed()))) {
    if ((h_.incompatible_features & kIncompatDataFile) && DataFileName(h_).empty())
      throw util::Error(util::AtOffset(
          image.path(), 72, "external data file bit set but no data file name extension"));
    data_file_ = OpenDataFile(image.path(), h_, policy);
    metadata_preallocated_ = LooksMetadataPreallocated(image);
  }
  uint64_t size() const override { return h_.size; }
  const std::string& host_file() const override {
    return data_file_.is_open() ? data_file_.path() : image_.path();
  }
  LayerStatus Status(uint64_t offset, uint64_t length) override;

 private:
  // The table's entries (two words each with extended L2), or null when the
  // L1 entry is empty.
  const std::vector<uint64_t>* Table(uint64_t l1_index);
  ClusterDescriptor Descriptor(uint64_t cluster);
  // The status of subcluster `sub` of a cluster (the whole cluster when the
  // entry is not extended), starting `in_cluster` bytes into the cluster.
  LayerStatus SubStatus(const ClusterDescriptor& d, uint32_t sub, uint64_t in_cluster) const;
  const util::File& host() const { return data_file_.is_open() ? data_file_ : image_.file(); }
  // Marks the part of a data run in a hole of the host file as zero too.
  void FindHostHoles(LayerStatus& run) const;

  const ImageView& image_;
  const Header& h_;
  const uint64_t cs_;
  const std::vector<uint64_t> l1_;
  util::File data_file_;
  bool metadata_preallocated_ = false;
  uint64_t table_index_ = ~uint64_t{0};
  std::vector<uint64_t> table_;
};

const std::vector<uint64_t>* Qcow2Layer::Table(uint64_t l1_index) {
  if (l1_index == table_index_)
    return &table_;
  const uint64_t l1_at = h_.l1_table_offset + l1_index * 8;
  const uint64_t entry = l1_index < l1_.size() ? l1_[l1_index] : 0;
  const std::string where =
      "L1 table entry " + std::to_string(l1_index) + " (offset " + HexString(l1_at) + ")";
  if (entry & 0x7f000000000001ffull)
    throw util::Error(
        util::AtOffset(image_.path(), l1_at, where + ": reserved bits set in " + HexString(entry)));
  const uint64_t l2_offset = entry & kL1OffsetMask;
  if (l2_offset == 0)
    return nullptr;
  if (l2_offset % cs_ != 0 || l2_offset < cs_ || l2_offset + cs_ > image_.file_size())
    throw util::Error(util::AtOffset(
        image_.path(), l1_at,
        where + ": L2 table offset " + HexString(l2_offset) + " is not a cluster inside the file"));
  table_index_ = ~uint64_t{0};
  table_ = image_.ReadTable(l2_offset, cs_ / 8, "L2 table of " + where);
  table_index_ = l1_index;
  return &table_;
}

ClusterDescriptor Qcow2Layer::Descriptor(uint64_t cluster) {
  const uint64_t per = h_.l2_entries();
  const uint64_t l1_index = cluster / per;
  const std::vector<uint64_t>* table = Table(l1_index);
  const bool has_data_file = data_file_.is_open();
  if (!table)
    return DecodeDescriptor(0, 0, h_, has_data_file);
  const uint64_t index = cluster % per;
  const bool extended = h_.extended_l2();
  const ClusterDescriptor d =
      DecodeDescriptor((*table)[extended ? 2 * index : index],
                       extended ? (*table)[2 * index + 1] : 0, h_, has_data_file);
  auto fail = [&](const std::string& what) {
    const uint64_t at = (l1_[l1_index] & kL1OffsetMask) + index * h_.l2_entry_bytes();
    throw util::Error(util::AtOffset(image_.path(), at,
                                     "L2 table of L1 entry " + std::to_string(l1_index) +
                                         ", entry " + std::to_string(index) + ": " + what));
  };
  if (std::string problem = DescriptorProblem(d, h_, has_data_file); !problem.empty())
    fail(problem);
  if (d.compressed && (d.host_offset < cs_ || d.host_offset >= image_.file_size()))
    fail("compressed data offset " + HexString(d.host_offset) + " is outside the file");
  if (!d.compressed && d.has_host && !has_data_file &&
      (d.host_offset < cs_ || d.host_offset >= image_.file_size()))
    fail("data offset " + HexString(d.host_offset) + " is not a cluster inside the file");
  return d;
}

LayerStatus Qcow2Layer::SubStatus(const ClusterDescriptor& d, uint32_t sub,
                                  uint64_t in_cluster) const {
  LayerStatus s;
  // qemu gives no host offsets for encrypted images.
  const bool offsets = h_.crypt_method == 0;
  bool hosted = false;
  switch (d.SubclusterKind(sub)) {
    case ClusterKind::kCompressed:
      s.data = s.compressed = true;
      break;
    case ClusterKind::kNormal:
      s.data = hosted = true;
      break;
    case ClusterKind::kZero:
      s.zero = true;
      // A preallocated zero cluster keeps its host cluster (qemu's ZERO_ALLOC).
      hosted = d.extended ? d.has_host : d.host_offset != 0;
      break;
    default:
      hosted = d.extended && d.has_host;  // qemu's UNALLOCATED_ALLOC
  }
  if (hosted && offsets)
    s.offset = d.host_offset + in_cluster;
  return s;
}

LayerStatus Qcow2Layer::Status(uint64_t offset, uint64_t length) {
  const uint64_t per = h_.l2_entries();
  const uint64_t span = per * cs_;  // guest bytes of one L2 table
  uint64_t end = std::min({offset + length, h_.size, (offset / span + 1) * span});
  if (!Table(offset / span)) {
    // Also take the empty L1 entries that follow (huge images have many).
    uint64_t l1_index = offset / span + 1;
    while (l1_index * span < std::min(offset + length, h_.size) && l1_index < l1_.size() &&
           l1_[l1_index] == 0)
      ++l1_index;
    end = std::min({offset + length, h_.size, std::max(end, l1_index * span)});
    LayerStatus s;
    s.length = end - offset;
    return s;
  }
  const uint64_t sub_size = h_.extended_l2() ? cs_ / kSubclustersPerCluster : cs_;
  LayerStatus run;
  for (uint64_t pos = offset; pos < end;) {
    const ClusterDescriptor d = Descriptor(pos / cs_);
    const uint64_t in_cluster = pos % cs_;
    const uint64_t unit = d.Uniform() ? cs_ : sub_size;
    const uint64_t unit_end = std::min(end, pos - in_cluster % unit + unit);
    LayerStatus s = SubStatus(d, static_cast<uint32_t>(in_cluster / sub_size), in_cluster);
    s.length = unit_end - pos;
    if (pos == offset) {
      run = s;
    } else if (run.data == s.data && run.zero == s.zero && run.compressed == s.compressed &&
               run.offset.has_value() == s.offset.has_value() &&
               (!run.offset || *run.offset + run.length == *s.offset)) {
      run.length += s.length;
    } else {
      break;
    }
    pos = unit_end;
  }
  if (metadata_preallocated_ && run.data && !run.compressed && run.offset)
    FindHostHoles(run);
  return run;
}

void Qcow2Layer::FindHostHoles(LayerStatus& run) const {
  const uint64_t host_size = SectorRoundedSize(host());
  const uint64_t at = *run.offset;
  if (at >= host_size) {  // past the end of the file reads as zeros
    run.zero = true;
    return;
  }
  const Extent e = FileExtent(host(), at, std::min(run.length, host_size - at));
  if (e.zero && at + e.length == host_size) {
    run.zero = true;  // a hole up to the end: zeros all along
    return;
  }
  run.length = e.length;
  run.zero = e.zero;
}

// A raw backing file: its holes read as zeros, as qemu's file driver finds
// them with SEEK_DATA and SEEK_HOLE.
class RawLayer : public MapLayer {
 public:
  explicit RawLayer(util::File file) : file_(std::move(file)) { size_ = SectorRoundedSize(file_); }
  uint64_t size() const override { return size_; }
  const std::string& host_file() const override { return file_.path(); }
  LayerStatus Status(uint64_t offset, uint64_t length) override {
    const Extent e = FileExtent(file_, offset, length);
    LayerStatus s;
    s.length = e.length;
    (e.zero ? s.zero : s.data) = true;
    s.offset = offset;
    return s;
  }

 private:
  util::File file_;
  uint64_t size_ = 0;
};

}  // namespace

MapChain::MapChain(const ImageView& top, const ReferencePolicy& policy) {
  layers_.push_back(std::make_unique<Qcow2Layer>(top, policy));
  BackingChain chain(top.file(), policy);
  const ImageView* image = &top;
  while (std::optional<BackingFile> b = chain.Next(image->path(), image->header())) {
    if (b->format == BackingFormat::kRaw) {
      layers_.push_back(std::make_unique<RawLayer>(std::move(b->file)));
      break;
    }
    views_.push_back(std::make_unique<ImageView>(std::move(b->file)));
    image = views_.back().get();
    layers_.push_back(std::make_unique<Qcow2Layer>(*image, policy));
  }
}

MapChain::~MapChain() = default;

MapRange MapChain::Resolve(uint64_t offset, uint64_t length) {
  for (size_t depth = 0;; ++depth) {
    const LayerStatus s = layers_[depth]->Status(offset, length);
    MapRange r{offset, s.length, s.allocated(), s.zero, s.data, s.compressed, s.offset};
    r.depth = static_cast<int>(depth);
    r.file = &layers_[depth]->host_file();
    if (s.allocated())
      return r;
    // Unallocated: the backing file decides, but reads past its end and
    // without one are zeros at this depth.
    if (depth + 1 == layers_.size() || offset >= layers_[depth + 1]->size()) {
      r.zero = true;
      return r;
    }
    length = std::min(s.length, layers_[depth + 1]->size() - offset);
  }
}

}  // namespace qcow2
