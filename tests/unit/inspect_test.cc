// qcow2-inspect's building blocks: JSON output, bitmap entry kinds, map
// ranges of a writer-made image, ImageView's refusal of bad tables, and
// the parts of an image info reads.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <sstream>

#include "qcow2/compress.h"
#include "qcow2/image_file.h"
#include "qcow2/inspect.h"
#include "qcow2/writer.h"
#include "qcow2_test_image.h"
#include "test_util.h"
#include "util/endian.h"
#include "util/error.h"
#include "util/json.h"

namespace qcow2 {
namespace {

TEST(JsonWriter, NestsAndEscapesLikeQemuImg) {
  std::ostringstream out;
  util::JsonWriter w(out);
  w.BeginObject().Number("size", 42).String("name", "a\"b\\c\n").Bool("dirty", false);
  w.BeginArray("list").String("", "x").EndArray();
  w.BeginArray("empty").EndArray();
  w.EndObject().Finish();
  EXPECT_EQ(out.str(),
            "{\n    \"size\": 42,\n    \"name\": \"a\\\"b\\\\c\\n\",\n    \"dirty\": false,\n"
            "    \"list\": [\n        \"x\"\n    ],\n    \"empty\": []\n}\n");
}

TEST(BitmapEntries, AreClassifiedBySpecRules) {
  EXPECT_EQ(ClassifyBitmapEntry(0, 4096), BitmapEntryKind::kAllZeroes);
  EXPECT_EQ(ClassifyBitmapEntry(1, 4096), BitmapEntryKind::kAllOnes);
  EXPECT_EQ(ClassifyBitmapEntry(0x20000, 4096), BitmapEntryKind::kSerialized);
  EXPECT_EQ(ClassifyBitmapEntry(0x20001, 4096), BitmapEntryKind::kInvalid);  // offset and all-ones
  EXPECT_EQ(ClassifyBitmapEntry(0x20200, 4096), BitmapEntryKind::kInvalid);  // misaligned
  EXPECT_EQ(ClassifyBitmapEntry(2, 4096), BitmapEntryKind::kInvalid);        // reserved bit
  EXPECT_EQ(ClassifyBitmapEntry(1ull << 60, 4096), BitmapEntryKind::kInvalid);
  Bitmap b;
  b.granularity_bits = 16;  // 64 KiB per bit, 32768 bits per 4 KiB cluster: 2 GiB per entry
  EXPECT_EQ(b.table_entries_needed(2ull << 30, 4096), 1u);
  EXPECT_EQ(b.table_entries_needed((2ull << 30) + 1, 4096), 2u);
}

// info on a copy holding only the header cluster and HeaderLoadRanges
// (the rest zeros, as in the spool of a pipe) prints what it prints of the
// whole image.
TEST(HeaderLoadRanges, AreAllInfoReads) {
  testutil::TempDir dir;
  const testutil::TestImage image = testutil::BuildTestImage(
      {.snapshot = true, .bitmap = true, .backing_file = "base.raw", .backing_format = "raw"});
  const std::span<const uint8_t> bytes = image.bytes;
  const std::vector<util::ByteRange> ranges =
      HeaderLoadRanges(bytes.first(std::min<size_t>(bytes.size(), image.cluster_size)));
  ASSERT_EQ(2u, ranges.size());
  EXPECT_EQ(image.snapshot_table, ranges[0].offset);
  EXPECT_EQ(image.bitmap_directory, ranges[1].offset);
  std::vector<uint8_t> kept(bytes.size());
  std::copy(bytes.begin(), bytes.begin() + image.cluster_size, kept.begin());
  for (const util::ByteRange& r : ranges) {
    const uint64_t end = std::min<uint64_t>(bytes.size(), r.offset + r.length);
    std::copy(bytes.begin() + r.offset, bytes.begin() + end, kept.begin() + r.offset);
  }
  testutil::WriteAll(dir.File("whole"), image.bytes);
  testutil::WriteAll(dir.File("kept"), kept);
  ReferencePolicy none = PolicyForScope("none");
  for (const bool json : {false, true}) {
    std::ostringstream whole, part;
    PrintInfo(ImageView(util::File::Open(dir.File("whole"), O_RDONLY), false), json, whole, none);
    PrintInfo(ImageView(util::File::Open(dir.File("kept"), O_RDONLY), false), json, part, none);
    EXPECT_NE(std::string::npos, whole.str().find(json ? "\"snapshots\"" : "Snapshot list"));
    std::string named_whole = part.str();
    for (size_t at; (at = named_whole.find("/kept")) != std::string::npos;)
      named_whole.replace(at, 5, "/whole");
    EXPECT_EQ(whole.str(), named_whole);
  }
}

TEST(HeaderLoadRanges, AreEverythingWithoutTheMagicAndNothingPastABadHeader) {
  const std::vector<uint8_t> zeros(4096, 0);
  const std::vector<util::ByteRange> all = HeaderLoadRanges(zeros);
  ASSERT_EQ(1u, all.size());
  EXPECT_EQ(0u, all[0].offset);
  EXPECT_EQ(UINT64_MAX, all[0].length);
  std::vector<uint8_t> bad = testutil::BuildTestImage({.snapshot = true}).bytes;
  bad.resize(4096);
  util::StoreBE32(bad.data() + 4, 99);  // version
  EXPECT_TRUE(HeaderLoadRanges(bad).empty());
}

struct InspectFixture : ::testing::Test {
  testutil::TempDir dir;
  std::string path = dir.File("img.qcow2");
  void Write(uint32_t cluster_bits, uint64_t virtual_size) {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = virtual_size, .cluster_bits = cluster_bits, .version = 3});
    const uint64_t cs = uint64_t{1} << cluster_bits;
    w.WriteCluster(0, testutil::Pattern(cs, 1));
    w.WriteCluster(1, testutil::Pattern(cs, 2));
    std::vector<uint8_t> sparse(cs, 0);
    sparse[7] = 1;
    w.WriteCompressedCluster(2, *CompressCluster(CompressionType::kZlib, sparse));
    w.WriteCompressedCluster(3, *CompressCluster(CompressionType::kZlib, sparse));
    w.WriteCluster(100, testutil::Pattern(cs, 3));
    w.Finish();
  }
  std::vector<MapRange> Map() {
    std::vector<MapRange> out;
    ForEachMapRange(ImageView(path), [&](const MapRange& r) { out.push_back(r); });
    return out;
  }
};

