// Qcow2Writer builds a qcow2 image in one pass, laid out as qemu-img lays
// its own: header in cluster 0, then the refcount table, the first refcount
// block and the L1 table; then data clusters, L2 tables (through a 512-table
// write-back cache) and further refcount blocks in the order they are needed.
// Refcounts are kept in memory and written at the end, so every one is exact,
// and nothing follows the last compressed cluster: the file ends where its
// data does (rounded up to a 512-byte sector), with no padding cluster.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "qcow2/format.h"
#include "qcow2/l2_cache.h"
#include "qcow2/write_combiner.h"
#include "util/file.h"
#include "util/large_buffer.h"

namespace qcow2 {

// What the image will look like.
struct WriterOptions {
  uint64_t virtual_size = 0;
  uint32_t cluster_bits = 16;
  uint32_t version = 2;                                  // 2 or 3
  CompressionType compression = CompressionType::kZlib;  // recorded in v3 headers
  size_t l2_cache_tables = kDefaultL2CacheTables;
};

// The header of a new image with these options, its tables not placed yet;
// throws, naming path, on options no image can have.
Header NewImageHeader(const WriterOptions& options, const std::string& path);

// The smallest cluster size (as bits, at least min_bits) whose L1 table for
// virtual_size fits qemu's 32 MiB limit; throws when none up to 2 MiB does.
uint32_t SmallestClusterBits(uint64_t virtual_size, uint32_t min_bits);

// Exact refcounts of host clusters, growing as clusters are allocated: 16
// bits each, as the images' refcount_order 4 stores them, so 2 bytes per
// host cluster (the image holds only metadata: 20 MB for a 10 GB image of
// 512-byte clusters).
inline constexpr uint32_t kMaxRefcount = 0xffff;
class RefcountTracker {
 public:
  void Add(uint64_t host_cluster, uint32_t count = 1);
  // Takes one reference away (a reserved cluster given up).
  void Release(uint64_t host_cluster);
  uint64_t Get(uint64_t host_cluster) const;
  uint64_t clusters() const { return counts_.size(); }

 private:
  std::vector<uint16_t> counts_;
};

// Where guest clusters go, one at a time: a qcow2 file laid out as it
// comes (Qcow2Writer), or a spool for an image written front to back
// (StreamWriter).
class ClusterTarget {
 public:
  virtual ~ClusterTarget() = default;
  virtual uint64_t cluster_size() const = 0;
  // Stores one whole guest cluster (cluster_size bytes).
  virtual void WriteCluster(uint64_t guest_cluster, std::span<const uint8_t> data) = 0;
  // Stores one whole guest cluster again, in place of what WriteCluster
  // stored (or as WriteCluster does, if it stored nothing: a cluster of zeros
  // then stays unallocated).
  virtual void OverwriteCluster(uint64_t guest_cluster, std::span<const uint8_t> data) = 0;
  // Stores one guest cluster already compressed with the image's codec
  // (raw deflate for zlib, a zstd frame for zstd).
  virtual void WriteCompressedCluster(uint64_t guest_cluster,
                                      std::span<const uint8_t> compressed) = 0;
  // Adds a header extension to the image's header, before Finish.
  virtual void AddHeaderExtension(HeaderExtension extension) = 0;
  virtual uint32_t version() const = 0;
  // Completes the image; it is valid only after this returns.
  virtual void Finish() = 0;
};

// Streams guest clusters into a new qcow2 file. Clusters may come in any
// order, each at most once (OverwriteCluster aside); a cluster never
// written reads as zeros.
class Qcow2Writer : public ClusterTarget {
 public:
  // `out` must be a seekable, empty, regular file opened read-write: the
  // stretches of zeros of 64 KiB or more in clusters and tables are left
  // as its holes.
  Qcow2Writer(const util::File& out, const WriterOptions& options);

