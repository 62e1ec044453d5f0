// Image sinks: where the blocks chosen by the metadata map go. Blocks arrive
// in increasing order as runs of whole filesystem blocks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "e2img/block_set.h"
#include "qcow2/cluster_stream.h"
#include "qcow2/writer.h"
#include "util/output.h"

namespace qcow2 {
class StreamWriter;
}

namespace e2img {

// Receives filesystem blocks in increasing order (or in several increasing
// passes, where the sink allows it).
class ImageSink {
 public:
  virtual ~ImageSink() = default;
  // data holds whole blocks starting at first_block.
  virtual void WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) = 0;
  // Room of the sink's own for up to `blocks` whole blocks from first_block
  // on, for the caller to read them into and hand the room, whole, to
  // WriteBlocks next, which then takes them without a copy. Empty when the
  // sink has none: the caller uses a buffer of its own.
  virtual std::span<uint8_t> RoomFor(uint64_t /*first_block*/, uint64_t /*blocks*/) { return {}; }
  // The blocks [first_block, first_block + blocks) about to be written are
  // not to be taken for the source's bytes as they are: zeros where it could
  // not be read or had ended, a stale tail zeroed, anything it gives once it
  // has failed a read. For a sink that refers to the source instead of
  // keeping what it is given; transforms in front of a sink need not pass it
  // on (a transformed capture never refers to its source).
  virtual void NoteChanged(uint64_t /*first_block*/, uint64_t /*blocks*/) {}
  // Completes the image (sizes, tables); the output is committed by the caller.
  virtual void Finish() = 0;
  // The blocks in each unit (a qcow2 cluster) the sink stores whole, if it
  // can take further increasing passes over units the earlier ones did not
  // touch; 0 if it takes one pass only.
  virtual uint64_t SecondPassUnitBlocks() const { return 0; }
  // Starts another pass (the last unit of the one before must be complete).
  // rewrites: whole units of earlier passes that come again, whose new bytes
  // replace the old (ascending).
  virtual void StartSecondPass(std::vector<BlockExtent> rewrites);
};

// The units a second pass writes again, looked up as blocks come in
// increasing order.
class RewrittenUnits {
 public:
  RewrittenUnits() = default;
  explicit RewrittenUnits(std::vector<BlockExtent> units) : units_(std::move(units)) {}
  // Calls visit(first, count, rewritten) for the parts of [first, first + count), in order.
  template <typename Visit>
  void Split(uint64_t first, uint64_t count, Visit visit) {
    const uint64_t end = first + count;
    while (next_ < units_.size() && units_[next_].end() <= first)
      ++next_;
    while (first < end) {
      if (next_ == units_.size() || units_[next_].start >= end) {
        visit(first, end - first, false);
        return;
      }
      const BlockExtent& unit = units_[next_];
      if (unit.start > first) {
        visit(first, unit.start - first, false);
        first = unit.start;
      }
      const uint64_t stop = std::min(end, unit.end());
      visit(first, stop - first, true);
      first = stop;
      if (stop == unit.end())
        ++next_;
    }
  }
  // Split over the bytes of a run of whole blocks: visit(first, bytes, rewritten).
  template <typename Visit>
  void SplitRun(uint64_t first_block, std::span<const uint8_t> data, uint32_t block_size,
                Visit visit) {
    Split(first_block, data.size() / block_size,
          [&](uint64_t first, uint64_t count, bool rewritten) {
            visit(first, data.subspan((first - first_block) * block_size, count * block_size),
                  rewritten);
          });
  }

 private:
  std::vector<BlockExtent> units_;
  size_t next_ = 0;
};

// A raw image: blocks at their offsets, the rest holes, exactly the filesystem's size.
class RawSink : public ImageSink {
 public:
  RawSink(const util::OutputFile& out, uint32_t block_size, uint64_t blocks_count,
          uint64_t dest_offset);
  void WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) override;
  void Finish() override;
  uint64_t SecondPassUnitBlocks() const override { return writer_.CanRewind() ? 1 : 0; }
  void StartSecondPass(std::vector<BlockExtent> rewrites) override;

 private:
  util::RawWriter writer_;
  uint32_t block_size_;
  uint64_t blocks_count_;
  RewrittenUnits rewrites_;
};

// Adds metadata to a qcow2 image about to be finished.
using FinishQcow2 = std::function<void(qcow2::ClusterTarget&)>;

