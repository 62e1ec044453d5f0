#include "qcow2/image_view.h"

#include <fcntl.h>

#include <algorithm>
#include <cassert>

#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

using util::LoadBE16;
using util::LoadBE32;
using util::LoadBE64;

}  // namespace

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

ImageView::ImageView(const std::string& path) : ImageView(util::File::Open(path, O_RDONLY)) {}

ImageView::ImageView(util::File file, bool disk_size_known)
    : file_(std::move(file)), disk_size_known_(disk_size_known) {
  file_size_ = file_.Size();
  allocated_bytes_ = static_cast<uint64_t>(file_.Stat().st_blocks) * 512;
  // Only what is asked is read: read-ahead would bring data clusters into the
  // page cache, and that changes what SEEK_HOLE says of preallocated ones.
  posix_fadvise(file_.fd(), 0, 0, POSIX_FADV_RANDOM);
  header_ = LoadHeader(file_, file_size_);
  snapshots_ = ReadSnapshotTable(file_, file_size_, header_);
  bitmaps_ = ReadBitmapDirectory(file_, file_size_, header_);
}

void ImageView::Fail(uint64_t offset, const std::string& what) const {
  throw util::Error(util::AtOffset(path(), offset, what));
}

std::string ImageView::backing_format() const {
  const HeaderExtension* ext = header_.FindExtension(kExtBackingFormat);
  if (!ext)
    return "";
  return std::string(ext->data.begin(), ext->data.end());
}

std::vector<uint64_t> ImageView::ReadTable(uint64_t offset, uint64_t count,
                                           const std::string& what) const {
  // No table is read whole that is larger than qemu's largest, an L1 table.
  if (count > kMaxL1Bytes / 8)
    Fail(offset, what + " of " + std::to_string(count) + " entries is too large");
  if (offset + count * 8 > file_size_ || offset + count * 8 < offset)
    Fail(offset, what + " (" + std::to_string(count) + " entries) runs past the end of the file");
  std::vector<uint64_t> out(count);
  ReadBigEndianTable(file_, offset, out);
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
  DecodeBigEndianTable(raw, out);
  return out;
}

std::vector<uint64_t> ImageView::ReadL1(uint64_t first, uint64_t count) const {
  // LoadHeader checked that the whole table lies within the file, which
  // bounds what this allocates (no table size limit applies here).
  assert(first + count <= header_.l1_size);
  std::vector<uint64_t> out(count);
  ReadBigEndianTable(file_, header_.l1_table_offset + first * 8, out);
  return out;
}

void ImageView::ForEachL1Slice(
    const std::function<void(uint64_t first, std::span<const uint64_t> entries)>& fn) const {
  constexpr uint64_t kSliceEntries = 1 << 16;
  for (uint64_t first = 0; first < header_.l1_size; first += kSliceEntries) {
    const std::vector<uint64_t> slice =
        ReadL1(first, std::min<uint64_t>(kSliceEntries, header_.l1_size - first));
    fn(first, slice);
  }
}

}  // namespace qcow2