  // Allocates now the L2 tables of these L1 entries (ascending; those the
  // image will need), so that they all come before the data: otherwise a
  // table needed part way ends the packing of compressed data in the middle
  // of a host cluster. Call before writing clusters. A reserved table that
  // gets no entry is given up in Finish (a free cluster inside the file).
  void ReserveL2Tables(std::span<const uint64_t> l1_indices);
  void WriteCluster(uint64_t guest_cluster, std::span<const uint8_t> data) override;
  void OverwriteCluster(uint64_t guest_cluster, std::span<const uint8_t> data) override;
  void WriteCompressedCluster(uint64_t guest_cluster, std::span<const uint8_t> compressed) override;
  // Writes the remaining L2 tables, the refcounts, the L1 table and the
  // header. The image is valid only after this returns.
  void Finish() override;

  // Additions to the image's metadata, before Finish: a header extension,
  // autoclear feature bits (version 3), and clusters of other metadata (a
  // bitmap's data, table and directory), written now in newly allocated
  // clusters (zeros to the end of the last) whose first host offset is
  // returned. Compressed data written later does not move into the holes
  // of given-up L2 tables.
  void AddHeaderExtension(HeaderExtension extension) override;
  void SetAutoclearFeatures(uint64_t bits);
  uint64_t WriteMetadataClusters(std::span<const uint8_t> bytes);
  uint32_t version() const override { return header_.version; }

  uint64_t cluster_size() const override { return header_.cluster_size(); }
  uint64_t guest_clusters() const;
  // Host bytes allocated so far (whole clusters).
  uint64_t host_bytes() const { return next_free_; }
  const L2Cache& l2_cache() const { return *l2_cache_; }

 private:
  uint64_t AllocateClusters(uint64_t count);
  // Allocates the refcount blocks that `count` clusters allocated next would
  // need (before them, so that every block covers itself); true if any.
  bool AllocateRefcountBlocksFor(uint64_t count);
  uint64_t refcounts_per_block() const;
  std::span<uint64_t> L2TableFor(uint64_t guest_cluster);
  void CheckGuestCluster(uint64_t guest_cluster) const;
  // Marks an allocation other than compressed data: frames before it can no
  // longer be moved to shorten the file.
  void EndCompressedTail();
  // Moves the last compressed frames into the clusters of reserved L2 tables
  // that were given up, shortening the file by as much. Returns where the
  // compressed data now ends (0: unchanged).
  uint64_t MoveTailIntoHoles(const std::vector<uint64_t>& holes);
  void WriteRefcounts();

  const util::File& out_;
  WriteCombiner data_out_{out_};  // data clusters, written in runs
  Header header_;
  uint64_t l1_clusters_ = 0;
  // Mapped up front and zero (for 15 TiB it is 15 MiB), not faulted in
  // page by page as a zero-filled vector would be before the copy began.
  util::LargeBuffer l1_storage_;
  std::span<uint64_t> l1_;
  std::vector<bool> l2_unused_;  // per L1 entry: a reserved table not used yet
  uint64_t reserved_bytes_ = 0;  // of L2 tables reserved up front
  // The compressed frames at the end of the file, after every other
  // allocation (those that could move into given-up reserved tables).
  struct Frame {
    uint64_t guest_cluster, start, size;
  };
  std::deque<Frame> tail_frames_;
  uint64_t tail_floor_ = 0;  // where the last other allocation ended
  std::unique_ptr<L2Cache> l2_cache_;
  RefcountTracker refcounts_;
  std::vector<uint64_t> refcount_blocks_;  // host offsets; block k covers clusters k * per_block...
  uint64_t refcount_table_offset_ = 0;
  uint64_t refcount_table_clusters_ = 0;
  uint64_t next_free_ = 0;          // first unallocated host byte (cluster aligned)
  uint64_t compressed_cursor_ = 0;  // where the next compressed cluster may start, 0 = none
  bool finished_ = false;
};

}  // namespace qcow2
