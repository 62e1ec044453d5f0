#include "qcow2/compress_pool.h"

#include <algorithm>
#include <optional>
#include <system_error>

#include <sched.h>

namespace qcow2 {

namespace {

constexpr size_t kBatchBytes = 1u << 20;

}  // namespace

PoolLimits PoolLimits::Fit(unsigned threads, size_t codec_bytes, size_t batch_bytes,
                           size_t budget_bytes) {
  PoolLimits limits;
  limits.codec_bytes = codec_bytes;
  limits.budget_bytes = budget_bytes;
  const size_t per_thread = codec_bytes + 2 * batch_bytes;
  const size_t fitting = per_thread ? budget_bytes / per_thread : threads;
  limits.threads = static_cast<unsigned>(std::clamp<size_t>(fitting, 1, std::max(1u, threads)));
  const size_t codecs = limits.threads * codec_bytes;
  const size_t batches_fitting =
      batch_bytes && budget_bytes > codecs ? (budget_bytes - codecs) / batch_bytes : 0;
  limits.batches_in_flight =
      std::max<size_t>(2, std::min<size_t>(4 * limits.threads, batches_fitting));
  return limits;
}

size_t CompressPool::BatchBytes(size_t cluster_size) {
  // A batch is filled to kBatchBytes, or one cluster when that is larger;
  // a cluster is kept compressed only when smaller than itself.
  return 2 * std::max(kBatchBytes, cluster_size);
}

CompressPool::CompressPool(CompressionType type, int level, unsigned threads, size_t cluster_size,
                           size_t memory_budget)
    : type_(type), level_(level), caller_codec_(std::make_unique<ClusterCompressor>(type, level)) {
  // The caller's codec sizes its state on a cluster of zeros (the same size
  // as on any cluster), so the budget goes by what a codec really takes.
  caller_codec_->Pack(std::vector<uint8_t>(cluster_size));
  limits_ = PoolLimits::Fit(threads, caller_codec_->MemoryBytes(), BatchBytes(cluster_size),
                            memory_budget);
  max_workers_ = limits_.threads - 1;
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
  // The affinity mask, as nproc: `taskset` and container CPU sets narrow it.
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) > 0)
    return static_cast<unsigned>(CPU_COUNT(&allowed));
  return std::max(1u, std::thread::hardware_concurrency());
}

void CompressPool::Work() {
  // Made at the first batch: a zstd context is about 660 KiB at level 3.
  std::optional<ClusterCompressor> codec;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_ready_.wait(lock, [this] { return stopping_ || !to_start_.empty(); });
    if (stopping_)
      return;  // queued jobs are dropped with the pool
    Job* job = to_start_.front();
    to_start_.pop_front();
    --idle_workers_;
    lock.unlock();
    if (!codec)
      codec.emplace(type_, level_);
    Run(*job, *codec);
    lock.lock();
    job->done = true;
    ++idle_workers_;  // with done, so the caller never sees a finished worker busy
    job_done_.notify_all();
  }
}

bool CompressPool::ShouldStartWorker() {
  if (workers_.size() >= max_workers_ || idle_workers_ >= to_start_.size())
    return false;
  ++idle_workers_;  // counted from now, so the next batch does not start another
  return true;
}

void CompressPool::Run(Job& job, ClusterCompressor& codec) {
  for (Job::Entry& e : job.entries) {
    if (e.dropped)
      continue;
    std::span<const uint8_t> packed;
    try {
      packed = codec.Pack(std::span<const uint8_t>(job.input).subspan(e.input_at, e.size));
    } catch (...) {
      packed = {};  // stored plain: compression is an optimisation only
    }
    if (packed.empty())
      continue;
    e.packed_at = job.packed.size();
    e.packed_size = packed.size();
    e.compressed = true;
    job.packed.insert(job.packed.end(), packed.begin(), packed.end());
  }
}

