// Qcow2Reader on hand-built images: valid ones read back exactly; damaged
// or hostile ones fail with one message naming the table, the entry and the
// file offset.
#include "qcow2/reader.h"

#include <gtest/gtest.h>

#include <initializer_list>

#include "qcow2_test_image.h"
#include "test_util.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

using testutil::BuildTestImage;
using testutil::TestImage;
using testutil::TestImageOptions;

// A freshly built image in a scratch directory, to read or to damage.
struct ReaderTest : ::testing::Test {
  testutil::TempDir dir;
  std::string path = dir.File("img.qcow2");
  std::string named_file = path;  // the file the error messages must name
  TestImage img = BuildTestImage();

  void Build(const TestImageOptions& o) { img = BuildTestImage(o); }
  void Save() {
    testutil::WriteAll(path, img.bytes);
    if (!img.data_file_bytes.empty())
      testutil::WriteAll(dir.File("data.bin"), img.data_file_bytes);
  }
  void Put64(uint64_t at, uint64_t v) { util::StoreBE64(&img.bytes[at], v); }
  void Put32(uint64_t at, uint32_t v) { util::StoreBE32(&img.bytes[at], v); }
  void Put16(uint64_t at, uint16_t v) { util::StoreBE16(&img.bytes[at], v); }
  uint64_t Get64(uint64_t at) const { return util::LoadBE64(&img.bytes[at]); }

  std::vector<uint8_t> ReadAllGuest() {
    Save();
    Qcow2Reader r(path);
    std::vector<uint8_t> all(r.virtual_size());
    r.Read(0, all);
    return all;
  }
  // Saves the damaged image and expects opening and reading it all to fail
  // with a one-line message holding the path and every needle.
  void ExpectError(std::initializer_list<std::string> needles) {
    Save();
    try {
      Qcow2Reader r(path);
      std::vector<uint8_t> all(r.virtual_size());
      r.Read(0, all);
      ADD_FAILURE() << "no error for " << *needles.begin();
    } catch (const util::Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
      EXPECT_NE(what.find(named_file + ": "), std::string::npos) << what;
      for (const std::string& n : needles)
        EXPECT_NE(what.find(n), std::string::npos) << what;
    }
  }
  static std::string At(uint64_t offset) { return "at offset " + std::to_string(offset); }
};

// ---- valid images --------------------------------------------------------

TEST_F(ReaderTest, EveryClusterKindReadsBack) {
  EXPECT_EQ(ReadAllGuest(), img.guest);
  Qcow2Reader r(path);
  EXPECT_EQ(r.Map(0).kind, ClusterKind::kNormal);
  EXPECT_EQ(r.Map(0).length, 2 * img.cluster_size);  // host-contiguous run
  EXPECT_EQ(r.Map(2 * img.cluster_size).kind, ClusterKind::kCompressed);
  EXPECT_EQ(r.Map(3 * img.cluster_size).kind, ClusterKind::kUnallocated);
  EXPECT_EQ(r.Map(4 * img.cluster_size).kind, ClusterKind::kZero);
  EXPECT_EQ(r.Map(4 * img.cluster_size).length, 100u);
}

TEST_F(ReaderTest, VersionTwoReadsBack) {
  Build({.version = 2});
  EXPECT_EQ(ReadAllGuest(), img.guest);
}

TEST_F(ReaderTest, ZstdReadsBack) {
  Build({.compression = CompressionType::kZstd});
  EXPECT_EQ(ReadAllGuest(), img.guest);
}

TEST_F(ReaderTest, ExtendedL2SubclustersReadBack) {
  Build({.cluster_bits = 14, .extended_l2 = true});
  const uint64_t sub = img.cluster_size / 32;
  // Guest cluster 1: subclusters 0-3 allocated, 4 zero, the rest unallocated.
  Put64(img.L2EntryAt(1) + 8, 0xfull | (1ull << 36));
  std::fill(img.guest.begin() + img.cluster_size + 4 * sub,
            img.guest.begin() + 2 * img.cluster_size, 0);
  EXPECT_EQ(ReadAllGuest(), img.guest);
  Qcow2Reader r(path);
  EXPECT_EQ(r.Map(0).length, img.cluster_size + 4 * sub);
  EXPECT_EQ(r.Map(img.cluster_size + 4 * sub).kind, ClusterKind::kZero);
  EXPECT_EQ(r.Map(img.cluster_size + 4 * sub).length, sub);
  EXPECT_EQ(r.Map(img.cluster_size + 5 * sub).kind, ClusterKind::kUnallocated);
}

