#include "qcow2/reader.h"

#include <gtest/gtest.h>

#include "qcow2/writer.h"
#include "test_util.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

using testutil::Pattern;

// A small valid image (4 KiB clusters, clusters 0 and 2 written) to damage.
struct ReaderFixture : ::testing::Test {
  testutil::TempDir dir;
  std::string path = dir.File("img.qcow2");
  std::vector<uint8_t> bytes;
  Header header;

  void SetUp() override {
    {
      util::File f = testutil::CreateFile(path);
      Qcow2Writer w(f, {.virtual_size = 3 * 4096 + 100, .cluster_bits = 12, .version = 3});
      w.WriteCluster(0, Pattern(4096, 1));
      w.WriteCluster(2, Pattern(4096, 2));
      w.Finish();
    }
    bytes = testutil::ReadAll(path);
    header = DecodeHeader(bytes, path);
  }
  uint64_t L2Offset() const { return util::LoadBE64(&bytes[header.l1_table_offset]) & kL1OffsetMask; }
  // Saves the damaged bytes and expects opening and reading all to fail with
  // a message containing `needle`.
  void ExpectError(const std::string& needle) {
    testutil::WriteAll(path, bytes);
    try {
      Qcow2Reader r(path);
      std::vector<uint8_t> all(r.virtual_size());
      r.Read(0, all);
      FAIL() << "no error for " << needle;
    } catch (const util::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
};

TEST_F(ReaderFixture, ValidImageReadsBackWithPartialLastCluster) {
  Qcow2Reader r(path);
  EXPECT_EQ(r.virtual_size(), 3u * 4096 + 100);
  std::vector<uint8_t> all(r.virtual_size());
  r.Read(0, all);
  EXPECT_TRUE(std::equal(all.begin(), all.begin() + 4096, Pattern(4096, 1).begin()));
  EXPECT_TRUE(std::equal(all.begin() + 8192, all.begin() + 12288, Pattern(4096, 2).begin()));
  Mapping m = r.Map(4096);
  EXPECT_EQ(m.kind, ClusterKind::kUnallocated);
  EXPECT_EQ(m.length, 4096u);
  m = r.Map(12288);
  EXPECT_EQ(m.length, 100u);
}

TEST_F(ReaderFixture, EncryptionIsRefused) {
  util::StoreBE32(&bytes[32], 1);
  ExpectError("encrypted");
}

TEST_F(ReaderFixture, UnknownIncompatibleBitsAreRefused) {
  util::StoreBE64(&bytes[72], 1ull << 40);
  ExpectError("unknown incompatible");
}

TEST_F(ReaderFixture, L1TablePastEndOfFile) {
  util::StoreBE64(&bytes[40], 1ull << 30);
  ExpectError("L1 table");
}

TEST_F(ReaderFixture, L1TableUnaligned) {
  util::StoreBE64(&bytes[40], header.l1_table_offset + 8);
  ExpectError("not cluster aligned");
}

TEST_F(ReaderFixture, L1TooSmallForVirtualSize) {
  util::StoreBE64(&bytes[24], 1ull << 40);
  ExpectError("too few");
}

TEST_F(ReaderFixture, L2TableOffsetUnaligned) {
  util::StoreBE64(&bytes[header.l1_table_offset], (L2Offset() + 512) | kOflagCopied);
  ExpectError("L1 entry 0");
}

TEST_F(ReaderFixture, L2TablePastEndOfFile) {
  util::StoreBE64(&bytes[header.l1_table_offset], (1ull << 40) | kOflagCopied);
  ExpectError("L2 table of L1 entry 0");
}

TEST_F(ReaderFixture, DataClusterPastEndOfFile) {
  util::StoreBE64(&bytes[L2Offset()], (1ull << 40) | kOflagCopied);
  ExpectError("guest cluster 0");
}

TEST_F(ReaderFixture, DataClusterUnaligned) {
  util::StoreBE64(&bytes[L2Offset()], 0x200 | kOflagCopied);
  ExpectError("not cluster aligned");
}

TEST_F(ReaderFixture, ReservedBitsInL2EntryAreRefused) {
  util::StoreBE64(&bytes[L2Offset()], util::LoadBE64(&bytes[L2Offset()]) | 0x2);
  ExpectError("reserved bits");
}

TEST_F(ReaderFixture, CorruptCompressedClusterIsAnError) {
  const uint64_t data = util::LoadBE64(&bytes[L2Offset()]) & kL2OffsetMask;
  util::StoreBE64(&bytes[L2Offset()], EncodeCompressedL2Entry(data, 600, 12));
  ExpectError("cannot decompress");
}

TEST_F(ReaderFixture, FileTooShortForHeader) {
  bytes.resize(40);
  ExpectError("too short");
}

}  // namespace
}  // namespace qcow2
