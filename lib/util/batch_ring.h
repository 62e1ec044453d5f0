// BatchRing passes batches from one producer thread to one consumer thread,
// in order, with a fixed number of them in existence: the producer fills the
// next free batch while the consumer drains a full one, and each waits for
// the other only when all are on the other side.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <stop_token>
#include <vector>

namespace util {

// A fixed set of Batch objects going round between two threads.
template <typename Batch>
class BatchRing {
 public:
  explicit BatchRing(size_t depth) : batches_(depth) {
    for (Batch& b : batches_)
      free_.push_back(&b);
  }
  BatchRing(const BatchRing&) = delete;
  BatchRing& operator=(const BatchRing&) = delete;

  // Producer: the next free batch (as the consumer left it), or null once
  // stop is requested.
  Batch* NextFree(const std::stop_token& stop) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait(lock, stop, [this] { return !free_.empty(); }))
      return nullptr;
    Batch* b = free_.front();
    free_.pop_front();
    return b;
  }
  // Producer: hands a batch taken from NextFree to the consumer.
  void Fill(Batch* b) {
    {
      std::lock_guard lock(mutex_);
      full_.push_back(b);
    }
    changed_.notify_all();
  }
  // Producer: it cannot go on; the consumer's next NextFull rethrows this.
  void Fail(std::exception_ptr error) {
    {
      std::lock_guard lock(mutex_);
      error_ = error;
    }
    changed_.notify_all();
  }
  // Consumer: the oldest full batch, waiting for one; rethrows the
  // producer's failure once the batches filled before it are drained.
  Batch& NextFull() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return !full_.empty() || error_; });
    if (full_.empty())
      std::rethrow_exception(error_);
    Batch* b = full_.front();
    full_.pop_front();
    return *b;
  }
  // Consumer: gives a drained batch back to the producer.
  void Release(Batch& b) {
    {
      std::lock_guard lock(mutex_);
      free_.push_back(&b);
    }
    changed_.notify_all();
  }

 private:
  std::vector<Batch> batches_;
  std::mutex mutex_;
  std::condition_variable_any changed_;
  std::deque<Batch*> free_;  // guarded by mutex_, as the rest
  std::deque<Batch*> full_;
  std::exception_ptr error_;
};

}  // namespace util