TEST_F(ReaderTest, SnapshotAndBitmapTablesAreAccepted) {
  Build({.snapshot = true, .bitmap = true});
  EXPECT_EQ(ReadAllGuest(), img.guest);
}

TEST_F(ReaderTest, ExternalDataFileReadsBack) {
  Build({.data_file = "data.bin"});
  EXPECT_EQ(ReadAllGuest(), img.guest);
}

TEST_F(ReaderTest, RawBackingFileFillsUnallocatedClusters) {
  Build({.backing_file = "base.raw", .backing_format = "raw"});
  std::vector<uint8_t> base = testutil::Pattern(3 * img.cluster_size + 7, 9);
  testutil::WriteAll(dir.File("base.raw"), base);
  // Guest cluster 3 is unallocated: it shows the base, up to the base's end.
  std::copy(base.begin() + 3 * img.cluster_size, base.end(),
            img.guest.begin() + 3 * img.cluster_size);
  EXPECT_EQ(ReadAllGuest(), img.guest);
}

TEST_F(ReaderTest, CompressedClusterIsDecompressedOnce) {
  Save();
  Qcow2Reader r(path);
  std::vector<uint8_t> piece(10);
  for (uint64_t at = 2 * img.cluster_size; at < 3 * img.cluster_size; at += 512)
    r.Read(at, piece);
  EXPECT_EQ(r.decompressions(), 1u);
}

TEST_F(ReaderTest, UnknownHeaderExtensionIsSkipped) {
  Put32(img.header.header_length, 0x12345678);  // the feature name table, retyped
  EXPECT_EQ(ReadAllGuest(), img.guest);
}

TEST_F(ReaderTest, Qcow2BackingClusterIsDecompressedOnceThroughTheChain) {
  Build({.backing_file = "base.qcow2", .backing_format = "qcow2"});
  Put64(img.L2EntryAt(2), 0);  // guest cluster 2 now comes from the base
  TestImage base = BuildTestImage();
  testutil::WriteAll(dir.File("base.qcow2"), base.bytes);
  EXPECT_EQ(ReadAllGuest(), img.guest);
  Qcow2Reader r(path);
  ASSERT_NE(r.backing(), nullptr);
  EXPECT_EQ(r.backing_depth(), 1);
  const Mapping m = r.Resolve(2 * img.cluster_size + 8, img.cluster_size);
  EXPECT_EQ(m.kind, ClusterKind::kCompressed);
  EXPECT_EQ(m.layer, r.backing());
  std::vector<uint8_t> piece(100);
  for (uint64_t at = 2 * img.cluster_size; at < 3 * img.cluster_size; at += 1000)
    r.Read(at, piece);
  EXPECT_EQ(r.backing()->decompressions(), 1u);
  EXPECT_EQ(r.decompressions(), 0u);
}

TEST_F(ReaderTest, DirtyAndCorruptBitsAreWarnings) {
  Put64(72, Get64(72) | kIncompatDirty | kIncompatCorrupt);
  EXPECT_EQ(ReadAllGuest(), img.guest);
  Qcow2Reader r(path);
  ASSERT_EQ(r.warnings().size(), 2u);
  EXPECT_NE(r.warnings()[0].find("dirty"), std::string::npos);
  EXPECT_NE(r.warnings()[1].find("corrupt"), std::string::npos);
}

// ---- the header ----------------------------------------------------------

