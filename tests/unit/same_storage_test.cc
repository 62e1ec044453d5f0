// IsSameFile and SharesStorage on files made for the test: hard links,
// symlinks and other files, and "-" which names no file.
#include "util/same_storage.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "util/disk_range.h"
#include "util/error.h"

namespace {

class SameStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("same_storage_test." + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "a") << "a";
    std::ofstream(dir_ / "b") << "b";
    std::filesystem::create_hard_link(dir_ / "a", dir_ / "a-link");
    std::filesystem::create_symlink(dir_ / "a", dir_ / "a-sym");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string Path(const char* name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

TEST_F(SameStorageTest, OneFileThroughAnyPath) {
  EXPECT_TRUE(util::IsSameFile(Path("a"), Path("a")));
  EXPECT_TRUE(util::IsSameFile(Path("a"), Path("a-link")));
  EXPECT_TRUE(util::IsSameFile(Path("a-sym"), Path("a")));
  EXPECT_TRUE(util::IsSameFile(Path("a"), (dir_ / "." / "a").string()));
}

TEST_F(SameStorageTest, OtherFilesMissingFilesAndStdinAreNotTheSame) {
  EXPECT_FALSE(util::IsSameFile(Path("a"), Path("b")));
  EXPECT_FALSE(util::IsSameFile(Path("a"), Path("missing")));
  EXPECT_FALSE(util::IsSameFile(Path("missing"), Path("missing")));
  EXPECT_FALSE(util::IsSameFile("-", "-"));
  EXPECT_FALSE(util::SharesStorage("-", Path("a")));
}

TEST_F(SameStorageTest, SharesStorageIncludesTheSameFile) {
  EXPECT_TRUE(util::SharesStorage(Path("a-link"), Path("a-sym")));
  EXPECT_FALSE(util::SharesStorage(Path("a"), Path("b")));
}

TEST_F(SameStorageTest, FilesAreNeverOnOverlappingDiskRegions) {
  // Regular files have no disk range: nothing to compare, nothing refused.
  EXPECT_NO_THROW(util::CheckDisksApart(Path("a"), {}, Path("a"), {}));
}

}  // namespace
