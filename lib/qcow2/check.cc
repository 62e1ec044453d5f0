#include "qcow2/check.h"

#include <algorithm>
#include <functional>
#include <limits>

#include "util/endian.h"
#include "util/error.h"
#include "util/file_holes.h"

namespace qcow2 {
namespace {

constexpr uint64_t kL1ReservedMask = 0x7f000000000001ffull;
constexpr uint64_t kL2ReservedMask = 0x3f000000000001feull;

}  // namespace

bool ReferenceCounter::Add(uint64_t cluster) {
  std::vector<uint32_t>& chunk = chunks_[cluster >> kChunkBits];
  if (chunk.empty())
    chunk.assign(uint64_t{1} << kChunkBits, 0);
  uint32_t& count = chunk[cluster & ((uint64_t{1} << kChunkBits) - 1)];
  if (count >= max_count_)
    return false;
  ++count;
  end_ = std::max(end_, cluster + 1);
  return true;
}

uint64_t ReferenceCounter::Get(uint64_t cluster) const {
  auto it = chunks_.find(cluster >> kChunkBits);
  if (it == chunks_.end())
    return 0;
  return it->second[cluster & ((uint64_t{1} << kChunkBits) - 1)];
}

StoredRefcounts::StoredRefcounts(const ImageView& image)
    : image_(image), entries_per_block_(image.cluster_size() * 8 / image.header().refcount_bits()) {
  const Header& h = image.header();
  table_ = image.ReadTable(h.refcount_table_offset,
                           uint64_t{h.refcount_table_clusters} * image.cluster_size() / 8,
                           "refcount table");
}

std::optional<uint64_t> StoredRefcounts::Get(uint64_t cluster) {
  const uint64_t index = cluster / entries_per_block_;
  if (index >= table_.size())
    return 0;
  const uint64_t block = table_[index] & kRefcountTableOffsetMask;
  if (block == 0)
    return 0;
  if (block % image_.cluster_size() != 0)
    return std::nullopt;
  if (block != cached_block_) {
    block_.resize(image_.cluster_size());
    image_.ReadZeroPadded(block_, block);
    cached_block_ = block;
  }
  const uint64_t i = cluster % entries_per_block_;
  const uint8_t* p = block_.data();
  switch (image_.header().refcount_order) {
    case 0:
      return (p[i / 8] >> (i % 8)) & 1;
    case 1:
      return (p[i / 4] >> (2 * (i % 4))) & 3;
    case 2:
      return (p[i / 2] >> (4 * (i % 2))) & 15;
    case 3:
      return p[i];
    case 4:
      return util::LoadBE16(p + 2 * i);
    case 5:
      return util::LoadBE32(p + 4 * i);
    default:
      return util::LoadBE64(p + 8 * i);
  }
}

int CheckReport::ExitCode() const {
  if (check_errors)
    return 1;
  if (corruptions)
    return 2;
  if (leaks)
    return 3;
  return 0;
}

namespace {

// One run of the check: the rebuilt references and the report being filled.
class Checker {
 public:
  Checker(const ImageView& image, const ProblemSink& problems)
      : image_(image),
        problems_(problems),
        h_(image.header()),
        cs_(image.cluster_size()),
        refs_(h_.refcount_order >= 5 ? std::numeric_limits<uint32_t>::max()
                                     : (uint64_t{1} << h_.refcount_bits()) - 1),
        stored_(image),
        has_data_file_(h_.incompatible_features & kIncompatDataFile),
        holes_(image.file(), /*enabled=*/true) {}

  CheckReport Run();

 private:
  void Problem(const std::string& line) {
    if (problems_)
      problems_(line);
  }
  void Corruption(const std::string& line) {
    ++report_.corruptions;
    Problem("ERROR " + line);
  }
  // Counts one reference to each cluster of [offset, offset + size); `what`
  // describes the referrer, built only when there is a problem to report.
  void Reference(uint64_t offset, uint64_t size, const std::function<std::string()>& what);
  void Reference(uint64_t offset, uint64_t size, const std::string& what) {
    Reference(offset, size, [&] { return what; });
  }
  void CheckL1(uint64_t l1_offset, uint64_t l1_size, bool active, const std::string& name);
  void CheckL1Entry(uint64_t l1_offset, uint64_t i, uint64_t entry, bool active,
                    const std::string& name);
  void CheckL2(uint64_t l2_offset, bool active, const std::string& name);
  void CheckBitmaps();
  void CheckRefcountBlocks();
  void CompareRefcounts();
  void CheckCopiedFlags();
  // The copied flags of one active L1 entry and of its L2 table's entries.
  void CheckCopiedFlags(uint64_t i, uint64_t l1_entry);
  // True when an L2 entry (not compressed) has a host cluster, as qemu's
  // cluster types NORMAL and ZERO_ALLOC: offset 0 is one in a data file
  // when the copied flag says so.
  bool HasHostCluster(uint64_t entry) const {
    if (entry & kL2OffsetMask)
      return true;
    const bool zero_plain = !h_.extended_l2() && (entry & kOflagZero);
    return has_data_file_ && (entry & kOflagCopied) && !zero_plain;
  }