TEST_F(ReaderTest, FileTooShortForHeader) {
  img.bytes.resize(40);
  ExpectError({"too short", At(40)});
}
TEST_F(ReaderTest, BadMagic) {
  img.bytes[3] = 0;
  ExpectError({"bad magic", At(0)});
}
TEST_F(ReaderTest, UnsupportedVersion) {
  Put32(4, 4);
  ExpectError({"unsupported version 4", At(4)});
}
TEST_F(ReaderTest, ClusterBitsTooSmall) {
  Put32(20, 8);
  ExpectError({"cluster_bits 8", At(20)});
}
TEST_F(ReaderTest, ClusterBitsTooLarge) {
  Put32(20, 22);
  ExpectError({"cluster_bits 22", At(20)});
}
TEST_F(ReaderTest, HeaderLengthTooShort) {
  Put32(100, 96);
  ExpectError({"header_length 96", At(100)});
}
TEST_F(ReaderTest, HeaderLengthNotMultipleOfEight) {
  Put32(100, 110);
  ExpectError({"header_length 110", At(100)});
}
TEST_F(ReaderTest, HeaderLengthLargerThanCluster) {
  Put32(100, 8192);
  ExpectError({"larger than a cluster", At(100)});
}
TEST_F(ReaderTest, RefcountOrderOutOfRange) {
  Put32(96, 7);
  ExpectError({"refcount_order 7", At(96)});
}
TEST_F(ReaderTest, UnknownCompressionType) {
  img.bytes[104] = 2;
  ExpectError({"unknown compression type 2", At(104)});
}
TEST_F(ReaderTest, ZstdWithoutCompressionBit) {
  img.bytes[104] = 1;
  ExpectError({"without the compression incompatible bit", At(104)});
}
TEST_F(ReaderTest, CompressionBitWithZlib) {
  Put64(72, Get64(72) | kIncompatCompression);
  ExpectError({"compression type is zlib", At(72)});
}
TEST_F(ReaderTest, UnknownIncompatibleBitIsNamedFromTheFeatureTable) {
  Put64(72, Get64(72) | (1ull << 40));
  ExpectError({"unknown incompatible", "bit 40 (future feature)", At(72)});
}
TEST_F(ReaderTest, AesEncryptionIsRefused) {
  Put32(32, 1);
  ExpectError({"AES-encrypted", At(32)});
}
TEST_F(ReaderTest, LuksEncryptionIsRefused) {
  Put32(32, 2);
  ExpectError({"LUKS-encrypted", At(32)});
}
TEST_F(ReaderTest, UnknownEncryptionIsRefused) {
  Put32(32, 9);
  ExpectError({"unknown encryption method 9", At(32)});
}
TEST_F(ReaderTest, EncryptionExtensionWithoutEncryption) {
  Build({.backing_file = "base.raw", .backing_format = "raw"});
  Put32(img.header.header_length, kExtFullDiskEncryption);  // retype the backing format extension
  ExpectError({"full disk encryption header extension", At(img.header.header_length)});
}
TEST_F(ReaderTest, HeaderExtensionLengthRunsPastTheCluster) {
  Put32(img.header.header_length + 4, 5000);
  ExpectError({"header extension", "5000 bytes", At(img.header.header_length)});
}
TEST_F(ReaderTest, BackingFileNameTooLong) {
  Put64(8, 2048);
  Put32(16, 1500);
  ExpectError({"longer than 1023", At(16)});
}
TEST_F(ReaderTest, BackingFileNameOutsideFirstCluster) {
  Put64(8, 4000);
  Put32(16, 200);
  ExpectError({"backing file name outside the first cluster", At(8)});
}
TEST_F(ReaderTest, BackingFileNameInsideTheFixedHeader) {
  Put64(8, 16);
  Put32(16, 8);
  ExpectError({"overlaps the fixed header", At(8)});
}
TEST_F(ReaderTest, ExtendedL2NeedsSixteenKiBClusters) {
  Put64(72, Get64(72) | kIncompatExtendedL2);
  ExpectError({"at least 16 KiB", At(20)});
}
TEST_F(ReaderTest, DataFileBitWithoutName) {
  Put64(72, Get64(72) | kIncompatDataFile);
  ExpectError({"no data file name", At(72)});
}

// ---- L1 table ------------------------------------------------------------

