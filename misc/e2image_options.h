// The e2image command line: options as in e2fsprogs' e2image 1.47, plus the
// qcow2 settings of e2image-ng.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "qcow2/backing.h"
#include "qcow2/compress.h"

namespace e2image {

// Everything the command line says.
struct Options {
  bool raw = false;
  bool qcow2 = false;
  bool all_data = false;
  bool force = false;
  bool progress = false;
  bool nop = false;
  bool scramble = false;
  std::optional<uint64_t> scramble_seed;  // --scramble-seed (reproducible -s)
  std::string scramble_map;               // --scramble-map: old and new names (-s)
  bool scramble_keep_names = false;       // --scramble-keep-names: unreplaceable names are kept
  bool check = false;
  bool install = false;
  uint64_t superblock = 0;
  uint32_t blocksize = 0;
  uint64_t source_offset = 0;
  uint64_t dest_offset = 0;
  uint32_t qcow2_version = 2;
  uint64_t cluster_size = 0;
  std::optional<qcow2::CompressionType> compression;
  int compression_level = qcow2::kDefaultLevel;  // --compress-level (-1: the codec's default)
  unsigned threads = 0;                          // --threads: compression workers (0: all cores)
  bool no_sync = false;            // --no-sync: image files are not synced before their rename
  bool move_in_place = false;      // one file and an offset: the output is the source
  std::string error_map;           // --error-map: the unreadable ranges as a ddrescue map file
  bool verify = false;             // --verify: compare the image with the source after writing
  qcow2::ReferencePolicy backing;  // --backing: the files a qcow2 source (-r) may open
  bool backing_given = false;
  std::string source;
  std::string output;
};

// Prints the usage on stderr and exits with status 1.
[[noreturn]] void Usage();

// Parses argv; exits for --help, --version and usage errors; throws
// util::Error for bad option values.
Options ParseOptions(int argc, char** argv);

}  // namespace e2image
