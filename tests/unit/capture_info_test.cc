#include "qcow2/capture_info.h"

#include <gtest/gtest.h>

#include "qcow2/format.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

CaptureInfo Sample() {
  CaptureInfo info;
  info.flags = kCaptureScrambled | kCaptureForced | kCaptureMounted | kCaptureIdentity;
  info.time = 1700000000;
  info.source_bytes = 1ull << 40;
  info.filesystem_bytes = 1ull << 39;
  info.unreadable_blocks = 7;
  info.block_size = 4096;
  info.compression = CaptureCompression::kZstd;
  info.compression_level = 19;
  for (size_t i = 0; i < info.uuid.size(); ++i)
    info.uuid[i] = static_cast<uint8_t>(0xa0 + i);
  info.label = "sixteen-byte-lbl";
  info.program = "e2image-ng 1.2.3";
  return info;
}

TEST(CaptureInfoTest, LayoutAsDocumented) {
  const std::vector<uint8_t> b = EncodeCaptureInfo(Sample());
  ASSERT_EQ(b.size(), 96u);  // 80 + 16, a multiple of 8
  EXPECT_EQ(util::LoadBE32(&b[0]), 1u);
  EXPECT_EQ(util::LoadBE32(&b[4]), 0x4du);
  EXPECT_EQ(util::LoadBE64(&b[8]), 1700000000u);
  EXPECT_EQ(util::LoadBE64(&b[16]), 1ull << 40);
  EXPECT_EQ(util::LoadBE64(&b[24]), 1ull << 39);
  EXPECT_EQ(util::LoadBE64(&b[32]), 7u);
  EXPECT_EQ(util::LoadBE32(&b[40]), 4096u);
  EXPECT_EQ(b[44], 2);
  EXPECT_EQ(b[45], 19);
  EXPECT_EQ(util::LoadBE16(&b[46]), 16u);
  EXPECT_EQ(b[48], 0xa0);
  EXPECT_EQ(std::string(b.begin() + 64, b.begin() + 80), "sixteen-byte-lbl");
  EXPECT_EQ(std::string(b.begin() + 80, b.end()), "e2image-ng 1.2.3");
}

TEST(CaptureInfoTest, RoundTrips) {
  CaptureInfo info = Sample();
  EXPECT_EQ(DecodeCaptureInfo(EncodeCaptureInfo(info)), info);
  info.label = "short";
  info.program = "p";
  info.compression = CaptureCompression::kNone;
  info.compression_level = -1;
  EXPECT_EQ(DecodeCaptureInfo(EncodeCaptureInfo(info)), info);
}

TEST(CaptureInfoTest, MalformedPayloadsThrow) {
  std::vector<uint8_t> b = EncodeCaptureInfo(Sample());
  EXPECT_THROW(DecodeCaptureInfo(std::span(b).first(79)), util::Error);
  util::StoreBE16(&b[46], 17);  // program name past the end
  EXPECT_THROW(DecodeCaptureInfo(b), util::Error);
  b = EncodeCaptureInfo(Sample());
  b[44] = 3;
  EXPECT_THROW(DecodeCaptureInfo(b), util::Error);
  b = EncodeCaptureInfo(Sample());
  util::StoreBE32(&b[0], 0);
  EXPECT_THROW(DecodeCaptureInfo(b), util::Error);
}

TEST(CaptureInfoTest, FoundInTheHeaderAndSummarized) {
  Header h;
  EXPECT_FALSE(CaptureInfoOf(h));
  h.extensions.push_back({kExtCaptureInfo, EncodeCaptureInfo(Sample()), 0});
  const auto info = CaptureInfoOf(h);
  ASSERT_TRUE(info);
  EXPECT_EQ(CaptureSummary(*info),
            "e2image-ng 1.2.3, 2023-11-14 22:13:20 UTC: metadata, scrambled (-s), compressed "
            "(zstd level 19); filesystem of 549755813888 bytes (4096-byte blocks) on a source of "
            "1099511627776 bytes, UUID a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf, label "
            "\"sixteen-byte-lbl\"; mounted read-write (-f); 7 unreadable blocks");
  h.extensions[0].data.resize(40);
  EXPECT_FALSE(CaptureInfoOf(h));
}

}  // namespace
}  // namespace qcow2
