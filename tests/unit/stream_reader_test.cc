#include "qcow2/stream_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <thread>

#include "qcow2/compress.h"
#include "qcow2/stream_writer.h"
#include "qcow2/writer.h"
#include "qcow2_test_image.h"
#include "test_util.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

using testutil::Pattern;

// Converts `bytes` fed through a pipe into a raw file; returns its bytes.
// guest_order_only: the raw file is written as a pipe or a device is, in
// guest order only (zeros written, no second pass).
class StreamReaderTest : public ::testing::Test {
 protected:
  std::vector<uint8_t> ConvertPiped(const std::vector<uint8_t>& bytes,
                                    bool guest_order_only = false) {
    ConvertPipedToFile(bytes, guest_order_only);
    return testutil::ReadAll(dir_.File("out.raw"));
  }
  // The same, leaving the raw file (too large to read whole) at out.raw.
  void ConvertPipedToFile(const std::vector<uint8_t>& bytes, bool guest_order_only = false) {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    const util::File read_end(fds[0], "the pipe");
    std::thread feeder([&bytes, fd = fds[1]] {
      const util::File write_end(fd, "the pipe's other end");
      try {
        write_end.Write(bytes);
      } catch (const util::Error&) {
        // The reader stopped early (an error it reports itself).
      }
    });
    const std::string path = dir_.File("out.raw");
    try {
      util::OutputFile out = util::OutputFile::Create(path);
      util::RawWriter writer(out, 0, /*zero_gaps=*/guest_order_only);
      EXPECT_EQ(writer.CanRewind(), !guest_order_only);
      StreamConvertOptions options;
      options.spool_dir = spool_dir_.empty() ? dir_.path() : spool_dir_;
      options.note = [this](const std::string& line) { notes_.push_back(line); };
      ConvertStreamToRaw(read_end, writer, options);
      out.Commit();
    } catch (...) {
      feeder.join();
      throw;
    }
    feeder.join();
  }
  testutil::TempDir dir_;
  std::string spool_dir_;  // dir_ when empty
  std::vector<std::string> notes_;
};

// An image whose data comes in the order given (compressed where asked), as
// a writer that takes clusters in any order lays it out, over a disk of
// `size` bytes; returns its bytes and, in `raw`, the disk it holds. Its L2
// tables are reserved first: those of the clusters given, or `reserved`.
std::vector<uint8_t> ImageInWriteOrder(const testutil::TempDir& dir,
                                       const std::vector<std::pair<uint64_t, bool>>& clusters,
                                       std::vector<uint8_t>& raw,
                                       std::vector<uint64_t> reserved = {},
                                       uint64_t size = 8 << 20) {
  const std::string path = dir.File("order.qcow2");
  raw.assign(size, 0);
  {
    util::File out = testutil::CreateFile(path);
    WriterOptions o;
    o.virtual_size = raw.size();
    o.cluster_bits = 12;  // an L2 table maps 2 MiB
    Qcow2Writer w(out, o);
    if (reserved.empty()) {
      std::set<uint64_t> tables;  // those used: a table given up would take compressed frames
      for (const auto& cluster : clusters)
        tables.insert(cluster.first / 512);
      reserved.assign(tables.begin(), tables.end());
    }
    w.ReserveL2Tables(reserved);
    ClusterCompressor codec(CompressionType::kZlib);
    for (const auto& [c, compressed] : clusters) {
      std::vector<uint8_t> data = compressed ? std::vector<uint8_t>(4096, static_cast<uint8_t>(c))
                                             : Pattern(4096, static_cast<uint32_t>(c));
      if (compressed)
        w.WriteCompressedCluster(c, codec.Pack(data));
      else
        w.WriteCluster(c, data);
      std::copy(data.begin(), data.end(), raw.begin() + static_cast<ptrdiff_t>(c * 4096));
    }
    w.Finish();
  }
  return testutil::ReadAll(path);
}

