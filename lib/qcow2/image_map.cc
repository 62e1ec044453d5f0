// qcow2-inspect map: the virtual disk as ranges of one status each.
#include <algorithm>

#include "qcow2/inspect.h"
#include "util/error.h"
#include "util/escape.h"
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
        c.compressed != r.compressed || c.depth != r.depth ||
        c.offset.has_value() != r.offset.has_value() || (c.offset && *c.file != *r.file))
      return false;
    return !c.offset || *c.offset + c.length == *r.offset;
  }
  const std::function<void(const MapRange&)>& emit_;
  MapRange current_;
};

}  // namespace

void ForEachMapRange(const ImageView& image, const std::function<void(const MapRange&)>& emit,
                     const ReferencePolicy& policy) {
  MapChain chain(image, policy);
  RangeMerger merger(emit);
  const uint64_t size = image.header().size;
  // Each probe asks for the rest of the disk: a layer answers a run as long
  // as it knows it to be alike (an empty L1 entry answers for its whole
  // range and the empty entries after it), so a huge sparse disk takes one
  // probe per run, not one per GiB as qemu-img map probes. The merger joins
  // runs that still split where tables or layers change.
  for (uint64_t guest = 0; guest < size;) {
    const MapRange r = chain.Resolve(guest, size - guest);
    merger.Add(r);
    guest += r.length;
  }
  merger.Flush();
}

void PrintMap(const ImageView& image, bool json, std::ostream& out, const ReferencePolicy& policy) {
  ForEachMapRange(
      image, [](const MapRange&) {}, policy);
  if (json) {
    out << "[";
    bool first = true;
    const auto print_json = [&](const MapRange& r) {
      util::Json range = {{"start", r.start},          {"length", r.length}, {"depth", r.depth},
                          {"present", r.present},      {"zero", r.zero},     {"data", r.data},
                          {"compressed", r.compressed}};
      if (r.offset)
        range["offset"] = *r.offset;
      out << (first ? "" : ",\n") << util::JsonText(range, -1);
      first = false;
    };
    ForEachMapRange(image, print_json, policy);
    out << "]\n";
    return;
  }
  char line[160];
  std::snprintf(line, sizeof line, "%-20s%-20s%-20s%-7s%-13s%s\n", "Offset", "Length", "Mapped to",
                "Depth", "Kind", "File");
  out << line;
  const auto print_text = [&](const MapRange& r) {
    const char* kind = r.compressed ? "compressed"
                       : r.data     ? "data"
                       : r.present  ? "zero"
                                    : "unallocated";
    std::snprintf(line, sizeof line, "%-20s%-20s%-20s%-7d%-13s", HexString(r.start).c_str(),
                  HexString(r.length).c_str(), r.offset ? HexString(*r.offset).c_str() : "-",
                  r.depth, kind);
    out << line << (r.offset ? util::PrintableName(*r.file) : "-") << "\n";
  };
  ForEachMapRange(image, print_text, policy);
}

}  // namespace qcow2
