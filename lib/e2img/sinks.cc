#include "e2img/sinks.h"

#include <algorithm>
#include <bit>

#include "qcow2/stream_writer.h"
#include "util/error.h"
#include "util/temp_file.h"

namespace e2img {

void ImageSink::StartSecondPass(std::vector<BlockExtent>) {
  throw util::Error("internal error: a second pass over an image sink that takes one");
}

RawSink::RawSink(const util::OutputFile& out, uint32_t block_size, uint64_t blocks_count,
                 uint64_t dest_offset)
    : writer_(out, dest_offset, /*zero_gaps=*/false),
      block_size_(block_size),
      blocks_count_(blocks_count) {}

void RawSink::WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) {
  rewrites_.SplitRun(first_block, data, block_size_,
                     [&](uint64_t first, std::span<const uint8_t> part, bool rewritten) {
                       if (rewritten)
                         writer_.Overwrite(first * block_size_, part);
                       else
                         writer_.Write(first * block_size_, part);
                     });
}

void RawSink::StartSecondPass(std::vector<BlockExtent> rewrites) {
  writer_.Rewind();
  rewrites_ = RewrittenUnits(std::move(rewrites));
}

void RawSink::Finish() {
  writer_.Finish(blocks_count_ * block_size_);
}

namespace {

// Walks the ascending extents as runs of 2^span_bits-byte spans of the device,
// calling visit(first, last) with each run of spans not visited before.
template <typename Visit>
void ForEachNewSpanRun(const std::vector<BlockExtent>& blocks, uint32_t block_size,
                       uint32_t span_bits, Visit visit) {
  bool any = false;
  uint64_t last_visited = 0;
  for (const BlockExtent& e : blocks) {
    if (e.count == 0)
      continue;
    uint64_t first = e.start * block_size >> span_bits;
    const uint64_t last = ((e.start + e.count) * block_size - 1) >> span_bits;
    if (any)
      first = std::max(first, last_visited + 1);
    if (first > last)
      continue;
    visit(first, last);
    last_visited = last;
    any = true;
  }
}

}  // namespace

std::vector<uint64_t> L1EntriesOf(const std::vector<BlockExtent>& blocks, uint32_t block_size,
                                  uint32_t cluster_bits) {
  // One L1 entry maps cluster_size / 8 clusters: 2^(2 * cluster_bits - 3) bytes.
  std::vector<uint64_t> entries;
  ForEachNewSpanRun(blocks, block_size, 2 * cluster_bits - 3, [&](uint64_t first, uint64_t last) {
    for (uint64_t i = first; i <= last; ++i)
      entries.push_back(i);
  });
  return entries;
}

uint64_t SpansTouched(const std::vector<BlockExtent>& blocks, uint32_t block_size,
                      uint32_t span_bits) {
  uint64_t spans = 0;
  ForEachNewSpanRun(blocks, block_size, span_bits,
                    [&](uint64_t first, uint64_t last) { spans += last - first + 1; });
  return spans;
}

uint64_t L2TableBytes(const std::vector<BlockExtent>& blocks, uint32_t block_size,
                      uint32_t cluster_bits) {
  // An L2 table is one cluster and maps cluster_size / 8 clusters.
  return SpansTouched(blocks, block_size, 2 * cluster_bits - 3) << cluster_bits;
}

uint64_t CompressedImageEstimate(const std::vector<BlockExtent>& blocks, uint32_t block_size,
                                 uint32_t cluster_bits, uint64_t device_bytes) {
  // zstd and zlib pack filled 64 KiB metadata clusters to about a 32nd of
  // their size, and each halving of the cluster costs about as much again
  // (bench/RESULTS.md), so smaller clusters are chosen only when they save
  // L2 tables by far.
  constexpr uint64_t kCompressionRatio = 32;
  const uint64_t halvings =
      cluster_bits < kCompressedClusterBits ? kCompressedClusterBits - cluster_bits : 0;
  const uint64_t data_bytes = (SpansTouched(blocks, block_size, cluster_bits) << cluster_bits) /
                              kCompressionRatio * (1 + halvings);
  // Whatever the blocks: the header, the refcount table, its first block
  // and the L1 table, which maps the whole device (15 MiB for 15 TiB of
  // 8 KiB clusters, 240 KiB with 64 KiB ones).
  const uint64_t cs = uint64_t{1} << cluster_bits;
  qcow2::Header header;
  header.cluster_bits = cluster_bits;
  header.size = device_bytes;
  const uint64_t l1_bytes =
      std::max<uint64_t>(1, (header.l1_entries_needed() * 8 + cs - 1) / cs) * cs;
  const uint64_t bytes =
      3 * cs + l1_bytes + L2TableBytes(blocks, block_size, cluster_bits) + data_bytes;
  // More refcount blocks: each holds the 16-bit counts of cs / 2 clusters.
  const uint64_t refcount_blocks = ((bytes >> cluster_bits) + cs / 2 - 1) / (cs / 2);
  return bytes + (refcount_blocks - 1) * cs;
}

uint32_t CompressedClusterBits(const std::vector<BlockExtent>& blocks, uint32_t block_size,
                               uint32_t min_bits, uint64_t device_bytes) {
  uint32_t best_bits = std::max(min_bits, kCompressedClusterBits);
  uint64_t best_size = UINT64_MAX;
  for (uint32_t bits = best_bits; bits >= std::max(min_bits, 1u); --bits) {
    const uint64_t size = CompressedImageEstimate(blocks, block_size, bits, device_bytes);
    if (size < best_size) {
      best_size = size;
      best_bits = bits;
    }
  }
  return best_bits;
}

