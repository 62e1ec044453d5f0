#include "qcow2/image_view.h"

#include <fcntl.h>

#include <algorithm>
#include <cstdio>

#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

using util::LoadBE16;
using util::LoadBE32;
using util::LoadBE64;

constexpr uint64_t kSnapshotFixedBytes = 40;
constexpr uint64_t kMaxSnapshotTableBytes = 64ull << 20;
constexpr uint64_t kBitmapEntryFixedBytes = 24;

}  // namespace

std::string HexOffset(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t Bitmap::table_entries_needed(uint64_t virtual_size, uint64_t cluster_size) const {
  if (granularity_bits >= 64)
    return 0;
  const uint64_t granularity = uint64_t{1} << granularity_bits;
  const uint64_t bits = virtual_size / granularity + (virtual_size % granularity != 0);
  const uint64_t per_cluster = cluster_size * 8;
  return bits / per_cluster + (bits % per_cluster != 0);
}

BitmapEntryKind ClassifyBitmapEntry(uint64_t entry, uint64_t cluster_size) {
  if (entry & kBitmapEntryReserved)
    return BitmapEntryKind::kInvalid;
  const uint64_t offset = entry & kBitmapEntryOffsetMask;
  if (offset == 0)
    return entry & kBitmapEntryAllOnes ? BitmapEntryKind::kAllOnes : BitmapEntryKind::kAllZeroes;
  if ((entry & kBitmapEntryAllOnes) || offset % cluster_size != 0)
    return BitmapEntryKind::kInvalid;
  return BitmapEntryKind::kSerialized;
}

const char* BitmapEntryKindName(BitmapEntryKind kind) {
  switch (kind) {
    case BitmapEntryKind::kSerialized:
      return "serialized";
    case BitmapEntryKind::kAllZeroes:
      return "all-zeroes";
    case BitmapEntryKind::kAllOnes:
      return "all-ones";
    default:
      return "invalid";
  }
}

ImageView::ImageView(const std::string& path) : file_(util::File::Open(path, O_RDONLY)) {
  file_size_ = file_.Size();
  allocated_bytes_ = static_cast<uint64_t>(file_.Stat().st_blocks) * 512;
  // Only what is asked is read: read-ahead would bring data clusters into the
  // page cache, and that changes what SEEK_HOLE says of preallocated ones.
  posix_fadvise(file_.fd(), 0, 0, POSIX_FADV_RANDOM);
  // The header and its extensions are in the first cluster.
  uint8_t fixed[24] = {};
  file_.ReadUpTo(fixed, 0);
  std::vector<uint8_t> first(std::min<uint64_t>(file_size_, HeaderClusterBytes(fixed)));
  file_.ReadAt(first, 0);
  header_ = DecodeHeader(first, path);
  ValidateHeader();
  LoadSnapshots();
  LoadBitmaps();
}

void ImageView::Fail(uint64_t offset, const std::string& what) const {
  throw util::Error(util::AtOffset(path(), offset, what));
}

void ImageView::ValidateHeader() {
  const Header& h = header_;
  const uint64_t cs = h.cluster_size();
  const uint64_t unknown = h.incompatible_features & ~kIncompatKnown;
  if (unknown)
    Fail(72, "header: unknown incompatible feature bits " + HexOffset(unknown));
  if (h.size > (uint64_t{1} << 62))
    Fail(24, "header: virtual size " + std::to_string(h.size) + " is too large");
  if (h.refcount_table_offset % cs != 0)
    Fail(48, "header: refcount table offset " + HexOffset(h.refcount_table_offset) +
                 " is not cluster aligned");
  const uint64_t reftable_bytes = uint64_t{h.refcount_table_clusters} * cs;
  if (reftable_bytes > kMaxRefcountTableBytes)
    Fail(56, "header: refcount table of " + std::to_string(h.refcount_table_clusters) +
                 " clusters is over qemu's 8 MiB limit");
  if (h.refcount_table_offset + reftable_bytes > file_size_)
    Fail(h.refcount_table_offset, "refcount table (" + std::to_string(reftable_bytes) +
                                      " bytes) runs past the end of the file");
  if (uint64_t{h.l1_size} * 8 > kMaxL1Bytes)
    Fail(36, "header: L1 table of " + std::to_string(h.l1_size) +
                 " entries is over qemu's 32 MiB limit");
  if (h.l1_size < h.l1_entries_needed())
    Fail(36, "header: L1 table has " + std::to_string(h.l1_size) +
                 " entries, too few for virtual size " + std::to_string(h.size));
  if (h.l1_table_offset % cs != 0)
    Fail(40, "header: L1 table offset " + HexOffset(h.l1_table_offset) + " is not cluster aligned");
  if (h.l1_size && h.l1_table_offset + uint64_t{h.l1_size} * 8 > file_size_)
    Fail(h.l1_table_offset,
         "L1 table (" + std::to_string(h.l1_size) + " entries) runs past the end of the file");
}

std::string ImageView::backing_format() const {
  const HeaderExtension* ext = header_.FindExtension(kExtBackingFormat);
  if (!ext)
    return "";
  return std::string(ext->data.begin(), ext->data.end());
}

void ImageView::LoadSnapshots() {
  const Header& h = header_;
  if (h.nb_snapshots == 0)
    return;
  if (h.nb_snapshots > kMaxSnapshots)
    Fail(60, "header: " + std::to_string(h.nb_snapshots) + " snapshots is over qemu's limit");
  if (h.snapshots_offset % cluster_size() != 0)
    Fail(64, "header: snapshot table offset " + HexOffset(h.snapshots_offset) +
                 " is not cluster aligned");
  uint64_t at = h.snapshots_offset;
  for (uint32_t i = 0; i < h.nb_snapshots; ++i) {
    const std::string where = "snapshot table entry " + std::to_string(i);
    uint8_t fixed[kSnapshotFixedBytes];
    if (at + sizeof fixed > file_size_)
      Fail(at, where + " runs past the end of the file");
    file_.ReadAt(fixed, at);
    Snapshot s;
    s.entry_offset = at;
    s.l1_table_offset = LoadBE64(fixed);
    s.l1_size = LoadBE32(fixed + 8);
    const uint16_t id_size = LoadBE16(fixed + 12);
    const uint16_t name_size = LoadBE16(fixed + 14);
    s.date_sec = LoadBE32(fixed + 16);
    s.date_nsec = LoadBE32(fixed + 20);
    s.vm_clock_nsec = LoadBE64(fixed + 24);
    s.vm_state_size = LoadBE32(fixed + 32);
    s.extra_data_size = LoadBE32(fixed + 36);
    if (s.extra_data_size > kMaxSnapshotExtraData)
      Fail(at + 36, where + ": extra data size " + std::to_string(s.extra_data_size) +
                        " is over qemu's limit of 1024");
    const uint64_t rest = uint64_t{s.extra_data_size} + id_size + name_size;
    if (at + sizeof fixed + rest > file_size_)
      Fail(at, where + " runs past the end of the file");
    std::vector<uint8_t> body(rest);
    file_.ReadAt(body, at + sizeof fixed);
    const uint8_t* extra = body.data();
    if (s.extra_data_size >= 8)
      s.vm_state_size = LoadBE64(extra);
    if (s.extra_data_size >= 16)
      s.disk_size = LoadBE64(extra + 8);
    if (s.extra_data_size >= 24)
      s.icount = LoadBE64(extra + 16);
    const char* text = reinterpret_cast<const char*>(body.data() + s.extra_data_size);
    s.id.assign(text, id_size);
    s.name.assign(text + id_size, name_size);
    if (uint64_t{s.l1_size} * 8 > kMaxL1Bytes)
      Fail(at + 8, where + ": L1 table of " + std::to_string(s.l1_size) +
                       " entries is over qemu's 32 MiB limit");
    if (s.l1_table_offset % cluster_size() != 0)
      Fail(at,
           where + ": L1 table offset " + HexOffset(s.l1_table_offset) + " is not cluster aligned");
    at += AlignUp8(sizeof fixed + rest);
    if (at - h.snapshots_offset > kMaxSnapshotTableBytes)
      Fail(h.snapshots_offset, "snapshot table is over qemu's 64 MiB limit");
    snapshots_.push_back(std::move(s));
  }
  snapshot_table_bytes_ = at - h.snapshots_offset;
}

void ImageView::LoadBitmaps() {
  const HeaderExtension* ext = header_.FindExtension(kExtBitmaps);
  if (!ext)
    return;
  if (ext->data.size() < 24)
    Fail(header_.header_length, "bitmaps header extension is shorter than 24 bytes");
  BitmapsExtension b;
  b.nb_bitmaps = LoadBE32(ext->data.data());
  b.directory_size = LoadBE64(ext->data.data() + 8);
  b.directory_offset = LoadBE64(ext->data.data() + 16);
  bitmaps_ext_ = b;
  // qemu ignores the extension when the autoclear bit is clear.
  if (!(header_.autoclear_features & kAutoclearBitmaps))
    return;
  if (b.nb_bitmaps == 0 || b.nb_bitmaps > kMaxBitmaps)
    Fail(header_.header_length, "bitmaps extension: bitmap count " + std::to_string(b.nb_bitmaps) +
                                    " is out of range 1.." + std::to_string(kMaxBitmaps));
  if (b.directory_size > kMaxBitmapDirectoryBytes || b.directory_size < kBitmapEntryFixedBytes)
    Fail(header_.header_length, "bitmaps extension: bitmap directory size " +
                                    std::to_string(b.directory_size) + " is out of range");
  if (b.directory_offset % cluster_size() != 0)
    Fail(b.directory_offset, "bitmap directory is not cluster aligned");
  if (b.directory_offset + b.directory_size > file_size_ ||
      b.directory_offset + b.directory_size < b.directory_offset)
    Fail(b.directory_offset, "bitmap directory (" + std::to_string(b.directory_size) +
                                 " bytes) runs past the end of the file");
  std::vector<uint8_t> dir(b.directory_size);
  file_.ReadAt(dir, b.directory_offset);
  uint64_t at = 0;
  for (uint32_t i = 0; i < b.nb_bitmaps; ++i) {
    const std::string where = "bitmap directory entry " + std::to_string(i);
    if (at + kBitmapEntryFixedBytes > dir.size())
      Fail(b.directory_offset + at, where + " runs past the directory size");
    const uint8_t* p = dir.data() + at;
    Bitmap bm;
    bm.entry_offset = b.directory_offset + at;
    bm.table_offset = LoadBE64(p);
    bm.table_size = LoadBE32(p + 8);
    bm.flags = LoadBE32(p + 12);
    bm.type = p[16];
    bm.granularity_bits = p[17];
    const uint16_t name_size = LoadBE16(p + 18);
    bm.extra_data_size = LoadBE32(p + 20);
    const uint64_t len = kBitmapEntryFixedBytes + uint64_t{bm.extra_data_size} + name_size;
    if (at + len > dir.size())
      Fail(bm.entry_offset, where + " runs past the directory size");
    bm.name.assign(reinterpret_cast<const char*>(p + kBitmapEntryFixedBytes + bm.extra_data_size),
                   name_size);
    bitmaps_.push_back(std::move(bm));
    at += AlignUp8(len);
  }
}

std::vector<uint64_t> ImageView::ReadTable(uint64_t offset, uint64_t count,
                                           const std::string& what) const {
  // No table is read whole that is larger than qemu's largest, an L1 table.
  if (count > kMaxL1Bytes / 8)
    Fail(offset, what + " of " + std::to_string(count) + " entries is too large");
  if (offset + count * 8 > file_size_ || offset + count * 8 < offset)
    Fail(offset, what + " (" + std::to_string(count) + " entries) runs past the end of the file");
  std::vector<uint8_t> raw(count * 8);
  file_.ReadAt(raw, offset);
  std::vector<uint64_t> out(count);
  for (uint64_t i = 0; i < count; ++i)
    out[i] = LoadBE64(&raw[i * 8]);
  return out;
}

void ImageView::ReadZeroPadded(std::span<uint8_t> out, uint64_t offset) const {
  std::fill(out.begin(), out.end(), 0);
  if (offset >= file_size_)
    return;
  const uint64_t n = std::min<uint64_t>(out.size(), file_size_ - offset);
  file_.ReadAt(out.first(n), offset);
}

std::vector<uint64_t> ImageView::ReadTableZeroPadded(uint64_t offset, uint64_t count) const {
  std::vector<uint8_t> raw(count * 8);
  ReadZeroPadded(raw, offset);
  std::vector<uint64_t> out(count);
  for (uint64_t i = 0; i < count; ++i)
    out[i] = LoadBE64(&raw[i * 8]);
  return out;
}

std::vector<uint64_t> ImageView::ReadL1() const {
  return ReadTable(header_.l1_table_offset, header_.l1_size, "L1 table");
}

}  // namespace qcow2
