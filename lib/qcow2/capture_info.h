// The e2image capture header extension: how a qcow2 image was made (the
// program, when, which options changed its content, the source and its
// filesystem, the unreadable blocks), encoded as stored. Its type is unknown
// to qemu, which keeps such extensions when it rewrites a header and
// otherwise ignores them. Pure data: no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace util {
class JsonWriter;
}

namespace qcow2 {

struct Header;

inline constexpr uint32_t kExtCaptureInfo = 0xe2196e67;
// The fixed part of the payload; the program name follows, then padding.
inline constexpr uint32_t kCaptureInfoFixedSize = 80;

// CaptureInfo::flags.
inline constexpr uint32_t kCaptureScrambled = 1u << 0;        // -s
inline constexpr uint32_t kCaptureAllData = 1u << 1;          // -a
inline constexpr uint32_t kCaptureForced = 1u << 2;           // -f
inline constexpr uint32_t kCaptureMounted = 1u << 3;          // the source was mounted
inline constexpr uint32_t kCaptureMountedReadOnly = 1u << 4;  // ... read-only
inline constexpr uint32_t kCaptureNeedsRecovery = 1u << 5;    // its journal needed recovery
inline constexpr uint32_t kCaptureIdentity = 1u << 6;         // uuid and label are recorded

// CaptureInfo::compression.
enum class CaptureCompression : uint8_t { kNone = 0, kZlib = 1, kZstd = 2 };

// The decoded payload.
struct CaptureInfo {
  uint32_t layout = 1;  // the payload's layout version
  uint32_t flags = 0;
  uint64_t time = 0;          // Unix seconds, when the capture began
  uint64_t source_bytes = 0;  // the source device or file (0: unknown)
  uint64_t filesystem_bytes = 0;
  uint64_t unreadable_blocks = 0;
  uint32_t block_size = 0;
  CaptureCompression compression = CaptureCompression::kNone;
  int8_t compression_level = -1;  // -1: the codec's default
  std::array<uint8_t, 16> uuid{};
  std::string label;    // at most 16 bytes
  std::string program;  // program and version, at most 255 bytes

  bool operator==(const CaptureInfo&) const = default;
};

std::vector<uint8_t> EncodeCaptureInfo(const CaptureInfo& info);
// Throws util::Error saying what is wrong with a payload too short for its
// fields or of layout 0; later layouts are read as far as this one goes.
CaptureInfo DecodeCaptureInfo(std::span<const uint8_t> payload);

// The capture extension of a header, decoded; none when it has none or
// when it is malformed (qcow2-inspect dump says why).
std::optional<CaptureInfo> CaptureInfoOf(const Header& header);

// One line: "e2image-ng 0.1.0, 2026-12-07 18:40:00 UTC: metadata, scrambled, ...".
std::string CaptureSummary(const CaptureInfo& info);
// The fields as members of the JSON object being written.
void WriteCaptureJson(const CaptureInfo& info, util::JsonWriter& json);
// The UUID as text (8-4-4-4-12 hex digits).
std::string UuidText(const std::array<uint8_t, 16>& uuid);

}  // namespace qcow2