TEST_F(ReaderTest, L1TableUnaligned) {
  Put64(40, img.l1 + 8);
  ExpectError({"L1 table", "not cluster aligned", At(40)});
}
TEST_F(ReaderTest, L1TablePastEndOfFile) {
  Put64(40, 1ull << 30);
  ExpectError({"L1 table", "past the end of the file", At(40)});
}
TEST_F(ReaderTest, L1TableInTheHeader) {
  Put64(40, 0);
  ExpectError({"L1 table", "overlaps the header cluster", At(40)});
}
TEST_F(ReaderTest, L1TableOverlapsRefcountTable) {
  Put64(48, img.l1);
  ExpectError({"refcount table 0x1000", "overlaps L1 table", At(48)});
}
TEST_F(ReaderTest, L1TooSmallForVirtualSize) {
  Put64(24, 1ull << 40);
  ExpectError({"too few", At(36)});
}
TEST_F(ReaderTest, L1TableOverThe32MiBLimit) {
  Put32(36, 5u << 20);
  ExpectError({"over the 32 MiB limit", At(36)});
}
TEST_F(ReaderTest, L1EntryReservedBits) {
  Put64(img.l1, Get64(img.l1) | 0x100);
  ExpectError({"L1 table entry 0", "reserved bits", At(img.l1)});
}
TEST_F(ReaderTest, L2TableUnaligned) {
  Put64(img.l1, (img.l2 + 512) | kOflagCopied);
  ExpectError({"L1 table entry 0: L2 table", "not cluster aligned", At(img.l1)});
}
TEST_F(ReaderTest, L2TablePastEndOfFile) {
  Put64(img.l1, (1ull << 40) | kOflagCopied);
  ExpectError({"L1 table entry 0: L2 table", "past the end of the file", At(img.l1)});
}
TEST_F(ReaderTest, L2TableIsTheL1Table) {
  Put64(img.l1, img.l1 | kOflagCopied);
  ExpectError({"L1 table entry 0: L2 table", "overlaps L1 table", At(img.l1)});
}
TEST_F(ReaderTest, TwoL1EntriesShareAnL2Table) {
  // 4 KiB clusters: an L2 table maps 2 MiB, so 3 MiB need two L1 entries.
  Put64(24, 3ull << 20);
  Put32(36, 2);
  Put64(img.l1 + 8, img.l2 | kOflagCopied);
  ExpectError(
      {"L1 table entry 1: L2 table 0x4000 overlaps L1 table entry 0: L2 table", At(img.l1 + 8)});
}
TEST_F(ReaderTest, L2TableIsARefcountBlock) {
  Put64(img.l1, img.refcount_block | kOflagCopied);
  ExpectError({"L1 table entry 0: L2 table", "overlaps refcount table entry 0", At(img.l1)});
}

// ---- refcount table ------------------------------------------------------

TEST_F(ReaderTest, RefcountTableUnaligned) {
  Put64(48, img.refcount_table + 8);
  ExpectError({"refcount table", "not cluster aligned", At(48)});
}
TEST_F(ReaderTest, RefcountTablePastEndOfFile) {
  Put32(56, 100);
  ExpectError({"refcount table", "past the end of the file", At(48)});
}
TEST_F(ReaderTest, RefcountTableWithoutClusters) {
  Put32(56, 0);
  ExpectError({"refcount table has no clusters", At(56)});
}
TEST_F(ReaderTest, RefcountTableOverTheLimit) {
  Put32(56, 0xffffffff);
  ExpectError({"over the 8 MiB limit", At(56)});
}
TEST_F(ReaderTest, RefcountTableEntryReservedBits) {
  Put64(img.refcount_table + 8, 0x1);
  ExpectError({"refcount table entry 1", "reserved bits", At(img.refcount_table + 8)});
}
TEST_F(ReaderTest, RefcountBlockUnaligned) {
  Put64(img.refcount_table, img.refcount_block + 512);
  ExpectError(
      {"refcount table entry 0: refcount block", "not cluster aligned", At(img.refcount_table)});
}
TEST_F(ReaderTest, RefcountBlockPastEndOfFile) {
  Put64(img.refcount_table + 16, 1ull << 36);
  ExpectError(
      {"refcount table entry 2: refcount block", "past the end", At(img.refcount_table + 16)});
}
TEST_F(ReaderTest, RefcountBlockIsTheL1Table) {
  Put64(img.refcount_table, img.l1);
  ExpectError(
      {"refcount table entry 0: refcount block", "overlaps L1 table", At(img.refcount_table)});
}

// ---- L2 entries ----------------------------------------------------------

