// CompressPool compresses clusters on worker threads while the caller goes
// on reading, and hands the results back in the order they were submitted,
// so the single-threaded writer lays the image out exactly as without it.
// The caller is one of its threads: rather than wait for a result, it
// compresses a batch no worker has taken. Workers start only when batches
// wait with none idle, so their codecs' memory follows the work, not the
// cores, and threads and queue together stay within a memory budget.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "qcow2/compress.h"

namespace qcow2 {

// One cluster through the pool: its number, and the bytes to store (valid
// during the sink's call only).
struct CompressedCluster {
  uint64_t cluster = 0;
  std::span<const uint8_t> data;  // compressed, or the plain cluster when that was not smaller
  bool compressed = false;
};

// Receives finished clusters, in submission order, on the caller's thread.
using CompressedClusterSink = std::function<void(const CompressedCluster&)>;

// std::allocator, but new elements are left uninitialised: the batches'
// bytes are read or copied into whole, and clearing them first cost a pass.
template <typename T>
struct UninitializedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <typename U>
  explicit UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* at) noexcept {
    ::new (static_cast<void*>(at)) U;
  }
  template <typename U, typename... Args>
  void construct(U* at, Args&&... args) {
    ::new (static_cast<void*>(at)) U(std::forward<Args>(args)...);
  }
};

// How far a pool goes: its compressing threads (the caller's included) and
// the batches it holds at once, fitted to a memory budget.
struct PoolLimits {
  unsigned threads = 1;
  size_t batches_in_flight = 2;
  size_t codec_bytes = 0;   // one thread's codec, as measured
  size_t budget_bytes = 0;  // what they were fitted to

  // As many of the threads asked as fit in budget_bytes, each with a codec
  // of codec_bytes and two batches of batch_bytes (one compressing, one
  // waiting); then up to four batches a thread, as the budget allows. One
  // thread and two batches at least, whatever the budget.
  static PoolLimits Fit(unsigned threads, size_t codec_bytes, size_t batch_bytes,
                        size_t budget_bytes);
};

// A set of compression threads (the caller's included) with a bounded queue.
class CompressPool {
 public:
  // What the codecs and batches of a pool may hold together. With zstd at
  // level 3 and 64 KiB clusters that is 10 threads (more would compress
  // faster than a disk reads); at level 19 with 2 MiB clusters, whose codec
  // alone takes 35 MiB, the caller's thread only.
  static constexpr size_t kMemoryBudget = 48u << 20;

  // threads: compressing threads asked for, the caller's included (at most
  // limits().threads - 1 workers are started); level: the codec's level (-1:
  // its default); cluster_size: the clusters' size, which with the level
  // sets a codec's memory; memory_budget: what codecs and batches may hold.
  CompressPool(CompressionType type, int level, unsigned threads, size_t cluster_size,
               size_t memory_budget = kMemoryBudget);
  ~CompressPool();
  CompressPool(const CompressPool&) = delete;
  CompressPool& operator=(const CompressPool&) = delete;

  // Queues a copy of one cluster; delivers the finished ones at the head of
  // the queue, waiting when too many are in flight.
  void Submit(uint64_t cluster, std::span<const uint8_t> data, const CompressedClusterSink& sink);
  // Room for one cluster of `size` zeros in the queue, to be filled in place
  // (no copy) and then queued by SubmitAdded or taken back by DropAdded. No
  // other call may come in between.
  std::span<uint8_t> AddCluster(uint64_t cluster, size_t size);
  void SubmitAdded(const CompressedClusterSink& sink);
  void DropAdded();
  // Room for up to `count` consecutive clusters of `size` bytes from `first`
  // on, as many as the batch being filled takes (one at least), to be read
  // into (its bytes are not cleared); then queued by SubmitAdded, less those
  // taken back by DropAddedAt (index i: cluster first + i). No other call
  // may come in between.
  std::span<uint8_t> AddClusters(uint64_t first, size_t count, size_t size);
  void DropAddedAt(size_t index);
  // Waits for every queued cluster and delivers it.
  void Drain(const CompressedClusterSink& sink);

  // The cores this process may run on, for --threads' default.
  static unsigned DefaultThreads();
  // The workers started so far (the caller's thread not counted).
  size_t workers_started() const { return workers_.size(); }
  // The threads and queue the budget allowed.
  const PoolLimits& limits() const { return limits_; }
  // A batch's bytes at most: its clusters, and what they compressed to.
  static size_t BatchBytes(size_t cluster_size);

 private:
  // A batch of consecutive clusters (about 1 MiB), the unit of work, so the
  // cost of handing work over stays small beside that of compressing. Its
  // buffers are kept for the next batch once it is delivered.
  struct Job {
    struct Entry {
      uint64_t cluster = 0;
      size_t input_at = 0;  // in input
      size_t size = 0;
      size_t packed_at = 0;  // in packed, when compressed
      size_t packed_size = 0;
      bool compressed = false;
      bool dropped = false;  // taken back: neither compressed nor delivered
    };
    std::vector<Entry> entries;
    std::vector<uint8_t, UninitializedAllocator<uint8_t>>
        input;                    // the clusters, one after the other
    std::vector<uint8_t> packed;  // what the compressed ones compressed to
    bool done = false;
  };
  void Work();
  // Starts a worker if batches wait with none idle; called with mutex_ held.
  bool ShouldStartWorker();
  // Compresses the clusters of a job.
  static void Run(Job& job, ClusterCompressor& codec);
  Job& Filling();
  size_t added_from_ = 0;  // the first entry of the last AddClusters
  // Queues the batch being filled when it is full, then delivers.
  void MaybeEnqueue(const CompressedClusterSink& sink);
  void Enqueue();
  void Deliver(const CompressedClusterSink& sink, size_t keep_in_flight);

  CompressionType type_;
  int level_;
  std::unique_ptr<ClusterCompressor> caller_codec_;  // for the jobs the caller runs
  PoolLimits limits_;
  size_t max_workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable job_done_;
  std::deque<std::unique_ptr<Job>> in_order_;  // every job not yet delivered
  std::deque<Job*> to_start_;                  // jobs no worker has taken yet
  bool stopping_ = false;
  size_t idle_workers_ = 0;  // started (or starting) and not compressing
  std::vector<std::thread> workers_;
  std::unique_ptr<Job> filling_;             // the batch being filled by Submit
  std::vector<std::unique_ptr<Job>> spare_;  // delivered batches, for reuse
};

}  // namespace qcow2
