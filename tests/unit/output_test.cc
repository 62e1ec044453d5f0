// OutputFile's all-or-nothing behaviour: nothing at the destination until
// Commit(), an existing file untouched by an abandoned run, no temporary
// file left behind, symlinks followed.
#include "util/output.h"

#include <dirent.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

TEST(OutputFileTest, SymlinkToNothingGetsItsTargetOnlyWhenCommitted) {
  testutil::TempDir dir;
  ASSERT_EQ(::symlink("target.raw", dir.File("link.raw").c_str()), 0);
  {
    util::OutputFile out = util::OutputFile::Create(dir.File("link.raw"));
    WriteText(out, "abandoned");
  }
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"link.raw"});
  util::OutputFile out = util::OutputFile::Create(dir.File("link.raw"));
  WriteText(out, "new");
  out.Commit();
  EXPECT_EQ(ReadText(dir.File("target.raw")), "new");
  struct stat st {};
  ASSERT_EQ(::lstat(dir.File("link.raw").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
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

// The mode of the one entry of dir (the temporary file while writing).
mode_t OnlyEntryMode(const std::string& dir) {
  const std::vector<std::string> names = Entries(dir);
  EXPECT_EQ(names.size(), 1u);
  struct stat st {};
  if (names.empty() || ::lstat((dir + "/" + names[0]).c_str(), &st) != 0)
    return 07777;
  return st.st_mode & 07777;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Sets the umask for its lifetime.
class Umask {
 public:
  explicit Umask(mode_t mask) : saved_(::umask(mask)) {}
  ~Umask() { ::umask(saved_); }

 private:
  mode_t saved_;
};

TEST(OutputFileTest, NewImageIs0600FromCreationUmaskOnlyNarrows) {
  for (const auto& [mask, expected] :
       std::vector<std::pair<mode_t, mode_t>>{{0, 0600}, {022, 0600}, {077, 0600}, {0277, 0400}}) {
    testutil::TempDir dir;
    Umask umask(mask);
    util::OutputFile out = util::OutputFile::Create(dir.File("image.raw"));
    WriteText(out, "secret");
    EXPECT_EQ(OnlyEntryMode(dir.path()), expected) << "umask " << mask;
    out.Commit();
    EXPECT_EQ(ModeOf(dir.File("image.raw")), expected) << "umask " << mask;
  }
}

TEST(OutputFileTest, ReplacedFileKeepsOwnerGroupAndModeNeverWiderBetween) {
  testutil::TempDir dir;
  const std::string path = dir.File("image.raw");
  testutil::WriteAll(path, {'o', 'l', 'd'});
  ASSERT_EQ(::chmod(path.c_str(), 0440), 0);
  // Root can give the file away: the replacement must follow it.
  const bool root = ::geteuid() == 0;
  if (root) {
    ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
  }
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  util::OutputFile out = util::OutputFile::Create(path);
  WriteText(out, "new");
  // While written: no permission the replaced file lacks (0440 & 0600).
  for (const std::string& name : Entries(dir.path()))
    if (name != "image.raw") {
      struct stat temp {};
      ASSERT_EQ(::lstat(dir.File(name).c_str(), &temp), 0);
      EXPECT_EQ(temp.st_mode & 07777 & ~before.st_mode, 0u) << std::oct << temp.st_mode;
      EXPECT_EQ(temp.st_uid, before.st_uid);
    }
  out.Commit();
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_NE(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mode & 07777, 0440u);
  EXPECT_EQ(after.st_uid, before.st_uid);
  EXPECT_EQ(after.st_gid, before.st_gid);
  EXPECT_EQ(ReadText(path), "new");
}

// Runs body in a child process as nobody (when run as root); returns its
// exit status.
template <typename Body>
int AsNobody(Body body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::geteuid() == 0 &&
        (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0))
      ::_exit(100);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

TEST(OutputFileTest, FileTheCallerMayNotWriteIsRefusedNotReplaced) {
  testutil::TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 01777), 0);
  const std::string path = dir.File("image.raw");
  testutil::WriteAll(path, {'o', 'l', 'd'});
  ASSERT_EQ(::chmod(path.c_str(), 0444), 0);
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(path.c_str(), 65534, 65534), 0);
  }
  const int status = AsNobody([&] {
    try {
      util::OutputFile::Create(path);
    } catch (const util::Error& e) {
      return std::string(e.what()).find(path +
                                        ": cannot open the output for writing: "
                                        "Permission denied") == 0
                 ? 0
                 : 1;
    }
    return 2;
  });
  EXPECT_EQ(status, 0);
  EXPECT_EQ(ReadText(path), "old");
  EXPECT_EQ(Entries(dir.path()), std::vector<std::string>{"image.raw"});
}

