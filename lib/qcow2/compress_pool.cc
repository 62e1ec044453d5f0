#include "qcow2/compress_pool.h"

#include <algorithm>
#include <optional>

namespace qcow2 {

namespace {

constexpr size_t kBatchBytes = 1u << 20;

}  // namespace

CompressPool::CompressPool(CompressionType type, int level, unsigned threads)
    : type_(type), level_(level), max_in_flight_(4 * std::max(1u, threads)) {
  for (unsigned i = 1; i < threads; ++i)
    workers_.emplace_back([this] { Work(); });
}

CompressPool::~CompressPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& t : workers_)
    t.join();
}

unsigned CompressPool::DefaultThreads() {
  return std::max(1u, std::thread::hardware_concurrency());
}

void CompressPool::Work() {
  ClusterCompressor codec(type_, level_);
  for (;;) {
    Job* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_ready_.wait(lock, [this] { return stopping_ || !to_start_.empty(); });
      if (stopping_)
        return;  // queued jobs are dropped with the pool
      job = to_start_.front();
      to_start_.pop_front();
    }
    Run(*job, codec);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job->done = true;
    }
    job_done_.notify_all();
  }
}

void CompressPool::Run(Job& job, ClusterCompressor& codec) {
  for (CompressedCluster& cluster : job.results) {
    std::optional<std::vector<uint8_t>> packed;
    try {
      packed = codec.Compress(cluster.data);
    } catch (...) {
      packed.reset();  // stored plain: compression is an optimisation only
    }
    if (packed) {
      cluster.data = std::move(*packed);
      cluster.compressed = true;
    }
  }
}

void CompressPool::Submit(uint64_t cluster, std::span<const uint8_t> data,
                          const CompressedClusterSink& sink) {
  if (!filling_)
    filling_ = std::make_unique<Job>();
  CompressedCluster& added = filling_->results.emplace_back();
  added.cluster = cluster;
  added.data.assign(data.begin(), data.end());
  filling_->bytes += data.size();
  if (filling_->bytes < kBatchBytes)
    return;
  Enqueue();
  Deliver(sink, max_in_flight_);
}

void CompressPool::Drain(const CompressedClusterSink& sink) {
  Enqueue();
  Deliver(sink, 0);
}

void CompressPool::Enqueue() {
  if (!filling_)
    return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    to_start_.push_back(filling_.get());
    in_order_.push_back(std::move(filling_));
  }
  work_ready_.notify_one();
}

void CompressPool::Deliver(const CompressedClusterSink& sink, size_t keep_in_flight) {
  for (;;) {
    std::unique_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (in_order_.empty())
        return;
      while (!in_order_.front()->done) {
        if (in_order_.size() <= keep_in_flight)
          return;
        if (to_start_.empty()) {
          job_done_.wait(lock, [this] { return in_order_.front()->done; });
          break;
        }
        // Compress a batch here rather than wait: the caller is a thread of the pool.
        Job* mine = to_start_.front();
        to_start_.pop_front();
        lock.unlock();
        if (!caller_codec_)
          caller_codec_ = std::make_unique<ClusterCompressor>(type_, level_);
        Run(*mine, *caller_codec_);
        lock.lock();
        mine->done = true;
      }
      job = std::move(in_order_.front());
      in_order_.pop_front();
    }
    for (CompressedCluster& cluster : job->results)
      sink(cluster);
  }
}

}  // namespace qcow2
