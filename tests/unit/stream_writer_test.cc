#include "qcow2/stream_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <map>
#include <random>
#include <thread>

#include "qcow2/compress.h"
#include "qcow2/reader.h"
#include "test_util.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

using testutil::Pattern;

TEST(DataPlacerTest, PlainClustersAlignAndFramesPack) {
  DataPlacer p(4096, 12);
  EXPECT_EQ(p.Place({0, 100}), 4096u);
  EXPECT_EQ(p.Place({1, 100}), 4196u);
  EXPECT_EQ(p.Place({2, 0}), 8192u);  // plain: the next cluster boundary
  EXPECT_EQ(p.Place({3, 4000}), 12288u);
  EXPECT_EQ(p.Place({4, 500}), 16288u);  // crosses into the next host cluster
  EXPECT_EQ(p.end(), 16788u);
  EXPECT_EQ(p.counts(), (std::vector<uint16_t>{2, 1, 2, 1}));
}

TEST(DataPlacerTest, ClosesAHostClusterItsRefcountCannotCountFurther) {
  DataPlacer p(0, 21);  // 2 MiB clusters, 16-byte frames: 131072 would fit
  uint64_t at = 0;
  for (uint64_t i = 0; i <= kMaxRefcount; ++i)
    at = p.Place({i, 16});
  EXPECT_EQ(at, uint64_t{2} << 20);
  EXPECT_EQ(p.counts()[0], kMaxRefcount);
  EXPECT_EQ(p.counts()[1], 1u);
}

Header TestHeader(uint64_t size, uint32_t bits) {
  WriterOptions o;
  o.virtual_size = size;
  o.cluster_bits = bits;
  return NewImageHeader(o, "test");
}

TEST(StreamLayoutTest, TablesInOrderBeforeTheData) {
  const Header h = TestHeader(64ull << 20, 12);  // 512 entries per L2 table: 2 MiB each
  const std::vector<StreamCluster> clusters = {{0, 0}, {1, 300}, {600, 0}, {16000, 0}};
  const StreamLayout l(h, clusters);
  EXPECT_EQ(l.refcount_table_offset, 4096u);
  EXPECT_EQ(l.refcount_blocks_offset, 8192u);
  EXPECT_EQ(l.refcount_blocks, 1u);
  EXPECT_EQ(l.l1_offset, 12288u);
  EXPECT_EQ(l.l1_clusters, 1u);
  EXPECT_EQ(l.l2_offset, 16384u);
  EXPECT_EQ(l.l2_tables, 3u);  // ranges 0, 1 and 31
  EXPECT_EQ(l.data_offset, 16384u + 3 * 4096);
  // Plain, frame, plain (next boundary), plain: four data clusters.
  EXPECT_EQ(l.data_counts.size(), 4u);
  EXPECT_EQ(l.file_end, l.data_offset + 4 * 4096);
}

TEST(StreamLayoutTest, RefcountBlocksCountThemselves) {
  // 512-byte clusters: a refcount block counts 256 clusters.
  const Header h = TestHeader(1ull << 20, 9);
  std::vector<StreamCluster> clusters;
  for (uint64_t i = 0; i < 2000; ++i)
    clusters.push_back({i, 0});
  const StreamLayout l(h, clusters);
  const uint64_t total = l.file_end / 512;
  EXPECT_EQ(l.refcount_blocks, (total + 255) / 256);
  EXPECT_GE(l.refcount_table_clusters * 64, l.refcount_blocks);
  EXPECT_EQ(l.data_offset + 2000 * 512, l.file_end);
}

TEST(StreamLayoutTest, EndsOnTheSectorAfterTheLastFrame) {
  const Header h = TestHeader(1ull << 20, 16);
  const StreamLayout l(h, std::vector<StreamCluster>{{3, 1000}});
  EXPECT_EQ(l.file_end, l.data_offset + 1024);
}

// A 1 MiB disk of 4 KiB clusters.
WriterOptions SmallDisk() {
  WriterOptions o;
  o.virtual_size = 1 << 20;
  o.cluster_bits = 12;
  return o;
}

