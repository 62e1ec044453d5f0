#include "qcow2/format.h"

#include <gtest/gtest.h>

#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

Header SampleV3() {
  Header h;
  h.version = 3;
  h.cluster_bits = 12;
  h.size = 123456789;
  h.l1_size = 30;
  h.l1_table_offset = 4096;
  h.refcount_table_offset = 8192;
  h.refcount_table_clusters = 1;
  h.header_length = kV3HeaderSize + 8;
  h.compression_type = CompressionType::kZstd;
  h.incompatible_features = kIncompatCompression;
  h.extensions.push_back({kExtBackingFormat, {'r', 'a', 'w'}});
  h.backing_file = "base.raw";
  return h;
}

TEST(Format, V3HeaderRoundTrips) {
  Header h = SampleV3();
  std::vector<uint8_t> bytes = h.Encode();
  bytes.resize(4096, 0);
  Header d = DecodeHeader(bytes, "t");
  EXPECT_EQ(d.version, 3u);
  EXPECT_EQ(d.cluster_bits, 12u);
  EXPECT_EQ(d.size, 123456789u);
  EXPECT_EQ(d.l1_size, 30u);
  EXPECT_EQ(d.refcount_table_offset, 8192u);
  EXPECT_EQ(d.compression_type, CompressionType::kZstd);
  ASSERT_EQ(d.extensions.size(), 1u);
  EXPECT_EQ(d.extensions[0].type, kExtBackingFormat);
  EXPECT_EQ(std::string(d.extensions[0].data.begin(), d.extensions[0].data.end()), "raw");
  EXPECT_EQ(d.backing_file, "base.raw");
}

TEST(Format, V2HeaderIs72BytesWithDefaults) {
  Header h;
  h.cluster_bits = 16;
  h.size = 1 << 30;
  std::vector<uint8_t> bytes = h.Encode();
  EXPECT_EQ(bytes.size(), kV2HeaderSize);
  Header d = DecodeHeader(bytes, "t");
  EXPECT_EQ(d.version, 2u);
  EXPECT_EQ(d.refcount_order, 4u);
  EXPECT_EQ(d.l1_entries_needed(), 2u);  // one L1 entry maps 512 MiB with 64 KiB clusters
}

TEST(Format, L1EntriesNeededRoundsUp) {
  Header h;
  h.cluster_bits = 16;  // one L1 entry maps 8192 * 64 KiB = 512 MiB
  h.size = (512ull << 20) + 1;
  EXPECT_EQ(h.l1_entries_needed(), 2u);
  h.size = 512ull << 20;
  EXPECT_EQ(h.l1_entries_needed(), 1u);
}

TEST(Format, RejectsBadMagicVersionAndClusterBits) {
  Header h;
  std::vector<uint8_t> bytes = h.Encode();
  std::vector<uint8_t> bad = bytes;
  bad[0] = 'X';
  EXPECT_THROW(DecodeHeader(bad, "t"), util::Error);
  bad = bytes;
  util::StoreBE32(&bad[4], 4);
  EXPECT_THROW(DecodeHeader(bad, "t"), util::Error);
  bad = bytes;
  util::StoreBE32(&bad[20], 8);
  EXPECT_THROW(DecodeHeader(bad, "t"), util::Error);
  bad = bytes;
  util::StoreBE32(&bad[20], 22);
  EXPECT_THROW(DecodeHeader(bad, "t"), util::Error);
  EXPECT_THROW(DecodeHeader(std::span<const uint8_t>(bytes.data(), 40), "t"), util::Error);
}

TEST(Format, ErrorNamesFileAndOffset) {
  Header h;
  std::vector<uint8_t> bytes = h.Encode();
  util::StoreBE32(&bytes[20], 30);
  try {
    DecodeHeader(bytes, "disk.qcow2");
    FAIL() << "no error";
  } catch (const util::Error& e) {
    EXPECT_NE(std::string(e.what()).find("disk.qcow2"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("offset 20"), std::string::npos);
  }
}

TEST(Format, ExtensionPastFirstClusterIsRejected) {
  Header h = SampleV3();
  h.backing_file.clear();
  std::vector<uint8_t> bytes = h.Encode();
  util::StoreBE32(&bytes[h.header_length + 4], 100000);
  bytes.resize(4096, 0);
  EXPECT_THROW(DecodeHeader(bytes, "t"), util::Error);
}

TEST(Format, HeaderClusterBytesIsTheFirstClusterWhenClusterBitsAreValid) {
  Header h;
  h.cluster_bits = 16;
  std::vector<uint8_t> bytes = h.Encode();
  EXPECT_EQ(HeaderClusterBytes(bytes), 65536u);
  util::StoreBE32(&bytes[20], kMinClusterBits);
  EXPECT_EQ(HeaderClusterBytes(bytes), 512u);
  // Out of range, or too short to tell: the largest cluster, for
  // DecodeHeader to judge.
  util::StoreBE32(&bytes[20], kMaxClusterBits + 1);
  EXPECT_EQ(HeaderClusterBytes(bytes), 1u << kMaxClusterBits);
  util::StoreBE32(&bytes[20], 0x100 | 12);  // a byte above the low one set
  EXPECT_EQ(HeaderClusterBytes(bytes), 1u << kMaxClusterBits);
  EXPECT_EQ(HeaderClusterBytes(std::span<const uint8_t>(bytes.data(), 23)), 1u << kMaxClusterBits);
}

TEST(Format, CompressedEntryRoundTrips) {
  Header h;
  h.cluster_bits = 16;
  for (uint64_t off : {uint64_t{65536}, uint64_t{65536 + 700}, uint64_t{1} << 40}) {
    for (uint64_t len : {1ull, 511ull, 512ull, 4000ull, 65535ull}) {
      uint64_t raw = EncodeCompressedL2Entry(off, len, h.cluster_bits);
      L2Entry e = DecodeL2Entry(raw, h);
      EXPECT_EQ(e.kind, ClusterKind::kCompressed);
      EXPECT_EQ(e.host_offset, off);
      EXPECT_GE(e.compressed_size, len);
      EXPECT_LT(e.compressed_size, len + 512);
    }
  }
}

TEST(Format, ZeroFlagOnlyInVersion3) {
  Header v2, v3;
  v3.version = 3;
  EXPECT_EQ(DecodeL2Entry(kOflagZero, v3).kind, ClusterKind::kZero);
  EXPECT_EQ(DecodeL2Entry(65536 | kOflagZero, v3).kind, ClusterKind::kZeroAllocated);
  EXPECT_EQ(DecodeL2Entry(65536 | kOflagCopied, v2).kind, ClusterKind::kNormal);
  EXPECT_EQ(DecodeL2Entry(0, v2).kind, ClusterKind::kUnallocated);
}

}  // namespace
}  // namespace qcow2
