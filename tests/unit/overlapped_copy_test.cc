// OverlappedCopy against a recording sink: every block of the final map
// arrives once with the source's bytes, the early pass holds only whole units
// known before the scan and no stale tail, a transformed second pass takes
// again the units of changed blocks, what the inode scan adds is copied in a
// pass of its own before the map is complete, and errors and early exits are
// handled.
// Then the raw and qcow2 sinks over two passes, with units written again.
#include "e2img/overlapped_copy.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "qcow2/check.h"
#include "qcow2/image_view.h"
#include "qcow2/reader.h"
#include "test_util.h"
#include "util/error.h"
#include "util/output.h"

namespace e2img {
namespace {

constexpr uint32_t kBlock = 1024;

// Records each run and the pass it came in; takes a second pass in units of `unit` blocks.
class TwoPassSink : public ImageSink {
 public:
  explicit TwoPassSink(uint64_t unit) : unit_(unit) {}
  // With room_blocks: gives room of at most that many blocks, filled with
  // bytes a read must overwrite, and checks it comes back.
  std::span<uint8_t> RoomFor(uint64_t first_block, uint64_t count) override {
    if (!room_blocks)
      return {};
    room_.assign(std::min(count, *room_blocks) * kBlock, 0xee);
    room_first_ = first_block;
    return room_;
  }
  void WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) override {
    if (room_blocks) {
      EXPECT_EQ(data.data(), room_.data());
      EXPECT_EQ(data.size(), room_.size());
      EXPECT_EQ(first_block, room_first_);
      ++writes_from_room;
    }
    if (fail_at && first_block <= *fail_at && *fail_at < first_block + data.size() / kBlock)
      throw util::Error("injected failure at block " + std::to_string(*fail_at));
    for (size_t i = 0; i < data.size() / kBlock; ++i)
      blocks.push_back(
          {first_block + i, pass,
           std::vector<uint8_t>(data.begin() + i * kBlock, data.begin() + (i + 1) * kBlock)});
    threads.push_back(std::this_thread::get_id());
  }
  void Finish() override {}
  uint64_t SecondPassUnitBlocks() const override { return unit_; }
  void StartSecondPass(std::vector<BlockExtent> units) override {
    ++pass;
    rewrites = std::move(units);
  }

  struct Block {
    uint64_t number;
    int pass;
    std::vector<uint8_t> data;
  };
  std::vector<Block> blocks;
  std::vector<std::thread::id> threads;
  std::optional<uint64_t> fail_at;
  int pass = 0;
  std::vector<BlockExtent> rewrites;  // given to the second pass
  std::optional<uint64_t> room_blocks;
  uint64_t writes_from_room = 0;

 private:
  uint64_t unit_;
  std::vector<uint8_t> room_;
  uint64_t room_first_ = 0;
};

class OverlappedCopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bytes_ = testutil::Pattern(64 * kBlock, 7);
    testutil::WriteAll(dir_.File("fs.img"), bytes_);
    file_ = util::File::Open(dir_.File("fs.img"), O_RDONLY);
    source_ = CopySource{&file_, 0, kBlock, 0};
  }
  std::vector<uint8_t> SourceBlock(uint64_t b) const {
    return {bytes_.begin() + b * kBlock, bytes_.begin() + (b + 1) * kBlock};
  }
  testutil::TempDir dir_;
  std::vector<uint8_t> bytes_;
  util::File file_;
  CopySource source_;
  std::vector<std::string> warnings_;
  CopyWarningFn warn_ = [this](const std::string& w) { warnings_.push_back(w); };
};

