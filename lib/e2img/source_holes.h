// SourceHoles finds the holes of a sparse source file (SEEK_DATA/SEEK_HOLE)
// so the copier never reads them: they read as zeros, and the image leaves
// them out. A 15 TiB filesystem in a sparse file has a 1 GiB journal that is
// all hole; reading it would cost more than the rest of the capture.
#pragma once

#include <cstdint>
#include <vector>

#include "e2img/block_set.h"
#include "util/file.h"

namespace e2img {

// What the source holds at an offset: a hole or data, and for how long.
struct SourceRun {
  bool hole = false;
  uint64_t length = 0;  // bytes from the offset, at most the length asked
};

// Answers "hole or data?" for byte ranges of one file, remembering the last
// run so sequential queries cost one or two lseek calls per run.
class SourceHoles {
 public:
  // enabled: the source is a regular file whose holes may be skipped.
  SourceHoles(const util::File& file, bool enabled);
  // The run starting at `at`, cut at `at + max_length`. Past the end of the
  // file, or when holes are not looked for, everything is data.
  SourceRun RunAt(uint64_t at, uint64_t max_length);

 private:
  const util::File& file_;
  bool enabled_;
  uint64_t size_ = 0;
  bool known_hole_ = false;  // the cached run [known_start_, known_end_)
  uint64_t known_start_ = 0;
  uint64_t known_end_ = 0;
};

// How the copier takes a run at the start of a block: as `blocks` whole
// blocks of hole to skip, or as `blocks` (at least one) to read, a block
// partly data being data.
struct BlockRun {
  bool skip = false;
  uint64_t blocks = 0;
};
BlockRun AsBlocks(const SourceRun& run, uint64_t block_size);

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
