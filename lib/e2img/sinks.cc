#include "e2img/sinks.h"

#include <algorithm>
#include <bit>

#include "util/error.h"

namespace e2img {

RawSink::RawSink(const util::OutputFile& out, uint32_t block_size, uint64_t blocks_count,
                 uint64_t dest_offset)
    : writer_(out, dest_offset, /*zero_gaps=*/false),
      block_size_(block_size),
      blocks_count_(blocks_count) {}

void RawSink::WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) {
  writer_.Write(first_block * block_size_, data);
}

void RawSink::Finish() {
  writer_.Finish(blocks_count_ * block_size_);
}

// 64 KiB: the cluster size of compressed captures unless one is given.
constexpr uint32_t kCompressedClusterBits = 16;

uint32_t SmallestClusterBitsFor(uint32_t block_size, uint64_t virtual_size) {
  // Start at the block size and double until the L1 table fits qemu's limit:
  // each L1 entry maps cluster_size / 8 clusters.
  uint32_t bits = static_cast<uint32_t>(std::countr_zero(block_size));
  for (; bits < qcow2::kMaxClusterBits; ++bits) {
    const uint64_t l1_span = (uint64_t{1} << bits) * ((uint64_t{1} << bits) / 8);
    if ((virtual_size + l1_span - 1) / l1_span * 8 <= qcow2::kMaxL1Bytes)
      break;
  }
  return bits;
}

Qcow2Sink::Qcow2Sink(const util::OutputFile& out, uint32_t block_size, uint64_t blocks_count,
                     const Qcow2SinkOptions& options)
    : block_size_(block_size) {
  if (out.kind() != util::OutputFile::Kind::kRegular)
    throw util::Error(out.path() + ": a qcow2 image can only be written to a regular file");
  qcow2::WriterOptions w;
  w.virtual_size = blocks_count * block_size;
  w.cluster_bits = options.cluster_bits ? options.cluster_bits
                                        : SmallestClusterBitsFor(block_size, w.virtual_size);
  // Compressed: 64 KiB clusters by default (as qemu-img): 4 KiB ones compress half as well.
  if (!options.cluster_bits && options.compression)
    w.cluster_bits = std::max(w.cluster_bits, kCompressedClusterBits);
  // The L2 cache holds at most 8 MiB (512 tables of 64 KiB would be 32 MiB).
  w.l2_cache_tables =
      std::clamp<size_t>((size_t{8} << 20) >> w.cluster_bits, 16, qcow2::kDefaultL2CacheTables);
  w.version = options.version;
  if (options.compression)
    w.compression = *options.compression;
  writer_ = std::make_unique<qcow2::Qcow2Writer>(out.file(), w);
  stream_ = std::make_unique<qcow2::ClusterStream>(*writer_, options.compression, options.threads);
}

void Qcow2Sink::WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) {
  stream_->Write(first_block * block_size_, data);
}

void Qcow2Sink::Finish() {
  stream_->Flush();
  writer_->Finish();
}

}  // namespace e2img
