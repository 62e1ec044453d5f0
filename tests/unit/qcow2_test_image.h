// Hand-built qcow2 images for reader tests: a small valid image with a
// known layout (every table at a fixed cluster) that tests then damage one
// field at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qcow2/format.h"

namespace testutil {

// What to put in the image besides the basic tables.
struct TestImageOptions {
  uint32_t version = 3;
  uint32_t cluster_bits = 12;
  bool extended_l2 = false;
  qcow2::CompressionType compression = qcow2::CompressionType::kZlib;
  bool snapshot = false;            // one internal snapshot (table and L1 copy)
  bool bitmap = false;              // the bitmaps extension with one bitmap
  const char* backing_file = "";    // backing file name
  const char* backing_format = "";  // "raw" or "qcow2"; empty: no format extension
  const char* data_file = "";       // external data file name
};

// The image and where its parts are. Layout by cluster: 0 header, 1 L1,
// 2 refcount table, 3 refcount block, 4 L2, 5 and 6 data of guest clusters
// 0 and 1 (or, with a data file, guest offsets in that file), 7 compressed
// data of guest cluster 2, then snapshot table, snapshot L1, bitmap
// directory and bitmap table when asked for. Guest cluster 3 is
// unallocated, guest cluster 4 (partial: 100 bytes) is a zero cluster (v3).
struct TestImage {
  qcow2::Header header;
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> data_file_bytes;  // with a data file
  std::vector<uint8_t> guest;            // the expected guest bytes
  uint64_t cluster_size = 0;
  uint64_t l1 = 0, refcount_table = 0, refcount_block = 0, l2 = 0;
  uint64_t data0 = 0, data1 = 0, compressed = 0, compressed_bytes = 0;
  uint64_t snapshot_table = 0, snapshot_l1 = 0, bitmap_directory = 0, bitmap_table = 0;
  // File offset of the L2 entry (descriptor word) of a guest cluster.
  uint64_t L2EntryAt(uint64_t guest_cluster) const;
  // File offset of the bitmaps extension's payload (0 without bitmaps).
  uint64_t bitmap_extension = 0;
};

TestImage BuildTestImage(const TestImageOptions& options = {});

}  // namespace testutil
