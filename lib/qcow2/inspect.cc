#include "qcow2/inspect.h"

#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

#include "qcow2/backing.h"
#include "qcow2/capture_info.h"
#include "qcow2/reader.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/json.h"

namespace qcow2 {
namespace {

// "32 MiB", "1.5 KiB", as qemu-img prints sizes.
std::string HumanSize(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 6) {
    v /= 1024;
    ++unit;
  }
  std::ostringstream s;
  if (unit == 0 || v == static_cast<double>(static_cast<uint64_t>(v)))
    s << static_cast<uint64_t>(v) << " " << kUnits[unit];
  else
    s.precision(3), s << v << " " << kUnits[unit];
  return s.str();
}

std::vector<std::string> FeatureNames(uint64_t bits, const char* const* names, size_t count) {
  std::vector<std::string> out;
  for (unsigned b = 0; b < 64; ++b) {
    if (!(bits & (uint64_t{1} << b)))
      continue;
    out.push_back(b < count ? names[b] : "bit " + std::to_string(b));
  }
  return out;
}

const char* const kIncompatNames[] = {"dirty", "corrupt", "external-data-file", "compression-type",
                                      "extended-l2"};
const char* const kCompatNames[] = {"lazy-refcounts"};
const char* const kAutoclearNames[] = {"bitmaps", "raw-external-data"};

std::vector<std::string> BitmapFlagNames(uint32_t flags) {
  std::vector<std::string> out;
  if (flags & kBitmapFlagInUse)
    out.push_back("in-use");
  if (flags & kBitmapFlagAuto)
    out.push_back("auto");
  if (flags & kBitmapFlagExtraDataCompatible)
    out.push_back("extra-data-compatible");
  if (flags & ~7u)
    out.push_back("unknown " + HexString(flags & ~7u));
  return out;
}

// One link of a backing chain.
struct ChainLink {
  std::string filename;
  std::string format;
  std::string problem;  // why the chain stops here, if it does early (names escaped)
};

// Why a chain stops early, in a few words for info's summary.
std::string ChainProblem(const util::Error& e) {
  const auto* ref = dynamic_cast<const ReferenceError*>(&e);
  if (ref && ref->code() == ReferenceError::Code::kLoop)
    return "backing chain loops back to a file already in it";
  return ref ? e.what() : util::PrintableName(e.what());  // ReferenceError escapes its names
}

// Where a backing file name leads, for display: the name itself when it
// cannot be resolved (the link's problem says why).
std::string ShownPath(const std::string& image, const std::string& name) {
  try {
    return ResolveReferencedPath(image, name, "backing file");
  } catch (const ReferenceError&) {
    return name;
  }
}

// The backing chain below the image, walked by BackingChain as the reader
// and map walk it. A link that cannot be followed ends the chain with its
// problem: info reports what it can.
std::vector<ChainLink> BackingChainLinks(const ImageView& image, const ReferencePolicy& policy) {
  std::vector<ChainLink> chain;
  BackingChain walk(image.file(), policy);
  std::unique_ptr<ImageView> below;
  const ImageView* layer = &image;
  while (layer) {
    std::optional<BackingFile> b;
    try {
      b = walk.Next(layer->path(), layer->header());
    } catch (const ReferenceError& e) {
      const std::string name = layer->header().backing_file;
      chain.push_back({ShownPath(layer->path(), name), "", ChainProblem(e)});
      break;
    }
    if (!b) {
      // A backing file the policy ignores is still named, as qemu does.
      const std::string& name = layer->header().backing_file;
      if (!name.empty())
        chain.push_back({ShownPath(layer->path(), name), "", "not opened under --backing=none"});
      break;
    }
    ChainLink link{b->file.path(), b->format == BackingFormat::kQcow2 ? "qcow2" : "raw", ""};
    layer = nullptr;
    if (b->format == BackingFormat::kQcow2) {
      try {
        below = std::make_unique<ImageView>(std::move(b->file));
        layer = below.get();
      } catch (const util::Error& e) {
        link.problem = ChainProblem(e);
      }
    }
    chain.push_back(std::move(link));
  }
  return chain;
}

}  // namespace