// Read into the sink's room, the copy gives the same blocks as through its
// own buffer: stale tails cleared, blocks past the source's end zeros.
TEST_F(OverlappedCopyTest, CopyReadsIntoTheSinksRoomWhereItHasSome) {
  const std::map<uint64_t, uint32_t> tails = {{5, 100}, {33, 1000}};
  source_.stale_tails = &tails;
  BlockSet blocks;
  blocks.Add(2, 18);
  blocks.Add(30, 40);  // the source has 64 blocks
  TwoPassSink own(1), roomy(1);
  roomy.room_blocks = 3;
  EXPECT_EQ(CopyBlocks(source_, blocks, own, {}, warn_), 1u);
  EXPECT_EQ(CopyBlocks(source_, blocks, roomy, {}, warn_), 1u);
  EXPECT_EQ(warnings_.size(), 2u);  // once each where the source ends, not once a read
  ASSERT_EQ(own.blocks.size(), 58u);
  ASSERT_EQ(roomy.blocks.size(), own.blocks.size());
  for (size_t i = 0; i < own.blocks.size(); ++i) {
    EXPECT_EQ(roomy.blocks[i].number, own.blocks[i].number);
    EXPECT_EQ(roomy.blocks[i].data, own.blocks[i].data) << "block " << own.blocks[i].number;
  }
  EXPECT_EQ(roomy.writes_from_room, 20u);  // 18 blocks in 6 rooms of 3, then 40 in 14
  std::vector<uint8_t> tailed = SourceBlock(5);
  std::fill(tailed.begin() + 100, tailed.end(), 0);
  EXPECT_EQ(roomy.blocks[3].data, tailed);
  EXPECT_EQ(roomy.blocks.back().data, std::vector<uint8_t>(kBlock, 0));  // block 69
}

TEST_F(OverlappedCopyTest, EveryBlockOnceWhatTheScanChangesInTheSecondPass) {
  TwoPassSink sink(/*unit=*/4);
  MetadataMap map;
  map.blocks.Add(0, 10);  // units 0-3 and 4-7 whole; 8-9 only part of a unit
  map.blocks.Add(16, 8);  // two whole units, one with a stale tail
  map.stale_tails[21] = 100;
  OverlappedCopy copy(source_, sink, warn_);
  copy.Start(map);
  // The scan goes on: a directory block, and an inode it keeps in block 21.
  map.blocks.Add(40);
  map.stale_tails[21] = 300;
  const uint64_t problems = copy.Finish(map, {});
  EXPECT_EQ(problems, 0u);

  std::vector<uint64_t> first, second;
  for (const auto& b : sink.blocks)
    (b.pass == 0 ? first : second).push_back(b.number);
  EXPECT_EQ(first, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19}));
  EXPECT_EQ(second, (std::vector<uint64_t>{8, 9, 20, 21, 22, 23, 40}));
  EXPECT_NE(sink.threads.front(), std::this_thread::get_id());
  for (const auto& b : sink.blocks) {
    std::vector<uint8_t> expected = SourceBlock(b.number);
    if (b.number == 21)
      std::fill(expected.begin() + 300, expected.end(), 0);  // the final tail, not the first
    EXPECT_EQ(b.data, expected) << "block " << b.number;
  }
}

