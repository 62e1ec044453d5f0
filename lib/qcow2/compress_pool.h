// CompressPool compresses clusters on worker threads while the caller goes
// on reading, and hands the results back in the order they were submitted,
// so the single-threaded writer lays the image out exactly as without it.
// The caller is one of its threads: rather than wait for a result, it
// compresses a batch no worker has taken.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "qcow2/compress.h"

namespace qcow2 {

// One cluster through the pool: its number, and the bytes to store.
struct CompressedCluster {
  uint64_t cluster = 0;
  std::vector<uint8_t> data;  // compressed, or the plain cluster when that was not smaller
  bool compressed = false;
};

// Receives finished clusters, in submission order, on the caller's thread.
using CompressedClusterSink = std::function<void(CompressedCluster&)>;

// A fixed set of compression threads (the caller's included) with a bounded queue.
class CompressPool {
 public:
  // threads: compressing threads, the caller's included (threads - 1
  // workers are started); level: the codec's level (-1: its default).
  CompressPool(CompressionType type, int level, unsigned threads);
  ~CompressPool();
  CompressPool(const CompressPool&) = delete;
  CompressPool& operator=(const CompressPool&) = delete;

  // Queues a copy of one cluster; delivers the finished ones at the head of
  // the queue, waiting when too many are in flight.
  void Submit(uint64_t cluster, std::span<const uint8_t> data, const CompressedClusterSink& sink);
  // Waits for every queued cluster and delivers it.
  void Drain(const CompressedClusterSink& sink);

  // All cores, for --threads' default.
  static unsigned DefaultThreads();

 private:
  // A batch of consecutive submissions (about 1 MiB), the unit of work, so
  // the cost of handing work over stays small beside that of compressing.
  struct Job {
    std::vector<CompressedCluster> results;  // inputs first, then outputs
    size_t bytes = 0;
    bool done = false;
  };
  void Work();
  // Compresses the clusters of a job in place.
  static void Run(Job& job, ClusterCompressor& codec);
  void Enqueue();
  void Deliver(const CompressedClusterSink& sink, size_t keep_in_flight);

  CompressionType type_;
  int level_;
  size_t max_in_flight_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable job_done_;
  std::deque<std::unique_ptr<Job>> in_order_;  // every job not yet delivered
  std::deque<Job*> to_start_;                  // jobs no worker has taken yet
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::unique_ptr<Job> filling_;                     // the batch being filled by Submit
  std::unique_ptr<ClusterCompressor> caller_codec_;  // for the jobs the caller runs
};

}  // namespace qcow2
