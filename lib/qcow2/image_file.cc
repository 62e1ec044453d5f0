#include "qcow2/image_file.h"

#include <algorithm>

#include "qcow2/backing.h"
#include "qcow2/metadata_layout.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

// Smallest cluster that still gives 512-byte subclusters (qemu's rule too).
constexpr uint32_t kMinExtendedL2ClusterBits = 14;
constexpr uint64_t kSnapshotFixedBytes = 40;
constexpr uint64_t kBitmapEntryFixedBytes = 24;
// qemu's limits on bitmaps.
constexpr uint32_t kMaxBitmaps = 65535;
constexpr uint64_t kMaxBitmapDirectoryBytes = 64ull << 20;

[[noreturn]] void Fail(const std::string& path, uint64_t offset, const std::string& what) {
  throw util::Error(util::AtOffset(path, offset, what));
}

// Throws unless the table [offset, offset + bytes) is cluster aligned and
// inside the file; `where` is the header field that points at it.
void CheckTablePlace(const Header& h, uint64_t file_size, const std::string& path,
                     const std::string& what, uint64_t offset, uint64_t bytes, uint64_t where) {
  if (offset % h.cluster_size() != 0)
    Fail(path, where, what + " " + HexString(offset) + " is not cluster aligned");
  if (offset + bytes > file_size || offset + bytes < offset)
    Fail(path, where,
         what + " " + HexString(offset) + " (length " + std::to_string(bytes) +
             ") runs past the end of the file (size " + std::to_string(file_size) + ")");
}

}  // namespace

Header LoadHeader(const util::File& file, uint64_t file_size) {
  // The header and its extensions are in the first cluster: only that is read.
  uint8_t fixed[24] = {};
  file.ReadUpTo(fixed, 0);
  std::vector<uint8_t> first(std::min<uint64_t>(file_size, HeaderClusterBytes(fixed)));
  file.ReadAt(first, 0);
  Header h = DecodeHeader(first, file.path());
  ValidateHeader(h, file_size, file.path());
  return h;
}

std::vector<util::ByteRange> HeaderLoadRanges(std::span<const uint8_t> first_bytes) {
  if (first_bytes.size() < 4 || !HasQcow2Magic(first_bytes))
    return {{0, UINT64_MAX}};
  Header h;
  try {
    h = DecodeHeader(
        first_bytes.first(std::min<uint64_t>(first_bytes.size(), HeaderClusterBytes(first_bytes))),
        "");
  } catch (const util::Error&) {
    return {};
  }
  std::vector<util::ByteRange> ranges;
  // Entries start within the 64 MiB limit; each one's names and extra data
  // follow it.
  constexpr uint64_t kLastEntryBytes = kSnapshotFixedBytes + kMaxSnapshotExtraData + 2 * 65535 + 8;
  if (h.nb_snapshots)
    ranges.push_back({h.snapshots_offset, kMaxSnapshotTableBytes + kLastEntryBytes});
  if (const HeaderExtension* ext = h.FindExtension(kExtBitmaps); ext && ext->data.size() >= 24) {
    const uint64_t size = util::LoadBE64(ext->data.data() + 8);
    if (size <= kMaxBitmapDirectoryBytes)
      ranges.push_back({util::LoadBE64(ext->data.data() + 16), size});
  }
  return ranges;
}

void ValidateHeader(const Header& h, uint64_t file_size, const std::string& path) {
  if (const uint64_t unknown = h.incompatible_features & ~kIncompatKnown)
    Fail(path, 72, "unknown incompatible qcow2 feature " + DescribeIncompatibleBits(h, unknown));
  if (h.size > (uint64_t{1} << 62))
    Fail(path, 24, "virtual size " + std::to_string(h.size) + " is too large");
  const uint64_t l1_bytes = uint64_t{h.l1_size} * 8;
  if (l1_bytes > kMaxL1Bytes &&
      (h.l1_table_offset + l1_bytes > file_size || h.l1_table_offset + l1_bytes < l1_bytes))
    Fail(path, 36,
         "L1 table of " + std::to_string(h.l1_size) + " entries is over the 32 MiB limit");
  if (h.l1_size < h.l1_entries_needed())
    Fail(path, 36,
         "L1 table has " + std::to_string(h.l1_size) + " entries, too few for virtual size " +
             std::to_string(h.size));
  if (h.l1_size)
    CheckTablePlace(h, file_size, path, "L1 table", h.l1_table_offset, l1_bytes, 40);
  const uint64_t reftable_bytes = uint64_t{h.refcount_table_clusters} * h.cluster_size();
  if (reftable_bytes > kMaxRefcountTableBytes)
    Fail(path, 56,
         "refcount table of " + std::to_string(reftable_bytes) + " bytes is over the 8 MiB limit");
  CheckTablePlace(h, file_size, path, "refcount table", h.refcount_table_offset, reftable_bytes,
                  48);
}

