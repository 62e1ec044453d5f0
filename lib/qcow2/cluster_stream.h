// ClusterStream feeds a Qcow2Writer from byte runs at increasing guest
// offsets, whatever their alignment: it assembles whole clusters (bytes not
// given are zeros), drops all-zero clusters, and compresses when asked.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "qcow2/compress.h"
#include "qcow2/compress_pool.h"
#include "qcow2/writer.h"

namespace qcow2 {

// Cluster assembly in front of a writer.
class ClusterStream {
 public:
  // compression: compress each cluster with this codec (stored plain when it
  // does not shrink) at this level; threads > 1: on a pool of that many
  // workers, whose codecs and queue hold at most compression_memory.
  ClusterStream(ClusterTarget& writer, std::optional<CompressionType> compression,
                unsigned threads = 1, int level = kDefaultLevel,
                size_t compression_memory = CompressPool::kMemoryBudget);
  ~ClusterStream();
  ClusterStream(const ClusterStream&) = delete;  // store_ holds this
  ClusterStream& operator=(const ClusterStream&) = delete;
  // Adds guest bytes at offset; offsets must not go backwards.
  void Write(uint64_t guest_offset, std::span<const uint8_t> data);
  // With compression threads: room for whole clusters from guest_offset (a
  // cluster boundary) on, at most max_bytes, in the compression queue, to be
  // read into and then given whole to Write (no copy). Empty when there is
  // none (no pool, or less than a cluster asked for or left unaligned).
  std::span<uint8_t> RoomFor(uint64_t guest_offset, uint64_t max_bytes);
  // Stores the last partial cluster. Call before writer.Finish().
  void Flush();
  // Flushes, then takes offsets from 0 again: the clusters of a new pass,
  // none of them written before (the compression workers stay).
  void StartAgain();

  uint64_t clusters_written() const { return clusters_written_; }
  // The compression pool (threads > 1), for the limits its budget set.
  const CompressPool* pool() const { return pool_.get(); }
  uint64_t clusters_compressed() const { return clusters_compressed_; }

 private:
  void EmitCluster(uint64_t cluster, std::span<const uint8_t> data);
  // Zeroed room for the cluster being assembled: in the pool's queue, or
  // assembly_ without a pool.
  std::span<uint8_t> StartPending(uint64_t cluster);
  void EmitPending();
  // Queues the room given by RoomFor, less its all-zero clusters.
  void CommitRoom();
  void Store(const CompressedCluster& cluster);
  ClusterTarget& writer_;
  std::optional<CompressionType> compression_;
  std::unique_ptr<CompressPool> pool_;
  CompressedClusterSink store_;                    // Store, as the pool takes it
  std::unique_ptr<ClusterCompressor> compressor_;  // without a pool
  uint64_t cluster_size_;
  std::vector<uint8_t> assembly_;
  std::span<uint8_t> pending_;  // the cluster being assembled, while pending_cluster_ is set
  std::optional<uint64_t> pending_cluster_;
  std::span<uint8_t> room_;  // given by RoomFor, not yet written
  uint64_t room_offset_ = 0;
  uint64_t position_ = 0;
  uint64_t clusters_written_ = 0;
  uint64_t clusters_compressed_ = 0;
};

}  // namespace qcow2
