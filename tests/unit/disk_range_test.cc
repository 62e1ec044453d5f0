// DiskRange against a made-up sysfs tree: a disk 8:0 of 1000 sectors with
// partitions 8:1 (sectors 100-299) and 8:2 (sectors 300-999), and a second
// disk 8:16, laid out as the kernel lays /sys/dev/block and /sys/devices.
#include "util/disk_range.h"

#include <gtest/gtest.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace {

namespace fs = std::filesystem;

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream(path) << text << "\n";
}

class DiskRangeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(temp_.path()) / "sys";
    const fs::path disk = root_ / "devices" / "virtual" / "block" / "sda";
    AddDevice(disk, "8:0", 1000);
    AddDevice(disk / "sda1", "8:1", 200);
    WriteFile(disk / "sda1" / "partition", "1");
    WriteFile(disk / "sda1" / "start", "100");
    AddDevice(disk / "sda2", "8:2", 700);
    WriteFile(disk / "sda2" / "partition", "2");
    WriteFile(disk / "sda2" / "start", "300");
    AddDevice(root_ / "devices" / "virtual" / "block" / "sdb", "8:16", 1000);
  }
  void AddDevice(const fs::path& dir, const std::string& number, uint64_t sectors) {
    fs::create_directories(dir);
    WriteFile(dir / "dev", number);
    WriteFile(dir / "size", std::to_string(sectors));
    fs::create_directories(root_ / "dev" / "block");
    fs::create_symlink(dir, root_ / "dev" / "block" / number);
  }
  std::optional<util::DiskRange> Range(unsigned major_number, unsigned minor_number) const {
    return util::DiskRangeOfDevice(makedev(major_number, minor_number), root_.string());
  }
  testutil::TempDir temp_;
  fs::path root_;
};

TEST_F(DiskRangeTest, WholeDiskCoversItself) {
  const auto range = Range(8, 0);
  ASSERT_TRUE(range);
  EXPECT_EQ(range->disk, makedev(8, 0));
  EXPECT_EQ(range->start, 0u);
  EXPECT_EQ(range->size, 1000u * 512);
}

TEST_F(DiskRangeTest, PartitionLiesOnItsDisk) {
  const auto range = Range(8, 2);
  ASSERT_TRUE(range);
  EXPECT_EQ(range->disk, makedev(8, 0));
  EXPECT_EQ(range->start, 300u * 512);
  EXPECT_EQ(range->size, 700u * 512);
}

TEST_F(DiskRangeTest, UnknownDeviceOrFileHasNone) {
  EXPECT_FALSE(Range(9, 9));
  const fs::path file = temp_.File("plain");
  WriteFile(file, "x");
  EXPECT_FALSE(util::DiskRangeOf(file.string(), root_.string()));
  EXPECT_FALSE(util::DiskRangeOf("-", root_.string()));
}

TEST_F(DiskRangeTest, PartitionOverlapsItsWholeDisk) {
  EXPECT_TRUE(util::DiskRegionsOverlap(Range(8, 1), {}, Range(8, 0), {}));
  // A filesystem at the start of sda1, written to the start of sda: sectors
  // 0-199 of the disk against 100-299.
  EXPECT_TRUE(util::DiskRegionsOverlap(Range(8, 1), {0, 200 * 512}, Range(8, 0), {0, 200 * 512}));
}

TEST_F(DiskRangeTest, RegionsApartOnOneDiskDoNotOverlap) {
  // sda1 is sectors 100-299: sda's first 100 sectors and its sectors from 300 on are apart.
  EXPECT_FALSE(util::DiskRegionsOverlap(Range(8, 1), {}, Range(8, 0), {0, 100 * 512}));
  EXPECT_FALSE(util::DiskRegionsOverlap(Range(8, 1), {}, Range(8, 0), {300 * 512, 100 * 512}));
  EXPECT_TRUE(util::DiskRegionsOverlap(Range(8, 1), {}, Range(8, 0), {299 * 512, 100 * 512}));
  // Neighbouring partitions, and a region offset inside one of them.
  EXPECT_FALSE(util::DiskRegionsOverlap(Range(8, 1), {}, Range(8, 2), {}));
  EXPECT_TRUE(util::DiskRegionsOverlap(Range(8, 1), {}, Range(8, 0), {250 * 512, 1}));
  EXPECT_FALSE(util::DiskRegionsOverlap(Range(8, 1), {}, Range(8, 0), {0, 0}));
}

TEST_F(DiskRangeTest, OtherDisksAndNonDevicesNeverOverlap) {
  EXPECT_FALSE(util::DiskRegionsOverlap(Range(8, 0), {}, Range(8, 16), {}));
  EXPECT_FALSE(util::DiskRegionsOverlap(std::nullopt, {}, Range(8, 0), {}));
  EXPECT_FALSE(util::DiskRegionsOverlap(Range(8, 0), {}, std::nullopt, {}));
}

}  // namespace