void PrintInfo(const ImageView& image, bool json, std::ostream& out,
               const ReferencePolicy& policy) {
  const Header& h = image.header();
  const bool v3 = h.version >= 3;
  const std::string compression = h.compression_type == CompressionType::kZstd ? "zstd" : "zlib";
  const std::vector<ChainLink> chain = BackingChainLinks(image, policy);
  const auto incompat =
      FeatureNames(h.incompatible_features, kIncompatNames, std::size(kIncompatNames));
  const auto compat = FeatureNames(h.compatible_features, kCompatNames, std::size(kCompatNames));
  const auto autoclear =
      FeatureNames(h.autoclear_features, kAutoclearNames, std::size(kAutoclearNames));
  if (json) {
    util::JsonWriter w(out);
    w.BeginObject();
    w.Number("virtual-size", h.size).String("filename", image.path());
    w.Number("cluster-size", h.cluster_size()).String("format", "qcow2");
    if (image.disk_size_known())  // qemu leaves it out when unknown
      w.Number("actual-size", image.allocated_bytes());
    w.Number("file-size", image.file_size());
    w.Number("version", h.version);
    if (!h.backing_file.empty()) {
      w.String("backing-filename", h.backing_file);
      w.String("full-backing-filename", chain.front().filename);
      if (!image.backing_format().empty())
        w.String("backing-filename-format", image.backing_format());
    }
    if (!image.snapshots().empty()) {
      w.BeginArray("snapshots");
      for (const Snapshot& s : image.snapshots()) {
        w.BeginObject();
        if (s.icount)
          w.Number("icount", *s.icount);
        w.Number("vm-state-size", s.vm_state_size).Number("date-sec", s.date_sec);
        w.Number("date-nsec", s.date_nsec).Number("vm-clock-sec", s.vm_clock_nsec / 1000000000);
        w.Number("vm-clock-nsec", s.vm_clock_nsec % 1000000000);
        w.String("id", s.id).String("name", s.name);
        w.EndObject();
      }
      w.EndArray();
    }
    w.BeginObject("format-specific").String("type", "qcow2").BeginObject("data");
    w.String("compat", v3 ? "1.1" : "0.10").String("compression-type", compression);
    if (v3)
      w.Bool("lazy-refcounts", h.compatible_features & kCompatLazyRefcounts);
    if (v3 && !image.bitmaps().empty()) {
      w.BeginArray("bitmaps");
      for (const Bitmap& b : image.bitmaps()) {
        w.BeginObject().BeginArray("flags");
        for (const auto& f : BitmapFlagNames(b.flags))
          w.String("", f);
        w.EndArray().String("name", b.name);
        w.Number("granularity", b.granularity_bits < 64 ? uint64_t{1} << b.granularity_bits : 0);
        w.EndObject();
      }
      w.EndArray();
    }
    w.Number("refcount-bits", h.refcount_bits());
    if (v3)
      w.Bool("corrupt", h.incompatible_features & kIncompatCorrupt);
    if (v3)
      w.Bool("extended-l2", h.extended_l2());
    if (v3 && !DataFileName(h).empty())
      w.String("data-file", DataFileName(h));
    if (v3 && (h.incompatible_features & kIncompatDataFile))
      w.Bool("data-file-raw", h.autoclear_features & kAutoclearDataFileRaw);
    w.EndObject().EndObject();
    w.BeginObject("features");
    for (auto [key, names] :
         {std::pair{"incompatible", &incompat}, std::pair{"compatible", &compat},
          std::pair{"autoclear", &autoclear}}) {
      w.BeginArray(key);
      for (const auto& n : *names)
        w.String("", n);
      w.EndArray();
    }
    w.EndObject();
    w.BeginArray("backing-chain");
    for (const ChainLink& l : chain) {
      w.BeginObject().String("filename", l.filename);
      if (!l.format.empty())
        w.String("format", l.format);
      if (!l.problem.empty())
        w.String("problem", l.problem);
      w.EndObject();
    }
    w.EndArray();
    w.Bool("dirty-flag", h.incompatible_features & kIncompatDirty);
    if (const auto capture = CaptureInfoOf(h)) {
      w.BeginObject("e2image-capture");
      WriteCaptureJson(*capture, w);
      w.EndObject();
    }
    w.EndObject().Finish();
    return;
  }
  auto list = [](const std::vector<std::string>& names) {
    std::string s;
    for (const auto& n : names)
      s += (s.empty() ? "" : ", ") + n;
    return s.empty() ? std::string("none") : s;
  };
  out << "image: " << image.path() << "\n"
      << "file format: qcow2 (version " << h.version << ")\n"
      << "virtual size: " << HumanSize(h.size) << " (" << h.size << " bytes)\n"
      << "disk size: "
      << (image.disk_size_known() ? HumanSize(image.allocated_bytes()) : "unavailable") << "\n"
      << "file size: " << image.file_size() << " bytes\n"
      << "cluster_size: " << h.cluster_size() << "\n";
  for (size_t i = 0; i < chain.size(); ++i) {
    out << (i == 0 ? "backing file: " : "  which is backed by: ")
        << util::PrintableName(chain[i].filename);
    if (!chain[i].format.empty())
      out << " (format " << chain[i].format << ")";
    if (!chain[i].problem.empty())
      out << " [" << chain[i].problem << "]";
    out << "\n";
  }
  if (!image.snapshots().empty()) {
    out << "Snapshot list:\nID        TAG               VM SIZE    DATE (epoch s)  VM CLOCK (ns)\n";
    for (const Snapshot& s : image.snapshots())
      out << util::PrintableName(s.id) << "  " << util::PrintableName(s.name) << "  "
          << s.vm_state_size << "  " << s.date_sec << "  " << s.vm_clock_nsec << "\n";
  }
  out << "Format specific information:\n"
      << "    compat: " << (v3 ? "1.1" : "0.10") << "\n"
      << "    compression type: " << compression << "\n";
  if (v3)
    out << "    lazy refcounts: "
        << ((h.compatible_features & kCompatLazyRefcounts) ? "true" : "false") << "\n";
  if (!image.bitmaps().empty()) {
    out << "    bitmaps:\n";
    for (const Bitmap& b : image.bitmaps())
      out << "        [" << util::PrintableName(b.name) << "] granularity "
          << (uint64_t{1} << (b.granularity_bits & 63))
          << ", flags: " << list(BitmapFlagNames(b.flags)) << "\n";
  }
  out << "    refcount bits: " << h.refcount_bits() << "\n";
  if (v3) {
    out << "    corrupt: " << ((h.incompatible_features & kIncompatCorrupt) ? "true" : "false")
        << "\n"
        << "    extended l2: " << (h.extended_l2() ? "true" : "false") << "\n";
    if (!DataFileName(h).empty())
      out << "    data file: " << util::PrintableName(DataFileName(h)) << "\n";
    if (h.incompatible_features & kIncompatDataFile)
      out << "    data file raw: "
          << ((h.autoclear_features & kAutoclearDataFileRaw) ? "true" : "false") << "\n";
  }
  out << "    incompatible features: " << list(incompat) << "\n"
      << "    compatible features: " << list(compat) << "\n"
      << "    autoclear features: " << list(autoclear) << "\n"
      << "dirty flag: " << ((h.incompatible_features & kIncompatDirty) ? "true" : "false") << "\n";
  if (const auto capture = CaptureInfoOf(h))
    out << "e2image capture: " << CaptureSummary(*capture) << "\n";
}

