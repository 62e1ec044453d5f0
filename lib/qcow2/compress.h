// Cluster codecs: zlib as raw deflate (window bits -12, as qemu writes it)
// and zstd frames, both ways. Decompression fills exactly one cluster.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "qcow2/format.h"

namespace qcow2 {

// Decompresses `in` into exactly out.size() bytes. Returns false when the
// data is corrupt or decompresses to fewer bytes (qemu's rule: trailing input
// after a complete cluster is allowed).
bool DecompressCluster(CompressionType type, std::span<const uint8_t> in, std::span<uint8_t> out);

// The codecs' default levels: zlib's 6 and zstd's 3, those qemu-img uses.
inline constexpr int kDefaultLevel = -1;

// The highest level the codec takes (zlib: 9; zstd: the library's maximum,
// 22 today); the lowest is 1.
int MaxLevel(CompressionType type);

// Compresses clusters one after the other with state kept between them
// (a fresh zstd context or deflate state costs more than a 4 KiB cluster).
// zstd frames carry no content size: qemu's decoder, like ours, streams
// until the cluster is full, and the field would cost a byte per cluster.
class ClusterCompressor {
 public:
  explicit ClusterCompressor(CompressionType type, int level = kDefaultLevel);
  ~ClusterCompressor();
  ClusterCompressor(const ClusterCompressor&) = delete;
  ClusterCompressor& operator=(const ClusterCompressor&) = delete;

  // The compressed cluster, or nothing when it would not be smaller than
  // the input (the caller then stores it plain).
  std::optional<std::vector<uint8_t>> Compress(std::span<const uint8_t> in);
  // The same without an allocation: the bytes are the compressor's own,
  // valid until its next call; empty when the cluster is to be stored plain.
  std::span<const uint8_t> Pack(std::span<const uint8_t> in);
  // The memory it holds: the codec's state (a zstd context sizes its tables
  // at the first cluster, after the cluster size and level) and its scratch.
  size_t MemoryBytes() const;

 private:
  struct State;
  CompressionType type_;
  int level_;
  std::unique_ptr<State> state_;
};

// One cluster through a ClusterCompressor of its own.
std::optional<std::vector<uint8_t>> CompressCluster(CompressionType type,
                                                    std::span<const uint8_t> in,
                                                    int level = kDefaultLevel);

// "zlib" or "zstd".
std::string CompressionName(CompressionType type);

}  // namespace qcow2