CompressPool::Job& CompressPool::Filling() {
  if (!filling_) {
    if (spare_.empty()) {
      filling_ = std::make_unique<Job>();
      filling_->input.reserve(2 * kBatchBytes);
    } else {
      filling_ = std::move(spare_.back());
      spare_.pop_back();
    }
  }
  return *filling_;
}

void CompressPool::Submit(uint64_t cluster, std::span<const uint8_t> data,
                          const CompressedClusterSink& sink) {
  Job& job = Filling();
  job.entries.push_back({.cluster = cluster, .input_at = job.input.size(), .size = data.size()});
  job.input.insert(job.input.end(), data.begin(), data.end());
  MaybeEnqueue(sink);
}

std::span<uint8_t> CompressPool::AddCluster(uint64_t cluster, size_t size) {
  const std::span<uint8_t> room = AddClusters(cluster, 1, size);
  std::fill(room.begin(), room.end(), 0);
  return room;
}

std::span<uint8_t> CompressPool::AddClusters(uint64_t first, size_t count, size_t size) {
  Job& job = Filling();
  const size_t at = job.input.size();
  const size_t batch_room = kBatchBytes > at ? (kBatchBytes - at + size - 1) / size : 1;
  count = std::max<size_t>(1, std::min(count, batch_room));
  added_from_ = job.entries.size();
  for (size_t i = 0; i < count; ++i)
    job.entries.push_back({.cluster = first + i, .input_at = at + i * size, .size = size});
  job.input.resize(at + count * size);
  return std::span<uint8_t>(job.input).subspan(at, count * size);
}

void CompressPool::DropAddedAt(size_t index) {
  filling_->entries.at(added_from_ + index).dropped = true;
}

void CompressPool::SubmitAdded(const CompressedClusterSink& sink) {
  MaybeEnqueue(sink);
}

void CompressPool::DropAdded() {
  Job& job = *filling_;
  job.input.resize(job.entries.back().input_at);
  job.entries.pop_back();
}

void CompressPool::MaybeEnqueue(const CompressedClusterSink& sink) {
  if (filling_->input.size() < kBatchBytes)
    return;
  Enqueue();
  Deliver(sink, limits_.batches_in_flight);
}

void CompressPool::Drain(const CompressedClusterSink& sink) {
  Enqueue();
  Deliver(sink, 0);
}

void CompressPool::Enqueue() {
  if (!filling_ || filling_->entries.empty())
    return;
  bool start_worker = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    to_start_.push_back(filling_.get());
    in_order_.push_back(std::move(filling_));
    start_worker = ShouldStartWorker();
  }
  if (start_worker) {
    try {
      workers_.emplace_back([this] { Work(); });
    } catch (const std::system_error&) {
      // No more threads to be had: the ones there are (the caller's at
      // least) do the work.
      std::lock_guard<std::mutex> lock(mutex_);
      --idle_workers_;
      max_workers_ = workers_.size();
    }
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
        Run(*mine, *caller_codec_);
        lock.lock();
        mine->done = true;
      }
      job = std::move(in_order_.front());
      in_order_.pop_front();
    }
    const std::span<const uint8_t> input(job->input);
    const std::span<const uint8_t> packed(job->packed);
    for (const Job::Entry& e : job->entries) {
      if (!e.dropped)
        sink({.cluster = e.cluster,
              .data = e.compressed ? packed.subspan(e.packed_at, e.packed_size)
                                   : input.subspan(e.input_at, e.size),
              .compressed = e.compressed});
    }
    job->entries.clear();
    job->input.clear();
    job->packed.clear();
    job->done = false;
    // Every batch made is kept (no more than can be in flight at once, so
    // the peak memory stays as it was): one freed and made again would have
    // its 1-2 MiB faulted in afresh, page by page.
    if (spare_.size() <= limits_.batches_in_flight)
      spare_.push_back(std::move(job));
  }
}

}  // namespace qcow2
