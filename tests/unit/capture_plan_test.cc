#include "e2img/capture_plan.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "qcow2/reader.h"
#include "test_util.h"
#include "util/file.h"

namespace e2img {
namespace {

using util::OutputFile;

TEST(ChooseStrategy, RawImagesOverlapOnlyInANewFile) {
  CaptureSettings raw;
  EXPECT_EQ(ChooseStrategy(raw, OutputFile::Kind::kRegular, false), CopyStrategy::kOverlapped);
  EXPECT_EQ(ChooseStrategy(raw, OutputFile::Kind::kRegular, true), CopyStrategy::kOverlapped);
  for (const auto kind :
       {OutputFile::Kind::kStream, OutputFile::Kind::kBlockDevice, OutputFile::Kind::kInPlaceFile})
    for (const bool scrambled : {false, true})
      EXPECT_EQ(ChooseStrategy(raw, kind, scrambled), CopyStrategy::kAfterScan);
}

TEST(ChooseStrategy, Qcow2ImagesByCompressionAndScrambling) {
  CaptureSettings q;
  q.qcow2 = true;
  for (const auto kind :
       {OutputFile::Kind::kRegular, OutputFile::Kind::kStream, OutputFile::Kind::kBlockDevice}) {
    EXPECT_EQ(ChooseStrategy(q, kind, false), CopyStrategy::kOverlapped);
    EXPECT_EQ(ChooseStrategy(q, kind, true), CopyStrategy::kOverlapped);
    q.compression = qcow2::CompressionType::kZlib;
    EXPECT_EQ(ChooseStrategy(q, kind, false), CopyStrategy::kCompressed);
    EXPECT_EQ(ChooseStrategy(q, kind, true), CopyStrategy::kCompressedAfterScan);
    q.compression.reset();
  }
}

// A small ext4 filesystem made by mke2fs from a directory of files (some
// sparse, a subdirectory, long names): metadata of every kind to copy.
class SmallFs {
 public:
  SmallFs() {
    const std::string tree = dir_.File("tree");
    const std::string cmd = "mkdir -p " + tree + "/sub/deeper && seq 1 3000 > " + tree +
                            "/numbers && " + "truncate -s 3M " + tree + "/sparse && echo hello > " +
                            tree +
                            "/sub/deeper/a-rather-long-file-name-for-the-directory-block && " +
                            "for i in $(seq 1 60); do echo $i > " + tree + "/sub/file$i; done && " +
                            "mke2fs -q -F -t ext4 -b 1024 -E root_owner=0:0 -d " + tree + " " +
                            path() + " 8M >/dev/null";
    ok_ = std::system(cmd.c_str()) == 0;
  }
  bool ok() const { return ok_; }
  std::string path() const { return dir_.File("fs.img"); }
  std::string File(const std::string& name) const { return dir_.File(name); }