// Writes an image through a StreamWriter to a file opened for appending
// only (as a pipe is written), then checks it with the reader.
class StreamWriterTest : public ::testing::Test {
 protected:
  std::string Write(const WriterOptions& o, const std::function<void(StreamWriter&)>& fill) {
    const std::string path = dir_.File("stream.qcow2");
    util::File out = util::File::Open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    StreamWriter w(out, o, testutil::CreateFile(dir_.File("spool")));
    fill(w);
    w.Finish();
    return path;
  }
  // The image of SmallDisk() that `fill` writes, and the bytes it spooled.
  std::pair<std::string, uint64_t> WriteSmallDisk(const std::function<void(StreamWriter&)>& fill) {
    uint64_t spooled = 0;
    std::string path = Write(SmallDisk(), [&](StreamWriter& w) {
      fill(w);
      spooled = w.spooled_bytes();
    });
    return {path, spooled};
  }
  // The same image written into a pipe (spooled clusters spliced into it),
  // as read from its other end.
  // got_into: where the bytes read go (they are returned too), kept when Finish throws.
  std::vector<uint8_t> WriteToPipe(const WriterOptions& o,
                                   const std::function<void(StreamWriter&)>& fill,
                                   std::vector<uint8_t>* got_into = nullptr) {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    util::File read_end(fds[0], "pipe");
    std::vector<uint8_t> local;
    std::vector<uint8_t>& got = got_into ? *got_into : local;
    // Joined however the writing ends (its end of the pipe closed first).
    std::jthread reader([&] {
      uint8_t buf[65536];
      ssize_t n;
      while ((n = ::read(read_end.fd(), buf, sizeof buf)) > 0)
        got.insert(got.end(), buf, buf + n);
    });
    {
      util::File out(fds[1], "pipe");
      StreamWriter w(out, o, testutil::CreateFile(dir_.File("pipe-spool")));
      fill(w);
      w.Finish();
    }
    reader.join();
    return got;
  }
  testutil::TempDir dir_;
};

// Every host cluster's refcount recomputed from the tables, against the stored one.
void ExpectRefcountsAndOrder(const std::string& path) {
  const std::vector<uint8_t> file = testutil::ReadAll(path);
  const Header h = DecodeHeader(file, path);
  const uint64_t cs = h.cluster_size();
  std::map<uint64_t, uint64_t> expected;
  const auto ref = [&](uint64_t offset, uint64_t bytes) {
    for (uint64_t c = offset / cs; c <= (offset + bytes - 1) / cs; ++c)
      ++expected[c];
  };
  ref(0, cs);
  ref(h.refcount_table_offset, h.refcount_table_clusters * cs);
  ref(h.l1_table_offset, h.l1_size * 8);
  for (uint64_t i = 0; i < h.refcount_table_clusters * cs / 8; ++i)
    if (const uint64_t b = util::LoadBE64(&file[h.refcount_table_offset + i * 8]))
      ref(b, cs);
  uint64_t last_table = 0;
  for (uint32_t i = 0; i < h.l1_size; ++i) {
    const uint64_t l2 = util::LoadBE64(&file[h.l1_table_offset + i * 8]) & kL1OffsetMask;
    if (!l2)
      continue;
    EXPECT_GT(l2, last_table) << "L2 tables out of order";
    last_table = l2;
    ref(l2, cs);
    for (uint64_t j = 0; j < h.l2_entries(); ++j) {
      const L2Entry e = DecodeL2Entry(util::LoadBE64(&file[l2 + j * 8]), h);
      if (e.kind == ClusterKind::kNormal || e.kind == ClusterKind::kCompressed) {
        EXPECT_GT(e.host_offset, l2) << "data before its table";
        ref(e.host_offset,
            e.kind == ClusterKind::kNormal
                ? cs
                : std::min<uint64_t>(e.compressed_size, file.size() - e.host_offset));
      }
    }
  }
  const uint64_t per_block = cs / 2;
  for (uint64_t c = 0; c < (file.size() + cs - 1) / cs; ++c) {
    const uint64_t b = util::LoadBE64(&file[h.refcount_table_offset + c / per_block * 8]);
    ASSERT_NE(b, 0u);
    EXPECT_EQ(util::LoadBE16(&file[b + c % per_block * 2]), expected[c]) << "cluster " << c;
  }
}

