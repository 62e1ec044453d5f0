// The capture plan of a raw or qcow2 image: one copy strategy, chosen before
// the scan from the settings and the output, decides when the image's sink
// is made and how the blocks of the metadata map reach it. Scrambling is a
// transform any strategy's blocks go through on their way to the sink.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "e2img/block_copier.h"
#include "e2img/filesystem.h"
#include "e2img/metadata_map.h"
#include "e2img/scramble.h"
#include "e2img/sinks.h"
#include "qcow2/compress.h"
#include "util/output.h"

namespace e2img {

// What a raw or qcow2 capture writes, as the command line asked for it.
struct CaptureSettings {
  bool qcow2 = false;  // a qcow2 image; else raw
  std::string output;
  bool no_sync = false;      // the image file is not synced before its rename
  uint64_t dest_offset = 0;  // raw: where the image starts in the output (-O)
  uint32_t qcow2_version = 2;
  uint64_t cluster_size = 0;  // 0: chosen from the filesystem (and the map, compressed)
  std::optional<qcow2::CompressionType> compression;
  int compression_level = qcow2::kDefaultLevel;
  unsigned threads = 0;           // compression and scrambling workers (0: all cores)
  bool output_is_device = false;  // old bytes survive under the image (MapOptions)
  bool progress = false;          // -p
};

// How the blocks reach the image.
enum class CopyStrategy {
  kAfterScan,            // a raw image on a stream or device: one pass once the map is complete
  kOverlapped,           // copied beside the scan into a sink made up front
  kCompressed,           // beside the scan, the sink sized from the group tables
  kCompressedAfterScan,  // scrambled and compressed: one pass, the sink sized from the map
};

// The strategy for these settings, an output of this kind and a capture
// scrambled or not.
CopyStrategy ChooseStrategy(const CaptureSettings& settings, util::OutputFile::Kind output,
                            bool scrambled);

// What a capture reads from and reports to.
struct CaptureContext {
  const Filesystem* fs = nullptr;
  // The source; end_warned and unreadable as the capture set them up.
  CopySource source;
  Scrambler* scrambler = nullptr;  // none: not scrambled
  FinishQcow2 record;              // adds the capture record to a qcow2 image
  CopyWarningFn warn;              // a warning
  CopyWarningFn note;              // a message of its own (which cluster size, how many threads)
  // Builds the map with these options (the strategy hooks the copy into the scan).
  std::function<MetadataMap(MapOptions)> build_map;
};

// What a written image leaves to report.
struct CaptureResult {
  MetadataMap map;
  uint64_t copy_problems = 0;
  CopyStrategy strategy = CopyStrategy::kAfterScan;  // the one chosen
};

// Creates the output, builds the map while copying as the strategy says,
// and commits the image (and the scrambler's map). Throws util::Error; a
// new output file is then removed.
CaptureResult WriteImage(const CaptureSettings& settings, const CaptureContext& context,
                         MapOptions map_options);

}  // namespace e2img