TEST(OutputFileTest, NewNameTakenMeanwhileIsNotClobbered) {
  testutil::TempDir dir;
  util::OutputFile out = util::OutputFile::Create(dir.File("image.raw"));
  WriteText(out, "image");
  testutil::WriteAll(dir.File("image.raw"), {'t', 'h', 'e', 'i', 'r', 's'});
  EXPECT_THROW(out.Commit(), util::Error);
  EXPECT_EQ(ReadText(dir.File("image.raw")), "theirs");
}

TEST(OutputFileTest, OnlyTheOpenedFileIsReplaced) {
  testutil::TempDir dir;
  testutil::WriteAll(dir.File("image.raw"), {'o', 'l', 'd'});
  util::OutputFile out = util::OutputFile::Create(dir.File("image.raw"));
  WriteText(out, "image");
  testutil::WriteAll(dir.File("other"), {'t', 'h', 'e', 'i', 'r', 's'});
  ASSERT_EQ(::rename(dir.File("other").c_str(), dir.File("image.raw").c_str()), 0);
  EXPECT_THROW(out.Commit(), util::Error);
  EXPECT_EQ(ReadText(dir.File("image.raw")), "theirs");
}

TEST(OutputFileTest, EveryTerminatingSignalRemovesTheTemporaryFile) {
  const int signals[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGTRAP, SIGABRT,  SIGUSR1,
                         SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGXCPU,  SIGVTALRM,
                         SIGPROF, SIGIO,   SIGPWR,  SIGSYS,  SIGRTMIN, SIGRTMAX};
  for (const int sig : signals) {
    testutil::TempDir dir;
    const pid_t pid = ::fork();
    if (pid == 0) {
      const rlimit no_core{0, 0};
      ::setrlimit(RLIMIT_CORE, &no_core);
      util::OutputFile out = util::OutputFile::Create(dir.File("image.raw"));
      WriteText(out, "partial");
      ::kill(::getpid(), sig);
      ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << "signal " << sig;
    EXPECT_TRUE(Entries(dir.path()).empty()) << "signal " << sig;
  }
}

TEST(OutputFileTest, InPlaceKeepsTheBytesOutsideTheImage) {
  testutil::TempDir dir;
  const std::string path = dir.File("disk.img");
  testutil::WriteAll(path, std::vector<uint8_t>(64 << 10, 'A'));
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  util::OutputFile out = util::OutputFile::Create(path, util::OutputFile::Durability::kSynced,
                                                  util::OutputFile::Existing::kWriteInPlace);
  EXPECT_EQ(out.kind(), util::OutputFile::Kind::kInPlaceFile);
  out.Reserve(16 << 10, 16 << 10);
  util::RawWriter writer(out, 16 << 10, /*zero_gaps=*/true);
  writer.Write(4096, std::vector<uint8_t>(4096, 'B'));
  writer.Finish(16 << 10);
  out.Commit();
  const std::vector<uint8_t> bytes = testutil::ReadAll(path);
  ASSERT_EQ(bytes.size(), 64u << 10);
  for (size_t i = 0; i < bytes.size(); ++i) {
    const uint8_t expected = i < (16 << 10) || i >= (32 << 10)   ? 'A'
                             : i >= (20 << 10) && i < (24 << 10) ? 'B'
                                                                 : 0;
    ASSERT_EQ(bytes[i], expected) << "byte " << i;
  }
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
}

TEST(OutputFileTest, RegionPastTheLargestOffsetIsRefusedBeforeWriting) {
  testutil::TempDir dir;
  util::OutputFile out = util::OutputFile::Create(dir.File("image.raw"));
  EXPECT_THROW(out.Reserve(~uint64_t{0}, 4096), util::Error);
  EXPECT_THROW(out.Reserve(uint64_t{1} << 62, uint64_t{1} << 62), util::Error);
  EXPECT_EQ(out.file().Size(), 0u);
  out.Reserve(4096, 4096);
  EXPECT_EQ(out.file().Size(), 8192u);
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