int PrintCheck(const ImageView& image, bool json, std::ostream& out, std::ostream& err) {
  const CheckReport r = CheckImage(image, [&](const std::string& line) { err << line << "\n"; });
  if (json) {
    util::JsonWriter w(out);
    w.BeginObject().String("filename", image.path()).String("format", "qcow2");
    w.Number("check-errors", r.check_errors).Number("corruptions", r.corruptions);
    w.Number("leaks", r.leaks).Number("image-end-offset", r.image_end_offset);
    w.Number("total-clusters", r.total_clusters).Number("allocated-clusters", r.allocated_clusters);
    w.Number("fragmented-clusters", r.fragmented_clusters);
    w.Number("compressed-clusters", r.compressed_clusters);
    w.EndObject().Finish();
    return r.ExitCode();
  }
  if (r.corruptions == 0 && r.leaks == 0 && r.check_errors == 0)
    out << "No errors were found on the image.\n";
  if (r.corruptions)
    out << "\n"
        << r.corruptions << " errors were found on the image.\n"
        << "Data may be corrupted, or further writes to the image may corrupt it.\n";
  if (r.leaks)
    out << "\n"
        << r.leaks << " leaked clusters were found on the image.\n"
        << "This means waste of disk space, but no harm to data.\n";
  if (r.check_errors)
    out << "\n" << r.check_errors << " internal errors have occurred during the check.\n";
  if (r.total_clusters) {
    auto pct = [&](uint64_t n, uint64_t of) {
      std::ostringstream s;
      s.setf(std::ios::fixed);
      s.precision(2);
      s << (of ? 100.0 * static_cast<double>(n) / static_cast<double>(of) : 0.0) << "%";
      return s.str();
    };
    out << r.allocated_clusters << "/" << r.total_clusters << " = "
        << pct(r.allocated_clusters, r.total_clusters) << " allocated, "
        << pct(r.fragmented_clusters, r.allocated_clusters) << " fragmented, "
        << pct(r.compressed_clusters, r.allocated_clusters) << " compressed clusters\n";
  }
  out << "Image end offset: " << r.image_end_offset << "\n";
  return r.ExitCode();
}

}  // namespace qcow2
