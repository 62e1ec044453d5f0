// AsyncSink hands blocks to another sink on a worker thread, so that the
// work that sink does (scrambling, writing) overlaps the reading of the next
// blocks. Order is kept; an error on the worker surfaces on the caller's
// next WriteBlocks or Finish.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "e2img/sinks.h"

namespace e2img {

class AsyncSink : public ImageSink {
 public:
  // At most max_queued_bytes of blocks wait for the worker at a time.
  explicit AsyncSink(ImageSink& inner, size_t max_queued_bytes = kDefaultQueuedBytes);
  // Stops the worker; blocks still queued are dropped (Finish was not reached).
  ~AsyncSink() override;
  AsyncSink(const AsyncSink&) = delete;
  AsyncSink& operator=(const AsyncSink&) = delete;

  void WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) override;
  // Waits for every queued block, then finishes the inner sink.
  void Finish() override;

  static constexpr size_t kDefaultQueuedBytes = 16u << 20;

 private:
  struct Run {
    uint64_t first_block;
    std::vector<uint8_t> data;
  };
  void Work();
  void RethrowWorkerError();  // with mutex_ held

  ImageSink& inner_;
  const size_t max_queued_bytes_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Run> queue_;
  size_t queued_bytes_ = 0;
  bool busy_ = false;      // the worker holds a run outside the queue
  bool stopping_ = false;  // no more runs will come
  std::exception_ptr worker_error_;
  std::thread worker_;  // last: started once the rest is set up
};

}  // namespace e2img
