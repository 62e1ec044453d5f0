#include "e2img/unreadable.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "util/error.h"

namespace e2img {
namespace {

TEST(UnreadableLogTest, WarnsOnceForEachNewPartAndMerges) {
  std::vector<std::string> warnings;
  UnreadableLog log("disk", 1024, 1024, [&](const std::string& w) { warnings.push_back(w); });
  log.Add({4096, 512});
  log.Add({4096, 512});  // known: no warning
  log.Add({4608, 1024});
  log.Add({3584, 2048});  // only [3584, 4096) is new
  ASSERT_EQ(warnings.size(), 3u);
  EXPECT_EQ(warnings[0],
            "disk: unreadable: 512 bytes at offset 4096 (block 3); left out of the "
            "image (zeros)");
  EXPECT_EQ(warnings[1],
            "disk: unreadable: 1024 bytes at offset 4608 (blocks 3-4); left out of "
            "the image (zeros)");
  EXPECT_EQ(warnings[2],
            "disk: unreadable: 512 bytes at offset 3584 (block 2); left out of the "
            "image (zeros)");
  EXPECT_EQ(log.Ranges(), (std::vector<ByteRange>{{3584, 2048}}));
  EXPECT_EQ(log.GuestRanges(), (std::vector<ByteRange>{{2560, 2048}}));
  EXPECT_EQ(log.BlockCount(), 3u);  // blocks 2, 3 and 4
}

TEST(UnreadableLogTest, BlocksSharedByTwoRangesCountOnce) {
  UnreadableLog log("disk", 0, 4096, nullptr);
  log.Add({0, 512});
  log.Add({1024, 512});
  log.Add({8192, 4097});
  EXPECT_EQ(log.Ranges().size(), 3u);
  EXPECT_EQ(log.BlockCount(), 3u);  // blocks 0, 2 and 3
}

// A device of `size` bytes (byte i holds i % 251 + 1) whose sectors in `bad`
// fail with `error`; counts the reads and their sizes.
struct FakeDevice {
  uint64_t size = 0;
  std::set<uint64_t> bad;  // sector numbers
  int error = EIO;
  std::vector<std::pair<uint64_t, size_t>> reads;  // offset, length

  PositionedRead Reader() {
    return [this](std::span<uint8_t> buf, uint64_t offset) -> ssize_t {
      reads.emplace_back(offset, buf.size());
      const uint64_t end = std::min<uint64_t>(offset + buf.size(), size);
      for (uint64_t s = offset / 512; offset < end && s <= (end - 1) / 512; ++s)
        if (bad.count(s)) {
          errno = error;
          return -1;
        }
      for (uint64_t i = offset; i < end; ++i)
        buf[i - offset] = static_cast<uint8_t>(i % 251 + 1);
      return static_cast<ssize_t>(end > offset ? end - offset : 0);
    };
  }
};

TEST(ReadSalvagingTest, RetriesIn4KiBPiecesThenSectorsAndZeroesWhatFails) {
  FakeDevice dev;
  dev.size = 1 << 20;
  dev.bad = {9, 10, 17};  // bytes 4608-5631 (one range) and 8704-9215
  std::vector<std::string> warnings;
  UnreadableLog log("dev", 0, 4096, [&](const std::string& w) { warnings.push_back(w); });
  std::vector<uint8_t> buf(16384, 0xee);
  EXPECT_EQ(ReadSalvaging(dev.Reader(), "dev", buf, 0, log), buf.size());
  for (size_t i = 0; i < buf.size(); ++i) {
    const bool bad = (i >= 4608 && i < 5632) || (i >= 8704 && i < 9216);
    ASSERT_EQ(buf[i], bad ? 0 : i % 251 + 1) << i;
  }
  EXPECT_EQ(log.Ranges(), (std::vector<ByteRange>{{4608, 1024}, {8704, 512}}));
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0],
            "dev: unreadable: 1024 bytes at offset 4608 (block 1); left out of the image (zeros)");
  // One read of the whole, four 4 KiB pieces, and the 8 sectors of each of
  // the two pieces that failed: each sector is read once.
  ASSERT_EQ(dev.reads.size(), 1u + 4u + 16u);
  EXPECT_EQ(dev.reads[0], (std::pair<uint64_t, size_t>{0, 16384}));
  EXPECT_EQ(dev.reads[1], (std::pair<uint64_t, size_t>{0, 4096}));
  EXPECT_EQ(dev.reads[3], (std::pair<uint64_t, size_t>{4096, 512}));
}

TEST(ReadSalvagingTest, UnalignedRangesAndTheEndOfTheDevice) {
  FakeDevice dev;
  dev.size = 5000;
  dev.bad = {2};  // bytes 1024-1535
  UnreadableLog log("dev", 0, 1024, nullptr);
  std::vector<uint8_t> buf(6000, 0xee);
  // From byte 700: pieces end at 4096, then at the device's end (5000).
  EXPECT_EQ(ReadSalvaging(dev.Reader(), "dev", buf, 700, log), 4300u);
  EXPECT_EQ(buf[1023 - 700], 1023 % 251 + 1);
  EXPECT_EQ(buf[1024 - 700], 0);
  EXPECT_EQ(buf[1535 - 700], 0);
  EXPECT_EQ(buf[1536 - 700], 1536 % 251 + 1);
  EXPECT_EQ(log.Ranges(), (std::vector<ByteRange>{{1024, 512}}));
}

TEST(ReadSalvagingTest, ErrorsOtherThanTheMediumsThrow) {
  FakeDevice dev;
  dev.size = 8192;
  dev.bad = {3};
  dev.error = EBADF;
  UnreadableLog log("dev", 0, 1024, nullptr);
  std::vector<uint8_t> buf(8192);
  try {
    ReadSalvaging(dev.Reader(), "dev", buf, 0, log);
    FAIL() << "no error";
  } catch (const util::Error& e) {
    EXPECT_EQ(std::string(e.what()), "dev: read error: Bad file descriptor at offset 0");
  }
  EXPECT_TRUE(log.empty());
}

TEST(DdrescueMapTest, ContiguousBlocksFromZero) {
  const std::string map =
      DdrescueMap({{0x1400, 0x200}, {0x2000, 0x400}}, 0x400, 0x3000, {"Mapfile. Test"});
  EXPECT_EQ(map,
            "# Mapfile. Test\n"
            "# current_pos  current_status  current_pass\n"
            "0x00003000     +               1\n"
            "#      pos        size  status\n"
            "0x00000000  0x00000400  ?\n"
            "0x00000400  0x00001000  +\n"
            "0x00001400  0x00000200  -\n"
            "0x00001600  0x00000A00  +\n"
            "0x00002000  0x00000400  -\n"
            "0x00002400  0x00000C00  +\n");
}

TEST(DdrescueMapTest, NoBadRangesIsOneFinishedBlock) {
  EXPECT_EQ(DdrescueMap({}, 0, 0x100000000ull, {}),
            "# current_pos  current_status  current_pass\n"
            "0x100000000     +               1\n"
            "#      pos        size  status\n"
            "0x00000000  0x100000000  +\n");
}

}  // namespace
}  // namespace e2img
