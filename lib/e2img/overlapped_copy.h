// OverlappedCopy copies the blocks known before the inode scan (superblock,
// descriptors, bitmaps and the used inode tables: most of a capture) on a
// worker thread while the scan goes on, then those the inode scan added
// (directories, extent trees) while the directory blocks are parsed, and
// last, once the map is complete, the blocks the directories added. The scan
// and the copy each keep one core busy instead of taking turns. A capture
// whose blocks are transformed on their way (scrambling) copies early blocks
// as they are and writes again, in the last pass and transformed, the units
// holding a block the transform may change.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <thread>

#include "e2img/block_copier.h"
#include "e2img/block_set.h"
#include "e2img/metadata_map.h"
#include "e2img/sinks.h"

namespace e2img {

// Whether a transformed second pass may change this block, one block as
// read; called on the worker thread.
using EarlyBlockCheck = std::function<bool(uint64_t block, std::span<const uint8_t> data)>;

// A second pass whose blocks are transformed on their way to the sink.
struct TransformedPass {
  ImageSink* target = nullptr;  // the transform, ending in the sink
  BlockSet changed;             // blocks it changes besides those the check flagged
};

class OverlappedCopy {
 public:
  // The sink must take a second pass (SecondPassUnitBlocks() > 0). check:
  // for a transformed second pass (Finish), run on every early block.
  OverlappedCopy(const CopySource& source, ImageSink& sink, const CopyWarningFn& warn,
                 EarlyBlockCheck check = {});
  // Stops the worker at its next chunk if Finish was not reached.
  ~OverlappedCopy();
  OverlappedCopy(const OverlappedCopy&) = delete;
  OverlappedCopy& operator=(const OverlappedCopy&) = delete;

  // Starts copying the sink's whole units among the blocks of the map so far
  // (MapOptions::tables_marked), leaving out blocks with a stale tail: the
  // scan may still keep more of those. holes_pruned: the map so far holds no
  // hole of the source (the caller took them out); Continue and Finish then
  // take out those of the blocks added since, each asked once, and every
  // pass reads its blocks without asking the source for holes again.
  void Start(MetadataMap& known, bool holes_pruned = false);
  // After Start, once the inode scan is done: the worker goes on, in a pass
  // of its own, with the whole units of the map so far that it has not
  // copied (stale tails left out again). Not for a transformed copy (one
  // with a check): what it adds are the blocks a transform changes most.
  void Continue(MetadataMap& known);
  // Waits for the worker (rethrowing its error), then copies the blocks of
  // the complete map it did not; returns the problems of both copies. With
  // `transformed`, that copy goes through its target and takes with it the
  // early units holding a block the check flagged or in `changed`.
  uint64_t Finish(MetadataMap& map, const ProgressFn& progress,
                  TransformedPass* transformed = nullptr);
  // The blocks the worker copies (none before Start); read-only once it runs.
  const std::vector<BlockExtent>& early_blocks() { return early_.Extents(); }
  // The blocks given to the worker by Continue (none without it).
  const std::vector<BlockExtent>& continued_blocks() { return continued_.Extents(); }

 private:
  class CheckingSink;
  void Work(std::stop_token stop);
  // Copies `blocks` into the sink on the worker, noting its progress.
  void CopyOnWorker(const std::stop_token& stop, BlockSet& blocks, ImageSink& into);
  // With holes pruned: takes the source's holes out of the blocks of the map
  // added since the last handover.
  void PruneNewHoles(MetadataMap& known);

  CopySource source_;
  ImageSink& sink_;
  CopyWarningFn warn_;  // a copy: callers pass temporaries
  EarlyBlockCheck check_;
  BlockSet early_;
  uint64_t unit_blocks_ = 0;  // the sink's unit, asked before the worker starts
  bool holes_pruned_ = false;
  BlockSet pruned_;   // with holes pruned: the map's blocks at the last handover
  BlockSet flagged_;  // early blocks the check flagged (the worker's until joined)
  uint64_t early_problems_ = 0;
  uint64_t early_done_ = 0;
  std::exception_ptr error_;
  // Handing the continued blocks to the worker (or telling it none come).
  std::mutex mutex_;
  std::condition_variable_any handed_over_;
  bool continued_ready_ = false;  // guarded by mutex_
  bool finishing_ = false;        // guarded by mutex_
  BlockSet continued_;            // read-only once continued_ready_
  std::jthread worker_;           // last: joined before the rest goes
};

}  // namespace e2img
