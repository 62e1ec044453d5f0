#include "qcow2/writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <map>

#include "qcow2/compress.h"
#include "qcow2/reader.h"
#include "test_util.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

using testutil::Pattern;

// Recomputes every host cluster's refcount from the image's own tables and
// compares with the stored refcounts: the test's independent oracle.
void ExpectExactRefcounts(const std::string& path) {
  std::vector<uint8_t> file = testutil::ReadAll(path);
  Header h = DecodeHeader(file, path);
  const uint64_t cs = h.cluster_size();
  // Only a last cluster of compressed data may be partial, ending on a sector.
  ASSERT_EQ(file.size() % 512, 0u) << "file size is not a whole number of sectors";
  const uint64_t clusters = (file.size() + cs - 1) / cs;
  std::map<uint64_t, uint64_t> expected;
  auto ref = [&](uint64_t offset, uint64_t bytes) {
    for (uint64_t c = offset / cs; c <= (offset + bytes - 1) / cs; ++c)
      expected[c]++;
  };
  ref(0, cs);
  ref(h.l1_table_offset, std::max<uint64_t>(h.l1_size * 8, 1));
  ref(h.refcount_table_offset, h.refcount_table_clusters * cs);
  for (uint64_t i = 0; i < h.refcount_table_clusters * cs / 8; ++i) {
    uint64_t block = util::LoadBE64(&file[h.refcount_table_offset + i * 8]);
    if (block)
      ref(block, cs);
  }
  for (uint32_t i = 0; i < h.l1_size; ++i) {
    uint64_t l2 = util::LoadBE64(&file[h.l1_table_offset + i * 8]) & kL1OffsetMask;
    if (!l2)
      continue;
    ref(l2, cs);
    for (uint64_t j = 0; j < h.l2_entries(); ++j) {
      L2Entry e = DecodeL2Entry(util::LoadBE64(&file[l2 + j * 8]), h);
      if (e.kind == ClusterKind::kNormal)
        ref(e.host_offset, cs);
      if (e.kind == ClusterKind::kCompressed) {
        const uint64_t n = std::min<uint64_t>(e.compressed_size, file.size() - e.host_offset);
        ref(e.host_offset, n);
      }
    }
  }
  const uint64_t per_block = cs * 8 / h.refcount_bits();
  for (uint64_t c = 0; c < clusters; ++c) {
    uint64_t block = util::LoadBE64(&file[h.refcount_table_offset + (c / per_block) * 8]);
    ASSERT_NE(block, 0u) << "no refcount block for cluster " << c;
    uint64_t stored = util::LoadBE16(&file[block + (c % per_block) * 2]);
    EXPECT_EQ(stored, expected[c]) << "host cluster " << c;
  }
}

struct WriterFixture : ::testing::Test {
  testutil::TempDir dir;
  std::string path = dir.File("img.qcow2");
};

TEST_F(WriterFixture, WrittenClustersReadBackAndOthersAreZero) {
  {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = 1 << 20, .cluster_bits = 12});
    w.WriteCluster(0, Pattern(4096, 1));
    w.WriteCluster(5, Pattern(4096, 2));
    w.WriteCluster(255, Pattern(4096, 3));
    w.Finish();
  }
  Qcow2Reader r(path);
  std::vector<uint8_t> buf(4096);
  r.Read(0, buf);
  EXPECT_EQ(buf, Pattern(4096, 1));
  r.Read(5 * 4096, buf);
  EXPECT_EQ(buf, Pattern(4096, 2));
  r.Read(255 * 4096, buf);
  EXPECT_EQ(buf, Pattern(4096, 3));
  r.Read(6 * 4096, buf);
  EXPECT_EQ(buf, std::vector<uint8_t>(4096, 0));
  ExpectExactRefcounts(path);
}

