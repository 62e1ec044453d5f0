// LanedSink transforms blocks on their way to another sink on several worker
// threads, its lanes. The transform decides which blocks of a run are a
// lane's (the scrambler gives all of a directory's blocks to one lane, so
// that one thread rewrites them in order); every lane sees every run, in
// order. Runs reach the inner sink in order, from the caller's thread; an
// error on a lane surfaces on the caller's next WriteBlocks or Finish.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "e2img/sinks.h"

namespace e2img {

class LanedSink : public ImageSink {
 public:
  // Rewrites in place the blocks of `data` (whole blocks from first_block)
  // that are `lane`'s. Called on lane threads, for one run by all lanes at
  // once: each must touch only its own blocks.
  using LaneTransform =
      std::function<void(uint64_t first_block, std::span<uint8_t> data, unsigned lane)>;

  // At most max_queued_bytes of runs wait for the lanes at a time.
  LanedSink(ImageSink& inner, unsigned lanes, LaneTransform transform,
            size_t max_queued_bytes = kDefaultQueuedBytes);
  // Stops the lanes; runs still queued are dropped (Finish was not reached).
  ~LanedSink() override;
  LanedSink(const LanedSink&) = delete;
  LanedSink& operator=(const LanedSink&) = delete;

  void WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) override;
  // Waits for every run, hands it on, then finishes the inner sink.
  void Finish() override;

  static constexpr size_t kDefaultQueuedBytes = 16u << 20;

 private:
  struct Run {
    uint64_t first_block;
    std::vector<uint8_t> data;
    unsigned lanes_done = 0;
  };
  void Work(unsigned lane);
  // Hands on the runs at the head that every lane is done with; with
  // wait_for_one, first waits until the head one is.
  void Deliver(std::unique_lock<std::mutex>& lock, bool wait_for_one);
  void StopLanes();

  ImageSink& inner_;
  unsigned lanes_;
  LaneTransform transform_;
  size_t max_queued_bytes_;
  std::mutex mutex_;
  std::condition_variable run_added_;      // lanes wait on it
  std::condition_variable lane_done_;      // the caller waits on it
  std::deque<std::unique_ptr<Run>> runs_;  // not handed on yet, in order
  uint64_t first_run_ = 0;                 // the number of runs_.front()
  std::vector<uint64_t> next_run_;         // per lane: the number of the run it does next
  size_t queued_bytes_ = 0;
  bool stopping_ = false;
  std::exception_ptr lane_error_;
  std::vector<std::thread> workers_;  // last: started once the rest is set
};

}  // namespace e2img
