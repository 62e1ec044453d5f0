// DeviceCopy writes the mapped blocks of a filesystem straight onto another
// file or device, or onto the same one at another offset (a move), in
// place. A move runs in the direction that never reads a block after it was
// overwritten: backwards (highest blocks first) when the destination lies
// after the source, forwards otherwise. With compare, blocks the
// destination already holds are not written.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "e2img/block_set.h"
#include "e2img/unreadable.h"
#include "util/file.h"

namespace e2img {

// Geometry and behaviour of one copy.
struct DeviceCopyOptions {
  uint64_t source_offset = 0;  // -o
  uint64_t dest_offset = 0;    // -O
  uint32_t block_size = 0;
  uint64_t first_data_block = 0;  // blocks below it stay where they are (as e2image)
  bool compare = false;           // -c: write only blocks that differ
  bool print_only = false;        // -n: print "Writing block N", write nothing
  // Where read errors of the medium go (the unreadable sectors are written
  // as zeros); none: a read error ends the copy.
  UnreadableLog* unreadable = nullptr;
};

// What a copy did.
struct DeviceCopyResult {
  uint64_t written = 0;  // blocks written (or that would be, with print_only)
  uint64_t skipped = 0;  // blocks the destination already held (compare)
  uint64_t problems = 0;
};

// Copies `blocks` from source to dest (which may be the same file).
DeviceCopyResult CopyToDevice(const util::File& source, const util::File& dest, BlockSet& blocks,
                              const DeviceCopyOptions& options,
                              const std::function<void(uint64_t blocks_done)>& progress,
                              const std::function<void(const std::string&)>& warn);

}  // namespace e2img