// An L1 table longer than the piece Finish encodes at a time (2^17 entries)
// is written whole, with zeros past its last entry.
TEST_F(WriterFixture, ALongL1TableIsWrittenWholeAndPaddedWithZeros) {
  const uint64_t size = (5ull << 30) + 70 * 512;  // 512-byte clusters: 32 KiB per L1 entry
  const uint64_t last = size / 512 - 1;
  {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = size, .cluster_bits = 9});
    w.WriteCluster(0, Pattern(512, 1));
    w.WriteCluster((9ull << 29) / 512, Pattern(512, 2));  // 4.5 GiB: the second piece
    w.WriteCluster(last, Pattern(512, 3));
    w.Finish();
  }
  const std::vector<uint8_t> file = testutil::ReadAll(path);
  const Header h = DecodeHeader(file, path);
  ASSERT_GT(h.l1_size, 1u << 17);
  const uint64_t l1_end = h.l1_table_offset + h.l1_size * 8;
  for (uint64_t at = l1_end; at % 512 != 0; ++at)
    ASSERT_EQ(file[at], 0) << "L1 padding at " << at;
  Qcow2Reader r(path);
  std::vector<uint8_t> buf(512);
  r.Read(0, buf);
  EXPECT_EQ(buf, Pattern(512, 1));
  r.Read(9ull << 29, buf);
  EXPECT_EQ(buf, Pattern(512, 2));
  r.Read(last * 512, buf);
  EXPECT_EQ(buf, Pattern(512, 3));
  r.Read(1ull << 32, buf);
  EXPECT_EQ(buf, std::vector<uint8_t>(512, 0));
}

// The zeros of clusters and tables are left as holes, so a file with bytes
// in it is refused: they would show through.
TEST_F(WriterFixture, AFileWithBytesInItIsRefused) {
  testutil::WriteAll(path, std::vector<uint8_t>(4096, 0xff));
  util::File f = util::File::Open(path, O_RDWR);
  EXPECT_THROW(Qcow2Writer(f, {.virtual_size = 1 << 20, .cluster_bits = 12}), util::Error);
}

// Large clusters: the stretches of zeros of 64 KiB or more in data clusters
// and tables become holes (a 2 MiB cluster holding one 4 KiB page took
// 2 MiB of disk; the 8 KiB before that page are written), and read back as
// zeros.
TEST_F(WriterFixture, ZeroPagesOfLargeClustersAreLeftAsHoles) {
  constexpr uint64_t kCluster = 2u << 20;
  std::vector<uint8_t> data(kCluster, 0);
  const std::vector<uint8_t> page = Pattern(4096, 7);
  std::copy(page.begin(), page.end(), data.begin() + 8192);
  {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = 64ull << 30, .cluster_bits = 21});
    for (uint64_t c : {0, 1, 100, 20000})
      w.WriteCluster(c, data);
    w.Finish();
  }
  const util::File f = util::File::Open(path, O_RDONLY);
  const uint64_t allocated = static_cast<uint64_t>(f.Stat().st_blocks) * 512;
  EXPECT_GE(f.Size(), 9 * kCluster);  // header, refcounts, L1, L2, data
  EXPECT_LT(allocated, 1u << 20) << "the file takes " << allocated << " bytes of disk";
  Qcow2Reader r(path);
  std::vector<uint8_t> buf(kCluster);
  for (uint64_t c : {0, 1, 100, 20000}) {
    r.Read(c * kCluster, buf);
    EXPECT_EQ(buf, data) << "cluster " << c;
  }
  r.Read(2 * kCluster, buf);
  EXPECT_EQ(buf, std::vector<uint8_t>(kCluster, 0));
  ExpectExactRefcounts(path);
}

TEST_F(WriterFixture, OutOfOrderWritesThroughATinyCacheSurviveEviction) {
  const uint64_t clusters = 64 * 600;  // 512-byte clusters: 64 entries per L2 table
  {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = clusters * 512, .cluster_bits = 9, .l2_cache_tables = 3});
    for (uint64_t i = 0; i < clusters; i += 97)
      w.WriteCluster(i, Pattern(512, static_cast<uint32_t>(i)));
    for (uint64_t i = clusters - 2; i > 211; i -= 211)
      if (i % 97 != 0)
        w.WriteCluster(i, Pattern(512, static_cast<uint32_t>(i)));
    EXPECT_LE(w.l2_cache().size(), 3u);
    EXPECT_GT(w.l2_cache().loads(), 0u);
    w.Finish();
  }
  Qcow2Reader r(path);
  std::vector<uint8_t> buf(512);
  for (uint64_t i = 0; i < clusters; i += 97) {
    r.Read(i * 512, buf);
    ASSERT_EQ(buf, Pattern(512, static_cast<uint32_t>(i))) << "cluster " << i;
  }
  for (uint64_t i = clusters - 2; i > 211; i -= 211) {
    r.Read(i * 512, buf);
    ASSERT_EQ(buf, Pattern(512, static_cast<uint32_t>(i))) << "cluster " << i;
  }
  ExpectExactRefcounts(path);
}