std::vector<std::string> ValidateForReading(const Header& h, const std::string& path) {
  if (h.crypt_method == 1)
    Fail(path, 32, "AES-encrypted qcow2 images are not supported");
  if (h.crypt_method == 2)
    Fail(path, 32, "LUKS-encrypted qcow2 images are not supported");
  if (h.crypt_method != 0)
    Fail(path, 32, "unknown encryption method " + std::to_string(h.crypt_method));
  if (const HeaderExtension* fde = h.FindExtension(kExtFullDiskEncryption))
    Fail(path, fde->offset - 8, "full disk encryption header extension in an unencrypted image");
  if ((h.incompatible_features & kIncompatCompression) &&
      h.compression_type == CompressionType::kZlib)
    Fail(path, 72, "compression type bit set but the compression type is zlib");
  if (h.extended_l2() && h.cluster_bits < kMinExtendedL2ClusterBits)
    Fail(path, 20,
         "extended L2 entries need clusters of at least 16 KiB, not " +
             std::to_string(h.cluster_size()));
  if ((h.incompatible_features & kIncompatDataFile) && DataFileName(h).empty())
    Fail(path, 72, "external data file bit set but no data file name extension");
  if ((h.incompatible_features & kIncompatDataFile) && h.nb_snapshots)
    Fail(path, 60, "internal snapshots in an image with an external data file");
  std::vector<std::string> warnings;
  if (h.incompatible_features & kIncompatDirty)
    warnings.push_back(path + ": image is marked dirty (refcounts may be stale); reading anyway");
  if (h.incompatible_features & kIncompatCorrupt)
    warnings.push_back(path + ": image is marked corrupt; reading anyway");
  return warnings;
}

void ReadBigEndianTable(const util::File& file, uint64_t offset, std::span<uint64_t> words) {
  // Read in place and swapped word by word: no second buffer of the
  // table's size.
  const std::span<uint8_t> raw(reinterpret_cast<uint8_t*>(words.data()), words.size_bytes());
  file.ReadAt(raw, offset);
  for (uint64_t& w : words)
    w = util::LoadBE64(reinterpret_cast<const uint8_t*>(&w));
}

SnapshotTable ReadSnapshotTable(const util::File& file, uint64_t file_size, const Header& h) {
  SnapshotTable table;
  if (h.nb_snapshots == 0)
    return table;
  const std::string& path = file.path();
  if (h.nb_snapshots > kMaxSnapshots)
    Fail(path, 60,
         "snapshot table: " + std::to_string(h.nb_snapshots) + " snapshots, more than 65536");
  if (h.snapshots_offset % h.cluster_size() != 0)
    Fail(path, 64, "snapshot table " + HexString(h.snapshots_offset) + " is not cluster aligned");
  uint64_t at = h.snapshots_offset;
  for (uint32_t i = 0; i < h.nb_snapshots; ++i) {
    const std::string where = "snapshot table entry " + std::to_string(i);
    uint8_t fixed[kSnapshotFixedBytes];
    if (at - h.snapshots_offset + sizeof fixed > kMaxSnapshotTableBytes)
      Fail(path, at, where + ": snapshot table is over 64 MiB");
    if (at + sizeof fixed > file_size)
      Fail(path, at, where + " runs past the end of the file");
    file.ReadAt(fixed, at);
    Snapshot s;
    s.entry_offset = at;
    s.l1_table_offset = util::LoadBE64(fixed);
    s.l1_size = util::LoadBE32(fixed + 8);
    const uint16_t id_size = util::LoadBE16(fixed + 12);
    const uint16_t name_size = util::LoadBE16(fixed + 14);
    s.date_sec = util::LoadBE32(fixed + 16);
    s.date_nsec = util::LoadBE32(fixed + 20);
    s.vm_clock_nsec = util::LoadBE64(fixed + 24);
    s.vm_state_size = util::LoadBE32(fixed + 32);
    s.extra_data_size = util::LoadBE32(fixed + 36);
    if (s.extra_data_size > kMaxSnapshotExtraData)
      Fail(path, at + 36,
           where + ": extra data size " + std::to_string(s.extra_data_size) +
               " is over qemu's limit of 1024");
    const uint64_t rest = uint64_t{s.extra_data_size} + id_size + name_size;
    if (at + sizeof fixed + rest > file_size)
      Fail(path, at, where + " runs past the end of the file");
    std::vector<uint8_t> body(rest);
    file.ReadAt(body, at + sizeof fixed);
    const uint8_t* extra = body.data();
    if (s.extra_data_size >= 8)
      s.vm_state_size = util::LoadBE64(extra);
    if (s.extra_data_size >= 16)
      s.disk_size = util::LoadBE64(extra + 8);
    if (s.extra_data_size >= 24)
      s.icount = util::LoadBE64(extra + 16);
    const char* text = reinterpret_cast<const char*>(body.data() + s.extra_data_size);
    s.id.assign(text, id_size);
    s.name.assign(text + id_size, name_size);
    if (uint64_t{s.l1_size} * 8 > kMaxL1Bytes)
      Fail(path, at + 8,
           where + ": L1 table of " + std::to_string(s.l1_size) +
               " entries is over the 32 MiB limit");
    if (s.l1_table_offset % h.cluster_size() != 0)
      Fail(path, at,
           where + ": L1 table " + HexString(s.l1_table_offset) + " is not cluster aligned");
    table.unpadded_bytes = at + sizeof fixed + rest - h.snapshots_offset;
    at += AlignUp8(sizeof fixed + rest);
    table.entries.push_back(std::move(s));
  }
  table.bytes = at - h.snapshots_offset;
  if (table.unpadded_bytes > kMaxSnapshotTableBytes)
    Fail(path, 64, "snapshot table is over 64 MiB");
  return table;
}

