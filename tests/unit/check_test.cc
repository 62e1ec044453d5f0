#include "qcow2/check.h"

#include <gtest/gtest.h>

#include <fcntl.h>

#include "qcow2/compress.h"
#include "qcow2/writer.h"
#include "test_util.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

using testutil::Pattern;

TEST(ReferenceCounter, CountsSparseClustersAndStopsAtTheMaximum) {
  ReferenceCounter refs(3);
  EXPECT_EQ(refs.Get(12345678901ull), 0u);
  EXPECT_TRUE(refs.Add(12345678901ull));
  EXPECT_TRUE(refs.Add(12345678901ull));
  EXPECT_TRUE(refs.Add(12345678901ull));
  EXPECT_FALSE(refs.Add(12345678901ull));
  EXPECT_EQ(refs.Get(12345678901ull), 3u);
  EXPECT_EQ(refs.Get(12345678900ull), 0u);
  EXPECT_EQ(refs.end(), 12345678902ull);
}

TEST(CheckReport, ExitCodesFollowQemuImg) {
  CheckReport r;
  EXPECT_EQ(r.ExitCode(), 0);
  r.leaks = 1;
  EXPECT_EQ(r.ExitCode(), 3);
  r.corruptions = 1;
  EXPECT_EQ(r.ExitCode(), 2);
  r.check_errors = 1;
  EXPECT_EQ(r.ExitCode(), 1);
}

// An image from Qcow2Writer: 4 KiB clusters, guest clusters 0, 1, 7 plain
// and 9 compressed (version 3), patched by each test.
struct CheckFixture : ::testing::Test {
  testutil::TempDir dir;
  std::string path = dir.File("img.qcow2");

  void SetUp() override {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = 4 << 20, .cluster_bits = 12, .version = 3});
    w.WriteCluster(0, Pattern(4096, 1));
    w.WriteCluster(1, Pattern(4096, 2));
    w.WriteCluster(7, Pattern(4096, 3));
    std::vector<uint8_t> zeros_and_text(4096, 0);
    zeros_and_text[100] = 'x';
    w.WriteCompressedCluster(9, *CompressCluster(CompressionType::kZlib, zeros_and_text));
    w.Finish();
  }
  uint64_t Load64(uint64_t offset) {
    std::vector<uint8_t> b(8);
    util::File::Open(path, O_RDONLY).ReadAt(b, offset);
    return util::LoadBE64(b.data());
  }
  void Store64(uint64_t offset, uint64_t v) {
    std::vector<uint8_t> b(8);
    util::StoreBE64(b.data(), v);
    util::File::Open(path, O_RDWR).WriteAt(b, offset);
  }
  void Store16(uint64_t offset, uint16_t v) {
    std::vector<uint8_t> b(2);
    util::StoreBE16(b.data(), v);
    util::File::Open(path, O_RDWR).WriteAt(b, offset);
  }
  uint64_t L2() { return Load64(Load64(40)) & kL1OffsetMask; }  // L1 entry 0
  uint64_t RefcountEntryOffset(uint64_t host) {
    const uint64_t table = Load64(48);
    return Load64(table) + host / 4096 * 2;
  }
  // The end of the file's last cluster, whole or partial.
  uint64_t ClusterEnd() { return (ImageView(path).file_size() + 4095) / 4096 * 4096; }
  std::vector<std::string> problems;
  CheckReport Check() {
    problems.clear();
    return CheckImage(ImageView(path), [&](const std::string& line) { problems.push_back(line); });
  }
};

TEST_F(CheckFixture, WrittenImageIsCleanWithFragmentationCounts) {
  CheckReport r = Check();
  EXPECT_EQ(r.corruptions, 0u);
  EXPECT_EQ(r.leaks, 0u);
  EXPECT_EQ(r.check_errors, 0u);
  EXPECT_EQ(r.allocated_clusters, 4u);
  EXPECT_EQ(r.compressed_clusters, 1u);
  EXPECT_EQ(r.total_clusters, 1024u);
  // The file ends in the middle of the last (compressed) cluster, as qemu-img's do.
  EXPECT_EQ(r.image_end_offset, ClusterEnd());
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(r.ExitCode(), 0);
}

