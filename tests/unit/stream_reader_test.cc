#include "qcow2/stream_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "qcow2/compress.h"
#include "qcow2/stream_writer.h"
#include "qcow2/writer.h"
#include "test_util.h"
#include "util/error.h"

namespace qcow2 {
namespace {

using testutil::Pattern;

// Converts `bytes` fed through a pipe into a raw file; returns its bytes.
class StreamReaderTest : public ::testing::Test {
 protected:
  std::vector<uint8_t> ConvertPiped(const std::vector<uint8_t>& bytes) {
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
      util::RawWriter writer(out, 0, false);
      StreamConvertOptions options;
      options.spool_dir = dir_.path();
      options.note = [this](const std::string& line) { notes_.push_back(line); };
      ConvertStreamToRaw(read_end, writer, options);
      out.Commit();
    } catch (...) {
      feeder.join();
      throw;
    }
    feeder.join();
    return testutil::ReadAll(path);
  }
  testutil::TempDir dir_;
  std::vector<std::string> notes_;
};

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

TEST_F(StreamReaderTest, DataBeforeItsTableComesFromTheSpool) {
  // Reserved L2 tables that get no entry are given up, and the last
  // compressed frames move into them: before the tables that map them.
  const std::string path = dir_.File("file.qcow2");
  std::vector<uint8_t> expected(64 << 20, 0);
  {
    util::File out = testutil::CreateFile(path);
    WriterOptions o;
    o.virtual_size = expected.size();
    o.cluster_bits = 12;  // an L2 table maps 2 MiB
    Qcow2Writer w(out, o);
    const std::vector<uint64_t> reserved = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    w.ReserveL2Tables(reserved);
    ClusterCompressor codec(CompressionType::kZlib);
    for (uint64_t c : {0, 1, 9000, 9001}) {
      std::vector<uint8_t> data(4096, static_cast<uint8_t>(c));
      const std::span<const uint8_t> packed = codec.Pack(data);
      ASSERT_FALSE(packed.empty());
      w.WriteCompressedCluster(c, packed);
      std::copy(data.begin(), data.end(), expected.begin() + static_cast<ptrdiff_t>(c * 4096));
    }
    w.Finish();
  }
  EXPECT_EQ(ConvertPiped(testutil::ReadAll(path)), expected);
  ASSERT_EQ(notes_.size(), 1u);
  EXPECT_NE(notes_[0].find("spool file"), std::string::npos);
}

TEST_F(StreamReaderTest, NotQcow2) {
  EXPECT_THROW(ConvertPiped(std::vector<uint8_t>(4096, 'x')), util::Error);
}

}  // namespace
}  // namespace qcow2