BitmapDirectory ReadBitmapDirectory(const util::File& file, uint64_t file_size, const Header& h) {
  BitmapDirectory dir;
  const HeaderExtension* ext = h.FindExtension(kExtBitmaps);
  if (!ext)
    return dir;
  const std::string& path = file.path();
  const bool valid = h.autoclear_features & kAutoclearBitmaps;  // else a stale extension
  if (ext->data.size() < 24) {
    if (!valid)
      return dir;
    Fail(path, ext->offset - 4,
         "bitmaps header extension is " + std::to_string(ext->data.size()) + " bytes, needs 24");
  }
  const uint8_t* p = ext->data.data();
  BitmapsExtension& b = dir.extension.emplace();
  b.nb_bitmaps = util::LoadBE32(p);
  b.directory_size = util::LoadBE64(p + 8);
  b.directory_offset = util::LoadBE64(p + 16);
  if (!valid)
    return dir;
  if (b.nb_bitmaps == 0 || b.nb_bitmaps > kMaxBitmaps)
    Fail(path, ext->offset,
         "bitmaps header extension: bitmap count " + std::to_string(b.nb_bitmaps) +
             " out of range 1..65535");
  if (util::LoadBE32(p + 4) != 0)
    Fail(path, ext->offset + 4, "bitmaps header extension: reserved field is not zero");
  if (b.directory_size > kMaxBitmapDirectoryBytes || b.directory_size < kBitmapEntryFixedBytes)
    Fail(path, ext->offset + 8,
         "bitmap directory size " + std::to_string(b.directory_size) + " out of range 24..64 MiB");
  CheckTablePlace(h, file_size, path, "bitmap directory", b.directory_offset, b.directory_size,
                  ext->offset + 16);
  std::vector<uint8_t> raw(b.directory_size);
  file.ReadAt(raw, b.directory_offset);
  uint64_t at = 0;
  for (uint32_t i = 0; i < b.nb_bitmaps; ++i) {
    const std::string name = "bitmap directory entry " + std::to_string(i);
    const uint64_t where = b.directory_offset + at;
    if (at + kBitmapEntryFixedBytes > raw.size())
      Fail(path, where, name + " runs past the directory's end");
    const uint8_t* e = raw.data() + at;
    Bitmap bm;
    bm.entry_offset = where;
    bm.table_offset = util::LoadBE64(e);
    bm.table_size = util::LoadBE32(e + 8);
    bm.flags = util::LoadBE32(e + 12);
    bm.type = e[16];
    bm.granularity_bits = e[17];
    const uint16_t name_size = util::LoadBE16(e + 18);
    bm.extra_data_size = util::LoadBE32(e + 20);
    if (name_size == 0)
      Fail(path, where + 18, name + ": empty bitmap name");
    const uint64_t length = kBitmapEntryFixedBytes + uint64_t{bm.extra_data_size} + name_size;
    if (at + length > raw.size())
      Fail(path, where, name + " runs past the directory's end");
    bm.name.assign(reinterpret_cast<const char*>(e + kBitmapEntryFixedBytes + bm.extra_data_size),
                   name_size);
    dir.bitmaps.push_back(std::move(bm));
    at += AlignUp8(length);
  }
  return dir;
}

}  // namespace qcow2
