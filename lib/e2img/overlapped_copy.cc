#include "e2img/overlapped_copy.h"

#include <algorithm>

#include "e2img/source_holes.h"
#include "util/error.h"

namespace e2img {
namespace {

// Thrown from the worker's progress callback when it is told to stop.
struct CopyStopped {};

// The blocks of the map so far without those with a stale tail (the scan may
// still keep more of those).
BlockSet WithoutStaleTails(MetadataMap& known) {
  BlockSet tails;
  for (const auto& [block, offset] : known.stale_tails)
    tails.Add(block);
  return Subtract(known.blocks.Extents(), tails.Extents());
}

}  // namespace

// Passes the early blocks to the sink, noting those the check flags.
class OverlappedCopy::CheckingSink : public ImageSink {
 public:
  explicit CheckingSink(OverlappedCopy& copy) : copy_(copy) {}
  void WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) override {
    const uint32_t block_size = copy_.source_.block_size;
    for (uint64_t i = 0; i * block_size < data.size(); ++i)
      if (copy_.check_(first_block + i, data.subspan(i * block_size, block_size)))
        copy_.flagged_.Add(first_block + i);
    copy_.sink_.WriteBlocks(first_block, data);
  }
  void NoteChanged(uint64_t first_block, uint64_t blocks) override {
    copy_.sink_.NoteChanged(first_block, blocks);
  }
  void Finish() override {}

 private:
  OverlappedCopy& copy_;
};

OverlappedCopy::OverlappedCopy(const CopySource& source, ImageSink& sink, const CopyWarningFn& warn,
                               EarlyBlockCheck check)
    : source_(source), sink_(sink), warn_(warn), check_(std::move(check)) {}

OverlappedCopy::~OverlappedCopy() {
  if (worker_.joinable()) {
    worker_.request_stop();
    worker_.join();
  }
}

void OverlappedCopy::PruneNewHoles(MetadataMap& known) {
  if (!holes_pruned_)
    return;
  BlockSet added = Subtract(known.blocks.Extents(), pruned_.Extents());
  const std::vector<BlockExtent> holes =
      HoleBlocks(*source_.file, added.Extents(), source_.offset, source_.block_size);
  if (!holes.empty())
    known.blocks = Subtract(known.blocks.Extents(), holes);
  pruned_ = known.blocks;
}

void OverlappedCopy::Start(MetadataMap& known, bool holes_pruned) {
  const uint64_t unit = sink_.SecondPassUnitBlocks();
  unit_blocks_ = unit;
  if (holes_pruned) {
    holes_pruned_ = true;
    pruned_ = known.blocks;
    source_.skip_holes = false;  // no pass meets a hole
  }
  if (!unit)
    throw util::Error("internal error: an overlapped copy into a sink that takes one pass");
  early_ = WholeUnits(WithoutStaleTails(known).Extents(), unit);
  early_.Extents();  // sorted now: both threads only read it from here on
  // The early blocks hold no stale tail: the worker never reads the map the scan changes.
  source_.stale_tails = nullptr;
  worker_ = std::jthread([this](std::stop_token stop) { Work(stop); });
}

void OverlappedCopy::Continue(MetadataMap& known) {
  if (!worker_.joinable() || check_)
    return;
  // The sink is the worker's now: its unit was asked in Start.
  PruneNewHoles(known);
  BlockSet untailed = WithoutStaleTails(known);
  continued_ = WholeUnits(Subtract(untailed.Extents(), early_.Extents()).Extents(), unit_blocks_);
  continued_.Extents();  // sorted now: read-only from here on
  {
    std::lock_guard lock(mutex_);
    continued_ready_ = true;
  }
  handed_over_.notify_all();
}

void OverlappedCopy::CopyOnWorker(const std::stop_token& stop, BlockSet& blocks, ImageSink& into) {
  const uint64_t before = early_done_;
  early_problems_ += CopyBlocks(
      source_, blocks, into,
      [&](uint64_t done) {
        early_done_ = before + done;
        if (stop.stop_requested())
          throw CopyStopped{};
      },
      warn_);
}

void OverlappedCopy::Work(std::stop_token stop) {
  try {
    CheckingSink checking(*this);
    CopyOnWorker(stop, early_, check_ ? static_cast<ImageSink&>(checking) : sink_);
    std::unique_lock lock(mutex_);
    handed_over_.wait(lock, stop, [this] { return continued_ready_ || finishing_; });
    if (!continued_ready_ || stop.stop_requested())
      return;
    lock.unlock();
    // A pass of its own: these blocks lie between and below the early ones.
    sink_.StartSecondPass({});
    CopyOnWorker(stop, continued_, sink_);
  } catch (const CopyStopped&) {
  } catch (...) {
    error_ = std::current_exception();
  }
}

uint64_t OverlappedCopy::Finish(MetadataMap& map, const ProgressFn& progress,
                                TransformedPass* transformed) {
  {
    std::lock_guard lock(mutex_);
    finishing_ = true;
  }
  handed_over_.notify_all();
  if (worker_.joinable())
    worker_.join();
  if (error_)
    std::rethrow_exception(error_);
  PruneNewHoles(map);
  BlockSet copied = early_;
  for (const BlockExtent& e : continued_.Extents())
    copied.Add(e.start, e.count);
  BlockSet rest = Subtract(map.blocks.Extents(), copied.Extents());
  BlockSet again;
  if (transformed) {
    // Units copied on the worker are whole: those holding a changed block come again whole.
    BlockSet changed = Intersect(transformed->changed.Extents(), copied.Extents());
    for (const BlockExtent& e : flagged_.Extents())
      changed.Add(e.start, e.count);
    again = CoveringUnits(changed.Extents(), sink_.SecondPassUnitBlocks());
    for (const BlockExtent& e : again.Extents())
      rest.Add(e.start, e.count);
  }
  sink_.StartSecondPass(again.Extents());
  source_.stale_tails = &map.stale_tails;
  const uint64_t early_done = early_done_;
  const uint64_t total = map.blocks.BlockCount();  // units copied again count once
  if (progress)
    progress(std::min(early_done, total));  // the worker may have left nothing
  const uint64_t problems = CopyBlocks(
      source_, rest, transformed ? *transformed->target : sink_,
      [&](uint64_t done) {
        if (progress)
          progress(std::min(early_done + done, total));
      },
      warn_);
  return early_problems_ + problems;
}

}  // namespace e2img