// Compressed clusters written in the order given, with 16 L2 tables
// reserved of which the unused are given up and take the last frames:
// data before the tables that map them.
std::vector<uint8_t> DataBeforeItsTables(const testutil::TempDir& dir,
                                         std::initializer_list<uint64_t> order,
                                         std::vector<uint8_t>& expected) {
  std::vector<std::pair<uint64_t, bool>> clusters;
  for (uint64_t c : order)
    clusters.emplace_back(c, true);
  return ImageInWriteOrder(dir, clusters, expected,
                           {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, 64 << 20);
}

// A small image with clusters 2, 3 and 700 of 4 KiB, streamed.
std::vector<uint8_t> StreamedImage(const testutil::TempDir& dir) {
  const std::string path = dir.File("streamed.qcow2");
  {
    util::File out = testutil::CreateFile(path);
    WriterOptions o;
    o.virtual_size = 4 << 20;
    o.cluster_bits = 12;
    StreamWriter w(out, o, testutil::CreateFile(dir.File("spool")));
    for (uint64_t c : {2, 3, 700})
      w.WriteCluster(c, Pattern(4096, static_cast<uint32_t>(c)));
    w.Finish();
  }
  return testutil::ReadAll(path);
}

TEST_F(StreamReaderTest, StreamedImageInOnePass) {
  const std::vector<uint8_t> raw = ConvertPiped(StreamedImage(dir_));
  ASSERT_EQ(raw.size(), 4u << 20);
  std::vector<uint8_t> expected(4 << 20, 0);
  for (uint64_t c : {2, 3, 700}) {
    const std::vector<uint8_t> p = Pattern(4096, static_cast<uint32_t>(c));
    std::copy(p.begin(), p.end(), expected.begin() + static_cast<ptrdiff_t>(c * 4096));
  }
  EXPECT_EQ(raw, expected);
  EXPECT_TRUE(notes_.empty());
}

TEST_F(StreamReaderTest, TruncatedStreamSaysWhere) {
  std::vector<uint8_t> image = StreamedImage(dir_);
  image.resize(image.size() - 100);
  try {
    ConvertPiped(image);
    FAIL() << "no error";
  } catch (const util::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the stream ends inside the data of guest offset"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.File("out.raw")));
}

// An image read whole into the spool (its L2 entries are extended) and
// found bad there: the error names the stream, at the image's own offsets.
TEST_F(StreamReaderTest, ErrorsInASpooledImageNameTheStream) {
  testutil::TestImageOptions o;
  o.extended_l2 = true;
  o.cluster_bits = 14;  // the smallest clusters with extended L2 entries
  testutil::TestImage img = testutil::BuildTestImage(o);
  img.bytes.resize(img.l2 + 100);  // cut inside the L2 table
  try {
    ConvertPiped(img.bytes);
    FAIL() << "no error";
  } catch (const util::Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("the pipe: L1 table entry 0: L2 table ", 0), 0u) << what;
    EXPECT_NE(what.find("at offset " + std::to_string(img.l1)), std::string::npos) << what;
  }
  ASSERT_EQ(notes_.size(), 1u);
  EXPECT_NE(notes_[0].find("extended"), std::string::npos) << notes_[0];
  EXPECT_FALSE(std::filesystem::exists(dir_.File("out.raw")));
}

TEST_F(StreamReaderTest, DataBeforeItsTableComesFromTheSpool) {
  std::vector<uint8_t> expected;
  const std::vector<uint8_t> image = DataBeforeItsTables(dir_, {0, 1, 9000, 9001}, expected);
  EXPECT_EQ(ConvertPiped(image), expected);
  ASSERT_EQ(notes_.size(), 1u);
  EXPECT_NE(notes_[0].find("spool file"), std::string::npos);
}

TEST_F(StreamReaderTest, InOrderImageToAnInOrderOutputNeedsNoSpool) {
  std::vector<uint8_t> raw;
  const std::vector<uint8_t> image = ImageInWriteOrder(
      dir_, {{1, false}, {2, false}, {600, false}, {1499, true}, {1500, true}}, raw);
  EXPECT_EQ(ConvertPiped(image, true), raw);
  EXPECT_TRUE(notes_.empty());
}

TEST_F(StreamReaderTest, DataOutOfGuestOrderIsHeldForAnInOrderOutput) {
  // Across tables and inside one, plain and compressed, the lowest cluster last.
  std::vector<uint8_t> raw;
  const std::vector<uint8_t> image = ImageInWriteOrder(
      dir_, {{1500, false}, {7, true}, {600, false}, {8, false}, {1499, true}, {0, false}}, raw);
  EXPECT_EQ(ConvertPiped(image, true), raw);
  ASSERT_EQ(notes_.size(), 1u);
  EXPECT_NE(notes_[0].find("not in guest order: reading it through a temporary spool file"),
            std::string::npos)
      << notes_[0];
  // The same image to a file that can rewind needs no spool.
  notes_.clear();
  std::filesystem::remove(dir_.File("out.raw"));
  EXPECT_EQ(ConvertPiped(image), raw);
  EXPECT_TRUE(notes_.empty());
}

TEST_F(StreamReaderTest, RunsOfDataBrokenOnTheHostOrInTheGuest) {
  // In the guest's order: 3 then 4 follow in the guest, not on the host; 4-5
  // and 7-8 follow on both; 5 then 7 follow on the host, not in the guest.
  std::vector<uint8_t> raw;
  const std::vector<uint8_t> image =
      ImageInWriteOrder(dir_, {{4, false}, {5, false}, {7, false}, {8, false}, {3, false}}, raw);
  EXPECT_EQ(ConvertPiped(image, true), raw);
  EXPECT_EQ(notes_.size(), 1u);
  std::filesystem::remove(dir_.File("out.raw"));
  EXPECT_EQ(ConvertPiped(image), raw);
}

TEST_F(StreamReaderTest, DataOutOfGuestOrderWithoutASpoolSaysWhy) {
  std::vector<uint8_t> raw;
  const std::vector<uint8_t> image = ImageInWriteOrder(dir_, {{9, false}, {3, false}}, raw);
  spool_dir_ = dir_.File("missing");
  try {
    ConvertPiped(image, true);
    FAIL() << "no error";
  } catch (const util::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the data of guest offset 36864 comes before data the "
                                         "output needs first"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("no spool file"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.File("out.raw")));
}

TEST_F(StreamReaderTest, TablesAfterDataToAnInOrderOutput) {
  // Data before its table, read back from the spool, then written in guest order.
  std::vector<uint8_t> expected;
  const std::vector<uint8_t> image = DataBeforeItsTables(dir_, {9001, 0, 9000, 1}, expected);
  EXPECT_EQ(ConvertPiped(image, true), expected);
  EXPECT_EQ(notes_.size(), 1u);
}

TEST_F(StreamReaderTest, L2EntryRulesAreThoseOfAFile) {
  // Cluster 2's entry with a reserved bit set: refused, as a file's reader does.
  std::vector<uint8_t> image = StreamedImage(dir_);
  const uint64_t l1 = util::LoadBE64(&image[40]);
  const uint64_t l2 = util::LoadBE64(&image[l1]) & kL1OffsetMask;
  image[l2 + 2 * 8 + 7] |= 0x02;
  try {
    ConvertPiped(image);
    FAIL() << "no error";
  } catch (const util::Error& e) {
    EXPECT_NE(std::string(e.what()).find("entry 2 (guest cluster 2): reserved bits set"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(StreamReaderTest, DataFarAheadIsTruncationNotAnAllocation) {
  // Cluster 700's entry points a PiB ahead: the stream ends long before.
  // Read up to it whole, the gap would be a PiB of memory.
  std::vector<uint8_t> image = StreamedImage(dir_);
  const uint64_t l1 = util::LoadBE64(&image[40]);
  const uint64_t l2 = util::LoadBE64(&image[l1]) & kL1OffsetMask;
  util::StoreBE64(&image[l2 + 700 * 8], (uint64_t{1} << 50) | kOflagCopied);
  try {
    ConvertPiped(image);
    FAIL() << "no error";
  } catch (const util::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the stream ends inside the data of guest offset " +
                                         std::to_string(700 * 4096)),
              std::string::npos)
        << e.what();
  }
}

// A disk of 512 GiB in 4 KiB clusters, whose L1 table takes 2 MiB, with
// clusters 1 and `far` (mapped from the table's second MiB) written.
std::vector<uint8_t> ImageWithA2MiBL1Table(const testutil::TempDir& dir, uint64_t far) {
  const std::string path = dir.File("big-l1.qcow2");
  {
    util::File out = testutil::CreateFile(path);
    WriterOptions o;
    o.virtual_size = uint64_t{512} << 30;
    o.cluster_bits = 12;
    Qcow2Writer w(out, o);
    for (uint64_t c : {uint64_t{1}, far})
      w.WriteCluster(c, Pattern(4096, static_cast<uint32_t>(c)));
    w.Finish();
  }
  return testutil::ReadAll(path);
}

TEST_F(StreamReaderTest, AnL1TableOverAMiBIsReadInParts) {
  const uint64_t far = uint64_t{200000} * 512 + 3;  // L1 entry 200000, past the first MiB
  const std::vector<uint8_t> image = ImageWithA2MiBL1Table(dir_, far);
  ASSERT_EQ(util::LoadBE32(&image[36]), 262144u);
  ConvertPipedToFile(image);
  const util::File raw = util::File::Open(dir_.File("out.raw"), O_RDONLY);
  EXPECT_EQ(raw.Size(), uint64_t{512} << 30);
  for (uint64_t c : {uint64_t{1}, far, uint64_t{2}, far - 1}) {
    std::vector<uint8_t> got(4096);
    raw.ReadAt(got, c * 4096);
    EXPECT_EQ(got, (c == 1 || c == far) ? Pattern(4096, static_cast<uint32_t>(c))
                                        : std::vector<uint8_t>(4096, 0))
        << "cluster " << c;
  }
}

TEST_F(StreamReaderTest, AnL1TableCutInItsSecondPartIsTruncated) {
  std::vector<uint8_t> image = ImageWithA2MiBL1Table(dir_, uint64_t{200000} * 512);
  const uint64_t l1 = util::LoadBE64(&image[40]);
  // A bad entry in the part read first: the truncation is still what is said.
  util::StoreBE64(&image[l1], util::LoadBE64(&image[l1]) + 512);
  image.resize(l1 + (3 << 19));
  try {
    ConvertPiped(image);
    FAIL() << "no error";
  } catch (const util::Error& e) {
    EXPECT_EQ(std::string(e.what()), util::AtOffset("the pipe", l1 + (3 << 19),
                                                    "the stream ends inside the L1 table (2097152 "
                                                    "bytes at offset " +
                                                        std::to_string(l1) + "): truncated"));
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.File("out.raw")));
}

TEST_F(StreamReaderTest, AMisalignedL1EntryInTheSecondPart) {
  std::vector<uint8_t> image = ImageWithA2MiBL1Table(dir_, uint64_t{200000} * 512);
  const uint64_t l1 = util::LoadBE64(&image[40]);
  const uint64_t entry = l1 + 200000 * 8;
  const uint64_t l2 = util::LoadBE64(&image[entry]) & kL1OffsetMask;
  ASSERT_NE(l2, 0u);
  util::StoreBE64(&image[entry], util::LoadBE64(&image[entry]) + 512);
  try {
    ConvertPiped(image);
    FAIL() << "no error";
  } catch (const util::Error& e) {
    EXPECT_EQ(std::string(e.what()),
              util::AtOffset("the pipe", entry,
                             "L1 entry 200000: L2 table offset " + std::to_string(l2 + 512) +
                                 " is not cluster aligned"));
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.File("out.raw")));
}

// 2 MiB clusters, the largest: cluster 1 compressed, its entry claiming the
// largest frame (2^13 sectors, 4 MiB, running over the clusters after it),
// then clusters 2 and 0: the compressed one comes before its turn and is
// held, with its whole frame, for an output in guest order.
TEST_F(StreamReaderTest, TwoMiBClustersAndTheLargestCompressedFrame) {
  const std::string path = dir_.File("2m.qcow2");
  const uint64_t cs = uint64_t{1} << kMaxClusterBits;
  std::vector<uint8_t> raw(4 * cs, 0);
  {
    util::File out = testutil::CreateFile(path);
    WriterOptions o;
    o.virtual_size = raw.size();
    o.cluster_bits = kMaxClusterBits;
    Qcow2Writer w(out, o);
    ClusterCompressor codec(CompressionType::kZlib);
    const std::vector<uint8_t> ones(cs, 1);
    w.WriteCompressedCluster(1, codec.Pack(ones));
    std::copy(ones.begin(), ones.end(), raw.begin() + static_cast<ptrdiff_t>(cs));
    for (uint64_t c : {2, 0}) {
      const std::vector<uint8_t> p = Pattern(cs, static_cast<uint32_t>(c));
      w.WriteCluster(c, p);
      std::copy(p.begin(), p.end(), raw.begin() + static_cast<ptrdiff_t>(c * cs));
    }
    w.Finish();
  }
  std::vector<uint8_t> image = testutil::ReadAll(path);
  const uint64_t l2 = util::LoadBE64(&image[util::LoadBE64(&image[40])]) & kL1OffsetMask;
  const uint64_t x = 62 - (kMaxClusterBits - 8);
  const uint64_t entry = util::LoadBE64(&image[l2 + 8]);
  ASSERT_NE(entry & kOflagCompressed, 0u);
  const uint64_t host = entry & ((uint64_t{1} << x) - 1);
  ASSERT_GE(image.size(), host + (uint64_t{4} << 20));  // the whole frame is in the stream
  util::StoreBE64(&image[l2 + 8], entry | ((uint64_t{1} << 13) - 1) << x);
  EXPECT_EQ(ConvertPiped(image, true), raw);
  ASSERT_EQ(notes_.size(), 1u);
  EXPECT_NE(notes_[0].find("not in guest order"), std::string::npos) << notes_[0];
  notes_.clear();
  std::filesystem::remove(dir_.File("out.raw"));
  EXPECT_EQ(ConvertPiped(image), raw);
}

TEST_F(StreamReaderTest, AnL2TableInsideTheL1TableIsRefused) {
  // As a file's reader refuses metadata overlapping the L1 table.
  std::vector<uint8_t> image = StreamedImage(dir_);
  const uint64_t l1 = util::LoadBE64(&image[40]);
  util::StoreBE64(&image[l1 + 8], l1);
  try {
    ConvertPiped(image);
    FAIL() << "no error";
  } catch (const util::Error& e) {
    EXPECT_NE(std::string(e.what()).find("L1 entry 1: its L2 table lies before offset"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("tables overlapping"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.File("out.raw")));
}

TEST_F(StreamReaderTest, NotQcow2) {
  EXPECT_THROW(ConvertPiped(std::vector<uint8_t>(4096, 'x')), util::Error);
}

}  // namespace
}  // namespace qcow2
