// The holes of a sparse source file as blocks (util::FileHoles finds them):
// the copier never reads them, they read as zeros, and the image leaves them
// out.
#pragma once

#include <cstdint>
#include <vector>

#include "e2img/block_set.h"
#include "util/file.h"
#include "util/file_holes.h"

namespace e2img {

// How the copier takes a run at the start of a block: as `blocks` whole
// blocks of hole to skip, or as `blocks` (at least one) to read, a block
// partly data being data.
struct BlockRun {
  bool skip = false;
  uint64_t blocks = 0;
};
BlockRun AsBlocks(const util::FileRun& run, uint64_t block_size);

// The whole blocks of `extents` that are holes of a sparse source file (at
// source_offset): those the copier would skip. Compressed captures leave them
// out of the map before it sizes the image, so that no L2 table is reserved
// for guest ranges that get no data. Nothing when the file is not sparse.
std::vector<BlockExtent> HoleBlocks(const util::File& file, const std::vector<BlockExtent>& extents,
                                    uint64_t source_offset, uint64_t block_size);

// These extents without their whole blocks of hole (HoleBlocks).
BlockSet WithoutHoles(const util::File& file, const std::vector<BlockExtent>& extents,
                      uint64_t source_offset, uint64_t block_size);

// The first block holding data of each of these runs (ascending) of a
// sparse source file (at source_offset), one question to the file per run;
// a run all hole gives none. The start of every run when the file is not a
// regular one.
std::vector<uint64_t> FirstDataBlocks(const util::File& file, const std::vector<BlockExtent>& runs,
                                      uint64_t source_offset, uint64_t block_size);

}  // namespace e2img
