#include "qcow2_test_image.h"

#include <cstring>

#include "qcow2/compress.h"
#include "test_util.h"
#include "util/endian.h"

namespace testutil {

using namespace qcow2;

uint64_t TestImage::L2EntryAt(uint64_t guest_cluster) const {
  return l2 + guest_cluster * header.l2_entry_bytes();
}

namespace {

std::vector<uint8_t> Bytes(const std::string& s) {
  return {s.begin(), s.end()};
}

// A cluster that compresses well but is not all one byte.
std::vector<uint8_t> Compressible(uint64_t n) {
  std::vector<uint8_t> v(n);
  for (uint64_t i = 0; i < n; ++i)
    v[i] = static_cast<uint8_t>('a' + (i / 64) % 7);
  return v;
}

}  // namespace

TestImage BuildTestImage(const TestImageOptions& o) {
  TestImage t;
  Header& h = t.header;
  h.version = o.version;
  h.cluster_bits = o.cluster_bits;
  const uint64_t cs = h.cluster_size();
  t.cluster_size = cs;
  h.size = 4 * cs + 100;
  h.refcount_order = 4;
  if (o.version >= 3) {
    h.header_length = kV3HeaderSize + 8;
    h.compression_type = o.compression;
    if (o.compression != CompressionType::kZlib)
      h.incompatible_features |= kIncompatCompression;
    if (o.extended_l2)
      h.incompatible_features |= kIncompatExtendedL2;
  }
  t.l1 = cs;
  t.refcount_table = 2 * cs;
  t.refcount_block = 3 * cs;
  t.l2 = 4 * cs;
  t.data0 = 5 * cs;
  t.data1 = 6 * cs;
  t.compressed = 7 * cs + 100;  // compressed data need no alignment
  uint64_t next = 8 * cs;
  if (o.snapshot) {
    t.snapshot_table = next;
    t.snapshot_l1 = next + cs;
    next += 2 * cs;
  }
  if (o.bitmap) {
    t.bitmap_directory = next;
    t.bitmap_table = next + cs;
    next += 2 * cs;
  }
  const uint64_t file_size = next;

  h.l1_size = static_cast<uint32_t>(h.l1_entries_needed());
  h.l1_table_offset = t.l1;
  h.refcount_table_offset = t.refcount_table;
  h.refcount_table_clusters = 1;
  if (o.snapshot) {
    h.nb_snapshots = 1;
    h.snapshots_offset = t.snapshot_table;
  }
  const std::string data_file = o.data_file;
  if (*o.backing_file) {
    h.backing_file = o.backing_file;
    if (*o.backing_format)
      h.extensions.push_back({kExtBackingFormat, Bytes(o.backing_format)});
  }
  if (!data_file.empty()) {
    h.incompatible_features |= kIncompatDataFile;
    h.extensions.push_back({kExtDataFile, Bytes(o.data_file)});
    t.data0 = 0;
    t.data1 = cs;
  }
  if (o.bitmap) {
    std::vector<uint8_t> ext(24, 0);
    util::StoreBE32(&ext[0], 1);
    util::StoreBE64(&ext[8], 32);
    util::StoreBE64(&ext[16], t.bitmap_directory);
    h.extensions.push_back({kExtBitmaps, ext});
    h.autoclear_features |= kAutoclearBitmaps;
  }
  // A feature name table, so unknown bits can be named.
  std::vector<uint8_t> names(48, 0);
  names[1] = 40;
  std::memcpy(&names[2], "future feature", 14);
  if (o.version >= 3)
    h.extensions.push_back({kExtFeatureNames, names});

  std::vector<uint8_t>& b = t.bytes;
  b.assign(file_size, 0);
  const std::vector<uint8_t> head = h.Encode();
  std::memcpy(b.data(), head.data(), head.size());
  // Record where the bitmaps extension's payload landed.
  for (uint64_t at = h.header_length; o.bitmap && at + 8 <= head.size();) {
    const uint32_t type = util::LoadBE32(&b[at]);
    const uint32_t len = util::LoadBE32(&b[at + 4]);
    if (type == kExtBitmaps)
      t.bitmap_extension = at + 8;
    if (type == kExtEnd)
      break;
    at += 8 + ((len + 7) & ~7u);
  }

  util::StoreBE64(&b[t.l1], t.l2 | kOflagCopied);
  util::StoreBE64(&b[t.refcount_table], t.refcount_block);
  for (uint64_t c = 0; c < file_size / cs; ++c)
    util::StoreBE16(&b[t.refcount_block + 2 * c], 1);

  // Guest clusters 0 and 1: data; 2: compressed; 3: unallocated; 4: zero.
  t.guest.assign(h.size, 0);
  const std::vector<uint8_t> d0 = Pattern(cs, 1), d1 = Pattern(cs, 2);
  std::memcpy(&t.guest[0], d0.data(), cs);
  std::memcpy(&t.guest[cs], d1.data(), cs);
  const uint64_t entry = h.l2_entry_bytes();
  auto set_entry = [&](uint64_t cluster, uint64_t word, uint64_t bitmap) {
    util::StoreBE64(&b[t.l2 + cluster * entry], word);
    if (o.extended_l2)
      util::StoreBE64(&b[t.l2 + cluster * entry + 8], bitmap);
  };
  if (data_file.empty()) {
    std::memcpy(&b[t.data0], d0.data(), cs);
    std::memcpy(&b[t.data1], d1.data(), cs);
  } else {
    t.data_file_bytes.assign(2 * cs, 0);
    std::memcpy(&t.data_file_bytes[0], d0.data(), cs);
    std::memcpy(&t.data_file_bytes[cs], d1.data(), cs);
  }
  set_entry(0, t.data0 | kOflagCopied, 0xffffffffull);
  set_entry(1, t.data1 | kOflagCopied, 0xffffffffull);
  if (data_file.empty()) {
    const std::vector<uint8_t> plain = Compressible(cs);
    const auto packed = CompressCluster(o.compression, plain);
    t.compressed_bytes = packed->size();
    std::memcpy(&b[t.compressed], packed->data(), packed->size());
    std::memcpy(&t.guest[2 * cs], plain.data(), cs);
    set_entry(2, EncodeCompressedL2Entry(t.compressed, packed->size(), h.cluster_bits), 0);
  }
  if (o.version >= 3)
    set_entry(4, o.extended_l2 ? 0 : kOflagZero, 0xffffffff00000000ull);

  if (o.snapshot) {
    // One snapshot: L1 copy, id "1", name "s", 16 bytes of extra data.
    const uint64_t at = t.snapshot_table;
    util::StoreBE64(&b[at], t.snapshot_l1);
    util::StoreBE32(&b[at + 8], h.l1_size);
    util::StoreBE16(&b[at + 12], 1);
    util::StoreBE16(&b[at + 14], 1);
    util::StoreBE32(&b[at + 36], 16);
    util::StoreBE64(&b[at + 48], h.size);
    b[at + 56] = '1';
    b[at + 57] = 's';
    util::StoreBE64(&b[t.snapshot_l1], t.l2);
  }
  if (o.bitmap) {
    // One bitmap named "b", granularity 64 KiB, table of one all-zero entry.
    const uint64_t at = t.bitmap_directory;
    util::StoreBE64(&b[at], t.bitmap_table);
    util::StoreBE32(&b[at + 8], 1);
    b[at + 16] = 1;
    b[at + 17] = 16;
    util::StoreBE16(&b[at + 18], 1);
    b[at + 24] = 'b';
  }
  return t;
}

}  // namespace testutil
