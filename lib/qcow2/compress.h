// Cluster codecs: zlib as raw deflate (window bits -12, as qemu writes it)
// and zstd frames, both ways. Decompression fills exactly one cluster.
#pragma once

#include <cstdint>
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

// Compresses one cluster; returns nothing when the result would not be
// smaller than the input (the caller then stores it plain).
std::optional<std::vector<uint8_t>> CompressCluster(CompressionType type,
                                                    std::span<const uint8_t> in, int level = -1);

// "zlib" or "zstd".
std::string CompressionName(CompressionType type);

}  // namespace qcow2
