#include "qcow2/capture_info.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "qcow2/format.h"
#include "util/endian.h"
#include "util/error.h"
#include "util/json.h"

namespace qcow2 {

namespace {

constexpr size_t kLabelBytes = 16;
constexpr size_t kMaxProgramBytes = 255;

[[noreturn]] void Bad(const std::string& what) {
  throw util::Error("e2image capture extension: " + what);
}

const char* CompressionText(CaptureCompression c) {
  switch (c) {
    case CaptureCompression::kNone:
      return "none";
    case CaptureCompression::kZlib:
      return "zlib";
    case CaptureCompression::kZstd:
      return "zstd";
  }
  return "unknown";
}

std::string TimeText(uint64_t seconds) {
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

std::string MountText(uint32_t flags) {
  if (!(flags & kCaptureMounted))
    return "not mounted";
  return (flags & kCaptureMountedReadOnly) ? "mounted read-only" : "mounted read-write";
}

}  // namespace

std::string UuidText(const std::array<uint8_t, 16>& uuid) {
  std::string s;
  char hex[3];
  for (size_t i = 0; i < uuid.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      s += '-';
    std::snprintf(hex, sizeof hex, "%02x", uuid[i]);
    s += hex;
  }
  return s;
}

std::vector<uint8_t> EncodeCaptureInfo(const CaptureInfo& info) {
  const size_t program = std::min(info.program.size(), kMaxProgramBytes);
  std::vector<uint8_t> b(AlignUp8(kCaptureInfoFixedSize + program), 0);
  util::StoreBE32(&b[0], info.layout);
  util::StoreBE32(&b[4], info.flags);
  util::StoreBE64(&b[8], info.time);
  util::StoreBE64(&b[16], info.source_bytes);
  util::StoreBE64(&b[24], info.filesystem_bytes);
  util::StoreBE64(&b[32], info.unreadable_blocks);
  util::StoreBE32(&b[40], info.block_size);
  b[44] = static_cast<uint8_t>(info.compression);
  b[45] = static_cast<uint8_t>(info.compression_level);
  util::StoreBE16(&b[46], static_cast<uint16_t>(program));
  std::copy(info.uuid.begin(), info.uuid.end(), b.begin() + 48);
  std::copy_n(info.label.begin(), std::min(info.label.size(), kLabelBytes), b.begin() + 64);
  std::copy_n(info.program.begin(), program, b.begin() + kCaptureInfoFixedSize);
  return b;
}

CaptureInfo DecodeCaptureInfo(std::span<const uint8_t> b) {
  if (b.size() < kCaptureInfoFixedSize)
    Bad(std::to_string(b.size()) + " bytes, fewer than its " +
        std::to_string(kCaptureInfoFixedSize) + " of fixed fields");
  CaptureInfo info;
  info.layout = util::LoadBE32(&b[0]);
  if (info.layout == 0)
    Bad("layout version 0");
  info.flags = util::LoadBE32(&b[4]);
  info.time = util::LoadBE64(&b[8]);
  info.source_bytes = util::LoadBE64(&b[16]);
  info.filesystem_bytes = util::LoadBE64(&b[24]);
  info.unreadable_blocks = util::LoadBE64(&b[32]);
  info.block_size = util::LoadBE32(&b[40]);
  if (b[44] > static_cast<uint8_t>(CaptureCompression::kZstd))
    Bad("compression " + std::to_string(b[44]) + " unknown");
  info.compression = static_cast<CaptureCompression>(b[44]);
  info.compression_level = static_cast<int8_t>(b[45]);
  const size_t program = util::LoadBE16(&b[46]);
  if (kCaptureInfoFixedSize + program > b.size())
    Bad("a program name of " + std::to_string(program) + " bytes past its end");
  std::copy_n(b.begin() + 48, 16, info.uuid.begin());
  const auto* label = reinterpret_cast<const char*>(&b[64]);
  info.label.assign(label, strnlen(label, kLabelBytes));
  info.program.assign(reinterpret_cast<const char*>(&b[kCaptureInfoFixedSize]), program);
  return info;
}

std::optional<CaptureInfo> CaptureInfoOf(const Header& header) {
  const HeaderExtension* ext = header.FindExtension(kExtCaptureInfo);
  if (!ext)
    return std::nullopt;
  try {
    return DecodeCaptureInfo(ext->data);
  } catch (const util::Error&) {
    return std::nullopt;
  }
}

std::string CaptureSummary(const CaptureInfo& info) {
  std::string s = (info.program.empty() ? std::string("unknown program") : info.program) + ", " +
                  TimeText(info.time) + ": " +
                  ((info.flags & kCaptureAllData) ? "metadata and data (-a)" : "metadata");
  if (info.flags & kCaptureScrambled)
    s += ", scrambled (-s)";
  if (info.compression != CaptureCompression::kNone) {
    s += std::string(", compressed (") + CompressionText(info.compression);
    if (info.compression_level >= 0)
      s += " level " + std::to_string(info.compression_level);
    s += ")";
  }
  s += "; filesystem of " + std::to_string(info.filesystem_bytes) + " bytes (" +
       std::to_string(info.block_size) + "-byte blocks)";
  if (info.source_bytes)
    s += " on a source of " + std::to_string(info.source_bytes) + " bytes";
  if (info.flags & kCaptureIdentity)
    s += ", UUID " + UuidText(info.uuid) + ", label \"" + info.label + "\"";
  s += "; " + MountText(info.flags);
  if (info.flags & kCaptureForced)
    s += " (-f)";
  if (info.flags & kCaptureNeedsRecovery)
    s += "; journal needed recovery";
  s += "; " + std::to_string(info.unreadable_blocks) + " unreadable block" +
       (info.unreadable_blocks == 1 ? "" : "s");
  return s;
}

void WriteCaptureJson(const CaptureInfo& info, util::JsonWriter& json) {
  json.String("program", info.program).Number("time", info.time);
  json.String("mode", (info.flags & kCaptureAllData) ? "metadata-and-data" : "metadata");
  json.Bool("scrambled", info.flags & kCaptureScrambled);
  json.Bool("forced", info.flags & kCaptureForced);
  json.String("compression", CompressionText(info.compression));
  if (info.compression != CaptureCompression::kNone && info.compression_level >= 0)
    json.Number("compression-level", static_cast<uint64_t>(info.compression_level));
  json.Number("source-size", info.source_bytes).Number("filesystem-size", info.filesystem_bytes);
  json.Number("block-size", info.block_size);
  if (info.flags & kCaptureIdentity)
    json.String("uuid", UuidText(info.uuid)).String("label", info.label);
  json.Bool("mounted", info.flags & kCaptureMounted);
  if (info.flags & kCaptureMounted)
    json.Bool("mounted-read-only", info.flags & kCaptureMountedReadOnly);
  json.Bool("journal-needed-recovery", info.flags & kCaptureNeedsRecovery);
  json.Number("unreadable-blocks", info.unreadable_blocks);
}

}  // namespace qcow2