TEST_F(ReaderTest, DataClusterUnaligned) {
  Put64(img.L2EntryAt(1), (img.data1 + 512) | kOflagCopied);
  ExpectError({"entry 1 (guest cluster 1)", "not cluster aligned", At(img.L2EntryAt(1))});
}
TEST_F(ReaderTest, DataClusterPastEndOfFile) {
  Put64(img.L2EntryAt(0), (1ull << 40) | kOflagCopied);
  ExpectError({"entry 0 (guest cluster 0): data cluster", "past the end", At(img.L2EntryAt(0))});
}
TEST_F(ReaderTest, DataClusterIsTheL2Table) {
  Put64(img.L2EntryAt(1), img.l2 | kOflagCopied);
  ExpectError({"entry 1 (guest cluster 1): data cluster", "overlaps L1 table entry 0: L2 table",
               At(img.L2EntryAt(1))});
}
TEST_F(ReaderTest, DataClusterIsTheRefcountTable) {
  Put64(img.L2EntryAt(0), img.refcount_table | kOflagCopied);
  ExpectError({"guest cluster 0", "overlaps refcount table", At(img.L2EntryAt(0))});
}
TEST_F(ReaderTest, DataClusterIsTheL1Table) {
  Put64(img.L2EntryAt(0), img.l1 | kOflagCopied);
  ExpectError({"guest cluster 0", "overlaps L1 table", At(img.L2EntryAt(0))});
}
TEST_F(ReaderTest, L2EntryReservedBits) {
  Put64(img.L2EntryAt(0), Get64(img.L2EntryAt(0)) | 0x2);
  ExpectError({"entry 0 (guest cluster 0)", "reserved bits", At(img.L2EntryAt(0))});
}
TEST_F(ReaderTest, L2EntryHighReservedBits) {
  Put64(img.L2EntryAt(1), Get64(img.L2EntryAt(1)) | (1ull << 60));
  ExpectError({"entry 1 (guest cluster 1)", "reserved bits", At(img.L2EntryAt(1))});
}
TEST_F(ReaderTest, ZeroFlagInVersionTwo) {
  Build({.version = 2});
  Put64(img.L2EntryAt(3), kOflagZero);
  ExpectError(
      {"entry 3 (guest cluster 3)", "zero flag set in a version 2 image", At(img.L2EntryAt(3))});
}
TEST_F(ReaderTest, ZeroAllocatedClusterUnaligned) {
  Put64(img.L2EntryAt(3), (img.data0 + 1024) | kOflagZero);
  ExpectError({"entry 3 (guest cluster 3)", "not cluster aligned", At(img.L2EntryAt(3))});
}
TEST_F(ReaderTest, CompressedDataInTheHeader) {
  Put64(img.L2EntryAt(2), EncodeCompressedL2Entry(200, 300, 12));
  ExpectError(
      {"entry 2 (guest cluster 2): compressed data", "header cluster", At(img.L2EntryAt(2))});
}
TEST_F(ReaderTest, CompressedDataPastEndOfFile) {
  Put64(img.L2EntryAt(2), EncodeCompressedL2Entry(1ull << 30, 300, 12));
  ExpectError({"entry 2 (guest cluster 2): compressed data", "past the end", At(img.L2EntryAt(2))});
}
TEST_F(ReaderTest, CompressedDataInsideTheRefcountBlock) {
  Put64(img.L2EntryAt(2), EncodeCompressedL2Entry(img.refcount_block + 64, 300, 12));
  ExpectError({"guest cluster 2", "overlaps refcount table entry 0", At(img.L2EntryAt(2))});
}
TEST_F(ReaderTest, CorruptZlibData) {
  img.bytes[img.compressed] ^= 0xff;
  img.bytes[img.compressed + 1] ^= 0xff;
  ExpectError({"cannot decompress zlib", At(img.compressed)});
}
TEST_F(ReaderTest, CorruptZstdData) {
  Build({.compression = CompressionType::kZstd});
  img.bytes[img.compressed] ^= 0xff;
  ExpectError({"cannot decompress zstd", At(img.compressed)});
}
TEST_F(ReaderTest, TruncatedCompressedData) {
  Put64(img.L2EntryAt(2), EncodeCompressedL2Entry(img.compressed, 20, 12));
  img.bytes.resize(img.compressed + 20);
  ExpectError({"cannot decompress", At(img.compressed)});
}

// ---- extended L2 entries -------------------------------------------------