TEST_F(WriterFixture, ManyClustersNeedSeveralRefcountBlocks) {
  {
    util::File f = testutil::CreateFile(path);
    // 512-byte clusters: one refcount block covers 256 clusters.
    Qcow2Writer w(f, {.virtual_size = 4000 * 512, .cluster_bits = 9});
    for (uint64_t i = 0; i < 4000; ++i)
      w.WriteCluster(i, Pattern(512, static_cast<uint32_t>(i)));
    w.Finish();
  }
  ExpectExactRefcounts(path);
  Qcow2Reader r(path);
  std::vector<uint8_t> buf(512);
  r.Read(3999 * 512, buf);
  EXPECT_EQ(buf, Pattern(512, 3999));
}

TEST_F(WriterFixture, CompressedClustersSharingHostClustersAreCountedPerReference) {
  std::vector<uint8_t> text(4096);
  for (size_t i = 0; i < text.size(); ++i)
    text[i] = static_cast<uint8_t>("metadata "[i % 9]);
  for (CompressionType type : {CompressionType::kZlib, CompressionType::kZstd}) {
    {
      util::File f = testutil::CreateFile(path);
      Qcow2Writer w(
          f, {.virtual_size = 64 * 4096, .cluster_bits = 12, .version = 3, .compression = type});
      for (uint64_t i = 0; i < 64; ++i) {
        text[0] = static_cast<uint8_t>(i);
        auto packed = CompressCluster(type, text);
        ASSERT_TRUE(packed.has_value());
        w.WriteCompressedCluster(i, *packed);
      }
      w.Finish();
    }
    ExpectExactRefcounts(path);
    Qcow2Reader r(path);
    std::vector<uint8_t> buf(4096);
    for (uint64_t i = 0; i < 64; ++i) {
      r.Read(i * 4096, buf);
      text[0] = static_cast<uint8_t>(i);
      ASSERT_EQ(buf, text) << CompressionName(type) << " cluster " << i;
    }
  }
}

TEST_F(WriterFixture, RefcountBlocksGoWhereTheImageNeedsThemAndTheTableMovesWhenOutgrown) {
  // 512-byte clusters: a refcount block covers 256 clusters and the one
  // reserved table cluster 64 blocks (16384 clusters); 20000 plain clusters
  // outgrow it, and the compressed ones between them pack around new blocks.
  std::vector<uint8_t> text(512);
  for (size_t i = 0; i < text.size(); ++i)
    text[i] = static_cast<uint8_t>("inode table "[i % 12]);
  const uint64_t clusters = 30000;
  {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = clusters * 512,
                      .cluster_bits = 9,
                      .version = 3,
                      .compression = CompressionType::kZstd});
    for (uint64_t i = 0; i < clusters; ++i) {
      if (i % 3 != 0) {
        w.WriteCluster(i, Pattern(512, static_cast<uint32_t>(i)));
        continue;
      }
      text[0] = static_cast<uint8_t>(i);
      text[1] = static_cast<uint8_t>(i >> 8);
      auto packed = CompressCluster(CompressionType::kZstd, text);
      ASSERT_TRUE(packed.has_value());
      w.WriteCompressedCluster(i, *packed);
    }
    w.Finish();
  }
  ExpectExactRefcounts(path);
  Qcow2Reader r(path);
  EXPECT_GT(r.header().refcount_table_clusters, 1u);
  std::vector<uint8_t> buf(512);
  for (uint64_t i = 0; i < clusters; ++i) {
    r.Read(i * 512, buf);
    if (i % 3 != 0) {
      ASSERT_EQ(buf, Pattern(512, static_cast<uint32_t>(i))) << "cluster " << i;
    } else {
      text[0] = static_cast<uint8_t>(i);
      text[1] = static_cast<uint8_t>(i >> 8);
      ASSERT_EQ(buf, text) << "cluster " << i;
    }
  }
}