Qcow2Sink::Qcow2Sink(const util::OutputFile& out, uint32_t block_size, uint64_t blocks_count,
                     const Qcow2SinkOptions& options)
    : block_size_(block_size),
      compressed_(options.compression.has_value()),
      before_finish_(options.before_finish) {
  if (out.kind() == util::OutputFile::Kind::kBlockDevice)
    throw util::Error(out.path() +
                      ": a qcow2 image can only be written to a regular file or "
                      "standard output");
  qcow2::WriterOptions w;
  w.virtual_size = blocks_count * block_size;
  w.cluster_bits = options.cluster_bits ? options.cluster_bits
                                        : static_cast<uint32_t>(std::countr_zero(block_size));
  // The L2 cache holds at most 8 MiB (512 tables of 64 KiB would be 32 MiB),
  // even of 2 MiB tables (a floor of 16 kept 32 MiB of them: the captures
  // write in guest order, so a few tables make the working set).
  w.l2_cache_tables =
      std::clamp<size_t>((size_t{8} << 20) >> w.cluster_bits, 4, qcow2::kDefaultL2CacheTables);
  w.version = options.version;
  if (options.compression)
    w.compression = *options.compression;
  if (out.kind() == util::OutputFile::Kind::kStream) {
    // Written in order: laid out once every cluster is known (stream_writer.h).
    auto stream_writer = std::make_unique<qcow2::StreamWriter>(
        out.file(), w,
        util::AnonymousTempFile(util::TempDirectory(), "spool of the streamed qcow2 image"));
    if (options.source && !options.compression) {
      stream_writer->ReferToSource(*options.source, options.source_offset);
      streamed_ = stream_writer.get();
    }
    writer_ = std::move(stream_writer);
  } else {
    auto file_writer = std::make_unique<qcow2::Qcow2Writer>(out.file(), w);
    if (options.compression && options.blocks)
      file_writer->ReserveL2Tables(L1EntriesOf(*options.blocks, block_size, w.cluster_bits));
    writer_ = std::move(file_writer);
  }
  stream_ =
      std::make_unique<qcow2::ClusterStream>(*writer_, options.compression, options.threads,
                                             options.compression_level, options.compression_memory);
}

void Qcow2Sink::WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) {
  if (streamed_)
    NoteEdges(first_block, data.size());
  rewrites_.SplitRun(first_block, data, block_size_,
                     [&](uint64_t first, std::span<const uint8_t> part, bool rewritten) {
                       if (rewritten)
                         Rewrite(first, part);
                       else
                         stream_->Write(first * block_size_, part);
                     });
}

std::span<uint8_t> Qcow2Sink::RoomFor(uint64_t first_block, uint64_t blocks) {
  // Compressed images have no rewrites; clusters of part of a block cannot be given whole.
  if (!compressed_ || writer_->cluster_size() % block_size_ != 0)
    return {};
  return stream_->RoomFor(first_block * block_size_, blocks * block_size_);
}

void Qcow2Sink::Rewrite(uint64_t first_block, std::span<const uint8_t> data) {
  const uint64_t cluster_size = writer_->cluster_size();
  for (uint64_t at = 0; at < data.size(); at += block_size_) {
    const uint64_t offset = first_block * block_size_ + at;
    if (rewrite_cluster_ != offset / cluster_size) {
      StoreRewrite();
      rewrite_cluster_ = offset / cluster_size;
      rewrite_data_.assign(cluster_size, 0);  // blocks not given (source holes) are zeros
    }
    std::copy_n(data.begin() + at, block_size_, rewrite_data_.begin() + offset % cluster_size);
  }
}

void Qcow2Sink::StoreRewrite() {
  if (rewrite_cluster_)
    writer_->OverwriteCluster(*rewrite_cluster_, rewrite_data_);
  rewrite_cluster_.reset();
}

uint64_t Qcow2Sink::SecondPassUnitBlocks() const {
  return std::max<uint64_t>(1, writer_->cluster_size() / block_size_);
}

void Qcow2Sink::StartSecondPass(std::vector<BlockExtent> rewrites) {
  if (compressed_ && !rewrites.empty())
    ImageSink::StartSecondPass(std::move(rewrites));  // refused: packed clusters stay put
  StoreRewrite();
  stream_->StartAgain();
  rewrites_ = RewrittenUnits(std::move(rewrites));
}

void Qcow2Sink::NoteEdges(uint64_t first_block, uint64_t bytes) {
  const uint64_t cs = writer_->cluster_size();
  const uint64_t start = first_block * block_size_;
  const uint64_t end = start + bytes;
  // A run fills a cluster in part only where it starts or ends inside it.
  if (start % cs != 0)
    streamed_->MarkSourcedPart(start, std::min(end, (start / cs + 1) * cs) - start);
  if (end % cs != 0) {
    const uint64_t from = std::max(start, end / cs * cs);
    streamed_->MarkSourcedPart(from, end - from);
  }
}

void Qcow2Sink::NoteChanged(uint64_t first_block, uint64_t blocks) {
  if (streamed_)
    streamed_->MarkChanged(first_block * block_size_, blocks * block_size_);
}

void Qcow2Sink::Finish() {
  StoreRewrite();
  stream_->Flush();
  if (before_finish_)
    before_finish_(*writer_);
  writer_->Finish();
}

}  // namespace e2img
