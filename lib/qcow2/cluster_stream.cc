#include "qcow2/cluster_stream.h"

#include <algorithm>
#include <cstring>

#include "util/error.h"
#include "util/file.h"

namespace qcow2 {

ClusterStream::ClusterStream(ClusterTarget& writer, std::optional<CompressionType> compression,
                             unsigned threads, int level, size_t compression_memory)
    : writer_(writer),
      compression_(compression),
      store_([this](const CompressedCluster& done) { Store(done); }),
      cluster_size_(writer.cluster_size()) {
  if (compression_ && threads > 1)
    pool_ = std::make_unique<CompressPool>(*compression_, level, threads, cluster_size_,
                                           compression_memory);
  else if (compression_)
    compressor_ = std::make_unique<ClusterCompressor>(*compression_, level);
}

ClusterStream::~ClusterStream() = default;

void ClusterStream::Store(const CompressedCluster& cluster) {
  if (cluster.compressed) {
    writer_.WriteCompressedCluster(cluster.cluster, cluster.data);
    ++clusters_compressed_;
  } else {
    writer_.WriteCluster(cluster.cluster, cluster.data);
  }
}

void ClusterStream::EmitCluster(uint64_t cluster, std::span<const uint8_t> data) {
  if (util::IsAllZero(data))
    return;
  ++clusters_written_;
  if (pool_) {
    pool_->Submit(cluster, data, store_);
    return;
  }
  CompressedCluster done{cluster, data, false};
  if (compressor_) {
    if (const std::span<const uint8_t> packed = compressor_->Pack(data); !packed.empty())
      done = {cluster, packed, true};
  }
  Store(done);
}

std::span<uint8_t> ClusterStream::RoomFor(uint64_t guest_offset, uint64_t max_bytes) {
  if (!room_.empty())
    throw util::Error("internal error: qcow2 cluster stream: room asked for twice");
  if (!pool_ || guest_offset < position_ || guest_offset % cluster_size_ != 0 ||
      max_bytes < cluster_size_)
    return {};
  EmitPending();  // an earlier cluster: this one starts on a boundary past it
  room_ =
      pool_->AddClusters(guest_offset / cluster_size_, max_bytes / cluster_size_, cluster_size_);
  room_offset_ = guest_offset;
  return room_;
}

void ClusterStream::CommitRoom() {
  for (size_t i = 0; i * cluster_size_ < room_.size(); ++i) {
    if (util::IsAllZero(room_.subspan(i * cluster_size_, cluster_size_)))
      pool_->DropAddedAt(i);
    else
      ++clusters_written_;
  }
  position_ = room_offset_ + room_.size();
  room_ = {};
  pool_->SubmitAdded(store_);
}

void ClusterStream::Write(uint64_t guest_offset, std::span<const uint8_t> data) {
  if (!room_.empty()) {
    // The room given out must come back whole, and before anything else.
    if (data.data() != room_.data() || data.size() != room_.size() || guest_offset != room_offset_)
      throw util::Error("internal error: qcow2 cluster stream: room written in part");
    CommitRoom();
    return;
  }
  if (guest_offset < position_)
    throw util::Error("qcow2 cluster stream: offsets went backwards");
  size_t done = 0;
  while (done < data.size()) {
    const uint64_t at = guest_offset + done;
    const uint64_t cluster = at / cluster_size_;
    const uint64_t in_cluster = at % cluster_size_;
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(cluster_size_ - in_cluster, data.size() - done));
    if (pending_cluster_ && *pending_cluster_ != cluster)
      EmitPending();
    if (!pending_cluster_ && in_cluster == 0 && n == cluster_size_) {
      EmitCluster(cluster, data.subspan(done, n));  // whole cluster: no copy
    } else {
      if (!pending_cluster_) {
        pending_ = StartPending(cluster);
        pending_cluster_ = cluster;
      }
      std::memcpy(pending_.data() + in_cluster, data.data() + done, n);
    }
    done += n;
  }
  position_ = guest_offset + data.size();
}

std::span<uint8_t> ClusterStream::StartPending(uint64_t cluster) {
  if (pool_)
    return pool_->AddCluster(cluster, cluster_size_);  // assembled in the queue: no copy
  assembly_.assign(cluster_size_, 0);
  return assembly_;
}

void ClusterStream::EmitPending() {
  if (!pending_cluster_)
    return;
  const uint64_t cluster = *pending_cluster_;
  pending_cluster_.reset();
  if (!pool_) {
    EmitCluster(cluster, pending_);
  } else if (util::IsAllZero(pending_)) {
    pool_->DropAdded();
  } else {
    ++clusters_written_;
    pool_->SubmitAdded(store_);
  }
}

void ClusterStream::Flush() {
  if (!room_.empty())
    throw util::Error("internal error: qcow2 cluster stream: room never written");
  EmitPending();
  if (pool_)
    pool_->Drain(store_);
}

void ClusterStream::StartAgain() {
  Flush();
  position_ = 0;
}

}  // namespace qcow2
