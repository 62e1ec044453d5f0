// Persistent dirty bitmaps of the qcow2 bitmaps extension (qemu
// docs/interop/qcow2.txt, "Bitmaps"): the extension, a bitmap directory
// entry and the bitmap's bits, encoded as stored; and the writing of one
// bitmap of guest ranges into an image being written (version 3 only: the
// extension is valid only with its autoclear bit).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace qcow2 {

class Qcow2Writer;

inline constexpr uint32_t kBitmapsExtensionSize = 24;
inline constexpr uint8_t kBitmapTypeDirty = 1;
inline constexpr uint32_t kMinBitmapGranularityBits = 9;
inline constexpr uint32_t kMaxBitmapGranularityBits = 31;
// The bitmap's bytes this writer keeps a bitmap under (qemu loads a bitmap
// into memory whole; its own limit is 512 MiB).
inline constexpr uint64_t kMaxBitmapBytes = 16ull << 20;

// [offset, offset + length) of the guest disk.
using GuestRange = std::pair<uint64_t, uint64_t>;

// The bitmaps extension's payload.
std::vector<uint8_t> EncodeBitmapsExtension(uint32_t nb_bitmaps, uint64_t directory_size,
                                            uint64_t directory_offset);

// One bitmap directory entry (without extra data), padded to 8 bytes.
struct BitmapDirectoryEntry {
  uint64_t table_offset = 0;
  uint32_t table_size = 0;  // entries
  uint32_t flags = 0;
  uint32_t granularity_bits = 16;
  std::string name;  // 1 to 1023 bytes
};
std::vector<uint8_t> EncodeBitmapDirectoryEntry(const BitmapDirectoryEntry& entry);

// The granularity (as bits, at least min_bits) that keeps the bitmap of a
// virtual_size disk within kMaxBitmapBytes.
uint32_t BitmapGranularityBits(uint64_t virtual_size, uint32_t min_bits);

// The bitmap's bytes for a virtual_size disk: bit k (byte k / 8, bit k % 8,
// least significant first) is set when a range touches guest bytes
// [k << granularity_bits, (k + 1) << granularity_bits).
std::vector<uint8_t> EncodeBitmapBits(std::span<const GuestRange> ranges, uint64_t virtual_size,
                                      uint32_t granularity_bits);

// Adds to an image being written (version 3) a persistent, disabled
// (not auto) dirty bitmap named `name` of the ranges: its data clusters
// (those with a bit set; the others read as zeros), its table and a
// directory holding it, the extension and the autoclear bit.
void WriteDirtyBitmap(Qcow2Writer& writer, const std::string& name,
                      std::span<const GuestRange> ranges, uint64_t virtual_size,
                      uint32_t granularity_bits);

}  // namespace qcow2