TEST_F(OverlappedCopyTest, WhatTheInodeScanFoundIsCopiedWhileTheDirectoriesAreParsed) {
  TwoPassSink sink(/*unit=*/2);
  MetadataMap map;
  map.blocks.Add(0, 8);  // the group tables; block 7 has a stale tail
  map.stale_tails[7] = 100;
  OverlappedCopy copy(source_, sink, warn_);
  copy.Start(map);
  // The inode scan finds an extent tree block and directory blocks (one unit
  // whole, one half), and keeps more of block 7.
  map.blocks.Add(20, 3);
  map.blocks.Add(30, 2);
  map.stale_tails[7] = 200;
  copy.Continue(map);
  // The directories name an inode past the used table: its block comes last.
  map.blocks.Add(50);
  map.stale_tails[7] = 300;
  uint64_t last_progress = 0;
  EXPECT_EQ(copy.Finish(map, [&](uint64_t done) { last_progress = done; }), 0u);
  EXPECT_EQ(last_progress, map.blocks.BlockCount());

  std::vector<std::vector<uint64_t>> passes(3);
  for (const auto& b : sink.blocks) {
    ASSERT_LT(b.pass, 3);
    passes[b.pass].push_back(b.number);
  }
  EXPECT_EQ(passes[0], (std::vector<uint64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(passes[1], (std::vector<uint64_t>{20, 21, 30, 31}));
  EXPECT_EQ(passes[2], (std::vector<uint64_t>{6, 7, 22, 50}));
  // Runs 0-6, 20-22 and 30-32 from the worker; 6-8, 22 and 50 from Finish.
  ASSERT_EQ(sink.threads.size(), 6u);
  for (size_t run = 0; run < 6; ++run)
    EXPECT_EQ(sink.threads[run] == std::this_thread::get_id(), run >= 3) << "run " << run;
  for (const auto& b : sink.blocks) {
    std::vector<uint8_t> expected = SourceBlock(b.number);
    if (b.number == 7)
      std::fill(expected.begin() + 300, expected.end(), 0);
    EXPECT_EQ(b.data, expected) << "block " << b.number;
  }
}

// With the holes of a sparse source pruned (compressed captures), those of
// the blocks the scan adds leave the map at the next handover, unread.
TEST_F(OverlappedCopyTest, PrunedHolesLeaveTheMapAtEachHandover) {
  const std::string path = dir_.File("sparse.img");
  {
    util::File out = util::File::Open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    // Data in blocks 0-15 and 32-47; 16-31 and 48-63 are never written: holes.
    out.WriteAt(std::span<const uint8_t>(bytes_).subspan(0, 16 * kBlock), 0);
    out.WriteAt(std::span<const uint8_t>(bytes_).subspan(32 * kBlock, 16 * kBlock), 32 * kBlock);
    ASSERT_EQ(::ftruncate(out.fd(), 64 * kBlock), 0);
  }
  util::File sparse = util::File::Open(path, O_RDONLY);
  CopySource source{&sparse, 0, kBlock, 0};
  source.skip_holes = true;
  TwoPassSink sink(/*unit=*/2);
  MetadataMap map;
  map.blocks.Add(0, 9);  // the group tables, holes already out: 8 is half a unit
  OverlappedCopy copy(source, sink, warn_);
  copy.Start(map, /*holes_pruned=*/true);
  map.blocks.Add(20, 4);  // the inode scan: a hole (a journal never written)
  map.blocks.Add(40, 2);  // and a directory
  copy.Continue(map);
  EXPECT_EQ(map.blocks.BlockCount(), 11u);  // the hole is out
  map.blocks.Add(50);                       // the directories: a hole
  map.blocks.Add(44);                       // and an inode table block
  EXPECT_EQ(copy.Finish(map, {}), 0u);
  std::vector<std::pair<uint64_t, uint64_t>> runs;
  for (const BlockExtent& e : map.blocks.Extents())
    runs.emplace_back(e.start, e.count);
  EXPECT_EQ(runs, (std::vector<std::pair<uint64_t, uint64_t>>{{0, 9}, {40, 2}, {44, 1}}));

  std::vector<std::vector<uint64_t>> passes(3);
  for (const auto& b : sink.blocks) {
    ASSERT_LT(b.pass, 3);
    passes[b.pass].push_back(b.number);
    EXPECT_EQ(b.data, SourceBlock(b.number)) << "block " << b.number;
  }
  EXPECT_EQ(passes[0], (std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(passes[1], (std::vector<uint64_t>{40, 41}));
  EXPECT_EQ(passes[2], (std::vector<uint64_t>{8, 44}));
}

TEST_F(OverlappedCopyTest, ACheckedCopyLeavesWhatTheInodeScanFoundForTheLastPass) {
  TwoPassSink sink(1);
  MetadataMap map;
  map.blocks.Add(0, 4);
  OverlappedCopy copy(source_, sink, warn_,
                      [](uint64_t, std::span<const uint8_t>) { return false; });
  copy.Start(map);
  map.blocks.Add(10, 2);
  copy.Continue(map);  // a transform changes these: they wait for the map
  EXPECT_EQ(copy.Finish(map, {}), 0u);
  std::vector<uint64_t> second;
  for (const auto& b : sink.blocks)
    if (b.pass == 1)
      second.push_back(b.number);
  EXPECT_EQ(sink.pass, 1);
  EXPECT_EQ(second, (std::vector<uint64_t>{10, 11}));
  EXPECT_TRUE(copy.continued_blocks().empty());
}

// Marks the blocks it passes on (the first byte becomes 0xee), as a transform would.
class MarkingSink : public ImageSink {
 public:
  explicit MarkingSink(ImageSink& inner) : inner_(inner) {}
  void WriteBlocks(uint64_t first_block, std::span<const uint8_t> data) override {
    std::vector<uint8_t> copy(data.begin(), data.end());
    for (size_t at = 0; at < copy.size(); at += kBlock)
      copy[at] = 0xee;
    inner_.WriteBlocks(first_block, copy);
  }
  void Finish() override {}

 private:
  ImageSink& inner_;
};

TEST_F(OverlappedCopyTest, ATransformedSecondPassTakesAgainTheUnitsOfChangedBlocks) {
  TwoPassSink sink(/*unit=*/4);
  MetadataMap map;
  map.blocks.Add(0, 16);
  std::vector<std::thread::id> check_threads;
  std::vector<uint64_t> checked;
  OverlappedCopy copy(source_, sink, warn_, [&](uint64_t block, std::span<const uint8_t> data) {
    check_threads.push_back(std::this_thread::get_id());
    checked.push_back(block);
    EXPECT_EQ(std::vector<uint8_t>(data.begin(), data.end()), SourceBlock(block));
    return block == 5;  // as an inode table block holding a symlink
  });
  copy.Start(map);
  map.blocks.Add(40);  // found by the scan
  MarkingSink marking(sink);
  // Block 13 changes too (a directory block where a bitmap should be); 30 is not copied early.
  TransformedPass pass{&marking, {}};
  pass.changed.Add(13);
  pass.changed.Add(30);
  EXPECT_EQ(copy.Finish(map, {}, &pass), 0u);

  std::vector<uint64_t> first, second;
  for (const auto& b : sink.blocks)
    (b.pass == 0 ? first : second).push_back(b.number);
  EXPECT_EQ(first.size(), 16u);
  EXPECT_EQ(second, (std::vector<uint64_t>{4, 5, 6, 7, 12, 13, 14, 15, 40}));
  ASSERT_EQ(sink.rewrites.size(), 2u);
  EXPECT_EQ(sink.rewrites[0].start, 4u);
  EXPECT_EQ(sink.rewrites[0].count, 4u);
  EXPECT_EQ(sink.rewrites[1].start, 12u);
  EXPECT_EQ(sink.rewrites[1].count, 4u);
  for (const auto& b : sink.blocks) {
    std::vector<uint8_t> expected = SourceBlock(b.number);
    if (b.pass == 1)
      expected[0] = 0xee;  // through the transform
    EXPECT_EQ(b.data, expected) << "block " << b.number << ", pass " << b.pass;
  }
  EXPECT_EQ(checked.size(), 16u);
  for (const auto& id : check_threads)
    EXPECT_NE(id, std::this_thread::get_id());
}

TEST_F(OverlappedCopyTest, WithoutStartEverythingComesInTheSecondPass) {
  TwoPassSink sink(1);
  MetadataMap map;
  map.blocks.Add(3, 2);
  OverlappedCopy copy(source_, sink, warn_);
  copy.Finish(map, {});
  ASSERT_EQ(sink.blocks.size(), 2u);
  EXPECT_EQ(sink.blocks[0].pass, 1);
  EXPECT_EQ(sink.blocks[1].data, SourceBlock(4));
}

TEST_F(OverlappedCopyTest, ProgressReachesTheTotalWhenTheWorkerLeftNothing) {
  TwoPassSink sink(1);
  MetadataMap map;
  map.blocks.Add(0, 6);
  OverlappedCopy copy(source_, sink, warn_);
  copy.Start(map);
  map.blocks.Add(10, 3);
  copy.Continue(map);  // the directories add nothing after this
  std::vector<uint64_t> reported;
  copy.Finish(map, [&](uint64_t done) { reported.push_back(done); });
  EXPECT_EQ(reported, (std::vector<uint64_t>{9}));
}

TEST_F(OverlappedCopyTest, AWorkerErrorSurfacesFromFinish) {
  TwoPassSink sink(1);
  sink.fail_at = 5;
  MetadataMap map;
  map.blocks.Add(0, 10);
  OverlappedCopy copy(source_, sink, warn_);
  copy.Start(map);
  try {
    copy.Finish(map, {});
    FAIL() << "expected the worker's error";
  } catch (const util::Error& e) {
    EXPECT_NE(std::string(e.what()).find("injected failure at block 5"), std::string::npos);
  }
}

TEST_F(OverlappedCopyTest, AbandonedCopyStopsItsWorkerWaitingForMore) {
  TwoPassSink sink(1);
  MetadataMap map;
  map.blocks.Add(0, 4);
  {
    OverlappedCopy copy(source_, sink, warn_);
    copy.Start(map);
  }  // the worker, done with the early blocks, waits for Continue: stopped and joined
  EXPECT_EQ(sink.pass, 0);
}

TEST_F(OverlappedCopyTest, AbandonedCopyStopsItsWorker) {
  TwoPassSink sink(1);
  MetadataMap map;
  map.blocks.Add(0, 64);
  {
    OverlappedCopy copy(source_, sink, warn_);
    copy.Start(map);
  }  // no Finish: the destructor stops and joins the worker
  EXPECT_EQ(sink.pass, 0);
  EXPECT_LE(sink.blocks.size(), 64u);
}

TEST_F(OverlappedCopyTest, RefusesASinkThatTakesOnePass) {
  TwoPassSink sink(0);
  MetadataMap map;
  map.blocks.Add(0, 4);
  OverlappedCopy copy(source_, sink, warn_);
  EXPECT_THROW(copy.Start(map), util::Error);
}

}  // namespace
}  // namespace e2img

namespace e2img {
namespace {

constexpr uint32_t kFsBlock = 4096;

// Copies the runs (first block, count) of 4 KiB blocks of `from` into `to`.
void CopyRuns(const std::vector<uint8_t>& from,
              std::initializer_list<std::pair<uint64_t, uint64_t>> runs, std::vector<uint8_t>& to) {
  for (const auto& [first, count] : runs)
    std::copy_n(from.begin() + first * kFsBlock, count * kFsBlock, to.begin() + first * kFsBlock);
}

// The first `size` guest bytes of a qcow2 image, through our reader.
std::vector<uint8_t> GuestBytes(const std::string& path, size_t size) {
  qcow2::Qcow2Reader reader(path);
  std::vector<uint8_t> bytes(size);
  reader.Read(0, bytes);
  return bytes;
}

// The image passes our qcow2 check with nothing to say.
void ExpectCleanImage(const std::string& path) {
  std::vector<std::string> problems;
  const qcow2::CheckReport report = qcow2::CheckImage(
      qcow2::ImageView(path), [&](const std::string& line) { problems.push_back(line); });
  EXPECT_EQ(report.ExitCode(), 0);
  EXPECT_TRUE(problems.empty()) << problems.front();
}

// Writes runs (first block, count) of `data` into a qcow2 image of 64 blocks
// with 2^cluster_bits-byte clusters, each list of runs in a pass of its own.
// compression: compressed clusters, on `threads` workers.
void WriteInPasses(
    const std::string& path, const std::vector<uint8_t>& data, uint32_t cluster_bits,
    std::initializer_list<std::initializer_list<std::pair<uint64_t, uint64_t>>> passes,
    std::optional<qcow2::CompressionType> compression = std::nullopt, unsigned threads = 1) {
  util::OutputFile out = util::OutputFile::Create(path);
  Qcow2SinkOptions options;
  options.cluster_bits = cluster_bits;
  options.version = 3;
  options.compression = compression;
  options.threads = threads;
  Qcow2Sink sink(out, kFsBlock, 64, options);
  ASSERT_EQ(sink.SecondPassUnitBlocks(), (uint64_t{1} << cluster_bits) / kFsBlock);
  bool first = true;
  for (const auto& runs : passes) {
    if (!first)
      sink.StartSecondPass({});
    first = false;
    for (const auto& [start, count] : runs)
      sink.WriteBlocks(start,
                       std::span<const uint8_t>(data).subspan(start * kFsBlock, count * kFsBlock));
  }
  sink.Finish();
  out.Commit();
}

// A qcow2 image filled in two passes (64 KiB clusters of 4 KiB blocks: units
// of 16 blocks) reads back as the blocks given, whatever the pass.
TEST(Qcow2SinkTwoPasses, ReadsBackAsOnePass) {
  testutil::TempDir dir;
  const std::string path = dir.File("image.qcow2");
  const std::vector<uint8_t> data = testutil::Pattern(64 * kFsBlock, 3);
  WriteInPasses(path, data, 16, {{{16, 16}, {48, 16}}, {{0, 3}, {40, 2}}});
  std::vector<uint8_t> expected(64 * kFsBlock, 0);
  CopyRuns(data, {{0, 3}, {16, 16}, {40, 2}, {48, 16}}, expected);
  EXPECT_EQ(GuestBytes(path, 64 * kFsBlock), expected);
}

// A third pass, as a capture takes when the inode scan's blocks are copied
// before the directories' (units of 4 blocks, between and below the earlier ones).
TEST(Qcow2SinkTwoPasses, ThreePassesReadBackAsOne) {
  testutil::TempDir dir;
  const std::string path = dir.File("image.qcow2");
  const std::vector<uint8_t> data = testutil::Pattern(64 * kFsBlock, 5);
  WriteInPasses(path, data, 14, {{{8, 8}, {40, 4}}, {{0, 4}, {20, 4}}, {{4, 1}, {60, 2}}});
  std::vector<uint8_t> expected(64 * kFsBlock, 0);
  CopyRuns(data, {{0, 5}, {8, 8}, {20, 4}, {40, 4}, {60, 2}}, expected);
  EXPECT_EQ(GuestBytes(path, 64 * kFsBlock), expected);
  ExpectCleanImage(path);
}

// Units of the first pass given again in the second replace the old bytes,
// zeros included; the image's refcounts stay exact.
TEST(Qcow2SinkTwoPasses, RewrittenUnitsReplaceTheFirstPassBytes) {
  testutil::TempDir dir;
  const std::string path = dir.File("image.qcow2");
  const std::vector<uint8_t> data = testutil::Pattern(64 * kFsBlock, 3);
  const std::vector<uint8_t> other = testutil::Pattern(64 * kFsBlock, 9);
  const std::vector<uint8_t> zeros(64 * kFsBlock, 0);
  auto blocks_of = [&](const std::vector<uint8_t>& from, uint64_t first, uint64_t count) {
    return std::span<const uint8_t>(from).subspan(first * kFsBlock, count * kFsBlock);
  };
  {
    util::OutputFile out = util::OutputFile::Create(path);
    Qcow2SinkOptions options;
    options.cluster_bits = 14;  // units of 4 blocks
    Qcow2Sink sink(out, kFsBlock, 64, options);
    sink.WriteBlocks(0, blocks_of(data, 0, 24));
    sink.StartSecondPass({{4, 4}, {12, 8}});
    sink.WriteBlocks(4, blocks_of(other, 4, 2));  // a unit in two runs,
    sink.WriteBlocks(6, blocks_of(other, 6, 2));
    sink.WriteBlocks(12, blocks_of(zeros, 12, 4));  // one become zeros,
    sink.WriteBlocks(16, blocks_of(other, 16, 1));  // one with blocks left out (holes),
    sink.WriteBlocks(18, blocks_of(other, 18, 2));
    sink.WriteBlocks(30, blocks_of(other, 30, 1));  // and a new block after them
    sink.Finish();
    out.Commit();
  }
  std::vector<uint8_t> expected(64 * kFsBlock, 0);
  CopyRuns(data, {{0, 24}}, expected);
  CopyRuns(other, {{4, 4}, {16, 1}, {18, 2}, {30, 1}}, expected);
  std::fill_n(expected.begin() + 12 * kFsBlock, 4 * kFsBlock, 0);
  std::fill_n(expected.begin() + 17 * kFsBlock, kFsBlock, 0);
  EXPECT_EQ(GuestBytes(path, 64 * kFsBlock), expected);
  ExpectCleanImage(path);
}

TEST(RawSinkTwoPasses, RewrittenUnitsReplaceTheFirstPassBytesZerosIncluded) {
  testutil::TempDir dir;
  const std::string path = dir.File("image.raw");
  {
    util::OutputFile out = util::OutputFile::Create(path);
    RawSink sink(out, kFsBlock, 8, 0);
    ASSERT_EQ(sink.SecondPassUnitBlocks(), 1u);
    sink.WriteBlocks(2, std::vector<uint8_t>(2 * kFsBlock, 7));
    sink.StartSecondPass({{3, 1}});
    sink.WriteBlocks(0, std::vector<uint8_t>(kFsBlock, 1));
    sink.WriteBlocks(3, std::vector<uint8_t>(2 * kFsBlock, 0));  // block 3 again, then block 4
    sink.Finish();
    out.Commit();
  }
  const std::vector<uint8_t> bytes = testutil::ReadAll(path);
  ASSERT_EQ(bytes.size(), 8u * kFsBlock);
  EXPECT_EQ(bytes[0], 1);
  EXPECT_EQ(bytes[2 * kFsBlock], 7);
  EXPECT_EQ(bytes[3 * kFsBlock], 0);
  EXPECT_EQ(bytes[4 * kFsBlock - 1], 0);
}

// Blocks that compress (a byte repeated, with a pattern in the first 64 bytes).
std::vector<uint8_t> CompressibleBlocks(uint64_t blocks) {
  std::vector<uint8_t> data(blocks * kFsBlock);
  const std::vector<uint8_t> pattern = testutil::Pattern(blocks * 64, 7);
  for (uint64_t b = 0; b < blocks; ++b) {
    std::fill_n(data.begin() + b * kFsBlock, kFsBlock, static_cast<uint8_t>(b + 1));
    std::copy_n(pattern.begin() + b * 64, 64, data.begin() + b * kFsBlock);
  }
  return data;
}

// A compressed capture copies in passes too (the group tables during the
// inode scan): the clusters of each pass are packed after those of the one
// before, whatever their guest order, and the image reads back as one pass.
TEST(Qcow2SinkTwoPasses, CompressedPassesReadBackAsOne) {
  for (const auto& [codec, threads] : {std::pair{qcow2::CompressionType::kZstd, 3u},
                                       std::pair{qcow2::CompressionType::kZlib, 1u}}) {
    testutil::TempDir dir;
    const std::string path = dir.File("image.qcow2");
    const std::vector<uint8_t> data = CompressibleBlocks(64);
    WriteInPasses(path, data, 14, {{{8, 8}, {40, 4}}, {{0, 4}, {20, 4}}, {{4, 1}, {60, 2}}}, codec,
                  threads);
    std::vector<uint8_t> expected(64 * kFsBlock, 0);
    CopyRuns(data, {{0, 5}, {8, 8}, {20, 4}, {40, 4}, {60, 2}}, expected);
    EXPECT_EQ(GuestBytes(path, 64 * kFsBlock), expected);
    ExpectCleanImage(path);
    // Compressed and packed: the 7 data clusters of 16 KiB share a few (12 in all when plain).
    EXPECT_LE(std::filesystem::file_size(path), uint64_t{8} << 14);
  }
}

// Compressed clusters are packed where they came: a pass may not rewrite them.
TEST(Qcow2SinkTwoPasses, CompressedImagesRefuseRewrites) {
  testutil::TempDir dir;
  util::OutputFile out = util::OutputFile::Create(dir.File("image.qcow2"));
  Qcow2SinkOptions options;
  options.cluster_bits = 16;
  options.version = 3;
  options.compression = qcow2::CompressionType::kZlib;
  Qcow2Sink sink(out, 4096, 64, options);
  EXPECT_EQ(sink.SecondPassUnitBlocks(), 16u);
  EXPECT_THROW(sink.StartSecondPass({{0, 16}}), util::Error);
}

}  // namespace
}  // namespace e2img
