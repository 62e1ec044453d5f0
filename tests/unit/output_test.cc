// OutputFile's all-or-nothing behaviour: nothing at the destination until
// Commit(), an existing file untouched by an abandoned run, no temporary
// file left behind, symlinks followed.
#include "util/output.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "test_util.h"
#include "util/error.h"

namespace {

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d)
    return names;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..")
      names.push_back(name);
  }
  ::closedir(d);
  return names;
}

void WriteText(const util::OutputFile& out, const std::string& text) {
  out.file().WriteAt({reinterpret_cast<const uint8_t*>(text.data()), text.size()}, 0);
}

std::string ReadText(const std::string& path) {
  const std::vector<uint8_t> bytes = testutil::ReadAll(path);
  return std::string(bytes.begin(), bytes.end());
}

TEST(OutputFileTest, NothingAppearsWithoutCommit) {
  testutil::TempDir dir;
  {
    util::OutputFile out = util::OutputFile::Create(dir.File("image.raw"));
    EXPECT_EQ(out.kind(), util::OutputFile::Kind::kRegular);
    WriteText(out, "partial");
    EXPECT_EQ(Entries(dir.path()).size(), 1u);  // only the temporary file
    EXPECT_NE(Entries(dir.path())[0], "image.raw");
  }
  EXPECT_TRUE(Entries(dir.path()).empty());
}

TEST(OutputFileTest, CommitRenamesIntoPlace) {
  testutil::TempDir dir;
  util::OutputFile out = util::OutputFile::Create(dir.File("image.raw"));
  WriteText(out, "complete");
  out.Commit();
  EXPECT_EQ(ReadText(dir.File("image.raw")), "complete");
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"image.raw"});
}

TEST(OutputFileTest, AbandonedRunLeavesExistingFileUntouched) {
  testutil::TempDir dir;
  testutil::WriteAll(dir.File("image.raw"), {'o', 'l', 'd'});
  {
    util::OutputFile out = util::OutputFile::Create(dir.File("image.raw"));
    WriteText(out, "new bytes that must not land");
  }
  EXPECT_EQ(ReadText(dir.File("image.raw")), "old");
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"image.raw"});
}

TEST(OutputFileTest, CommitReplacesExistingFile) {
  testutil::TempDir dir;
  testutil::WriteAll(dir.File("image.raw"), std::vector<uint8_t>(100, 'x'));
  util::OutputFile out = util::OutputFile::Create(dir.File("image.raw"));
  WriteText(out, "short");
  out.Commit();
  EXPECT_EQ(ReadText(dir.File("image.raw")), "short");
}

