// MakeSeekable: a pipe is copied whole into an unnamed spool named as the
// input, a regular file at its start is read in place, one read part way
// is copied from where it stands, and a terminal is refused. SpoolToEnd:
// bytes read before come first, the rest of the descriptor after them.
#include "util/seekable_input.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"
#include "util/error.h"
#include "util/temp_file.h"

namespace {

// All the bytes of a file, read by offset.
std::vector<uint8_t> Contents(const util::File& file) {
  std::vector<uint8_t> bytes(file.Size());
  if (!bytes.empty())
    file.ReadAt(bytes, 0);
  return bytes;
}

// The names in a directory other than "." and "..".
size_t Entries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  size_t n = 0;
  while (const dirent* e = ::readdir(d))
    n += std::string(e->d_name) != "." && std::string(e->d_name) != "..";
  ::closedir(d);
  return n;
}

// A pipe whose write end a thread fills with `data`, then closes.
class FedPipe {
 public:
  explicit FedPipe(std::vector<uint8_t> data) : data_(std::move(data)) {
    if (::pipe(fds_) != 0)
      throw std::runtime_error("pipe failed");
    writer_ = std::thread([this] {
      size_t done = 0;
      while (done < data_.size()) {
        const ssize_t n = ::write(fds_[1], data_.data() + done, data_.size() - done);
        if (n <= 0)
          break;
        done += static_cast<size_t>(n);
      }
      ::close(fds_[1]);
    });
  }
  ~FedPipe() {
    writer_.join();
    ::close(fds_[0]);
  }
  int read_end() const { return fds_[0]; }

 private:
  std::vector<uint8_t> data_;
  int fds_[2] = {-1, -1};
  std::thread writer_;
};

TEST(SeekableInput, APipeIsSpooledWholeAndNamedAsTheInput) {
  testutil::TempDir dir;
  // More than one chunk, not a multiple of it: the last read is short.
  const std::vector<uint8_t> data = testutil::Pattern((3 << 20) + 4097, 7);
  {
    FedPipe pipe(data);
    const util::SeekableInput in =
        util::MakeSeekable(pipe.read_end(), "standard input", dir.path());
    EXPECT_TRUE(in.spooled);
    EXPECT_EQ("standard input", in.file.path());
    EXPECT_EQ(data, Contents(in.file));
    EXPECT_EQ(0u, Entries(dir.path()));  // the spool has no name
  }
}

TEST(SeekableInput, ASelectionKeepsThePrefixAndItsRangesOnly) {
  testutil::TempDir dir;
  const std::vector<uint8_t> data = testutil::Pattern((5 << 20) + 123, 9);
  FedPipe pipe(data);
  util::SpoolSelection selection;
  selection.prefix = 4096;
  std::vector<uint8_t> seen;
  selection.keep = [&seen](std::span<const uint8_t> prefix) {
    seen.assign(prefix.begin(), prefix.end());
    // One range across a chunk boundary, one past the end of the input.
    return std::vector<util::ByteRange>{{(1 << 20) - 10, 20}, {5 << 20, UINT64_MAX}};
  };
  const util::SeekableInput in = util::MakeSeekable(pipe.read_end(), "in", dir.path(), selection);
  EXPECT_EQ(std::vector<uint8_t>(data.begin(), data.begin() + 4096), seen);
  std::vector<uint8_t> expected(data.size());
  const auto keep = [&](size_t from, size_t to) {
    std::copy(data.begin() + from, data.begin() + to, expected.begin() + from);
  };
  keep(0, 4096);
  keep((1 << 20) - 10, (1 << 20) + 10);
  keep(5 << 20, data.size());
  EXPECT_EQ(expected, Contents(in.file));
  EXPECT_LT(in.file.Stat().st_blocks * 512, 1 << 20);  // the rest are holes
}

TEST(SeekableInput, AnInputShorterThanThePrefixIsKeptWhole) {
  testutil::TempDir dir;
  const std::vector<uint8_t> data = testutil::Pattern(1000, 4);
  FedPipe pipe(data);
  util::SpoolSelection selection{4096, [](std::span<const uint8_t> prefix) {
                                   EXPECT_EQ(1000u, prefix.size());
                                   return std::vector<util::ByteRange>{};
                                 }};
  const util::SeekableInput in = util::MakeSeekable(pipe.read_end(), "in", dir.path(), selection);
  EXPECT_EQ(data, Contents(in.file));
}