TEST_F(InspectFixture, MapMergesContiguousDataAndAdjacentCompressedClusters) {
  Write(9, 1 << 20);  // 512-byte clusters: 64 per L2 table, so cluster 100 is in the second
  const std::vector<MapRange> m = Map();
  ASSERT_EQ(m.size(), 5u);
  EXPECT_TRUE(m[0].data && m[0].offset && m[0].start == 0 && m[0].length == 1024);
  EXPECT_TRUE(m[1].compressed && !m[1].offset && m[1].start == 1024 && m[1].length == 1024);
  EXPECT_TRUE(!m[2].present && m[2].zero && m[2].start == 2048 && m[2].length == 96 * 512);
  EXPECT_TRUE(m[3].data && m[3].start == 100 * 512 && m[3].length == 512);
  EXPECT_TRUE(!m[4].present && m[4].start == 101 * 512 && m[4].start + m[4].length == 1 << 20);
}

TEST_F(InspectFixture, MapRefusesADataOffsetOutsideTheFileNamingTheEntry) {
  Write(12, 1 << 20);
  util::File f = util::File::Open(path, O_RDWR);
  std::vector<uint8_t> b(8);
  f.ReadAt(b, 40);                        // l1_table_offset
  f.ReadAt(b, util::LoadBE64(b.data()));  // L1 entry 0
  const uint64_t l2 = util::LoadBE64(b.data()) & kL1OffsetMask;
  util::StoreBE64(b.data(), kOflagCopied | (1ull << 40));
  f.WriteAt(b, l2 + 8);
  try {
    Map();
    FAIL() << "no error";
  } catch (const util::Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("L2 table of L1 entry 0, entry 1: data offset 0x10000000000"),
        std::string::npos)
        << e.what();
  }
}

TEST_F(InspectFixture, ViewRefusesAnL1TableTooSmallForTheVirtualSize) {
  Write(12, 1 << 30);
  util::File f = util::File::Open(path, O_RDWR);
  std::vector<uint8_t> b(4);
  util::StoreBE32(b.data(), 0);
  f.WriteAt(b, 36);  // l1_size
  EXPECT_THROW(ImageView view(path), util::Error);
}

TEST_F(InspectFixture, DumpSummarisesEachL2Table) {
  Write(9, 1 << 20);
  std::ostringstream out, err;
  EXPECT_EQ(PrintDump(ImageView(path), out, err), 0u);
  EXPECT_TRUE(err.str().empty());
  EXPECT_NE(
      out.str().find(": 2 data, 2 compressed, 0 zero, 0 zero allocated, 60 unallocated; 2 copied"),
      std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find(": 1 data, 0 compressed, 0 zero, 0 zero allocated, 63 unallocated"),
            std::string::npos);
}

}  // namespace
}  // namespace qcow2