TEST_F(StreamWriterTest, PlainClustersInTwoPassesWithAnOverwrite) {
  WriterOptions o;
  o.virtual_size = 8ull << 20;
  o.cluster_bits = 12;
  const std::string path = Write(o, [](StreamWriter& w) {
    w.WriteCluster(10, Pattern(4096, 10));
    w.WriteCluster(1500, Pattern(4096, 1500));
    // A second pass: lower clusters again, and one of the first pass rewritten.
    w.WriteCluster(3, Pattern(4096, 3));
    w.OverwriteCluster(10, Pattern(4096, 11));
    w.OverwriteCluster(20, std::vector<uint8_t>(4096, 0));  // nothing stored: stays a hole
    w.WriteCluster(2047, Pattern(4096, 2047));
  });
  ExpectRefcountsAndOrder(path);
  Qcow2Reader r(path);
  std::vector<uint8_t> got(4096);
  for (const auto& [cluster, seed] :
       std::map<uint64_t, uint32_t>{{3, 3}, {10, 11}, {1500, 1500}, {2047, 2047}}) {
    r.Read(cluster * 4096, got);
    EXPECT_EQ(got, Pattern(4096, seed)) << "cluster " << cluster;
  }
  r.Read(20 * 4096, got);
  EXPECT_EQ(got, std::vector<uint8_t>(4096, 0));
  EXPECT_EQ(r.Map(20 * 4096).kind, ClusterKind::kUnallocated);
}

TEST_F(StreamWriterTest, CompressedAndPlainClustersPack) {
  WriterOptions o;
  o.virtual_size = 64ull << 20;
  o.cluster_bits = 16;
  o.version = 3;
  o.compression = CompressionType::kZstd;
  ClusterCompressor codec(CompressionType::kZstd, kDefaultLevel);
  std::map<uint64_t, std::vector<uint8_t>> clusters;
  for (uint64_t c : {0, 1, 2, 7, 500, 501, 1023}) {
    std::vector<uint8_t> data(65536, static_cast<uint8_t>(c));
    std::copy_n(Pattern(64, static_cast<uint32_t>(c)).begin(), 64, data.begin());
    clusters[c] = data;
  }
  std::mt19937 random(7);
  for (uint8_t& b : clusters[7])
    b = static_cast<uint8_t>(random());  // does not compress: stored plain
  const std::string path = Write(o, [&](StreamWriter& w) {
    for (const auto& [c, data] : clusters) {
      const std::span<const uint8_t> packed = codec.Pack(data);
      if (packed.empty())
        w.WriteCluster(c, data);
      else
        w.WriteCompressedCluster(c, packed);
    }
  });
  ExpectRefcountsAndOrder(path);
  Qcow2Reader r(path);
  std::vector<uint8_t> got(65536);
  for (const auto& [c, data] : clusters) {
    r.Read(c * 65536, got);
    EXPECT_EQ(got, data) << "cluster " << c;
  }
  EXPECT_EQ(r.Map(7 * 65536).kind, ClusterKind::kNormal);
  EXPECT_EQ(r.Map(500 * 65536).kind, ClusterKind::kCompressed);
}

TEST_F(StreamWriterTest, IntoAPipeTheSameBytesAsIntoAFile) {
  WriterOptions o;
  o.virtual_size = 64ull << 20;
  o.cluster_bits = 12;
  const auto fill = [](StreamWriter& w) {
    // Spool runs out of guest order and runs longer than the pipe holds.
    for (uint64_t c = 4000; c < 4600; ++c)
      w.WriteCluster(c, Pattern(4096, static_cast<uint32_t>(c)));
    for (uint64_t c = 0; c < 300; c += 3)
      w.WriteCluster(c, Pattern(4096, static_cast<uint32_t>(c)));
    w.OverwriteCluster(4001, Pattern(4096, 1));
  };
  const std::vector<uint8_t> piped = WriteToPipe(o, fill);
  EXPECT_EQ(piped, testutil::ReadAll(Write(o, fill)));
}

