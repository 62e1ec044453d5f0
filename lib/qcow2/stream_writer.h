// A qcow2 image written front to back, for pipes: header, refcount table,
// refcount blocks, L1 table, L2 tables, then the data clusters in guest
// order (compressed ones packed one after the other), so every table comes
// before what it points to and nothing is ever sought. Which clusters are
// all zeros (left unallocated) and how small each compresses is known only
// once read, so the image is laid out and written when the last cluster is
// in. Until then the clusters wait in a spool file (its data only, in the
// order they come), or, those that are a source's bytes as they are (or
// are in part, the rest zeros), in the source itself, read again when
// written.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "qcow2/format.h"
#include "qcow2/writer.h"
#include "util/file.h"
#include "util/range_set.h"

namespace qcow2 {

// One stored guest cluster of a streamed image: compressed_size 0 for a
// plain cluster (cluster_size bytes).
struct StreamCluster {
  uint64_t guest_cluster = 0;
  uint32_t compressed_size = 0;
};

// Places data clusters one after another from a cluster-aligned start:
// plain clusters on cluster boundaries, compressed frames packed, a host
// cluster closed once 65535 frames share it (its 16-bit refcount).
class DataPlacer {
 public:
  DataPlacer(uint64_t start, uint32_t cluster_bits);
  // Where the next cluster goes.
  uint64_t Place(const StreamCluster& c);
  // The first byte after the last one placed.
  uint64_t end() const { return end_; }
  // Frames (or plain clusters) using each host cluster from start on.
  const std::vector<uint16_t>& counts() const { return counts_; }

 private:
  uint64_t start_;
  uint32_t cluster_bits_;
  uint64_t end_;
  std::vector<uint16_t> counts_;
};

// Where each part of a streamed image goes, from the sorted list of its
// clusters: all offsets are cluster aligned, in this order.
struct StreamLayout {
  // The clusters at(0) to at(count - 1): ascending guest clusters, each once.
  StreamLayout(const Header& header, size_t count, const std::function<StreamCluster(size_t)>& at);
  StreamLayout(const Header& header, std::span<const StreamCluster> clusters)
      : StreamLayout(header, clusters.size(), [&](size_t i) { return clusters[i]; }) {}

  uint64_t cluster_size = 0;
  uint64_t refcount_table_offset = 0;
  uint64_t refcount_table_clusters = 0;
  uint64_t refcount_blocks_offset = 0;
  uint64_t refcount_blocks = 0;
  uint64_t l1_offset = 0;
  uint64_t l1_clusters = 0;
  uint64_t l2_offset = 0;
  uint64_t l2_tables = 0;
  uint64_t data_offset = 0;
  // Where the image ends: its last data byte, rounded up to a 512-byte
  // sector when that lies inside a cluster of packed compressed frames.
  uint64_t file_end = 0;
  // Refcounts of the data's host clusters, from data_offset on.
  std::vector<uint16_t> data_counts;
};

// Collects a capture's clusters in a spool file, then writes the streamed
// image to an output that is written in order only.
class StreamWriter : public ClusterTarget {
 public:
  // spool: an empty read-write file, for the clusters until Finish.
  StreamWriter(const util::File& out, const WriterOptions& options, util::File spool);

  uint64_t cluster_size() const override { return header_.cluster_size(); }
  void WriteCluster(uint64_t guest_cluster, std::span<const uint8_t> data) override;
  void OverwriteCluster(uint64_t guest_cluster, std::span<const uint8_t> data) override;
  void WriteCompressedCluster(uint64_t guest_cluster, std::span<const uint8_t> compressed) override;
  void AddHeaderExtension(HeaderExtension extension) override;
  uint32_t version() const override { return header_.version; }
  // Writes the whole image to the output, front to back.
  void Finish() override;

  // From now on, a plain cluster WriteCluster gets holds the bytes of
  // `source` at source_offset plus its guest offset, unless MarkChanged named
  // it: it is not spooled, and Finish reads it again from the source (from
  // the page cache, where the capture has just read it). A failed read there
  // ends the output short, with an error. `source` must outlive Finish.
  void ReferToSource(const util::File& source, uint64_t source_offset);
  // The guest bytes [offset, offset + length) are not the source's as they
  // are (zeros in place of unreadable sectors or past its end, a stale tail):
  // their clusters are spooled.
  void MarkChanged(uint64_t guest_offset, uint64_t length);
  // In a cluster the capture fills only in part, the guest bytes [offset,
  // offset + length) are the source's and the rest of it zeros: unless
  // MarkChanged named it, Finish reads it again from the source and zeroes
  // the rest, so it is not spooled either.
  void MarkSourcedPart(uint64_t guest_offset, uint64_t length);
  // Bytes in the spool so far.
  uint64_t spooled_bytes() const { return spool_end_; }

 private:
  // A stored cluster: its guest cluster, where it is in the spool (or that
  // it is the source's) and its compressed size (0: plain), in 16 bytes.
  struct Record {
    // As spool offsets: the source's cluster, whole or with its unmarked
    // parts zeroed. Spool offsets stay below both.
    static constexpr uint64_t kFromSource = (uint64_t{1} << 43) - 1;
    static constexpr uint64_t kPartFromSource = kFromSource - 1;
    uint64_t guest_cluster;
    uint64_t packed;  // spool offset << 21 | compressed size
    uint64_t spool_offset() const { return packed >> 21; }
    uint32_t size() const { return static_cast<uint32_t>(packed & ((1u << 21) - 1)); }
    bool from_source() const { return spool_offset() >= kPartFromSource; }
  };
  void AddRecord(uint64_t guest_cluster, uint64_t packed);
  // Appends bytes to the spool; returns where they start.
  uint64_t Spool(std::span<const uint8_t> bytes);
  void FlushSpool();
  // The record of guest_cluster, or nullptr.
  Record* Find(uint64_t guest_cluster);
  // Merges the records of the current increasing run into the sorted ones.
  void MergeRun();
  void CheckCluster(uint64_t guest_cluster) const;
  // The parts MarkSourcedPart named of the cluster at guest_offset, from it.
  std::vector<util::ByteRange> PartsOf(uint64_t guest_offset) const;
  // Refuses, before the first byte goes out, a source that no longer holds
  // every cluster referred to it (it shrank since the scan).
  void CheckSourceHolds() const;

  Header header_;
  util::File spool_;
  const util::File& out_;
  std::vector<uint8_t> spool_buffer_;  // bytes from spool_flushed_ on, not written yet
  uint64_t spool_flushed_ = 0;
  uint64_t spool_end_ = 0;
  // Records sorted by guest cluster, then those of the current increasing
  // run from run_start_ on (a capture comes in one or a few increasing passes).
  std::vector<Record> records_;
  size_t run_start_ = 0;
  const util::File* source_ = nullptr;  // the source clusters are referred to
  uint64_t source_offset_ = 0;
  util::RangeSet changed_;        // the guest clusters MarkChanged named
  util::RangeSet sourced_parts_;  // the guest bytes MarkSourcedPart named
  bool finished_ = false;
};

}  // namespace qcow2
