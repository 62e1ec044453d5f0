// OverlappedCopy copies the blocks known before the inode scan (superblock,
// descriptors, bitmaps and the used inode tables: most of a capture) on a
// worker thread while the scan goes on, and then, once the map is complete,
// the blocks the scan added. The scan and the copy each keep one core busy
// instead of taking turns.
#pragma once

#include <cstdint>
#include <exception>
#include <map>
#include <thread>

#include "e2img/block_copier.h"
#include "e2img/block_set.h"
#include "e2img/metadata_map.h"
#include "e2img/sinks.h"

namespace e2img {

class OverlappedCopy {
 public:
  // The sink must take a second pass (SecondPassUnitBlocks() > 0).
  OverlappedCopy(const CopySource& source, ImageSink& sink, const CopyWarningFn& warn);
  // Stops the worker at its next chunk if Finish was not reached.
  ~OverlappedCopy();
  OverlappedCopy(const OverlappedCopy&) = delete;
  OverlappedCopy& operator=(const OverlappedCopy&) = delete;

  // Starts copying the sink's whole units among the blocks of the map so far
  // (MapOptions::tables_marked), leaving out blocks with a stale tail: the
  // scan may still keep more of those.
  void Start(MetadataMap& known);
  // Waits for the worker (rethrowing its error), then copies the blocks of
  // the complete map it did not; returns the problems of both copies.
  uint64_t Finish(MetadataMap& map, const ProgressFn& progress);

 private:
  void Work(std::stop_token stop);

  CopySource source_;
  ImageSink& sink_;
  CopyWarningFn warn_;  // a copy: callers pass temporaries
  BlockSet early_;
  uint64_t early_problems_ = 0;
  uint64_t early_done_ = 0;
  std::exception_ptr error_;
  std::jthread worker_;  // last: joined before the rest goes
};

}  // namespace e2img