// A source of `clusters` 4 KiB clusters, each Pattern(4096, index + 100),
// from `offset` on.
util::File PatternSource(const std::string& path, uint64_t offset, uint64_t clusters) {
  util::File f = testutil::CreateFile(path);
  for (uint64_t c = 0; c < clusters; ++c)
    f.WriteAt(Pattern(4096, static_cast<uint32_t>(c + 100)), offset + c * 4096);
  return f;
}

// Clusters referred to the source and those changed: which are spooled,
// and what the image holds.
class ReferringFill {
 public:
  static constexpr uint64_t kOffset = 8192;  // where the guest starts in the source
  explicit ReferringFill(const util::File& source) : source_(source) {}
  void operator()(StreamWriter& w) {
    w.ReferToSource(source_, kOffset);
    for (uint64_t c = 10; c < 40; ++c)
      w.WriteCluster(c, Pattern(4096, static_cast<uint32_t>(c + 100)));
    w.MarkChanged(12 * 4096 + 100, 4096);  // clusters 12 and 13 are not the source's
    w.MarkChanged(20 * 4096, 1);
    for (uint64_t c : {12, 13, 20})
      w.WriteCluster(c + 50, Pattern(4096, static_cast<uint32_t>(c)));  // unchanged: referred
    w.MarkChanged(90 * 4096, 5 * 4096);
    for (uint64_t c = 90; c < 95; ++c)
      w.WriteCluster(c, Pattern(4096, static_cast<uint32_t>(c + 7)));
    w.OverwriteCluster(15, Pattern(4096, 15));  // a referred cluster written again: spooled
    w.MarkChanged(0, 100 * 4096);               // as when the source has failed a read
    w.WriteCluster(80, Pattern(4096, 80));
    w.WriteCluster(3, Pattern(4096, 3));  // a second pass
  }
  // What the image must hold in each stored cluster.
  static std::map<uint64_t, std::vector<uint8_t>> Expected() {
    std::map<uint64_t, std::vector<uint8_t>> expected;
    for (uint64_t c = 10; c < 40; ++c)
      expected[c] = Pattern(4096, static_cast<uint32_t>(c + 100));
    for (uint64_t c : {62, 63, 70})
      expected[c] = Pattern(4096, static_cast<uint32_t>(c + 100));
    for (uint64_t c = 90; c < 95; ++c)
      expected[c] = Pattern(4096, static_cast<uint32_t>(c + 7));
    for (uint64_t c : {15, 80, 3})
      expected[c] = Pattern(4096, static_cast<uint32_t>(c));
    return expected;
  }

 private:
  const util::File& source_;
};

TEST_F(StreamWriterTest, ClustersReferredToTheSourceAreReadAgainNotSpooled) {
  const util::File source = PatternSource(dir_.File("source"), ReferringFill::kOffset, 256);
  const auto [path, spooled] = WriteSmallDisk(ReferringFill(source));
  // Spooled: the five changed clusters, the overwrite and the last two.
  EXPECT_EQ(spooled, 8u * 4096);
  ExpectRefcountsAndOrder(path);
  Qcow2Reader r(path);
  std::vector<uint8_t> got(4096);
  for (const auto& [c, data] : ReferringFill::Expected()) {
    r.Read(c * 4096, got);
    EXPECT_EQ(got, data) << "cluster " << c;
  }
  r.Read(11 * 4096 + 4096 * 30, got);  // cluster 41: never written
  EXPECT_EQ(got, std::vector<uint8_t>(4096, 0));
}

TEST_F(StreamWriterTest, ReferredClustersSplicedIntoAPipeAsIntoAFile) {
  const WriterOptions o = SmallDisk();
  const util::File source = PatternSource(dir_.File("source"), ReferringFill::kOffset, 256);
  const std::vector<uint8_t> piped = WriteToPipe(o, ReferringFill(source));
  EXPECT_EQ(piped, testutil::ReadAll(Write(o, ReferringFill(source))));
}

