#include "e2img/overlapped_copy.h"

#include "util/error.h"

namespace e2img {
namespace {

// Thrown from the worker's progress callback when it is told to stop.
struct CopyStopped {};

}  // namespace

OverlappedCopy::OverlappedCopy(const CopySource& source, ImageSink& sink, const CopyWarningFn& warn)
    : source_(source), sink_(sink), warn_(warn) {}

OverlappedCopy::~OverlappedCopy() {
  if (worker_.joinable()) {
    worker_.request_stop();
    worker_.join();
  }
}

void OverlappedCopy::Start(MetadataMap& known) {
  const uint64_t unit = sink_.SecondPassUnitBlocks();
  if (!unit)
    throw util::Error("internal error: an overlapped copy into a sink that takes one pass");
  BlockSet tails;
  for (const auto& [block, offset] : known.stale_tails)
    tails.Add(block);
  early_ = WholeUnits(Subtract(known.blocks.Extents(), tails.Extents()).Extents(), unit);
  // The early blocks hold no stale tail: the worker never reads the map the scan changes.
  source_.stale_tails = nullptr;
  worker_ = std::jthread([this](std::stop_token stop) { Work(stop); });
}

void OverlappedCopy::Work(std::stop_token stop) {
  try {
    early_problems_ = CopyBlocks(
        source_, early_, sink_,
        [&](uint64_t done) {
          early_done_ = done;
          if (stop.stop_requested())
            throw CopyStopped{};
        },
        warn_);
  } catch (const CopyStopped&) {
  } catch (...) {
    error_ = std::current_exception();
  }
}

uint64_t OverlappedCopy::Finish(MetadataMap& map, const ProgressFn& progress) {
  if (worker_.joinable())
    worker_.join();
  if (error_)
    std::rethrow_exception(error_);
  BlockSet rest = Subtract(map.blocks.Extents(), early_.Extents());
  sink_.StartSecondPass();
  source_.stale_tails = &map.stale_tails;
  const uint64_t early_done = early_done_;
  const uint64_t problems = CopyBlocks(
      source_, rest, sink_,
      [&](uint64_t done) {
        if (progress)
          progress(early_done + done);
      },
      warn_);
  return early_problems_ + problems;
}

}  // namespace e2img