TEST(SeekableInput, AnEmptyPipeGivesAnEmptyFile) {
  testutil::TempDir dir;
  FedPipe pipe({});
  const util::SeekableInput in = util::MakeSeekable(pipe.read_end(), "in", dir.path());
  EXPECT_TRUE(in.spooled);
  EXPECT_EQ(0u, in.file.Size());
}

TEST(SeekableInput, ARegularFileAtItsStartIsReadInPlaceAndNotClosed) {
  testutil::TempDir dir;
  const std::vector<uint8_t> data = testutil::Pattern(10000, 3);
  testutil::WriteAll(dir.File("img"), data);
  const util::File file = util::File::Open(dir.File("img"), O_RDONLY);
  {
    const util::SeekableInput in = util::MakeSeekable(file.fd(), "standard input", dir.path());
    EXPECT_FALSE(in.spooled);
    EXPECT_EQ(file.fd(), in.file.fd());
    EXPECT_EQ("standard input", in.file.path());
    EXPECT_EQ(data, Contents(in.file));
  }
  EXPECT_NE(-1, ::fcntl(file.fd(), F_GETFD));  // borrowed: still open
}

TEST(SeekableInput, ARegularFileReadPartWayIsCopiedFromWhereItStands) {
  testutil::TempDir dir;
  const std::vector<uint8_t> data = testutil::Pattern(10000, 5);
  testutil::WriteAll(dir.File("img"), data);
  const util::File file = util::File::Open(dir.File("img"), O_RDONLY);
  ASSERT_EQ(100, ::lseek(file.fd(), 100, SEEK_SET));
  const util::SeekableInput in = util::MakeSeekable(file.fd(), "in", dir.path());
  EXPECT_TRUE(in.spooled);
  EXPECT_EQ(std::vector<uint8_t>(data.begin() + 100, data.end()), Contents(in.file));
}

TEST(SeekableInput, ATerminalIsRefused) {
  const util::File master(::posix_openpt(O_RDWR | O_NOCTTY), "/dev/ptmx");
  ASSERT_TRUE(master.is_open());
  ASSERT_EQ(0, ::grantpt(master.fd()));
  ASSERT_EQ(0, ::unlockpt(master.fd()));
  const util::File tty = util::File::Open(::ptsname(master.fd()), O_RDONLY | O_NOCTTY);
  try {
    util::MakeSeekable(tty.fd(), "standard input", "/tmp");
    ADD_FAILURE() << "no error";
  } catch (const util::Error& e) {
    EXPECT_EQ(std::string("standard input is a terminal: pipe the image into it or redirect it "
                          "from a file"),
              e.what());
  }
}

TEST(SeekableInput, ASpoolThatCannotBeMadeIsOneError) {
  testutil::TempDir dir;
  FedPipe pipe(testutil::Pattern(100, 1));
  try {
    util::MakeSeekable(pipe.read_end(), "standard input", dir.File("missing"));
    ADD_FAILURE() << "no error";
  } catch (const util::Error& e) {
    EXPECT_NE(std::string::npos, std::string(e.what()).find("missing: cannot create a temporary "
                                                            "file for standard input spool"))
        << e.what();
  }
}

TEST(SpoolToEnd, BytesAlreadyReadComeFirstThenTheRestAtTheirOffsets) {
  testutil::TempDir dir;
  // The rest spans more than one chunk, not a multiple of it.
  const std::vector<uint8_t> data = testutil::Pattern((2 << 20) + 70000, 6);
  const size_t read_before = 65536 + 17;
  FedPipe pipe(std::vector<uint8_t>(data.begin() + read_before, data.end()));
  const util::File spool = util::AnonymousTempFile(dir.path(), "spool of in");
  util::SpoolToEnd(pipe.read_end(), "in", std::span(data).first(read_before), spool);
  EXPECT_EQ(data, Contents(spool));
  EXPECT_EQ(0u, Entries(dir.path()));
}

TEST(SpoolToEnd, AStreamThatEndsAfterTheBytesReadIsThemAlone) {
  testutil::TempDir dir;
  const std::vector<uint8_t> data = testutil::Pattern(5000, 2);
  FedPipe pipe({});
  const util::File spool = util::AnonymousTempFile(dir.path(), "spool of in");
  util::SpoolToEnd(pipe.read_end(), "in", data, spool);
  EXPECT_EQ(data, Contents(spool));
}

TEST(SeekableInput, AClosedDescriptorIsOneError) {
  EXPECT_THROW(util::MakeSeekable(-1, "standard input", "/tmp"), util::Error);
}

}  // namespace