TEST_F(StreamWriterTest, ASourceThatShrankIsRefusedBeforeAnyByte) {
  const WriterOptions o = SmallDisk();
  for (const bool pipe : {false, true}) {
    SCOPED_TRACE(pipe ? "into a pipe" : "into a file");
    const util::File source = PatternSource(dir_.File("source"), ReferringFill::kOffset, 256);
    const auto fill = [&](StreamWriter& w) {
      ReferringFill{source}(w);
      source.Truncate(ReferringFill::kOffset + 30 * 4096);  // the source shrank since
    };
    std::vector<uint8_t> piped;
    try {
      if (pipe)
        WriteToPipe(o, fill, &piped);
      else
        Write(o, fill);
      ADD_FAILURE() << "no error";
    } catch (const util::Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(dir_.File("source") + ": now ends at byte " +
                          std::to_string(ReferringFill::kOffset + 30 * 4096)),
                std::string::npos)
          << what;
      EXPECT_NE(what.find("nothing was written"), std::string::npos) << what;
    }
    if (pipe)
      EXPECT_TRUE(piped.empty());
    else
      EXPECT_TRUE(testutil::ReadAll(dir_.File("stream.qcow2")).empty());
  }
}

// Clusters a capture fills in part: the source's bytes where it says so,
// zeros elsewhere.
class PartlyFilledFill {
 public:
  static constexpr uint64_t kOffset = 8192;
  using Parts = std::vector<std::pair<uint64_t, uint64_t>>;  // offset, length in the cluster
  explicit PartlyFilledFill(const util::File& source) : source_(source) {}
  void operator()(StreamWriter& w) {
    w.ReferToSource(source_, kOffset);
    for (const auto& [c, parts] : Clusters()) {
      for (const auto& [at, length] : parts)
        w.MarkSourcedPart(c * 4096 + at, length);
      if (c == 7)
        w.MarkChanged(c * 4096 + 100, 1);  // and not the source's: spooled as given
      w.WriteCluster(c, Expected(c));
    }
  }
  static std::map<uint64_t, Parts> Clusters() {
    return {{5, {{1024, 1024}}},              // inside
            {6, {{0, 512}, {3072, 1024}}},    // two runs' ends
            {7, {{0, 2048}}},                 // changed too
            {8, {}},                          // whole: no part named
            {9, {{0, 2048}, {2048, 2048}}}};  // two parts making it whole
  }
  // The cluster's bytes: the source's in its parts (all of them when none
  // is named), zeros elsewhere; cluster 7's differ from the source.
  static std::vector<uint8_t> Expected(uint64_t c) {
    const std::vector<uint8_t> source = Pattern(4096, static_cast<uint32_t>(c + 100));
    const Parts parts = Clusters()[c];
    if (parts.empty())
      return source;
    std::vector<uint8_t> data(4096, c == 7 ? 0x77 : 0);
    for (const auto& [at, length] : parts)
      std::copy_n(source.begin() + static_cast<ptrdiff_t>(at), length,
                  data.begin() + static_cast<ptrdiff_t>(at));
    return data;
  }

 private:
  const util::File& source_;
};

TEST_F(StreamWriterTest, ClustersFilledInPartAreReadAgainWithTheRestZeroed) {
  const util::File source = PatternSource(dir_.File("source"), PartlyFilledFill::kOffset, 256);
  const auto [path, spooled] = WriteSmallDisk(PartlyFilledFill(source));
  EXPECT_EQ(spooled, 4096u);  // cluster 7 only
  ExpectRefcountsAndOrder(path);
  Qcow2Reader r(path);
  std::vector<uint8_t> got(4096);
  for (const auto& [c, parts] : PartlyFilledFill::Clusters()) {
    r.Read(c * 4096, got);
    EXPECT_EQ(got, PartlyFilledFill::Expected(c)) << "cluster " << c;
  }
  EXPECT_EQ(WriteToPipe(SmallDisk(), PartlyFilledFill(source)), testutil::ReadAll(path));
}

TEST_F(StreamWriterTest, RefusesAClusterWrittenTwice) {
  const WriterOptions o = SmallDisk();
  EXPECT_THROW(Write(o,
                     [](StreamWriter& w) {
                       w.WriteCluster(5, Pattern(4096, 1));
                       w.WriteCluster(2, Pattern(4096, 2));
                       w.WriteCluster(5, Pattern(4096, 3));
                     }),
               util::Error);
}

}  // namespace
}  // namespace qcow2