TEST(OutputFileTest, SymlinkDestinationIsFollowed) {
  testutil::TempDir dir;
  testutil::WriteAll(dir.File("target.raw"), {'o', 'l', 'd'});
  ASSERT_EQ(::symlink("target.raw", dir.File("link.raw").c_str()), 0);
  util::OutputFile out = util::OutputFile::Create(dir.File("link.raw"));
  WriteText(out, "new");
  out.Commit();
  struct stat st {};
  ASSERT_EQ(::lstat(dir.File("link.raw").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(ReadText(dir.File("target.raw")), "new");
}

TEST(OutputFileTest, MissingDirectoryIsOneClearError) {
  testutil::TempDir dir;
  try {
    util::OutputFile::Create(dir.File("no/such/dir/image.raw"));
    FAIL() << "expected util::Error";
  } catch (const util::Error& e) {
    EXPECT_NE(std::string(e.what()).find("image.raw: cannot create output file"), std::string::npos)
        << e.what();
  }
}

TEST(RawWriterTest, ZeroPagesBecomeHolesAndSizeIsExact) {
  testutil::TempDir dir;
  util::OutputFile out = util::OutputFile::Create(dir.File("image.raw"));
  util::RawWriter writer(out, 0, false);
  std::vector<uint8_t> data(3 * 4096, 0);
  data[4096] = 7;  // only the middle page has data
  writer.Write(8192, data);
  writer.Finish(1 << 20);
  out.Commit();
  const std::vector<uint8_t> bytes = testutil::ReadAll(dir.File("image.raw"));
  ASSERT_EQ(bytes.size(), 1u << 20);
  EXPECT_EQ(bytes[8192 + 4096], 7);
  struct stat st {};
  ASSERT_EQ(::stat(dir.File("image.raw").c_str(), &st), 0);
  EXPECT_LE(st.st_blocks * 512, 64 * 1024);  // a page of data, not a megabyte
}

TEST(RawWriterTest, RewindLetsASecondPassFillWhatTheFirstLeft) {
  testutil::TempDir dir;
  util::OutputFile out = util::OutputFile::Create(dir.File("image.raw"));
  util::RawWriter writer(out, 0, false);
  ASSERT_TRUE(writer.CanRewind());
  writer.Write(8192, std::vector<uint8_t>(4096, 2));
  EXPECT_THROW(writer.Write(0, std::vector<uint8_t>(4096, 1)), util::Error);
  writer.Rewind();
  writer.Write(0, std::vector<uint8_t>(4096, 1));
  writer.Finish(3 * 4096);
  out.Commit();
  const std::vector<uint8_t> bytes = testutil::ReadAll(dir.File("image.raw"));
  ASSERT_EQ(bytes.size(), 3u * 4096);
  EXPECT_EQ(bytes[0], 1);
  EXPECT_EQ(bytes[4096], 0);
  EXPECT_EQ(bytes[8192], 2);
}

TEST(RawWriterTest, NoRewindWhereGapsAreWrittenAsZeros) {
  testutil::TempDir dir;
  util::OutputFile out = util::OutputFile::Create(dir.File("image.raw"));
  util::RawWriter writer(out, 0, /*zero_gaps=*/true);
  EXPECT_FALSE(writer.CanRewind());
  EXPECT_THROW(writer.Rewind(), util::Error);
}

}  // namespace

namespace {

// The runs ForEachNonZeroRun gives: (start, size) pairs.
std::vector<std::pair<size_t, size_t>> NonZeroRuns(const std::vector<uint8_t>& data, size_t page,
                                                   size_t min_hole) {
  std::vector<std::pair<size_t, size_t>> runs;
  util::ForEachNonZeroRun(data, page, min_hole, [&](size_t start, std::span<const uint8_t> run) {
    runs.emplace_back(start, run.size());
  });
  return runs;
}

}  // namespace

// Non-zero pages next to one another make one run; a page with a single
// non-zero byte counts whole; a short last page is a page too. Stretches of
// zeros shorter than min_hole are written with the data around them.
TEST(NonZeroRunsTest, RunsBetweenAllZeroPages) {
  std::vector<uint8_t> data(10 * 4096 + 100, 0);
  data[4096 + 4095] = 1;     // page 1
  data[2 * 4096] = 2;        // page 2
  data[5 * 4096 + 7] = 3;    // page 5
  data[10 * 4096 + 99] = 4;  // the short last page
  using Runs = std::vector<std::pair<size_t, size_t>>;
  EXPECT_EQ(NonZeroRuns(data, 4096, 4096),
            (Runs{{4096, 2 * 4096}, {5 * 4096, 4096}, {10 * 4096, 100}}));
  // Holes of 3 pages or more: only pages 6-9 are one.
  EXPECT_EQ(NonZeroRuns(data, 4096, 3 * 4096), (Runs{{0, 6 * 4096}, {10 * 4096, 100}}));
  EXPECT_EQ(NonZeroRuns(std::vector<uint8_t>(3 * 4096, 0), 4096, 4096), Runs{});
  EXPECT_EQ(NonZeroRuns(std::vector<uint8_t>(3 * 4096, 0), 4096, 4 * 4096), (Runs{{0, 3 * 4096}}));
  EXPECT_EQ(NonZeroRuns(std::vector<uint8_t>(3 * 4096, 9), 4096, 4096), (Runs{{0, 3 * 4096}}));
}