 private:
  testutil::TempDir dir_;
  bool ok_ = false;
};

// Writes one image of the filesystem with these settings (`seed`: scrambled);
// returns the strategy chosen.
CopyStrategy Write(const std::string& fs_path, const CaptureSettings& settings,
                   std::optional<uint64_t> seed = std::nullopt) {
  const Filesystem fs(fs_path, OpenOptions{});
  const util::File source = util::File::Open(fs_path, O_RDONLY);
  std::optional<Scrambler> scrambler;
  const auto ignore = [](const std::string&) {};
  MapOptions options;
  options.output_is_device = settings.output_is_device;
  if (seed) {
    scrambler.emplace(fs, *seed, ignore);
    options.observe_inode = [&](uint32_t ino, const ext2_inode& inode) {
      scrambler->ObserveInode(ino, inode);
    };
  }
  CaptureContext context;
  context.fs = &fs;
  context.source = {&source, 0, fs.block_size(), fs.first_copied_block()};
  context.scrambler = scrambler ? &*scrambler : nullptr;
  context.warn = ignore;
  context.note = ignore;
  context.build_map = [&](MapOptions o) { return BuildMetadataMap(fs, o, ignore); };
  return WriteImage(settings, context, options).strategy;
}

// The bytes of a raw image: from `offset`, `size` of them.
std::vector<uint8_t> RawBytes(const std::string& path, uint64_t offset, uint64_t size) {
  std::vector<uint8_t> all = testutil::ReadAll(path);
  all.resize(std::max<uint64_t>(all.size(), offset + size));
  return {all.begin() + static_cast<std::ptrdiff_t>(offset),
          all.begin() + static_cast<std::ptrdiff_t>(offset + size)};
}

// The virtual disk of a qcow2 image.
std::vector<uint8_t> Qcow2Bytes(const std::string& path) {
  qcow2::Qcow2Reader reader(path);
  std::vector<uint8_t> disk(reader.virtual_size());
  reader.Read(0, disk);
  return disk;
}

// Equal images, or the first offset where they differ.
::testing::AssertionResult Same(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a == b)
    return ::testing::AssertionSuccess();
  const auto at = std::mismatch(a.begin(), a.end(), b.begin(), b.end()).first - a.begin();
  return ::testing::AssertionFailure() << "the images differ from byte " << at;
}

constexpr uint64_t kFsBytes = 8 << 20;
constexpr uint64_t kOffset = 5 * 4096;  // -O into an existing file: kAfterScan

class CapturePlanImages : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.ok()) << "mke2fs failed"; }

  // The plain path: one ascending pass once the map is complete, a raw image
  // written in place at an offset into an existing file.
  std::vector<uint8_t> Plain(std::optional<uint64_t> seed = std::nullopt) {
    const std::string out = fs_.File("plain.raw");
    testutil::WriteAll(out, std::vector<uint8_t>(kOffset, 0xa5));
    CaptureSettings s;
    s.output = out;
    s.dest_offset = kOffset;
    EXPECT_EQ(Write(fs_.path(), s, seed), CopyStrategy::kAfterScan);
    const std::vector<uint8_t> head = RawBytes(out, 0, kOffset);
    EXPECT_EQ(head, std::vector<uint8_t>(kOffset, 0xa5)) << "bytes before -O are kept";
    return RawBytes(out, kOffset, kFsBytes);
  }
  // A raw image in a new file: copied beside the scan.
  std::vector<uint8_t> Overlapped(std::optional<uint64_t> seed = std::nullopt) {
    CaptureSettings s;
    s.output = fs_.File("overlapped.raw");
    EXPECT_EQ(Write(fs_.path(), s, seed), CopyStrategy::kOverlapped);
    return RawBytes(s.output, 0, kFsBytes);
  }
  std::vector<uint8_t> Qcow2(std::optional<qcow2::CompressionType> compression,
                             std::optional<uint64_t> seed = std::nullopt) {
    CaptureSettings s;
    s.qcow2 = true;
    s.output = fs_.File("image.qcow2");
    s.compression = compression;
    const CopyStrategy expected = !compression ? CopyStrategy::kOverlapped
                                  : seed       ? CopyStrategy::kCompressedAfterScan
                                               : CopyStrategy::kCompressed;
    EXPECT_EQ(Write(fs_.path(), s, seed), expected);
    return Qcow2Bytes(s.output);
  }

  SmallFs fs_;
};

TEST_F(CapturePlanImages, PlainImageHoldsTheMetadata) {
  const std::vector<uint8_t> plain = Plain();
  std::vector<uint8_t> source = RawBytes(fs_.path(), 0, kFsBytes);
  // The superblock and the group descriptors are copied as they are.
  EXPECT_TRUE(std::equal(plain.begin() + 1024, plain.begin() + 3072, source.begin() + 1024));
  EXPECT_FALSE(Same(plain, source)) << "file data is left out";
}

TEST_F(CapturePlanImages, OverlappedWritesWhatThePlainPathWrites) {
  EXPECT_TRUE(Same(Overlapped(), Plain()));
}

TEST_F(CapturePlanImages, Qcow2WritesWhatThePlainPathWrites) {
  EXPECT_TRUE(Same(Qcow2(std::nullopt), Plain()));
}

TEST_F(CapturePlanImages, CompressedWritesWhatThePlainPathWrites) {
  EXPECT_TRUE(Same(Qcow2(qcow2::CompressionType::kZlib), Plain()));
}

TEST_F(CapturePlanImages, ScrambledStrategiesAgreeWithThePlainPath) {
  const std::vector<uint8_t> plain = Plain(7);
  EXPECT_FALSE(Same(plain, Plain())) << "names are scrambled";
  EXPECT_TRUE(Same(Overlapped(7), plain));
  EXPECT_TRUE(Same(Qcow2(std::nullopt, 7), plain));
  EXPECT_TRUE(Same(Qcow2(qcow2::CompressionType::kZlib, 7), plain));
}

}  // namespace
}  // namespace e2img
