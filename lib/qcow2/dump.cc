// qcow2-inspect dump: every header field and extension, the snapshot table,
// the refcount table, the bitmap directory with each bitmap table, and the
// L1 table with a summary of each L2 table.
#include <algorithm>
#include <bit>
#include <cstring>

#include "qcow2/capture_info.h"
#include "qcow2/inspect.h"
#include "qcow2/subcluster.h"
#include "util/endian.h"
#include "util/error.h"
#include "util/escape.h"

namespace qcow2 {
namespace {

std::string ExtensionName(uint32_t type) {
  switch (type) {
    case kExtBackingFormat:
      return "backing file format name";
    case kExtFeatureNames:
      return "feature name table";
    case kExtBitmaps:
      return "bitmaps";
    case kExtFullDiskEncryption:
      return "full disk encryption header pointer";
    case kExtDataFile:
      return "external data file name";
    case kExtCaptureInfo:
      return "e2image capture";
    default:
      return "unknown";
  }
}

void Field(std::ostream& out, const char* name, uint64_t value, bool hex = false) {
  char line[128];
  std::snprintf(line, sizeof line, "  %-26s%s\n", name,
                hex ? HexString(value).c_str() : std::to_string(value).c_str());
  out << line;
}

std::string Printable(const std::vector<uint8_t>& data) {
  std::string s;
  for (uint8_t c : data)
    s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
  return s;
}

void DumpHeader(const ImageView& image, std::ostream& out) {
  const Header& h = image.header();
  out << "Header\n";
  Field(out, "magic", kMagic, true);
  Field(out, "version", h.version);
  Field(out, "backing_file_offset", h.backing_file_offset, true);
  Field(out, "backing_file_size", h.backing_file_size);
  Field(out, "cluster_bits", h.cluster_bits);
  Field(out, "size", h.size);
  Field(out, "crypt_method", h.crypt_method);
  Field(out, "l1_size", h.l1_size);
  Field(out, "l1_table_offset", h.l1_table_offset, true);
  Field(out, "refcount_table_offset", h.refcount_table_offset, true);
  Field(out, "refcount_table_clusters", h.refcount_table_clusters);
  Field(out, "nb_snapshots", h.nb_snapshots);
  Field(out, "snapshot_offset", h.snapshots_offset, true);
  if (h.version >= 3) {
    Field(out, "incompatible_features", h.incompatible_features, true);
    Field(out, "compatible_features", h.compatible_features, true);
    Field(out, "autoclear_features", h.autoclear_features, true);
    Field(out, "refcount_order", h.refcount_order);
    Field(out, "header_length", h.header_length);
    if (h.header_length > kV3HeaderSize)
      Field(out, "compression_type", static_cast<uint64_t>(h.compression_type));
  }
  if (!h.backing_file.empty())
    out << "  backing file name         " << util::PrintableName(h.backing_file) << "\n";

  out << "\nHeader extensions (" << h.extensions.size() << ")\n";
  uint64_t at = h.header_length;
  for (size_t i = 0; i < h.extensions.size(); ++i) {
    const HeaderExtension& e = h.extensions[i];
    out << "  [" << i << "] at " << HexString(at) << ": type " << HexString(e.type) << " ("
        << ExtensionName(e.type) << "), " << e.data.size() << " bytes\n";
    const uint8_t* p = e.data.data();
    if (e.type == kExtFeatureNames) {
      static const char* const kTypes[] = {"incompatible", "compatible", "autoclear"};
      for (size_t j = 0; j + 48 <= e.data.size(); j += 48) {
        const std::string name(reinterpret_cast<const char*>(p + j + 2),
                               strnlen(reinterpret_cast<const char*>(p + j + 2), 46));
        out << "      " << (p[j] < 3 ? kTypes[p[j]] : "unknown type") << " bit "
            << static_cast<int>(p[j + 1]) << ": " << name << "\n";
      }
    } else if (e.type == kExtBitmaps && e.data.size() >= 24) {
      out << "      nb_bitmaps " << util::LoadBE32(p) << ", reserved " << util::LoadBE32(p + 4)
          << ", bitmap_directory_size " << util::LoadBE64(p + 8) << ", bitmap_directory_offset "
          << HexString(util::LoadBE64(p + 16)) << "\n";
    } else if (e.type == kExtFullDiskEncryption && e.data.size() >= 16) {
      out << "      offset " << HexString(util::LoadBE64(p)) << ", length " << util::LoadBE64(p + 8)
          << "\n";
    } else if (e.type == kExtCaptureInfo) {
      try {
        out << "      " << CaptureSummary(DecodeCaptureInfo(e.data)) << "\n";
      } catch (const util::Error& error) {
        out << "      (" << error.what() << ")\n";
      }
    } else if (e.type == kExtBackingFormat || e.type == kExtDataFile) {
      out << "      \"" << Printable(e.data) << "\"\n";
    }
    at += 8 + ((e.data.size() + 7) & ~size_t{7});
  }
}

void DumpSnapshots(const ImageView& image, std::ostream& out) {
  out << "\nSnapshot table (" << image.snapshots().size() << " snapshots, "
      << image.snapshot_table_bytes() << " bytes)\n";
  for (size_t i = 0; i < image.snapshots().size(); ++i) {
    const Snapshot& s = image.snapshots()[i];
    out << "  [" << i << "] at " << HexString(s.entry_offset) << ": id \""
        << util::PrintableName(s.id) << "\" name \"" << util::PrintableName(s.name)
        << "\" l1_table_offset " << HexString(s.l1_table_offset) << " l1_size " << s.l1_size
        << " date " << s.date_sec << "." << s.date_nsec << " vm_clock_nsec " << s.vm_clock_nsec
        << " vm_state_size " << s.vm_state_size << " extra_data_size " << s.extra_data_size;
    if (s.disk_size)
      out << " disk_size " << *s.disk_size;
    if (s.icount)
      out << " icount " << *s.icount;
    out << "\n";
  }
}

void DumpRefcountTable(const ImageView& image, std::ostream& out) {
  const Header& h = image.header();
  const uint64_t entries = uint64_t{h.refcount_table_clusters} * image.cluster_size() / 8;
  const std::vector<uint64_t> table =
      image.ReadTable(h.refcount_table_offset, entries, "refcount table");
  uint64_t used = 0;
  for (uint64_t e : table)
    used += e != 0;
  out << "\nRefcount table at " << HexString(h.refcount_table_offset) << " (" << entries
      << " entries, " << used << " used; " << h.refcount_bits() << "-bit refcounts, "
      << image.cluster_size() * 8 / h.refcount_bits() << " per block)\n";
  for (uint64_t i = 0; i < table.size(); ++i)
    if (table[i])
      out << "  entry " << i << ": refcount block at " << HexString(table[i]) << "\n";
}

uint64_t DumpBitmaps(const ImageView& image, std::ostream& out, std::ostream& err) {
  const auto& ext = image.bitmaps_extension();
  if (!ext)
    return 0;
  const uint64_t cs = image.cluster_size();
  uint64_t problems = 0;
  out << "\nBitmap directory at " << HexString(ext->directory_offset) << " (" << ext->nb_bitmaps
      << " bitmaps, " << ext->directory_size << " bytes)";
  if (!(image.header().autoclear_features & kAutoclearBitmaps))
    out << ": ignored, the bitmaps autoclear bit is clear";
  out << "\n";
  for (size_t b = 0; b < image.bitmaps().size(); ++b) {
    const Bitmap& bm = image.bitmaps()[b];
    out << "  [" << b << "] at " << HexString(bm.entry_offset) << ": name \"" << bm.name
        << "\" bitmap_table_offset " << HexString(bm.table_offset) << " bitmap_table_size "
        << bm.table_size << " flags " << HexString(bm.flags) << " type "
        << static_cast<int>(bm.type) << " granularity_bits "
        << static_cast<int>(bm.granularity_bits) << " extra_data_size " << bm.extra_data_size
        << "\n";
    const std::string name = "bitmap table of bitmap " + std::to_string(b);
    if (bm.table_size > kMaxBitmapTableEntries || bm.table_offset % cs != 0 ||
        bm.table_offset + uint64_t{bm.table_size} * 8 > image.file_size()) {
      err << util::AtOffset(image.path(), bm.table_offset,
                            name + " (" + std::to_string(bm.table_size) +
                                " entries) is misaligned, too large or past the end of the file")
          << "\n";
      ++problems;
      continue;
    }
    out << "    bitmap table (" << bm.table_size << " entries, "
        << bm.table_entries_needed(image.header().size, cs) << " needed for the virtual size)\n";
    constexpr uint64_t kChunk = 65536;
    for (uint64_t first = 0; first < bm.table_size; first += kChunk) {
      const uint64_t n = std::min<uint64_t>(kChunk, bm.table_size - first);
      const std::vector<uint64_t> entries = image.ReadTable(bm.table_offset + first * 8, n, name);
      for (uint64_t j = 0; j < n; ++j) {
        const BitmapEntryKind kind = ClassifyBitmapEntry(entries[j], cs);
        const uint64_t offset = entries[j] & kBitmapEntryOffsetMask;
        out << "      entry " << first + j << ": " << BitmapEntryKindName(kind) << ", size "
            << (kind == BitmapEntryKind::kSerialized ? cs : 0) << ", offset " << HexString(offset);
        if (kind == BitmapEntryKind::kInvalid) {
          out << " (raw " << HexString(entries[j]) << ")";
          err << util::AtOffset(image.path(), bm.table_offset + (first + j) * 8,
                                name + ", entry " + std::to_string(first + j) +
                                    ": invalid bitmap table entry " + HexString(entries[j]))
              << "\n";
          ++problems;
        }
        out << "\n";
      }
    }
  }
  return problems;
}

// One L1 entry and a summary of its L2 table; 1 when it is unreadable.
uint64_t DumpL1Entry(const ImageView& image, uint64_t i, uint64_t entry, std::ostream& out,
                     std::ostream& err) {
  const Header& h = image.header();
  const uint64_t cs = image.cluster_size();
  const uint64_t l2_offset = entry & kL1OffsetMask;
  if (l2_offset == 0)
    return 0;
  out << "  entry " << i << ": L2 table at " << HexString(l2_offset)
      << ((entry & kOflagCopied) ? " (copied)" : "");
  if (l2_offset % cs != 0 || l2_offset + cs > image.file_size()) {
    out << ": unreadable\n";
    err << util::AtOffset(image.path(), h.l1_table_offset + i * 8,
                          "L1 table entry " + std::to_string(i) + ": L2 table offset " +
                              HexString(l2_offset) + " is not a cluster inside the file")
        << "\n";
    return 1;
  }
  const bool extended = h.extended_l2();
  const bool has_data_file = h.incompatible_features & kIncompatDataFile;
  const std::vector<uint64_t> l2 =
      image.ReadTable(l2_offset, cs / 8, "L2 table of L1 entry " + std::to_string(i));
  uint64_t counts[5] = {0, 0, 0, 0, 0};
  uint64_t copied = 0, lowest = UINT64_MAX, highest = 0, sub_allocated = 0, sub_zero = 0;
  bool any_host = false;
  for (uint64_t j = 0; j < h.l2_entries(); ++j) {
    const uint64_t raw = l2[extended ? 2 * j : j];
    const ClusterDescriptor d =
        DecodeDescriptor(raw, extended ? l2[2 * j + 1] : 0, h, has_data_file);
    ClusterKind kind = ClusterKind::kUnallocated;
    if (d.compressed)
      kind = ClusterKind::kCompressed;
    else if (extended)  // a host cluster is data; without one, zero subclusters or none
      kind = d.has_host         ? ClusterKind::kNormal
             : (d.bitmap >> 32) ? ClusterKind::kZero
                                : ClusterKind::kUnallocated;
    else if (d.zero)
      kind = d.host_offset ? ClusterKind::kZeroAllocated : ClusterKind::kZero;
    else if (d.has_host)
      kind = ClusterKind::kNormal;
    ++counts[static_cast<int>(kind)];
    copied += (raw & kOflagCopied) != 0;
    if (extended && !d.compressed) {
      sub_allocated += std::popcount(d.bitmap & 0xffffffffull);
      sub_zero += std::popcount(d.bitmap >> 32);
    }
    if (kind == ClusterKind::kNormal || kind == ClusterKind::kCompressed ||
        kind == ClusterKind::kZeroAllocated) {
      any_host = true;
      lowest = std::min(lowest, d.host_offset);
      highest = std::max(highest, d.host_offset);
    }
  }
  out << ": " << counts[static_cast<int>(ClusterKind::kNormal)] << " data, "
      << counts[static_cast<int>(ClusterKind::kCompressed)] << " compressed, "
      << counts[static_cast<int>(ClusterKind::kZero)] << " zero, "
      << counts[static_cast<int>(ClusterKind::kZeroAllocated)] << " zero allocated, "
      << counts[static_cast<int>(ClusterKind::kUnallocated)] << " unallocated; " << copied
      << " copied";
  if (extended)
    out << "; subclusters " << sub_allocated << " allocated, " << sub_zero << " zero";
  if (any_host)
    out << "; host offsets " << HexString(lowest) << ".." << HexString(highest);
  out << "\n";
  return 0;
}

uint64_t DumpL1(const ImageView& image, std::ostream& out, std::ostream& err) {
  const Header& h = image.header();
  uint64_t problems = 0, used = 0;
  image.ForEachL1Slice([&](uint64_t, std::span<const uint64_t> l1) {
    for (uint64_t e : l1)
      used += (e & kL1OffsetMask) != 0;
  });
  out << "\nL1 table at " << HexString(h.l1_table_offset) << " (" << h.l1_size << " entries, "
      << used << " with an L2 table; each maps " << h.bytes_per_l1_entry() << " bytes)\n";
  image.ForEachL1Slice([&](uint64_t first, std::span<const uint64_t> slice) {
    for (uint64_t j = 0; j < slice.size(); ++j)
      problems += DumpL1Entry(image, first + j, slice[j], out, err);
  });
  return problems;
}

}  // namespace

uint64_t PrintDump(const ImageView& image, std::ostream& out, std::ostream& err) {
  out << "File " << image.path() << ": " << image.file_size() << " bytes, cluster size "
      << image.cluster_size() << "\n\n";
  DumpHeader(image, out);
  DumpSnapshots(image, out);
  DumpRefcountTable(image, out);
  uint64_t problems = DumpBitmaps(image, out, err);
  problems += DumpL1(image, out, err);
  return problems;
}

}  // namespace qcow2