TEST_F(ReaderTest, SubclusterAllocatedAndZero) {
  Build({.cluster_bits = 14, .extended_l2 = true});
  Put64(img.L2EntryAt(1) + 8, 0x1ull | (1ull << 32));
  ExpectError({"entry 1 (guest cluster 1)", "both allocated and zero", At(img.L2EntryAt(1))});
}
TEST_F(ReaderTest, SubclustersAllocatedWithoutHostCluster) {
  Build({.cluster_bits = 14, .extended_l2 = true});
  Put64(img.L2EntryAt(3) + 8, 0x3);
  ExpectError({"entry 3 (guest cluster 3)", "without a host cluster", At(img.L2EntryAt(3))});
}
TEST_F(ReaderTest, ZeroFlagInExtendedEntry) {
  Build({.cluster_bits = 14, .extended_l2 = true});
  Put64(img.L2EntryAt(0), Get64(img.L2EntryAt(0)) | kOflagZero);
  ExpectError(
      {"entry 0 (guest cluster 0)", "zero flag set in an extended L2 entry", At(img.L2EntryAt(0))});
}
TEST_F(ReaderTest, CompressedClusterWithSubclusterBitmap) {
  Build({.cluster_bits = 14, .extended_l2 = true});
  Put64(img.L2EntryAt(2) + 8, 1);
  ExpectError({"entry 2 (guest cluster 2)", "nonzero subcluster bitmap", At(img.L2EntryAt(2))});
}
TEST_F(ReaderTest, AllocatedSubclustersPastEndOfFile) {
  Build({.cluster_bits = 14, .extended_l2 = true});
  img.bytes.resize(img.data1 + img.cluster_size / 2);
  // Half of the cluster is in the file: fine while only those subclusters are allocated.
  Put64(img.L2EntryAt(1) + 8, 0xffff);
  Put64(img.L2EntryAt(2), 0);
  Put64(img.L2EntryAt(2) + 8, 0);
  Save();
  EXPECT_NO_THROW(Qcow2Reader{path});
  Put64(img.L2EntryAt(1) + 8, 0x1ffff);
  ExpectError({"entry 1 (guest cluster 1): data cluster", "past the end", At(img.L2EntryAt(1))});
}

// ---- snapshots and bitmaps -----------------------------------------------

TEST_F(ReaderTest, SnapshotTableUnaligned) {
  Build({.snapshot = true});
  Put64(64, img.snapshot_table + 8);
  ExpectError({"snapshot table", "not cluster aligned", At(64)});
}
TEST_F(ReaderTest, SnapshotTablePastEndOfFile) {
  Build({.snapshot = true});
  Put64(64, 1ull << 32);
  ExpectError({"snapshot table entry 0", "past the end of the file", At(1ull << 32)});
}
TEST_F(ReaderTest, TooManySnapshots) {
  Build({.snapshot = true});
  Put32(60, 100000);
  ExpectError({"more than 65536", At(60)});
}
TEST_F(ReaderTest, SnapshotL1TableUnaligned) {
  Build({.snapshot = true});
  Put64(img.snapshot_table, img.snapshot_l1 + 16);
  ExpectError({"snapshot table entry 0: L1 table", "not cluster aligned", At(img.snapshot_table)});
}
TEST_F(ReaderTest, SnapshotL1TableIsTheActiveL1Table) {
  Build({.snapshot = true});
  Put64(img.snapshot_table, img.l1);
  ExpectError({"snapshot table entry 0: L1 table", "overlaps L1 table", At(img.snapshot_table)});
}
TEST_F(ReaderTest, SnapshotWithoutVersionThreeExtraData) {
  Build({.snapshot = true});
  Put32(img.snapshot_table + 36, 8);
  ExpectError({"snapshot table entry 0", "version 3 needs 16", At(img.snapshot_table + 36)});
}
TEST_F(ReaderTest, BitmapDirectoryPastEndOfFile) {
  Build({.bitmap = true});
  Put64(img.bitmap_extension + 16, 1ull << 34);
  ExpectError({"bitmap directory", "past the end of the file", At(img.bitmap_extension + 16)});
}
TEST_F(ReaderTest, BitmapDirectoryUnaligned) {
  Build({.bitmap = true});
  Put64(img.bitmap_extension + 16, img.bitmap_directory + 8);
  ExpectError({"bitmap directory", "not cluster aligned", At(img.bitmap_extension + 16)});
}
TEST_F(ReaderTest, BitmapCountZero) {
  Build({.bitmap = true});
  Put32(img.bitmap_extension, 0);
  ExpectError({"bitmap count 0", At(img.bitmap_extension)});
}
TEST_F(ReaderTest, BitmapTableIsTheRefcountTable) {
  Build({.bitmap = true});
  Put64(img.bitmap_directory, img.refcount_table);
  ExpectError({"bitmap directory entry 0: bitmap table", "overlaps refcount table",
               At(img.bitmap_directory)});
}
TEST_F(ReaderTest, BitmapEntryRunsPastTheDirectory) {
  Build({.bitmap = true});
  Put16(img.bitmap_directory + 18, 100);
  ExpectError({"bitmap directory entry 0", "past the directory's end", At(img.bitmap_directory)});
}
TEST_F(ReaderTest, StaleBitmapExtensionIsIgnored) {
  Build({.bitmap = true});
  Put64(img.bitmap_extension + 16, 1ull << 34);
  Put64(88, 0);  // autoclear bit cleared by a program that does not know bitmaps
  EXPECT_EQ(ReadAllGuest(), img.guest);
}

