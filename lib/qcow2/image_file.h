// The checks and decoders every reader of qcow2 files shares: the header
// read from the first cluster and validated against the file (one set of
// checks, one set of words), what reading guest data needs on top, and the
// internal snapshot table. Qcow2Reader and ImageView both start here.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "qcow2/format.h"
#include "util/file.h"
#include "util/seekable_input.h"

namespace qcow2 {

// qemu's limits on the snapshot table (QCOW_MAX_SNAPSHOTS and friends).
inline constexpr uint32_t kMaxSnapshots = 65536;
inline constexpr uint64_t kMaxSnapshotExtraData = 1024;
inline constexpr uint64_t kMaxSnapshotTableBytes = 64ull << 20;

// Reads the header and its extensions from the file's first cluster,
// decodes them and runs ValidateHeader. Throws util::Error (file, offset).
Header LoadHeader(const util::File& file, uint64_t file_size);

// The checks every user needs to find the image's tables: unknown
// incompatible features, the virtual size, and the L1 and refcount tables'
// sizes, alignment and place in the file. An L1 table over qemu's 32 MiB
// limit is accepted when it lies within the file (e2fsprogs' e2image writes
// such tables for filesystems over 8 TiB); users read only the entries
// that map the virtual size, or read the table in slices.
void ValidateHeader(const Header& h, uint64_t file_size, const std::string& path);

// What reading guest data needs on top of ValidateHeader (no encryption,
// known compression, extended L2 cluster sizes, data file name); returns
// the warnings to print (dirty or corrupt bits), one line each.
std::vector<std::string> ValidateForReading(const Header& h, const std::string& path);

// The bytes LoadHeader, ReadSnapshotTable and ReadBitmapDirectory can read
// beyond the header cluster, judged from the file's first bytes (its header
// cluster, up to the largest cluster size): what a reader that loads only
// these (qcow2-inspect info) must keep of an image read from a stream.
// Everything when the bytes are not a qcow2 header (an error message then
// probes the content anywhere); nothing when the header does not decode.
std::vector<util::ByteRange> HeaderLoadRanges(std::span<const uint8_t> first_bytes);

// Reads words.size() big-endian table entries at offset into words.
void ReadBigEndianTable(const util::File& file, uint64_t offset, std::span<uint64_t> words);

// One entry of the internal snapshot table.
struct Snapshot {
  uint64_t entry_offset = 0;  // where the entry starts in the file
  uint64_t l1_table_offset = 0;
  uint32_t l1_size = 0;
  std::string id;
  std::string name;
  uint32_t date_sec = 0;
  uint32_t date_nsec = 0;
  uint64_t vm_clock_nsec = 0;
  uint64_t vm_state_size = 0;  // the large field when present
  std::optional<uint64_t> disk_size;
  std::optional<uint64_t> icount;
  uint32_t extra_data_size = 0;
};

// The decoded snapshot table.
struct SnapshotTable {
  std::vector<Snapshot> entries;
  uint64_t bytes = 0;           // with the last entry's padding
  uint64_t unpadded_bytes = 0;  // qemu does not write the last entry's padding
};

// Reads and checks the snapshot table (count, alignment, bounds, qemu's
// size limits, each snapshot's L1 table size and alignment). Throws
// util::Error naming the entry and its offset.
SnapshotTable ReadSnapshotTable(const util::File& file, uint64_t file_size, const Header& h);

// One entry of the bitmap directory.
struct Bitmap {
  uint64_t entry_offset = 0;
  uint64_t table_offset = 0;
  uint32_t table_size = 0;  // entries
  uint32_t flags = 0;
  uint8_t type = 0;
  uint8_t granularity_bits = 0;
  uint32_t extra_data_size = 0;
  std::string name;
  // Entries the table needs for the virtual size at this granularity.
  uint64_t table_entries_needed(uint64_t virtual_size, uint64_t cluster_size) const;
};
inline constexpr uint32_t kBitmapFlagInUse = 1u << 0;
inline constexpr uint32_t kBitmapFlagAuto = 1u << 1;
inline constexpr uint32_t kBitmapFlagExtraDataCompatible = 1u << 2;

// The bitmaps header extension.
struct BitmapsExtension {
  uint32_t nb_bitmaps = 0;
  uint64_t directory_size = 0;
  uint64_t directory_offset = 0;
};

// The bitmap directory, decoded once.
struct BitmapDirectory {
  std::optional<BitmapsExtension> extension;  // as stored, when present
  std::vector<Bitmap> bitmaps;                // only when the autoclear bit makes it valid
};

// Reads and checks the bitmaps extension and, when the bitmaps autoclear
// bit is set (qemu ignores a stale extension), the bitmap directory: counts
// and sizes in qemu's limits, the directory aligned and inside the file,
// each entry inside the directory with a name. Throws util::Error naming
// the entry and the offset.
BitmapDirectory ReadBitmapDirectory(const util::File& file, uint64_t file_size, const Header& h);

}  // namespace qcow2