TEST_F(WriterFixture, TheFileEndsWithTheLastCompressedDataOnASector) {
  std::vector<uint8_t> text(65536);
  for (size_t i = 0; i < text.size(); ++i)
    text[i] = static_cast<uint8_t>("superblock "[i % 11] + (i / 4096));
  uint64_t data_end = 0;
  {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = 64 << 20,
                      .cluster_bits = 16,
                      .version = 3,
                      .compression = CompressionType::kZstd});
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < 5; ++i) {
      text[0] = static_cast<uint8_t>(i);
      auto packed = CompressCluster(CompressionType::kZstd, text);
      ASSERT_TRUE(packed.has_value());
      w.WriteCompressedCluster(i, *packed);
      bytes += packed->size();
    }
    // Header, refcount table, refcount block, L1 table and one L2 table come
    // first; the packed data follows them without a gap.
    data_end = 5 * 65536 + bytes;
    ASSERT_NE(data_end % 65536, 0u);
    w.Finish();
  }
  EXPECT_EQ(testutil::ReadAll(path).size(), (data_end + 511) / 512 * 512);
  ExpectExactRefcounts(path);
  Qcow2Reader r(path);
  std::vector<uint8_t> buf(65536);
  r.Read(4 * 65536, buf);
  text[0] = 4;
  EXPECT_EQ(buf, text);
}

// Compressible clusters of 64 KiB, different for each seed.
std::vector<uint8_t> Metadata64k(uint64_t seed) {
  std::vector<uint8_t> text(65536);
  for (size_t i = 0; i < text.size(); ++i)
    text[i] = static_cast<uint8_t>("extent tree "[i % 12] + (i / 512 + seed) % 7);
  text[0] = static_cast<uint8_t>(seed);
  text[1] = static_cast<uint8_t>(seed >> 8);
  return text;
}

TEST_F(WriterFixture, ReservedL2TablesKeepTheCompressedDataInOneRunAndUnusedOnesTakeItsTail) {
  // 64 KiB clusters: one L1 entry maps 512 MiB. Entries 0, 2 and 5 get
  // data; 3 is reserved but gets none, so the last frames move into it.
  const std::vector<uint64_t> used = {0, 2, 5};
  const uint64_t per_entry = 8192;  // guest clusters per L1 entry
  uint64_t frames_bytes = 0;
  {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = 6ull << 29,
                      .cluster_bits = 16,
                      .version = 3,
                      .compression = CompressionType::kZstd});
    const std::vector<uint64_t> reserve = {0, 2, 3, 5};
    w.ReserveL2Tables(reserve);
    for (uint64_t entry : used)
      for (uint64_t i = 0; i < 20; ++i) {
        auto packed = CompressCluster(CompressionType::kZstd, Metadata64k(entry * 100 + i));
        ASSERT_TRUE(packed.has_value());
        w.WriteCompressedCluster(entry * per_entry + i * 3, *packed);
        frames_bytes += packed->size();
      }
    w.Finish();
  }
  ExpectExactRefcounts(path);
  Qcow2Reader r(path);
  EXPECT_EQ(r.l1_table()[3], 0u) << "the unused reserved table is given up";
  // Header, refcount table and block, L1, four reserved tables, then the
  // frames without a gap; those that moved into the given-up table shorten it.
  const uint64_t size = testutil::ReadAll(path).size();
  EXPECT_LT(size, 8 * 65536 + frames_bytes);
  EXPECT_GE(size + 65536, 8 * 65536 + frames_bytes);
  std::vector<uint8_t> buf(65536);
  for (uint64_t entry : used)
    for (uint64_t i = 0; i < 20; ++i) {
      r.Read((entry * per_entry + i * 3) * 65536, buf);
      ASSERT_EQ(buf, Metadata64k(entry * 100 + i)) << "entry " << entry << " cluster " << i;
    }
}

TEST_F(WriterFixture, ReservingL2TablesAfterWritingIsRefused) {
  util::File f = testutil::CreateFile(path);
  Qcow2Writer w(f, {.virtual_size = 1 << 20, .cluster_bits = 12});
  w.WriteCluster(0, Pattern(4096, 1));
  const std::vector<uint64_t> reserve = {0};
  EXPECT_THROW(w.ReserveL2Tables(reserve), util::Error);
}

