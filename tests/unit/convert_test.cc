// The conversion of qcow2 to raw, whose reading runs on a thread of its own
// a few batches ahead of the writing: BatchRing, which carries the batches,
// and ConvertToRaw over images whose runs fill and overflow the batches.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "qcow2/reader.h"
#include "qcow2/writer.h"
#include "test_util.h"
#include "util/batch_ring.h"
#include "util/endian.h"
#include "util/error.h"
#include "util/output.h"

namespace {

struct Numbered {
  uint64_t value = 0;
  bool last = false;
};

TEST(BatchRing, BatchesArriveInOrderWhicheverSideIsFaster) {
  for (const bool slow_consumer : {false, true}) {
    util::BatchRing<Numbered> ring(3);
    constexpr uint64_t kCount = 2000;
    std::jthread producer([&](std::stop_token stop) {
      for (uint64_t i = 0; i < kCount; ++i) {
        Numbered* b = ring.NextFree(stop);
        ASSERT_NE(b, nullptr);
        b->value = i;
        b->last = i + 1 == kCount;
        ring.Fill(b);
        if (!slow_consumer && i % 100 == 0)
          std::this_thread::yield();
      }
    });
    uint64_t expected = 0;
    for (bool last = false; !last;) {
      Numbered& b = ring.NextFull();
      EXPECT_EQ(b.value, expected++);
      last = b.last;
      if (slow_consumer && expected % 100 == 0)
        std::this_thread::yield();
      ring.Release(b);
    }
    EXPECT_EQ(expected, kCount);
  }
}

TEST(BatchRing, TheProducersFailureComesAfterTheBatchesFilledBeforeIt) {
  util::BatchRing<Numbered> ring(3);
  std::jthread producer([&](std::stop_token stop) {
    for (uint64_t i = 0; i < 2; ++i) {
      Numbered* b = ring.NextFree(stop);
      b->value = i;
      ring.Fill(b);
    }
    ring.Fail(std::make_exception_ptr(std::runtime_error("read failed")));
  });
  for (uint64_t i = 0; i < 2; ++i) {
    Numbered& b = ring.NextFull();
    EXPECT_EQ(b.value, i);
    ring.Release(b);
  }
  EXPECT_THROW(ring.NextFull(), std::runtime_error);
}

TEST(BatchRing, AProducerWaitingForAFreeBatchEndsWhenStopped) {
  util::BatchRing<Numbered> ring(2);
  std::atomic<int> filled = 0;
  std::atomic<bool> ended = false;
  {
    std::jthread producer([&](std::stop_token stop) {
      while (Numbered* b = ring.NextFree(stop)) {
        ring.Fill(b);
        ++filled;
      }
      ended = true;
    });
    while (filled < 2)
      std::this_thread::yield();
    // The consumer gives up without draining: the destructor stops and joins.
  }
  EXPECT_TRUE(ended);
  EXPECT_EQ(filled, 2);
}

constexpr uint64_t kCluster = 4096;

// A qcow2 image of 4 KiB clusters built with Qcow2Writer, and its guest bytes.
struct Image {
  std::vector<uint8_t> guest;
  std::string path;
};

Image BuildImage(const testutil::TempDir& dir, uint64_t clusters,
                 const std::function<bool(uint64_t)>& allocated) {
  Image img{std::vector<uint8_t>(clusters * kCluster, 0), dir.File("in.qcow2")};
  util::File f = testutil::CreateFile(img.path);
  qcow2::Qcow2Writer w(f, {.virtual_size = clusters * kCluster, .cluster_bits = 12});
  for (uint64_t c = 0; c < clusters; ++c) {
    if (!allocated(c))
      continue;
    const std::vector<uint8_t> data = testutil::Pattern(kCluster, static_cast<uint32_t>(c));
    std::memcpy(&img.guest[c * kCluster], data.data(), kCluster);
    w.WriteCluster(c, data);
  }
  w.Finish();
  return img;
}

// Converts the image to a raw file; returns its bytes, checking the progress.
std::vector<uint8_t> Convert(const testutil::TempDir& dir, const Image& img) {
  qcow2::Qcow2Reader reader(img.path);
  util::OutputFile out = util::OutputFile::Create(dir.File("out.raw"));
  util::RawWriter writer(out, 0, false);
  uint64_t last_progress = 0;
  qcow2::ConvertToRaw(reader, writer, [&](uint64_t done) {
    EXPECT_GE(done, last_progress);
    last_progress = done;
  });
  out.Commit();
  EXPECT_EQ(last_progress, img.guest.size());
  return testutil::ReadAll(dir.File("out.raw"));
}

TEST(ConvertToRaw, MoreRunsThanABatchHolds) {
  testutil::TempDir dir;
  // Every other cluster: 5,000 runs of one cluster, past a batch's 4,096.
  const Image img = BuildImage(dir, 10000, [](uint64_t c) { return c % 2 == 0; });
  EXPECT_EQ(Convert(dir, img), img.guest);
}

TEST(ConvertToRaw, RunsLongerThanABatch) {
  testutil::TempDir dir;
  // 10 MiB of data in one run, then a gap, then 3 MiB more: batches of 4 MiB.
  const Image img = BuildImage(dir, 4096, [](uint64_t c) { return c < 2560 || c >= 3328; });
  EXPECT_EQ(Convert(dir, img), img.guest);
}

// Clusters of 2 MiB holding a few pages of data: the writer leaves the rest
// as holes of the file, which the conversion does not read. They come out as
// zeros, written as such where the output needs them (zero_gaps).
TEST(ConvertToRaw, HolesInsideClustersComeOutAsZeros) {
  testutil::TempDir dir;
  constexpr uint64_t kBigCluster = 2u << 20, kClusters = 6;
  std::vector<uint8_t> guest(kClusters * kBigCluster, 0);
  const std::string path = dir.File("in.qcow2");
  {
    util::File f = testutil::CreateFile(path);
    qcow2::Qcow2Writer w(f, {.virtual_size = guest.size(), .cluster_bits = 21});
    for (uint64_t c : {0, 2, 3, 5}) {
      for (uint64_t page : {c, 100 + c, 511 - c}) {  // pages apart, at both ends
        const std::vector<uint8_t> data = testutil::Pattern(4096, static_cast<uint32_t>(page));
        std::memcpy(&guest[c * kBigCluster + page * 4096], data.data(), data.size());
      }
      w.WriteCluster(c, std::span<const uint8_t>(guest).subspan(c * kBigCluster, kBigCluster));
    }
    w.Finish();
  }
  for (bool zero_gaps : {false, true}) {
    qcow2::Qcow2Reader reader(path);
    util::OutputFile out = util::OutputFile::Create(dir.File("out.raw"));
    util::RawWriter writer(out, 0, zero_gaps);
    qcow2::ConvertToRaw(reader, writer);
    out.Commit();
    EXPECT_EQ(testutil::ReadAll(dir.File("out.raw")), guest) << "zero_gaps " << zero_gaps;
  }
}

TEST(ConvertToRaw, AnErrorOnTheReadingThreadReachesTheCaller) {
  testutil::TempDir dir;
  const Image img = BuildImage(dir, 2048, [](uint64_t c) { return c % 3 != 1; });
  // The L2 entry of a cluster far into the disk points past the end of the file.
  std::vector<uint8_t> bytes = testutil::ReadAll(img.path);
  constexpr uint64_t kCluster1500 = 1500, kL2Entries = kCluster / 8;
  const uint64_t l2_table =
      qcow2::Qcow2Reader(img.path).l1_table()[kCluster1500 / kL2Entries] & qcow2::kL1OffsetMask;
  util::StoreBE64(&bytes[l2_table + (kCluster1500 % kL2Entries) * 8], (1ull << 63) | (1ull << 40));
  testutil::WriteAll(img.path, bytes);
  qcow2::Qcow2Reader reader(img.path);
  util::OutputFile out = util::OutputFile::Create(dir.File("out.raw"));
  util::RawWriter writer(out, 0, false);
  try {
    qcow2::ConvertToRaw(reader, writer);
    FAIL() << "no error";
  } catch (const util::Error& e) {
    EXPECT_NE(std::string(e.what()).find("in.qcow2: "), std::string::npos) << e.what();
  }
}

}  // namespace
