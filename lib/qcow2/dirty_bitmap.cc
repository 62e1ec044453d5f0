#include "qcow2/dirty_bitmap.h"

#include <algorithm>

#include "qcow2/format.h"
#include "qcow2/writer.h"
#include "util/endian.h"
#include "util/error.h"
#include "util/file.h"

namespace qcow2 {

std::vector<uint8_t> EncodeBitmapsExtension(uint32_t nb_bitmaps, uint64_t directory_size,
                                            uint64_t directory_offset) {
  std::vector<uint8_t> b(kBitmapsExtensionSize, 0);
  util::StoreBE32(&b[0], nb_bitmaps);
  util::StoreBE64(&b[8], directory_size);
  util::StoreBE64(&b[16], directory_offset);
  return b;
}

std::vector<uint8_t> EncodeBitmapDirectoryEntry(const BitmapDirectoryEntry& e) {
  if (e.name.empty() || e.name.size() > 1023)
    throw util::Error("qcow2 bitmap name of " + std::to_string(e.name.size()) +
                      " bytes: 1 to 1023 allowed");
  std::vector<uint8_t> b(AlignUp8(24 + e.name.size()), 0);
  util::StoreBE64(&b[0], e.table_offset);
  util::StoreBE32(&b[8], e.table_size);
  util::StoreBE32(&b[12], e.flags);
  b[16] = kBitmapTypeDirty;
  b[17] = static_cast<uint8_t>(e.granularity_bits);
  util::StoreBE16(&b[18], static_cast<uint16_t>(e.name.size()));
  std::copy(e.name.begin(), e.name.end(), b.begin() + 24);
  return b;
}

uint32_t BitmapGranularityBits(uint64_t virtual_size, uint32_t min_bits) {
  uint32_t bits = std::max(min_bits, kMinBitmapGranularityBits);
  const auto bytes = [&](uint32_t g) {
    return (((virtual_size + (uint64_t{1} << g) - 1) >> g) + 7) / 8;
  };
  while (bits < kMaxBitmapGranularityBits && bytes(bits) > kMaxBitmapBytes)
    ++bits;
  return bits;
}

std::vector<uint8_t> EncodeBitmapBits(std::span<const GuestRange> ranges, uint64_t virtual_size,
                                      uint32_t granularity_bits) {
  const uint64_t granule = uint64_t{1} << granularity_bits;
  const uint64_t bits = (virtual_size + granule - 1) / granule;
  std::vector<uint8_t> b((bits + 7) / 8, 0);
  for (const auto& [offset, length] : ranges) {
    if (!length || offset >= virtual_size)
      continue;
    const uint64_t last = (std::min(offset + length, virtual_size) - 1) / granule;
    for (uint64_t k = offset / granule; k <= last; ++k)
      b[k / 8] |= static_cast<uint8_t>(1u << (k % 8));
  }
  return b;
}

void WriteDirtyBitmap(Qcow2Writer& writer, const std::string& name,
                      std::span<const GuestRange> ranges, uint64_t virtual_size,
                      uint32_t granularity_bits) {
  if (writer.version() < 3)
    throw util::Error("qcow2 bitmaps need version 3 images");
  const std::vector<uint8_t> bits = EncodeBitmapBits(ranges, virtual_size, granularity_bits);
  const uint64_t cs = writer.cluster_size();
  const uint64_t entries = std::max<uint64_t>(1, (bits.size() + cs - 1) / cs);
  std::vector<uint8_t> table(entries * 8, 0);
  for (uint64_t i = 0; i < entries; ++i) {
    const size_t start = std::min<size_t>(i * cs, bits.size());
    const std::span<const uint8_t> part(bits.data() + start,
                                        std::min<size_t>(cs, bits.size() - start));
    if (util::IsAllZero(part))
      continue;  // entry 0: the cluster reads as zeros
    util::StoreBE64(&table[i * 8], writer.WriteMetadataClusters(part));
  }
  BitmapDirectoryEntry entry;
  entry.table_offset = writer.WriteMetadataClusters(table);
  entry.table_size = static_cast<uint32_t>(entries);
  entry.granularity_bits = granularity_bits;
  entry.name = name;
  const std::vector<uint8_t> directory = EncodeBitmapDirectoryEntry(entry);
  const uint64_t directory_offset = writer.WriteMetadataClusters(directory);
  writer.AddHeaderExtension(
      {kExtBitmaps, EncodeBitmapsExtension(1, directory.size(), directory_offset), 0});
  writer.SetAutoclearFeatures(kAutoclearBitmaps);
}

}  // namespace qcow2