TEST_F(WriterFixture, RefusesDoubleWritesAndOutOfRangeClusters) {
  util::File f = testutil::CreateFile(path);
  Qcow2Writer w(f, {.virtual_size = 10 * 4096, .cluster_bits = 12});
  w.WriteCluster(3, Pattern(4096, 1));
  EXPECT_THROW(w.WriteCluster(3, Pattern(4096, 2)), util::Error);
  EXPECT_THROW(w.WriteCluster(10, Pattern(4096, 2)), util::Error);
  EXPECT_THROW(w.WriteCluster(4, Pattern(100, 2)), util::Error);
}

TEST_F(WriterFixture, OverwriteReplacesAClusterInPlaceAndAllocatesOnlyForData) {
  uint64_t host_after_first = 0;
  {
    util::File f = testutil::CreateFile(path);
    // Three L2 tables in the cache: the overwrite of cluster 0 loads its table back.
    Qcow2Writer w(f, {.virtual_size = 64 * 600 * 512, .cluster_bits = 9, .l2_cache_tables = 3});
    w.WriteCluster(1, Pattern(512, 20));
    for (uint64_t table = 0; table < 8; ++table)
      w.WriteCluster(table * 64, Pattern(512, static_cast<uint32_t>(table)));
    host_after_first = w.host_bytes();
    EXPECT_EQ(w.l2_cache().loads(), 0u);
    w.OverwriteCluster(0, Pattern(512, 30));              // data over data
    w.OverwriteCluster(1, std::vector<uint8_t>(512, 0));  // zeros over data
    w.OverwriteCluster(2, std::vector<uint8_t>(512, 0));  // zeros, never written: nothing
    EXPECT_EQ(w.host_bytes(), host_after_first);
    EXPECT_GT(w.l2_cache().loads(), 0u);
    w.OverwriteCluster(3, Pattern(512, 40));  // data, never written: allocated
    EXPECT_EQ(w.host_bytes(), host_after_first + 512);
    w.Finish();
  }
  Qcow2Reader r(path);
  std::vector<uint8_t> buf(512);
  r.Read(0, buf);
  EXPECT_EQ(buf, Pattern(512, 30));
  r.Read(512, buf);
  EXPECT_EQ(buf, std::vector<uint8_t>(512, 0));
  r.Read(3 * 512, buf);
  EXPECT_EQ(buf, Pattern(512, 40));
  r.Read(64 * 512, buf);
  EXPECT_EQ(buf, Pattern(512, 1));
  ExpectExactRefcounts(path);
}

TEST_F(WriterFixture, OverwriteOfACompressedClusterIsRefused) {
  util::File f = testutil::CreateFile(path);
  Qcow2Writer w(f, {.virtual_size = 1 << 20, .cluster_bits = 12});
  const auto packed = CompressCluster(CompressionType::kZlib, std::vector<uint8_t>(4096, 5));
  ASSERT_TRUE(packed);
  w.WriteCompressedCluster(2, *packed);
  EXPECT_THROW(w.OverwriteCluster(2, Pattern(4096, 1)), util::Error);
}

TEST_F(WriterFixture, RefusesAnL1TableQemuCannotOpen) {
  util::File f = testutil::CreateFile(path);
  // 512-byte clusters map 32 KiB per L1 entry: 4 TiB needs a 1 GiB L1 table.
  EXPECT_THROW(Qcow2Writer(f, {.virtual_size = 4ull << 40, .cluster_bits = 9}), util::Error);
}

TEST_F(WriterFixture, VersionThreeHeaderRecordsZstd) {
  {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = 1 << 20,
                      .cluster_bits = 16,
                      .version = 3,
                      .compression = CompressionType::kZstd});
    w.Finish();
  }
  Qcow2Reader r(path);
  EXPECT_EQ(r.header().version, 3u);
  EXPECT_EQ(r.header().compression_type, CompressionType::kZstd);
  EXPECT_TRUE(r.header().incompatible_features & kIncompatCompression);
  ExpectExactRefcounts(path);
}

}  // namespace
}  // namespace qcow2
