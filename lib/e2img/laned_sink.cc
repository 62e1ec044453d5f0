#include "e2img/laned_sink.h"

#include <algorithm>

namespace e2img {

LanedSink::LanedSink(ImageSink& inner, unsigned lanes, LaneTransform transform,
                     size_t max_queued_bytes)
    : inner_(inner),
      lanes_(std::max(1u, lanes)),
      transform_(std::move(transform)),
      max_queued_bytes_(max_queued_bytes),
      next_run_(lanes_, 0) {
  for (unsigned lane = 0; lane < lanes_; ++lane)
    workers_.emplace_back([this, lane] { Work(lane); });
}

LanedSink::~LanedSink() {
  StopLanes();
}

void LanedSink::StopLanes() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  run_added_.notify_all();
  for (std::thread& worker : workers_)
    if (worker.joinable())
      worker.join();
}

void LanedSink::WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) {
  auto run = std::make_unique<Run>(Run{first_block, {data.begin(), data.end()}});
  std::unique_lock lock(mutex_);
  // One run larger than the whole budget still goes, alone.
  while (!lane_error_ && !runs_.empty() && queued_bytes_ + data.size() > max_queued_bytes_)
    Deliver(lock, /*wait_for_one=*/true);
  if (lane_error_)
    std::rethrow_exception(lane_error_);
  queued_bytes_ += data.size();
  runs_.push_back(std::move(run));
  run_added_.notify_all();
  Deliver(lock, /*wait_for_one=*/false);
}

void LanedSink::Deliver(std::unique_lock<std::mutex>& lock, bool wait_for_one) {
  if (wait_for_one)
    lane_done_.wait(lock, [&] { return lane_error_ || runs_.front()->lanes_done == lanes_; });
  while (!lane_error_ && !runs_.empty() && runs_.front()->lanes_done == lanes_) {
    std::unique_ptr<Run> run = std::move(runs_.front());
    runs_.pop_front();
    ++first_run_;
    queued_bytes_ -= run->data.size();
    lock.unlock();
    inner_.WriteBlocks(run->first_block, run->data);
    lock.lock();
  }
}

void LanedSink::Finish() {
  {
    std::unique_lock lock(mutex_);
    while (!lane_error_ && !runs_.empty())
      Deliver(lock, /*wait_for_one=*/true);
    if (lane_error_)
      std::rethrow_exception(lane_error_);
  }
  StopLanes();
  inner_.Finish();
}

void LanedSink::Work(unsigned lane) {
  std::unique_lock lock(mutex_);
  for (;;) {
    run_added_.wait(lock, [&] { return stopping_ || next_run_[lane] < first_run_ + runs_.size(); });
    if (stopping_)
      return;
    // The run stays in place until every lane is done with it.
    Run& run = *runs_[next_run_[lane] - first_run_];
    lock.unlock();
    std::exception_ptr error;
    try {
      transform_(run.first_block, run.data, lane);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (error) {
      if (!lane_error_)
        lane_error_ = error;
      stopping_ = true;
      run_added_.notify_all();
      lane_done_.notify_all();
      return;
    }
    ++next_run_[lane];
    if (++run.lanes_done == lanes_)
      lane_done_.notify_all();
  }
}

}  // namespace e2img
