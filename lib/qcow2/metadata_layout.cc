#include "qcow2/metadata_layout.h"

#include <vector>

#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

// qemu's limit on one bitmap table.
constexpr uint64_t kMaxBitmapTableBytes = 64ull << 20;

std::string Entry(const std::string& table, uint64_t index) {
  return table + " entry " + std::to_string(index);
}

}  // namespace

MetadataLayout::MetadataLayout(std::string path, uint64_t file_size, uint64_t cluster_size)
    : path_(std::move(path)), file_size_(file_size), cluster_size_(cluster_size) {
  ranges_.emplace(0, Range{cluster_size, "the header cluster"});
}

void MetadataLayout::Fail(uint64_t where, const std::string& what, uint64_t start,
                          const std::string& problem) const {
  throw util::Error(util::AtOffset(path_, where, what + " " + HexString(start) + " " + problem));
}

const std::pair<const uint64_t, MetadataLayout::Range>* MetadataLayout::Overlap(
    uint64_t start, uint64_t end) const {
  auto it = ranges_.lower_bound(end);  // first range starting at or after end
  if (it == ranges_.begin())
    return nullptr;
  --it;
  return it->second.end > start ? &*it : nullptr;
}

void MetadataLayout::CheckAligned(uint64_t offset, const std::string& what, uint64_t where) const {
  if (offset % cluster_size_ != 0)
    Fail(where, what, offset, "is not cluster aligned");
}

std::string MetadataLayout::DataProblem(uint64_t start, uint64_t length) const {
  const uint64_t end = start + length;
  if (end < start || end > file_size_)
    return HexString(start) + " (length " + std::to_string(length) +
           ") runs past the end of the file (size " + std::to_string(file_size_) + ")";
  if (const auto* hit = Overlap(start, end))
    return HexString(start) + " overlaps " + hit->second.name;
  return {};
}

void MetadataLayout::Claim(uint64_t start, uint64_t length, const std::string& what,
                           uint64_t where) {
  CheckAligned(start, what, where);
  const uint64_t end = start + length;
  if (end < start || end > file_size_)
    Fail(where, what, start,
         "(length " + std::to_string(length) + ") runs past the end of the file (size " +
             std::to_string(file_size_) + ")");
  if (const auto* hit = Overlap(start, end)) {
    Fail(where, what, start, "overlaps " + hit->second.name);
  }
  ranges_.emplace(start, Range{end, what + " (" + HexString(start) + ")"});
}

void ClaimRefcountTables(const util::File& file, const Header& h, MetadataLayout& layout) {
  const uint64_t cs = h.cluster_size();
  const uint64_t bytes = uint64_t{h.refcount_table_clusters} * cs;
  if (h.refcount_table_clusters == 0)
    throw util::Error(util::AtOffset(layout.path(), 56, "refcount table has no clusters"));
  if (bytes > kMaxRefcountTableBytes)
    throw util::Error(util::AtOffset(
        layout.path(), 56,
        "refcount table of " + std::to_string(bytes) + " bytes is over the 8 MiB limit"));
  layout.Claim(h.refcount_table_offset, bytes, "refcount table", 48);
  std::vector<uint8_t> raw(bytes);
  file.ReadAt(raw, h.refcount_table_offset);
  for (uint64_t i = 0; i < bytes / 8; ++i) {
    const uint64_t entry = util::LoadBE64(&raw[i * 8]);
    if (entry == 0)
      continue;
    const uint64_t where = h.refcount_table_offset + i * 8;
    if (entry & 0x1ff)
      throw util::Error(util::AtOffset(
          layout.path(), where,
          Entry("refcount table", i) + ": reserved bits set in " + HexString(entry)));
    layout.Claim(entry, cs, Entry("refcount table", i) + ": refcount block", where);
  }
}

void ClaimSnapshots(const SnapshotTable& table, const Header& h, MetadataLayout& layout) {
  for (size_t i = 0; i < table.entries.size(); ++i) {
    const Snapshot& s = table.entries[i];
    const std::string name = Entry("snapshot table", i);
    if (h.version >= 3 && s.extra_data_size < 16)
      throw util::Error(util::AtOffset(layout.path(), s.entry_offset + 36,
                                       name + ": extra data of " +
                                           std::to_string(s.extra_data_size) +
                                           " bytes, version 3 needs 16"));
    if (s.l1_size)
      layout.Claim(s.l1_table_offset, uint64_t{s.l1_size} * 8, name + ": L1 table", s.entry_offset);
  }
  if (!table.entries.empty())
    layout.Claim(h.snapshots_offset, table.unpadded_bytes, "snapshot table", 64);
}

void ClaimBitmaps(const BitmapDirectory& dir, const Header& h, MetadataLayout& layout) {
  if (dir.bitmaps.empty())
    return;  // no extension, or a stale one
  const HeaderExtension* ext = h.FindExtension(kExtBitmaps);
  layout.Claim(dir.extension->directory_offset, dir.extension->directory_size, "bitmap directory",
               ext->offset + 16);
  for (size_t i = 0; i < dir.bitmaps.size(); ++i) {
    const Bitmap& bm = dir.bitmaps[i];
    const std::string name = Entry("bitmap directory", i);
    if (uint64_t{bm.table_size} * 8 > kMaxBitmapTableBytes)
      throw util::Error(
          util::AtOffset(layout.path(), bm.entry_offset + 8, name + ": bitmap table too large"));
    if (bm.table_size)
      layout.Claim(bm.table_offset, uint64_t{bm.table_size} * 8, name + ": bitmap table",
                   bm.entry_offset);
  }
}

std::string DescribeIncompatibleBits(const Header& h, uint64_t bits) {
  const HeaderExtension* names = h.FindExtension(kExtFeatureNames);
  std::string out;
  for (uint32_t bit = 0; bit < 64; ++bit) {
    if (!(bits & (uint64_t{1} << bit)))
      continue;
    if (!out.empty())
      out += ", ";
    out += "bit " + std::to_string(bit);
    for (size_t at = 0; names && at + 48 <= names->data.size(); at += 48) {
      const uint8_t* e = &names->data[at];
      if (e[0] != 0 || e[1] != bit)
        continue;
      std::string name(reinterpret_cast<const char*>(e + 2), 46);
      name.resize(name.find('\0') == std::string::npos ? 46 : name.find('\0'));
      out += " (" + name + ")";
      break;
    }
  }
  return out;
}

}  // namespace qcow2
