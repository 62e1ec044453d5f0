#include "e2img/async_sink.h"

#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "util/error.h"

namespace e2img {
namespace {

// Records what it receives, optionally failing at one run.
class RecordingSink : public ImageSink {
 public:
  void WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) override {
    if (fail_at && first_block == *fail_at)
      throw util::Error("injected failure at block " + std::to_string(first_block));
    runs.emplace_back(first_block, std::vector<uint8_t>(data.begin(), data.end()));
    worker_ids.push_back(std::this_thread::get_id());
  }
  void Finish() override { finished = true; }

  std::optional<uint64_t> fail_at;
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> runs;
  std::vector<std::thread::id> worker_ids;
  bool finished = false;
};

TEST(AsyncSink, KeepsOrderAndBytesOnAnotherThread) {
  RecordingSink inner;
  {
    AsyncSink async(inner, 64);  // a tiny budget: the writer waits for the worker often
    for (uint64_t b = 0; b < 200; ++b) {
      std::vector<uint8_t> block(16, static_cast<uint8_t>(b));
      async.WriteBlocks(b * 2, block);
      block.assign(16, 0xee);  // the sink must have copied the caller's buffer
    }
    async.Finish();
  }
  ASSERT_TRUE(inner.finished);
  ASSERT_EQ(inner.runs.size(), 200u);
  for (uint64_t b = 0; b < 200; ++b) {
    EXPECT_EQ(inner.runs[b].first, b * 2);
    EXPECT_EQ(inner.runs[b].second, std::vector<uint8_t>(16, static_cast<uint8_t>(b)));
  }
  EXPECT_NE(inner.worker_ids.front(), std::this_thread::get_id());
}

TEST(AsyncSink, AWorkerErrorSurfacesOnTheCallerAndFinishIsNotReached) {
  RecordingSink inner;
  inner.fail_at = 10;
  AsyncSink async(inner, 64);
  bool thrown = false;
  try {
    for (uint64_t b = 0; b < 1000; ++b)
      async.WriteBlocks(b, std::vector<uint8_t>(16, 1));
    async.Finish();
  } catch (const util::Error& e) {
    thrown = true;
    EXPECT_NE(std::string(e.what()).find("injected failure at block 10"), std::string::npos);
  }
  EXPECT_TRUE(thrown);
  EXPECT_FALSE(inner.finished);
  EXPECT_EQ(inner.runs.size(), 10u);
}

TEST(AsyncSink, DestroyedWithoutFinishDoesNotHang) {
  RecordingSink inner;
  {
    AsyncSink async(inner);
    for (uint64_t b = 0; b < 100; ++b)
      async.WriteBlocks(b, std::vector<uint8_t>(4096, 2));
  }
  EXPECT_FALSE(inner.finished);
  EXPECT_LE(inner.runs.size(), 100u);
}

}  // namespace
}  // namespace e2img
