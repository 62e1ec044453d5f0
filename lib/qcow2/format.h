// The qcow2 on-disk format (qemu docs/interop/qcow2.txt): constants, the
// header with its extensions, and L1/L2 entry encoding. Pure data: no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace qcow2 {

inline constexpr uint32_t kMagic = 0x514649fb;  // "QFI\xfb"
inline constexpr uint32_t kV2HeaderSize = 72;
inline constexpr uint32_t kV3HeaderSize = 104;
inline constexpr uint32_t kMinClusterBits = 9;
inline constexpr uint32_t kMaxClusterBits = 21;
// qemu refuses L1 tables larger than this (QCOW_MAX_L1_SIZE).
inline constexpr uint64_t kMaxL1Bytes = 32ull << 20;
// qemu refuses refcount tables larger than this (QCOW_MAX_REFTABLE_SIZE).
inline constexpr uint64_t kMaxRefcountTableBytes = 8ull << 20;

// L1 and L2 entry bits.
inline constexpr uint64_t kOflagCopied = 1ull << 63;
inline constexpr uint64_t kOflagCompressed = 1ull << 62;
inline constexpr uint64_t kOflagZero = 1ull;
inline constexpr uint64_t kL1OffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kL2OffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kRefcountTableOffsetMask = 0xfffffffffffffe00ull;

// n rounded up to a multiple of 8: header extensions, snapshot table entries
// and bitmap directory entries are padded so.
inline constexpr uint64_t AlignUp8(uint64_t n) {
  return (n + 7) & ~uint64_t{7};
}

// Incompatible feature bits (v3).
inline constexpr uint64_t kIncompatDirty = 1ull << 0;
inline constexpr uint64_t kIncompatCorrupt = 1ull << 1;
inline constexpr uint64_t kIncompatDataFile = 1ull << 2;
inline constexpr uint64_t kIncompatCompression = 1ull << 3;
inline constexpr uint64_t kIncompatExtendedL2 = 1ull << 4;
inline constexpr uint64_t kIncompatKnown = 0x1f;
// Compatible and autoclear bits.
inline constexpr uint64_t kCompatLazyRefcounts = 1ull << 0;
inline constexpr uint64_t kAutoclearBitmaps = 1ull << 0;
inline constexpr uint64_t kAutoclearDataFileRaw = 1ull << 1;

enum class CompressionType : uint8_t { kZlib = 0, kZstd = 1 };

// Header extension type codes.
inline constexpr uint32_t kExtEnd = 0;
inline constexpr uint32_t kExtBackingFormat = 0xe2792aca;
inline constexpr uint32_t kExtFeatureNames = 0x6803f857;
inline constexpr uint32_t kExtBitmaps = 0x23852875;
inline constexpr uint32_t kExtFullDiskEncryption = 0x0537be77;
inline constexpr uint32_t kExtDataFile = 0x44415441;

// One header extension as stored: type and raw payload.
struct HeaderExtension {
  uint32_t type = 0;
  std::vector<uint8_t> data;
  uint64_t offset = 0;  // file offset of the payload (decoded headers only)
};

// The qcow2 header (versions 2 and 3) plus its extensions and backing file name.
struct Header {
  uint32_t version = 2;
  uint64_t backing_file_offset = 0;
  uint32_t backing_file_size = 0;
  uint32_t cluster_bits = 16;
  uint64_t size = 0;
  uint32_t crypt_method = 0;
  uint32_t l1_size = 0;
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  // Version 3 fields (version 2 implies the defaults).
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = kV2HeaderSize;
  CompressionType compression_type = CompressionType::kZlib;

  std::vector<HeaderExtension> extensions;
  std::string backing_file;

  uint64_t cluster_size() const { return uint64_t{1} << cluster_bits; }
  // Entries in one L2 table (extended L2 entries are 16 bytes).
  uint64_t l2_entries() const { return cluster_size() / l2_entry_bytes(); }
  uint32_t l2_entry_bytes() const { return extended_l2() ? 16 : 8; }
  bool extended_l2() const { return incompatible_features & kIncompatExtendedL2; }
  uint32_t refcount_bits() const { return 1u << refcount_order; }
  // Guest bytes one L1 entry maps.
  uint64_t bytes_per_l1_entry() const { return l2_entries() * cluster_size(); }
  // L1 entries needed for the virtual size.
  uint64_t l1_entries_needed() const;
  const HeaderExtension* FindExtension(uint32_t type) const;

  // Encodes header, extensions and backing file name into one buffer, which
  // must fit in the first cluster. header_length is computed for version 3.
  std::vector<uint8_t> Encode() const;
};

// Decodes the header from the first bytes of a file; `file_bytes` must hold
// at least the header and its extensions (the caller reads up to one cluster,
// clamped to the file). Throws util::Error naming `name` and the offset on
// anything malformed. Does not check tables against the file size.
Header DecodeHeader(std::span<const uint8_t> file_bytes, const std::string& name);

// "0x1234": offsets and entries in messages and reports.
std::string HexString(uint64_t v);

// True when the buffer starts with the qcow2 magic.
bool HasQcow2Magic(std::span<const uint8_t> first_bytes);
// The bytes at the start of a file that hold the header and its extensions
// (its first cluster), judged from the file's first 24 bytes: the largest
// cluster size when they give no valid cluster_bits (DecodeHeader says why).
uint64_t HeaderClusterBytes(std::span<const uint8_t> first_bytes);

// The kinds of guest cluster an L2 entry can describe.
enum class ClusterKind { kUnallocated, kZero, kZeroAllocated, kNormal, kCompressed };

// A decoded standard (non-extended) L2 entry.
struct L2Entry {
  ClusterKind kind = ClusterKind::kUnallocated;
  uint64_t host_offset = 0;      // normal/zero-allocated: cluster offset; compressed: byte offset
  uint64_t compressed_size = 0;  // compressed: bytes spanned (sector-rounded upper bound)
};

// Decodes a raw big-endian-loaded L2 entry for the given header.
L2Entry DecodeL2Entry(uint64_t raw, const Header& header);

// Table entries (L1, L2, refcount table) between their big-endian on-disk
// bytes and host-endian words; `raw` holds 8 bytes per word.
void DecodeBigEndianTable(std::span<const uint8_t> raw, std::span<uint64_t> words);
void EncodeBigEndianTable(std::span<const uint64_t> words, std::span<uint8_t> raw);

// Encodes a compressed-cluster L2 entry for the given cluster size.
uint64_t EncodeCompressedL2Entry(uint64_t host_offset, uint64_t compressed_bytes,
                                 uint32_t cluster_bits);

}  // namespace qcow2
