// BlockCopier reads the mapped blocks from the source in disk order, in
// large coalesced reads (each block once), and hands them to a sink.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "e2img/block_set.h"
#include "e2img/sinks.h"
#include "e2img/unreadable.h"
#include "util/file.h"

namespace e2img {

// Called after each chunk with the number of blocks copied so far.
using ProgressFn = std::function<void(uint64_t blocks_done)>;
using CopyWarningFn = std::function<void(const std::string&)>;

// Source geometry for the copy.
struct CopySource {
  const util::File* file = nullptr;
  uint64_t offset = 0;  // -o
  uint32_t block_size = 0;
  uint64_t first_data_block = 0;  // blocks below it are never copied (as e2image)
  // Blocks whose bytes from an offset on are zeroed (MetadataMap::stale_tails).
  const std::map<uint64_t, uint32_t>* stale_tails = nullptr;
  bool skip_holes = false;  // leave out the holes of a sparse source (not for device outputs)
  // Shared by the passes of one capture: set once the source's end was
  // warned of (by the capture up front, or by a short read), so that no
  // pass warns of it again; none: each call warns.
  bool* end_warned = nullptr;
  // Where read errors of the medium go: the unreadable sectors are zeroed
  // and the copy goes on. None: a read error ends the copy.
  UnreadableLog* unreadable = nullptr;
};

// Copies every block of `blocks` to the sink; returns the number of
// problems (unreadable ranges, which are written as zeros).
uint64_t CopyBlocks(const CopySource& source, BlockSet& blocks, ImageSink& sink,
                    const ProgressFn& progress, const CopyWarningFn& warn);

}  // namespace e2img