// Settings of a qcow2 capture.
struct Qcow2SinkOptions {
  uint32_t cluster_bits = 0;  // 0: the block size
  uint32_t version = 2;
  std::optional<qcow2::CompressionType> compression;
  int compression_level = qcow2::kDefaultLevel;
  unsigned threads = 1;  // compression workers
  // What the compression's codecs and queue may hold (less when other
  // workers, the scrambler's, queue blocks too).
  size_t compression_memory = qcow2::CompressPool::kMemoryBudget;
  // The blocks that will be written (compressed images), or most of them:
  // the L2 tables they need are reserved up front, so that the packed
  // compressed data is not cut by them.
  const std::vector<BlockExtent>* blocks = nullptr;
  // Called once every block is written, before the image is finished: adds
  // metadata (header extensions, bitmaps) to it.
  FinishQcow2 before_finish;
  // Where the blocks come from, untransformed (none: transformed). An
  // uncompressed image to a stream then refers to the source for the
  // clusters that are its bytes as they are, instead of spooling them
  // (qcow2::StreamWriter::ReferToSource).
  const util::File* source = nullptr;
  uint64_t source_offset = 0;  // where the filesystem starts in it (-o)
};

// The L1 entries of an image with 2^cluster_bits-byte clusters that these
// blocks fall in, ascending, each once.
std::vector<uint64_t> L1EntriesOf(const std::vector<BlockExtent>& blocks, uint32_t block_size,
                                  uint32_t cluster_bits);

// The largest cluster size of compressed captures unless one is given:
// 64 KiB, as qemu-img's default (4 KiB clusters compress half as well).
inline constexpr uint32_t kCompressedClusterBits = 16;

// How many distinct 2^span_bits-byte spans of the device these blocks touch.
uint64_t SpansTouched(const std::vector<BlockExtent>& blocks, uint32_t block_size,
                      uint32_t span_bits);

// The bytes of the L2 tables an image with 2^cluster_bits-byte clusters needs
// for these blocks.
uint64_t L2TableBytes(const std::vector<BlockExtent>& blocks, uint32_t block_size,
                      uint32_t cluster_bits);

// The estimated bytes of a compressed image of these blocks of a device of
// device_bytes with 2^cluster_bits-byte clusters: its header, refcounts, L1
// and L2 tables, and the filled clusters compressed to a 32nd at 64 KiB
// (smaller clusters compress worse: the data counts once more per halving).
uint64_t CompressedImageEstimate(const std::vector<BlockExtent>& blocks, uint32_t block_size,
                                 uint32_t cluster_bits, uint64_t device_bytes);

// The cluster size (bits) of a compressed capture of these blocks: of
// min_bits to 64 KiB, the one whose image is estimated smallest
// (CompressedImageEstimate). Metadata spread
// thin over a huge device needs one 64 KiB L2 table per 512 MiB it touches:
// smaller clusters then shrink the image several times.
uint32_t CompressedClusterBits(const std::vector<BlockExtent>& blocks, uint32_t block_size,
                               uint32_t min_bits, uint64_t device_bytes);

// A qcow2 image of the filesystem: one guest cluster per block by default,
// to a regular file or, laid out front to back, to a pipe.
class Qcow2Sink : public ImageSink {
 public:
  Qcow2Sink(const util::OutputFile& out, uint32_t block_size, uint64_t blocks_count,
            const Qcow2SinkOptions& options);
  void WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) override;
  // Compressed on several threads: room in the compression queue.
  std::span<uint8_t> RoomFor(uint64_t first_block, uint64_t blocks) override;
  void NoteChanged(uint64_t first_block, uint64_t blocks) override;
  void Finish() override;
  // Compressed images take further passes but no rewrites: their clusters
  // are packed in the order they come, and stay where they were put.
  uint64_t SecondPassUnitBlocks() const override;
  void StartSecondPass(std::vector<BlockExtent> rewrites) override;
  // The compression pool, when compressing on several threads.
  const qcow2::CompressPool* compress_pool() const { return stream_->pool(); }

 private:
  // Gathers the blocks of a rewritten cluster; stores it when the next one starts.
  void Rewrite(uint64_t first_block, std::span<const uint8_t> data);
  // Of a cluster a run of blocks covers only in part, tells the streamed
  // writer which bytes are the source's: the rest is zeros, or another
  // run's, which tells it too.
  void NoteEdges(uint64_t first_block, uint64_t bytes);
  void StoreRewrite();

  uint32_t block_size_;
  bool compressed_;
  std::unique_ptr<qcow2::ClusterTarget> writer_;  // a file's, or a stream's
  qcow2::StreamWriter* streamed_ = nullptr;       // writer_, when it refers to the source
  std::unique_ptr<qcow2::ClusterStream> stream_;
  FinishQcow2 before_finish_;
  RewrittenUnits rewrites_;
  std::optional<uint64_t> rewrite_cluster_;  // the cluster being gathered
  std::vector<uint8_t> rewrite_data_;
};

}  // namespace e2img
