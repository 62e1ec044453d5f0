// qcow2-inspect map: the virtual disk as ranges of one status each.
#include <algorithm>

#include "qcow2/inspect.h"
#include "util/error.h"
#include "util/json.h"

namespace qcow2 {
namespace {

// Accumulates ranges and emits each one once it cannot grow any more.
class RangeMerger {
 public:
  explicit RangeMerger(const std::function<void(const MapRange&)>& emit) : emit_(emit) {}
  void Add(const MapRange& r) {
    if (current_.length && Mergeable(r)) {
      current_.length += r.length;
      return;
    }
    Flush();
    current_ = r;
  }
  void Flush() {
    if (current_.length)
      emit_(current_);
    current_ = MapRange{};
  }

 private:
  bool Mergeable(const MapRange& r) const {
    const MapRange& c = current_;
    if (c.present != r.present || c.zero != r.zero || c.data != r.data ||
        c.compressed != r.compressed || c.offset.has_value() != r.offset.has_value())
      return false;
    return !c.offset || *c.offset + c.length == *r.offset;
  }
  const std::function<void(const MapRange&)>& emit_;
  MapRange current_;
};

}  // namespace

void ForEachMapRange(const ImageView& image, const std::function<void(const MapRange&)>& emit) {
  const Header& h = image.header();
  if (h.extended_l2())
    throw util::Error(image.path() + ": mapping images with extended L2 entries is not supported");
  const uint64_t cs = h.cluster_size();
  const uint64_t per = h.l2_entries();
  const uint64_t size = h.size;
  const std::vector<uint64_t> l1 = image.ReadL1();
  RangeMerger merger(emit);
  std::vector<uint64_t> l2;
  for (uint64_t guest = 0; guest < size;) {
    const uint64_t l1_index = guest / cs / per;
    const uint64_t table_end = std::min(size, (l1_index + 1) * per * cs);
    const uint64_t l1_at = h.l1_table_offset + l1_index * 8;
    const std::string l1_where =
        "L1 table entry " + std::to_string(l1_index) + " (offset " + HexOffset(l1_at) + ")";
    if (l1[l1_index] & 0x7f000000000001ffull)
      throw util::Error(util::AtOffset(
          image.path(), l1_at, l1_where + ": reserved bits set in " + HexOffset(l1[l1_index])));
    const uint64_t l2_offset = l1[l1_index] & kL1OffsetMask;
    if (l2_offset == 0) {
      merger.Add(MapRange{guest, table_end - guest, false, true, false, false, std::nullopt});
      guest = table_end;
      continue;
    }
    if (l2_offset % cs != 0 || l2_offset < cs || l2_offset + cs > image.file_size())
      throw util::Error(util::AtOffset(image.path(), l1_at,
                                       l1_where + ": L2 table offset " + HexOffset(l2_offset) +
                                           " is not a cluster inside the file"));
    l2 = image.ReadTable(l2_offset, per, "L2 table of " + l1_where);
    for (; guest < table_end; guest += cs) {
      const uint64_t index = guest / cs % per;
      const uint64_t raw = l2[index];
      const uint64_t length = std::min(cs, size - guest);
      const uint64_t at = l2_offset + index * 8;
      auto fail = [&](const std::string& what) {
        throw util::Error(util::AtOffset(image.path(), at,
                                         "L2 table of L1 entry " + std::to_string(l1_index) +
                                             ", entry " + std::to_string(index) + ": " + what));
      };
      const L2Entry e = DecodeL2Entry(raw, h);
      MapRange r{guest, length, true, false, false, false, std::nullopt};
      switch (e.kind) {
        case ClusterKind::kUnallocated:
        case ClusterKind::kZero:
          if (raw & (h.version >= 3 ? 0x3f000000000001feull : 0x3f000000000001ffull))
            fail("reserved bits set in " + HexOffset(raw));
          r.present = e.kind == ClusterKind::kZero;
          r.zero = true;
          break;
        case ClusterKind::kCompressed:
          if (e.host_offset < cs || e.host_offset >= image.file_size())
            fail("compressed data offset " + HexOffset(e.host_offset) + " is outside the file");
          r.data = r.compressed = true;
          break;
        default:
          if (raw & (h.version >= 3 ? 0x3f000000000001feull : 0x3f000000000001ffull))
            fail("reserved bits set in " + HexOffset(raw));
          if (e.host_offset % cs != 0 || e.host_offset < cs || e.host_offset >= image.file_size())
            fail("data offset " + HexOffset(e.host_offset) + " is not a cluster inside the file");
          r.zero = e.kind == ClusterKind::kZeroAllocated;
          r.data = !r.zero;
          r.offset = e.host_offset;
      }
      merger.Add(r);
    }
  }
  merger.Flush();
}

void PrintMap(const ImageView& image, bool json, std::ostream& out) {
  ForEachMapRange(image, [](const MapRange&) {});
  if (json) {
    out << "[";
    bool first = true;
    ForEachMapRange(image, [&](const MapRange& r) {
      out << (first ? "" : ",\n") << "{ \"start\": " << r.start << ", \"length\": " << r.length
          << ", \"depth\": 0, \"present\": " << (r.present ? "true" : "false")
          << ", \"zero\": " << (r.zero ? "true" : "false")
          << ", \"data\": " << (r.data ? "true" : "false")
          << ", \"compressed\": " << (r.compressed ? "true" : "false");
      if (r.offset)
        out << ", \"offset\": " << *r.offset;
      out << "}";
      first = false;
    });
    out << "]\n";
    return;
  }
  char line[160];
  std::snprintf(line, sizeof line, "%-20s%-20s%-20s%s\n", "Offset", "Length", "Mapped to", "Kind");
  out << line;
  ForEachMapRange(image, [&](const MapRange& r) {
    const char* kind = r.compressed ? "compressed"
                       : r.data     ? "data"
                       : r.present  ? "zero"
                                    : "unallocated";
    std::snprintf(line, sizeof line, "%-20s%-20s%-20s%s\n", HexOffset(r.start).c_str(),
                  HexOffset(r.length).c_str(), r.offset ? HexOffset(*r.offset).c_str() : "-", kind);
    out << line;
  });
}

}  // namespace qcow2