// ---- files an image refers to ---------------------------------------------

TEST_F(ReaderTest, DataFileOffsetMustEqualGuestOffset) {
  Build({.data_file = "data.bin"});
  Put64(img.L2EntryAt(1), (2 * img.cluster_size) | kOflagCopied);
  ExpectError({"entry 1 (guest cluster 1)", "differs from the guest offset", At(img.L2EntryAt(1))});
}
TEST_F(ReaderTest, CompressedClusterInDataFileImage) {
  Build({.data_file = "data.bin"});
  Put64(img.L2EntryAt(2), EncodeCompressedL2Entry(img.l2 + 100, 300, 12));
  ExpectError({"entry 2 (guest cluster 2)", "external data file", At(img.L2EntryAt(2))});
}
TEST_F(ReaderTest, SnapshotsWithDataFile) {
  Build({.data_file = "data.bin"});
  Put32(60, 1);
  Put64(64, 8 * img.cluster_size);
  ExpectError({"internal snapshots in an image with an external data file", At(60)});
}
TEST_F(ReaderTest, MissingDataFile) {
  Build({.data_file = "absent.bin"});
  ExpectError({"cannot open external data file", "absent.bin"});
}
TEST_F(ReaderTest, MissingBackingFile) {
  Build({.backing_file = "absent.qcow2", .backing_format = "qcow2"});
  ExpectError({"cannot open backing file 'absent.qcow2'"});
}
TEST_F(ReaderTest, UnsupportedBackingFormat) {
  Build({.backing_file = "base.vmdk", .backing_format = "vmdk"});
  testutil::WriteAll(dir.File("base.vmdk"), testutil::Pattern(4096, 3));
  ExpectError({"backing file format 'vmdk' is not supported"});
}
TEST_F(ReaderTest, BackingDeclaredQcow2ButRaw) {
  Build({.backing_file = "base.img", .backing_format = "qcow2"});
  testutil::WriteAll(dir.File("base.img"), testutil::Pattern(4096, 3));
  ExpectError({"declared qcow2 but has no qcow2 magic"});
}
TEST_F(ReaderTest, BackingProtocolIsRefused) {
  Build({.backing_file = "nbd://host/export", .backing_format = "raw"});
  ExpectError({"uses a protocol"});
}
TEST_F(ReaderTest, BackingFileIsTheImageItself) {
  Build({.backing_file = "img.qcow2", .backing_format = "qcow2"});
  ExpectError({"loops back"});
}
TEST_F(ReaderTest, BadBackingImageIsNamed) {
  Build({.backing_file = "base.qcow2"});  // format probed
  TestImage base = BuildTestImage();
  util::StoreBE32(&base.bytes[20], 30);
  testutil::WriteAll(dir.File("base.qcow2"), base.bytes);
  named_file = dir.File("base.qcow2");
  ExpectError({"qcow2 header: cluster_bits 30", At(20)});
}

}  // namespace
}  // namespace qcow2
