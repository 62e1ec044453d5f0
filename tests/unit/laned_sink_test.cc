// LanedSink: every lane sees every run in order and rewrites its own blocks
// on its own thread; runs reach the inner sink in order, from the caller's
// thread, within the queue budget; a lane's error surfaces on the caller and
// the inner sink is not finished; destruction without Finish does not hang.
#include "e2img/laned_sink.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "util/error.h"

namespace e2img {
namespace {

constexpr uint32_t kBlock = 16;

// Records what it receives and on which thread.
class RecordingSink : public ImageSink {
 public:
  void WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) override {
    runs.emplace_back(first_block, std::vector<uint8_t>(data.begin(), data.end()));
    thread_ids.insert(std::this_thread::get_id());
  }
  void Finish() override { finished = true; }

  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> runs;
  std::set<std::thread::id> thread_ids;
  bool finished = false;
};

// A block's lane, as the scrambler's: by a key shared by neighbouring blocks
// (here blocks / 3, as a directory's blocks share its inode number).
unsigned LaneOfBlock(uint64_t block, unsigned lanes) {
  return static_cast<unsigned>((block / 3) % lanes);
}

TEST(LanedSink, EachLaneRewritesItsBlocksInOrderAndRunsComeOutInOrder) {
  constexpr unsigned kLanes = 3;
  RecordingSink inner;
  std::mutex seen_mutex;
  std::map<unsigned, std::vector<uint64_t>> seen;  // lane -> blocks, as rewritten
  std::map<unsigned, std::set<std::thread::id>> lane_threads;
  {
    LanedSink laned(
        inner, kLanes,
        [&](uint64_t first_block, std::span<uint8_t> data, unsigned lane) {
          for (uint64_t i = 0; i * kBlock < data.size(); ++i) {
            if (LaneOfBlock(first_block + i, kLanes) != lane)
              continue;
            data[i * kBlock] = static_cast<uint8_t>(0xa0 + lane);
            std::lock_guard lock(seen_mutex);
            seen[lane].push_back(first_block + i);
            lane_threads[lane].insert(std::this_thread::get_id());
          }
        },
        /*max_queued_bytes=*/64);  // a tiny budget: the caller waits for the lanes often
    for (uint64_t b = 0; b < 300; b += 2) {
      std::vector<uint8_t> run(2 * kBlock, static_cast<uint8_t>(b));
      laned.WriteBlocks(b, run);
      run.assign(run.size(), 0xee);  // the sink must have copied the caller's buffer
    }
    laned.Finish();
  }
  ASSERT_TRUE(inner.finished);
  ASSERT_EQ(inner.runs.size(), 150u);
  for (uint64_t r = 0; r < 150; ++r) {
    const auto& [first, data] = inner.runs[r];
    ASSERT_EQ(first, 2 * r);
    for (uint64_t i = 0; i < 2; ++i) {
      std::vector<uint8_t> expected(kBlock, static_cast<uint8_t>(first));
      expected[0] = static_cast<uint8_t>(0xa0 + LaneOfBlock(first + i, kLanes));
      EXPECT_EQ(std::vector<uint8_t>(data.begin() + i * kBlock, data.begin() + (i + 1) * kBlock),
                expected)
          << "block " << first + i;
    }
  }
  for (unsigned lane = 0; lane < kLanes; ++lane) {
    EXPECT_TRUE(std::is_sorted(seen[lane].begin(), seen[lane].end())) << "lane " << lane;
    EXPECT_EQ(seen[lane].size(), lane == 0 ? 102u : 99u);  // 100 groups of 3 blocks, by turns
    ASSERT_EQ(lane_threads[lane].size(), 1u);
    EXPECT_NE(*lane_threads[lane].begin(), std::this_thread::get_id());
  }
  EXPECT_NE(*lane_threads[0].begin(), *lane_threads[1].begin());
  EXPECT_EQ(inner.thread_ids, (std::set<std::thread::id>{std::this_thread::get_id()}));
}

TEST(LanedSink, ALaneErrorSurfacesOnTheCallerAndFinishIsNotReached) {
  RecordingSink inner;
  LanedSink laned(inner, 2, [](uint64_t first_block, std::span<uint8_t>, unsigned lane) {
    if (lane == 1 && first_block == 10)
      throw util::Error("injected failure at block 10");
  });
  bool thrown = false;
  try {
    for (uint64_t b = 0; b < 1000; ++b)
      laned.WriteBlocks(b, std::vector<uint8_t>(kBlock, 1));
    laned.Finish();
  } catch (const util::Error& e) {
    thrown = true;
    EXPECT_NE(std::string(e.what()).find("injected failure at block 10"), std::string::npos);
  }
  EXPECT_TRUE(thrown);
  EXPECT_FALSE(inner.finished);
  EXPECT_LE(inner.runs.size(), 10u);  // nothing from the failed run on
  for (const auto& run : inner.runs)
    EXPECT_LT(run.first, 10u);
}

TEST(LanedSink, DestroyedWithoutFinishDoesNotHang) {
  RecordingSink inner;
  {
    LanedSink laned(inner, 2, [](uint64_t, std::span<uint8_t>, unsigned) {});
    for (uint64_t b = 0; b < 100; ++b)
      laned.WriteBlocks(b, std::vector<uint8_t>(4096, 2));
  }
  EXPECT_FALSE(inner.finished);
  EXPECT_LE(inner.runs.size(), 100u);
}

}  // namespace
}  // namespace e2img
