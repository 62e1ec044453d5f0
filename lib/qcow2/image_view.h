// ImageView opens any qcow2 file for inspection: it loads the header and the
// snapshot table as every reader does (image_file.h), the bitmap directory, and reads tables with
// bounds checks, without trusting the image to be consistent. qcow2-inspect's info, check, map and
// dump all work on it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "qcow2/format.h"
#include "qcow2/image_file.h"
#include "util/file.h"

namespace qcow2 {

// Bitmap table entry bits.
inline constexpr uint64_t kBitmapEntryOffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kBitmapEntryAllOnes = 1;
inline constexpr uint64_t kBitmapEntryReserved = 0xff000000000001feull;
// qemu's limit on one bitmap table.
inline constexpr uint64_t kMaxBitmapTableEntries = 0x8000000;

// The kind of one bitmap table entry.
enum class BitmapEntryKind { kSerialized, kAllZeroes, kAllOnes, kInvalid };
BitmapEntryKind ClassifyBitmapEntry(uint64_t entry, uint64_t cluster_size);
const char* BitmapEntryKindName(BitmapEntryKind kind);

// A read-only, validating view of one qcow2 file.
class ImageView {
 public:
  // Opens and decodes the header (LoadHeader), snapshot table and bitmap
  // directory; throws util::Error (file, structure, offset) when they
  // cannot be located.
  explicit ImageView(const std::string& path);
  // The same on a file already open (a backing file found by BackingChain,
  // standard input). A copy of a stream has no allocation of its own to
  // report: `disk_size_known` false says so.
  explicit ImageView(util::File file, bool disk_size_known = true);

  const std::string& path() const { return file_.path(); }
  const util::File& file() const { return file_; }
  const Header& header() const { return header_; }
  uint64_t file_size() const { return file_size_; }
  // The bytes the file holds on its disk (those of the copy, when it is
  // not disk_size_known).
  uint64_t allocated_bytes() const { return allocated_bytes_; }
  bool disk_size_known() const { return disk_size_known_; }
  uint64_t cluster_size() const { return header_.cluster_size(); }

  const std::vector<Snapshot>& snapshots() const { return snapshots_.entries; }
  uint64_t snapshot_table_bytes() const { return snapshots_.bytes; }
  const std::optional<BitmapsExtension>& bitmaps_extension() const { return bitmaps_.extension; }
  const std::vector<Bitmap>& bitmaps() const { return bitmaps_.bitmaps; }
  // Text of the backing file format extension, if any.
  std::string backing_format() const;

  // Reads `count` big-endian u64 entries at offset; throws naming `what`
  // when they run past the end of the file.
  std::vector<uint64_t> ReadTable(uint64_t offset, uint64_t count, const std::string& what) const;
  // As ReadTable, but bytes past the end of the file read as zeros (qemu's
  // behaviour when checking).
  std::vector<uint64_t> ReadTableZeroPadded(uint64_t offset, uint64_t count) const;
  // Raw bytes, zero padded past the end of the file.
  void ReadZeroPadded(std::span<uint8_t> out, uint64_t offset) const;
  // The active L1 table, entries [first, first + count) of l1_size: large
  // tables (e2fsprogs' e2image writes them over 32 MiB) are read in slices.
  std::vector<uint64_t> ReadL1(uint64_t first, uint64_t count) const;
  // Calls fn(first, entries) for each slice of the whole L1 table (l1_size
  // entries), in order, so memory stays bounded whatever its size.
  void ForEachL1Slice(
      const std::function<void(uint64_t first, std::span<const uint64_t> entries)>& fn) const;

 private:
  void Load();
  [[noreturn]] void Fail(uint64_t offset, const std::string& what) const;

  util::File file_;
  uint64_t file_size_ = 0;
  uint64_t allocated_bytes_ = 0;
  bool disk_size_known_ = true;
  Header header_;
  SnapshotTable snapshots_;
  BitmapDirectory bitmaps_;
};

// HexString under the name the inspection tests know.
inline std::string HexOffset(uint64_t v) {
  return HexString(v);
}

}  // namespace qcow2
