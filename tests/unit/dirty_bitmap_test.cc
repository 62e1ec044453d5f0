#include "qcow2/dirty_bitmap.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include "qcow2/image_view.h"
#include "qcow2/writer.h"
#include "test_util.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

TEST(DirtyBitmapTest, BitsAreLeastSignificantFirstPerGranule) {
  const GuestRange ranges[] = {{512, 512}, {4096, 1}, {8191, 2}};
  const std::vector<uint8_t> bits = EncodeBitmapBits(ranges, 10000, 9);
  ASSERT_EQ(bits.size(), 3u);  // 20 granules of 512 bytes
  EXPECT_EQ(bits[0], 0x02);    // granule 1
  EXPECT_EQ(bits[1], 0x81);    // granules 8 and 15
  EXPECT_EQ(bits[2], 0x01);    // granule 16 (byte 8192)
}

TEST(DirtyBitmapTest, RangesPastTheEndAreCut) {
  const GuestRange ranges[] = {{1000, 100000}, {50000, 10}};
  const std::vector<uint8_t> bits = EncodeBitmapBits(ranges, 2048, 10);
  ASSERT_EQ(bits.size(), 1u);
  EXPECT_EQ(bits[0], 0x03);
}

TEST(DirtyBitmapTest, DirectoryEntryLayout) {
  BitmapDirectoryEntry e;
  e.table_offset = 0x30000;
  e.table_size = 3;
  e.flags = 0;
  e.granularity_bits = 12;
  e.name = "abc";
  const std::vector<uint8_t> b = EncodeBitmapDirectoryEntry(e);
  ASSERT_EQ(b.size(), 32u);  // 24 + 3, padded to 8
  EXPECT_EQ(util::LoadBE64(&b[0]), 0x30000u);
  EXPECT_EQ(util::LoadBE32(&b[8]), 3u);
  EXPECT_EQ(util::LoadBE32(&b[12]), 0u);
  EXPECT_EQ(b[16], kBitmapTypeDirty);
  EXPECT_EQ(b[17], 12);
  EXPECT_EQ(util::LoadBE16(&b[18]), 3u);
  EXPECT_EQ(util::LoadBE32(&b[20]), 0u);
  EXPECT_EQ(std::string(b.begin() + 24, b.begin() + 27), "abc");
  EXPECT_EQ(b[27], 0);
  e.name.clear();
  EXPECT_THROW(EncodeBitmapDirectoryEntry(e), util::Error);
}

TEST(DirtyBitmapTest, GranularityKeepsTheBitmapSmall) {
  EXPECT_EQ(BitmapGranularityBits(16ull << 20, 9), 9u);
  EXPECT_EQ(BitmapGranularityBits(16ull << 20, 12), 12u);
  // 16 TiB: 2^44 / 2^g / 8 <= 16 MiB takes g = 17.
  EXPECT_EQ(BitmapGranularityBits(16ull << 40, 9), 17u);
}

// The read side of the tree (ImageView) finds what WriteDirtyBitmap wrote.
TEST(DirtyBitmapTest, WrittenBitmapReadsBack) {
  testutil::TempDir dir;
  const std::string path = dir.File("b.qcow2");
  {
    util::File f = testutil::CreateFile(path);
    Qcow2Writer w(f, {.virtual_size = 8 << 20, .cluster_bits = 10, .version = 3});
    w.WriteCluster(5, testutil::Pattern(1024, 1));
    const GuestRange ranges[] = {{3 << 20, 1024}};
    WriteDirtyBitmap(w, "unreadable", ranges, 8 << 20, 9);
    w.Finish();
  }
  const ImageView view(path);
  EXPECT_TRUE(view.header().autoclear_features & kAutoclearBitmaps);
  ASSERT_EQ(view.bitmaps().size(), 1u);
  const Bitmap& bm = view.bitmaps()[0];
  EXPECT_EQ(bm.name, "unreadable");
  EXPECT_EQ(bm.granularity_bits, 9);
  EXPECT_EQ(bm.type, kBitmapTypeDirty);
  EXPECT_EQ(bm.flags, 0u);
  // 16384 granules: 2048 bytes of bits, two 1 KiB clusters; byte 768 of the
  // bits (granule 6144 = 3 MiB) is in the first.
  EXPECT_EQ(bm.table_size, 2u);
  util::File f = util::File::Open(path, O_RDONLY);
  std::vector<uint8_t> table(16);
  f.ReadAt(table, bm.table_offset);
  EXPECT_EQ(util::LoadBE64(&table[8]), 0u);
  std::vector<uint8_t> data(1024);
  f.ReadAt(data, util::LoadBE64(&table[0]));
  for (size_t i = 0; i < data.size(); ++i)
    EXPECT_EQ(data[i], i == 768 ? 0x03 : 0) << i;
}

TEST(DirtyBitmapTest, Version2HasNoBitmaps) {
  testutil::TempDir dir;
  util::File f = testutil::CreateFile(dir.File("v2.qcow2"));
  Qcow2Writer w(f, {.virtual_size = 1 << 20, .cluster_bits = 10, .version = 2});
  const GuestRange ranges[] = {{0, 512}};
  EXPECT_THROW(WriteDirtyBitmap(w, "x", ranges, 1 << 20, 9), util::Error);
}

}  // namespace
}  // namespace qcow2