  const ImageView& image_;
  const ProblemSink& problems_;
  const Header& h_;
  uint64_t cs_;
  uint64_t nb_clusters_ = 0;
  ReferenceCounter refs_;
  StoredRefcounts stored_;
  const bool has_data_file_;  // data clusters live there, not refcounted
  util::FileHoles holes_;     // L1 slices in holes of the file hold no entries
  CheckReport report_;
  uint64_t highest_cluster_ = 0;
};

void Checker::Reference(uint64_t offset, uint64_t size, const std::function<std::string()>& what) {
  if (size == 0)
    return;
  const uint64_t file_size = image_.file_size();
  if (offset + size < offset || offset + size >= file_size + cs_) {
    Corruption(what() + " at " + HexString(offset) + " (" + std::to_string(size) +
               " bytes) runs a cluster or more past the end of the file");
    return;
  }
  for (uint64_t c = offset / cs_; c <= (offset + size - 1) / cs_; ++c) {
    if (!refs_.Add(c))
      Corruption("refcount overflow on cluster " + std::to_string(c) + " (offset " +
                 HexString(c * cs_) + "), referenced by " + what());
  }
}

void Checker::CheckL2(uint64_t l2_offset, bool active, const std::string& name) {
  const uint64_t entries = h_.l2_entries();
  const uint64_t words = h_.l2_entry_bytes() / 8;  // 2 with extended L2 entries
  const std::vector<uint64_t> l2 = image_.ReadTableZeroPadded(l2_offset, entries * words);
  uint64_t next_contiguous = 0;
  for (uint64_t i = 0; i < entries; ++i) {
    const uint64_t e = l2[i * words];
    const uint64_t subclusters = words == 2 ? l2[i * words + 1] : 0;
    if (e == 0 && subclusters == 0)
      continue;
    const auto where = [&] {
      return name + " at " + HexString(l2_offset) + ", entry " + std::to_string(i) + " (offset " +
             HexString(l2_offset + i * 8 * words) + ")";
    };
    if (e & kOflagCompressed) {
      if (e & kOflagCopied)
        Corruption(where() + ": copied flag set on a compressed cluster");
      if (has_data_file_) {  // as qemu: reported, and not counted
        Corruption(where() + ": compressed cluster in an image with an external data file");
        continue;
      }
      if (subclusters) {  // as qemu: reported, and its data not counted
        Corruption(where() + ": compressed cluster with subcluster bitmap " +
                   HexString(subclusters));
        continue;
      }
      const L2Entry compressed = DecodeL2Entry(e, h_);
      Reference(compressed.host_offset, compressed.compressed_size,
                [&] { return where() + " compressed data"; });
      if (active) {
        ++report_.allocated_clusters;
        ++report_.compressed_clusters;
        ++report_.fragmented_clusters;
      }
      continue;
    }
    if (e & kL2ReservedMask)
      Corruption(where() + ": reserved bits set in " + HexString(e));
    const uint64_t offset = e & kL2OffsetMask;
    if (!HasHostCluster(e)) {  // unallocated or plain zero cluster
      if (subclusters & 0xffffffffull)
        Corruption(where() + ": subclusters allocated without a host cluster in bitmap " +
                   HexString(subclusters));
      continue;
    }
    if ((subclusters >> 32) & subclusters)
      Corruption(where() + ": subclusters both allocated and zero in bitmap " +
                 HexString(subclusters));
    if (offset % cs_ != 0)
      Corruption(where() + ": data cluster offset " + HexString(offset) +
                 " is not cluster aligned");
    if (active) {
      ++report_.allocated_clusters;
      if (next_contiguous && offset != next_contiguous)
        ++report_.fragmented_clusters;
      next_contiguous = offset + cs_;
    }
    if (!has_data_file_)
      Reference(offset, cs_, [&] { return where() + " data cluster"; });
  }
}

void Checker::CheckL1(uint64_t l1_offset, uint64_t l1_size, bool active, const std::string& name) {
  if (l1_size == 0)
    return;
  Reference(l1_offset, l1_size * 8, name);
  // Read in slices: e2fsprogs' e2image writes L1 tables over 32 MiB. A
  // slice in a hole of the file is all empty entries: not read (a thousand
  // snapshots of sparse 32 MiB tables are then checked without reading them).
  constexpr uint64_t kSliceEntries = 1 << 16;
  for (uint64_t first = 0; first < l1_size; first += kSliceEntries) {
    const uint64_t n = std::min(kSliceEntries, l1_size - first);
    const util::FileRun run = holes_.RunAt(l1_offset + first * 8, n * 8);
    if (run.hole && run.length == n * 8)
      continue;
    const std::vector<uint64_t> l1 = image_.ReadTableZeroPadded(l1_offset + first * 8, n);
    for (uint64_t j = 0; j < n; ++j)
      CheckL1Entry(l1_offset, first + j, l1[j], active, name);
  }
}

void Checker::CheckL1Entry(uint64_t l1_offset, uint64_t i, uint64_t entry, bool active,
                           const std::string& name) {
  // As qemu, an entry with only reserved bits set still sends the check to
  // an L2 table at offset 0.
  if (entry == 0)
    return;
  const uint64_t l2 = entry & kL1OffsetMask;
  const std::string where =
      name + " entry " + std::to_string(i) + " (offset " + HexString(l1_offset + i * 8) + ")";
  if (entry & kL1ReservedMask)
    Corruption(where + ": reserved bits set in " + HexString(entry));
  Reference(l2, cs_, where + " L2 table");
  if (l2 % cs_ != 0)
    Corruption(where + ": L2 table offset " + HexString(l2) + " is not cluster aligned");
  CheckL2(
      l2, active,
      (active ? "L2 table of L1 entry " : "L2 table of " + name + " entry ") + std::to_string(i));
}

void Checker::CheckBitmaps() {
  const auto& ext = image_.bitmaps_extension();
  if (!ext || !(h_.autoclear_features & kAutoclearBitmaps))
    return;
  Reference(ext->directory_offset, ext->directory_size, "bitmap directory");
  constexpr uint64_t kChunk = 65536;
  for (size_t b = 0; b < image_.bitmaps().size(); ++b) {
    const Bitmap& bm = image_.bitmaps()[b];
    const std::string name = "bitmap table of bitmap " + std::to_string(b) + " '" + bm.name + "'";
    Reference(bm.table_offset, uint64_t{bm.table_size} * 8, name);
    if (bm.table_size > kMaxBitmapTableEntries || bm.table_offset % cs_ != 0 ||
        bm.table_offset + uint64_t{bm.table_size} * 8 > image_.file_size()) {
      Corruption(name + " at " + HexString(bm.table_offset) + " (" + std::to_string(bm.table_size) +
                 " entries) cannot be read");
      break;
    }
    for (uint64_t first = 0; first < bm.table_size; first += kChunk) {
      const uint64_t n = std::min<uint64_t>(kChunk, bm.table_size - first);
      const std::vector<uint64_t> entries = image_.ReadTable(bm.table_offset + first * 8, n, name);
      for (uint64_t j = 0; j < n; ++j) {
        const uint64_t e = entries[j];
        const uint64_t at = bm.table_offset + (first + j) * 8;
        const std::string where =
            name + ", entry " + std::to_string(first + j) + " (offset " + HexString(at) + ")";
        if (ClassifyBitmapEntry(e, cs_) == BitmapEntryKind::kInvalid) {
          Corruption(where + ": invalid bitmap table entry " + HexString(e));
          continue;
        }
        if (e & kBitmapEntryOffsetMask)
          Reference(e & kBitmapEntryOffsetMask, cs_, where + " data");
      }
    }
  }
}

void Checker::CheckRefcountBlocks() {
  const std::vector<uint64_t>& table = stored_.table();
  for (uint64_t i = 0; i < table.size(); ++i) {
    const uint64_t offset = table[i];
    const std::string where = "refcount table entry " + std::to_string(i) + " (offset " +
                              HexString(h_.refcount_table_offset + i * 8) + ")";
    if (offset % cs_ != 0) {
      Corruption(where + ": refcount block offset " + HexString(offset) +
                 " is not cluster aligned");
      continue;
    }
    if (offset / cs_ >= nb_clusters_) {
      Corruption(where + ": refcount block " + HexString(offset) + " is outside the image");
      continue;
    }
    if (offset == 0)
      continue;
    Reference(offset, cs_, where + " refcount block");
    const uint64_t count = refs_.Get(offset / cs_);
    if (count != 1)
      Corruption(where + ": refcount block at " + HexString(offset) + " is referenced " +
                 std::to_string(count) + " times");
  }
}

void Checker::CompareRefcounts() {
  const uint64_t end = std::max(nb_clusters_, refs_.end());
  for (uint64_t i = 0; i < end; ++i) {
    const std::optional<uint64_t> stored = stored_.Get(i);
    if (!stored) {
      ++report_.check_errors;
      Problem("ERROR cannot read the refcount of cluster " + std::to_string(i) +
              ": refcount table entry " + std::to_string(i / (cs_ * 8 / h_.refcount_bits())) +
              " is not cluster aligned");
      continue;
    }
    const uint64_t computed = refs_.Get(i);
    if (*stored || computed)
      highest_cluster_ = i;
    if (*stored == computed)
      continue;
    const std::string counts = " (offset " + HexString(i * cs_) +
                               "): refcount=" + std::to_string(*stored) +
                               " reference=" + std::to_string(computed);
    if (*stored < computed) {
      ++report_.corruptions;
      Problem("ERROR cluster " + std::to_string(i) + counts);
    } else {
      ++report_.leaks;
      Problem("Leaked cluster " + std::to_string(i) + counts);
    }
  }
}

void Checker::CheckCopiedFlags() {
  image_.ForEachL1Slice([&](uint64_t first, std::span<const uint64_t> l1) {
    for (uint64_t j = 0; j < l1.size(); ++j)
      CheckCopiedFlags(first + j, l1[j]);
  });
}

void Checker::CheckCopiedFlags(uint64_t i, uint64_t l1_entry) {
  const uint64_t l2 = l1_entry & kL1OffsetMask;
  if (l2 == 0)
    return;
  const std::optional<uint64_t> rc = stored_.Get(l2 / cs_);
  if (rc && (*rc == 1) != ((l1_entry & kOflagCopied) != 0))
    Corruption("L1 table entry " + std::to_string(i) + " (offset " +
               HexString(h_.l1_table_offset + i * 8) + "): copied flag " +
               ((l1_entry & kOflagCopied) ? "set" : "clear") + " but the L2 table at " +
               HexString(l2) + " has refcount " + std::to_string(*rc));
  const uint64_t words = h_.l2_entry_bytes() / 8;
  const std::vector<uint64_t> entries = image_.ReadTableZeroPadded(l2, h_.l2_entries() * words);
  for (uint64_t j = 0; j < h_.l2_entries(); ++j) {
    const uint64_t e = entries[j * words];
    const uint64_t offset = e & kL2OffsetMask;
    if ((e & kOflagCompressed) || !HasHostCluster(e))
      continue;
    // Data file clusters count as referenced once.
    const std::optional<uint64_t> data_rc =
        has_data_file_ ? std::optional<uint64_t>{1} : stored_.Get(offset / cs_);
    if (data_rc && (*data_rc == 1) != ((e & kOflagCopied) != 0))
      Corruption("L2 table of L1 entry " + std::to_string(i) + " at " + HexString(l2) + ", entry " +
                 std::to_string(j) + " (offset " + HexString(l2 + j * 8 * words) +
                 "): copied flag " + ((e & kOflagCopied) ? "set" : "clear") +
                 " but the data cluster at " + HexString(offset) + " has refcount " +
                 std::to_string(*data_rc));
  }
}

CheckReport Checker::Run() {
  nb_clusters_ = image_.file_size() / cs_ + (image_.file_size() % cs_ != 0);
  if (nb_clusters_ > static_cast<uint64_t>(std::numeric_limits<int32_t>::max()))
    throw util::Error(image_.path() + ": the file has too many clusters to check");
  report_.total_clusters = h_.size / cs_ + (h_.size % cs_ != 0);

  Reference(0, cs_, "header");
  CheckL1(h_.l1_table_offset, h_.l1_size, /*active=*/true, "L1 table");
  const auto& snapshots = image_.snapshots();
  for (size_t i = 0; i < snapshots.size(); ++i)
    CheckL1(snapshots[i].l1_table_offset, snapshots[i].l1_size, /*active=*/false,
            "L1 table of snapshot " + std::to_string(i));
  Reference(h_.snapshots_offset, image_.snapshot_table_bytes(), "snapshot table");
  Reference(h_.refcount_table_offset, uint64_t{h_.refcount_table_clusters} * cs_, "refcount table");
  if (const HeaderExtension* crypto = h_.FindExtension(kExtFullDiskEncryption);
      crypto && crypto->data.size() >= 16)
    Reference(util::LoadBE64(crypto->data.data()), util::LoadBE64(crypto->data.data() + 8),
              "encryption header");
  CheckBitmaps();
  CheckRefcountBlocks();
  CompareRefcounts();
  CheckCopiedFlags();
  report_.image_end_offset = (highest_cluster_ + 1) * cs_;
  return std::move(report_);
}

}  // namespace

CheckReport CheckImage(const ImageView& image, const ProblemSink& problems) {
  return Checker(image, problems).Run();
}

}  // namespace qcow2