TEST_F(CheckFixture, LowerRefcountIsACorruptionAndBreaksTheCopiedFlag) {
  const uint64_t data = Load64(L2()) & kL2OffsetMask;
  Store16(RefcountEntryOffset(data), 0);
  CheckReport r = Check();
  EXPECT_EQ(r.corruptions, 2u);  // refcount 0 < 1 reference, and copied flag with refcount 0
  EXPECT_EQ(r.leaks, 0u);
  EXPECT_EQ(r.ExitCode(), 2);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("refcount=0 reference=1"), std::string::npos) << problems[0];
}

TEST_F(CheckFixture, HigherRefcountOfAnL2TableIsALeakAndACopiedFlagError) {
  Store16(RefcountEntryOffset(L2()), 2);
  CheckReport r = Check();
  EXPECT_EQ(r.leaks, 1u);
  EXPECT_EQ(r.corruptions, 1u);
  EXPECT_EQ(r.ExitCode(), 2);
}

TEST_F(CheckFixture, UnreferencedClusterWithARefcountIsALeakOnly) {
  // Mark a cluster inside the file but referenced by nothing: grow the
  // file by one cluster past its last one.
  const uint64_t size = ClusterEnd();
  util::File::Open(path, O_RDWR).Truncate(size + 4096);
  Store16(RefcountEntryOffset(size), 1);
  CheckReport r = Check();
  EXPECT_EQ(r.leaks, 1u);
  EXPECT_EQ(r.corruptions, 0u);
  EXPECT_EQ(r.ExitCode(), 3);
  EXPECT_EQ(r.image_end_offset, size + 4096);
}

TEST_F(CheckFixture, SharedDataClusterIsOneCorruptionAndOneLeak) {
  Store64(L2() + 8, Load64(L2()));
  CheckReport r = Check();
  EXPECT_EQ(r.corruptions, 1u);
  EXPECT_EQ(r.leaks, 1u);
}

TEST_F(CheckFixture, MisalignedAndReservedL2EntriesAreCounted) {
  Store64(L2() + 7 * 8, Load64(L2() + 7 * 8) + 512);
  Store64(L2() + 100 * 8, 2);  // reserved bit in an unallocated entry
  CheckReport r = Check();
  // The misaligned offset, the reserved bit, and the next cluster, which the
  // shifted range now references a second time.
  EXPECT_EQ(r.corruptions, 3u);
  EXPECT_EQ(r.leaks, 0u);
  bool named = false;
  for (const auto& p : problems)
    named |= p.find("entry 100 (offset " + HexOffset(L2() + 800) + "): reserved bits set") !=
             std::string::npos;
  EXPECT_TRUE(named);
}

TEST_F(CheckFixture, ReferencePastTheEndOfTheFileIsACorruption) {
  const uint64_t size = ClusterEnd();
  Store64(L2(), kOflagCopied | (size + 8 * 4096));
  CheckReport r = Check();
  EXPECT_EQ(r.leaks, 1u);        // the cluster the entry pointed to before
  EXPECT_EQ(r.corruptions, 2u);  // past the end, and copied flag with refcount 0
}

TEST_F(CheckFixture, CopiedFlagOnACompressedClusterIsACorruption) {
  Store64(L2() + 9 * 8, Load64(L2() + 9 * 8) | kOflagCopied);
  CheckReport r = Check();
  EXPECT_EQ(r.corruptions, 1u);
  EXPECT_EQ(r.leaks, 0u);
}

TEST_F(CheckFixture, MisalignedRefcountTableEntryIsACheckError) {
  const uint64_t table = Load64(48);
  Store64(table, Load64(table) + 512);
  CheckReport r = Check();
  EXPECT_GT(r.check_errors, 0u);
  EXPECT_EQ(r.ExitCode(), 1);
}

TEST_F(CheckFixture, RefcountTablePastTheFileCannotBeOpened) {
  Store64(48, 1ull << 40);
  EXPECT_THROW(ImageView view(path), util::Error);
}

}  // namespace
}  // namespace qcow2
