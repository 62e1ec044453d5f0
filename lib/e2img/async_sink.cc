#include "e2img/async_sink.h"

namespace e2img {

AsyncSink::AsyncSink(ImageSink& inner, size_t max_queued_bytes)
    : inner_(inner), max_queued_bytes_(max_queued_bytes), worker_([this] { Work(); }) {}

AsyncSink::~AsyncSink() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  changed_.notify_all();
  worker_.join();
}

void AsyncSink::RethrowWorkerError() {
  if (worker_error_)
    std::rethrow_exception(worker_error_);
}

void AsyncSink::WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) {
  std::unique_lock lock(mutex_);
  // One run larger than the whole budget still goes, alone.
  changed_.wait(lock, [&] {
    return worker_error_ || queue_.empty() || queued_bytes_ + data.size() <= max_queued_bytes_;
  });
  RethrowWorkerError();
  queue_.push_back(Run{first_block, std::vector<uint8_t>(data.begin(), data.end())});
  queued_bytes_ += data.size();
  lock.unlock();
  changed_.notify_all();
}

void AsyncSink::Finish() {
  {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return worker_error_ || (queue_.empty() && !busy_); });
    RethrowWorkerError();
  }
  inner_.Finish();
}

void AsyncSink::Work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty())
      return;  // stopping
    Run run = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= run.data.size();
    busy_ = true;
    lock.unlock();
    changed_.notify_all();
    std::exception_ptr error;
    try {
      inner_.WriteBlocks(run.first_block, run.data);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    busy_ = false;
    if (error) {
      worker_error_ = error;
      queue_.clear();
      queued_bytes_ = 0;
    }
    changed_.notify_all();
    if (error)
      return;
  }
}

}  // namespace e2img
