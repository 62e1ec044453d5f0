// What a capture says of itself and of the source: the unreadable ranges
// (the closing count, the ddrescue map, the qcow2 bitmap), the capture
// header extension of qcow2 images, and --verify.
#include <fcntl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <span>
#include <string>
#include <vector>

#include "config.h"
#include "e2image_modes.h"
#include "e2img/verify.h"
#include "qcow2/capture_info.h"
#include "qcow2/dirty_bitmap.h"
#include "qcow2/reader.h"
#include "qcow2/writer.h"
#include "util/error.h"
#include "util/file.h"
#include "util/output.h"

namespace e2image {

namespace {

// The name of the bitmap of a qcow2 image's unreadable guest ranges.
constexpr const char* kUnreadableBitmap = "e2image-unreadable";

}  // namespace

// The time a capture records: now, or SOURCE_DATE_EPOCH (or
// E2FSPROGS_FAKE_TIME, as e2fsprogs' tools take it) for reproducible images.
std::time_t CaptureTime() {
  for (const char* name : {"SOURCE_DATE_EPOCH", "E2FSPROGS_FAKE_TIME"}) {
    const char* value = std::getenv(name);
    char* end = nullptr;
    if (value && *value) {
      const long long t = std::strtoll(value, &end, 10);
      if (*end == '\0' && t >= 0)
        return static_cast<std::time_t>(t);
    }
  }
  return std::time(nullptr);
}

// What a capture records of itself in its qcow2 image, but the count of
// unreadable blocks, known at its end.
qcow2::CaptureInfo DescribeCapture(const Options& o, const e2img::Filesystem& fs,
                                   const util::File& source, std::time_t started) {
  qcow2::CaptureInfo info;
  info.program = std::string("e2image-ng ") + PACKAGE_VERSION;
  info.time = static_cast<uint64_t>(started);
  info.flags |= o.scramble ? qcow2::kCaptureScrambled : 0;
  info.flags |= o.all_data ? qcow2::kCaptureAllData : 0;
  info.flags |= o.force ? qcow2::kCaptureForced : 0;
  int mount_flags = 0;
  if (ext2fs_check_if_mounted(o.source.c_str(), &mount_flags) == 0 &&
      (mount_flags & EXT2_MF_MOUNTED))
    info.flags |= qcow2::kCaptureMounted |
                  ((mount_flags & EXT2_MF_READONLY) ? qcow2::kCaptureMountedReadOnly : 0);
  if (ext2fs_has_feature_journal_needs_recovery(fs.super()))
    info.flags |= qcow2::kCaptureNeedsRecovery;
  if (!o.scramble) {
    // A scrambled image keeps no name: neither the filesystem's UUID nor its label.
    info.flags |= qcow2::kCaptureIdentity;
    std::copy(std::begin(fs.super()->s_uuid), std::end(fs.super()->s_uuid), info.uuid.begin());
    const auto* label = reinterpret_cast<const char*>(fs.super()->s_volume_name);
    info.label.assign(label, strnlen(label, sizeof fs.super()->s_volume_name));
  }
  try {
    info.source_bytes = source.Size();
  } catch (const util::Error&) {
    info.source_bytes = 0;  // a character device: no size to go by
  }
  info.filesystem_bytes = fs.size_bytes();
  info.block_size = fs.block_size();
  if (o.compression) {
    info.compression = *o.compression == qcow2::CompressionType::kZstd
                           ? qcow2::CaptureCompression::kZstd
                           : qcow2::CaptureCompression::kZlib;
    info.compression_level = static_cast<int8_t>(std::clamp(o.compression_level, -1, 127));
  }
  return info;
}

// Records the capture and its unreadable ranges in a qcow2 image being
// finished: the capture extension, and a persistent dirty bitmap of the
// ranges in version 3; version 2 has no bitmaps (their extension needs the
// autoclear bits of version 3), which is said.
void RecordCapture(const Options& o, qcow2::CaptureInfo info,
                   const e2img::UnreadableLog& unreadable, uint64_t virtual_size,
                   qcow2::ClusterTarget& writer) {
  info.unreadable_blocks = unreadable.BlockCount();
  writer.AddHeaderExtension({qcow2::kExtCaptureInfo, qcow2::EncodeCaptureInfo(info), 0});
  if (unreadable.empty())
    return;
  if (writer.version() < 3) {
    Warn(o.output +
         ": a version 2 qcow2 image cannot mark the unreadable ranges (a bitmap "
         "needs --qcow2-version=3); --error-map=FILE lists them");
    return;
  }
  // A bitmap's clusters go after the data; an image streamed front to back
  // has no place for them.
  auto* file_writer = dynamic_cast<qcow2::Qcow2Writer*>(&writer);
  if (!file_writer) {
    Warn(o.output +
         ": an image written to standard output cannot mark the unreadable ranges in a "
         "bitmap; --error-map=FILE lists them");
    return;
  }
  std::vector<qcow2::GuestRange> ranges;
  for (const e2img::ByteRange& r : unreadable.GuestRanges())
    ranges.emplace_back(r.offset, r.length);
  qcow2::WriteDirtyBitmap(*file_writer, kUnreadableBitmap, ranges, virtual_size,
                          qcow2::BitmapGranularityBits(virtual_size, 9));
}

std::string NowText() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&now, &tm);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return text;
}

int CloseUnreadable(const Options& o, const e2img::Filesystem& fs,
                    const e2img::UnreadableLog& unreadable, const std::string& start_time) {
  const std::vector<e2img::ByteRange> ranges = unreadable.Ranges();
  if (!o.error_map.empty()) {
    const std::string text = e2img::DdrescueMap(
        ranges, o.source_offset, o.source_offset + fs.size_bytes(),
        {std::string("Mapfile. Created by e2image-ng version ") + PACKAGE_VERSION,
         "Source: " + o.source +
             (o.source_offset ? " from offset " + std::to_string(o.source_offset) : std::string()),
         "Start time:   " + start_time, "Current time: " + NowText(), "Finished"});
    util::OutputFile map = util::OutputFile::Create(o.error_map);
    map.file().Write(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
    map.Commit();
  }
  if (ranges.empty())
    return 0;
  uint64_t bytes = 0;
  for (const e2img::ByteRange& r : ranges)
    bytes += r.length;
  std::fprintf(stderr,
               "e2image: incomplete: %zu unreadable range%s of %s (%llu bytes, %llu block%s) "
               "left out\n",
               ranges.size(), ranges.size() == 1 ? "" : "s", o.source.c_str(),
               static_cast<unsigned long long>(bytes),
               static_cast<unsigned long long>(unreadable.BlockCount()),
               unreadable.BlockCount() == 1 ? "" : "s");
  return kExitIncomplete;
}

// Reads the written image again and compares each block with the source;
// says how many differ. Returns the exit status it calls for: 0, or
// kExitDiffers.
int VerifyCapture(const Options& o, const e2img::Filesystem& fs, const util::File& source,
                  e2img::MetadataMap& map, const e2img::UnreadableLog& unreadable) {
  e2img::VerifySource v{&source,          o.source_offset, fs.block_size(), fs.first_copied_block(),
                        &map.stale_tails, &unreadable};
  const uint64_t bs = fs.block_size();
  e2img::VerifyResult result;
  if (o.qcow2) {
    qcow2::Qcow2Reader image(o.output);
    result = e2img::VerifyBlocks(
        v, map.blocks,
        [&](uint64_t block, std::span<uint8_t> data) { image.Read(block * bs, data); }, Warn);
  } else {
    const util::File image = util::File::Open(o.output, O_RDONLY);
    result = e2img::VerifyBlocks(
        v, map.blocks,
        [&](uint64_t block, std::span<uint8_t> data) {
          const size_t got = image.ReadUpTo(data, o.dest_offset + block * bs);
          std::fill(data.begin() + static_cast<std::ptrdiff_t>(got), data.end(), 0);
        },
        Warn);
  }
  std::fprintf(stderr, "e2image: verify: %llu of %llu block%s differ%s from the source\n",
               static_cast<unsigned long long>(result.differ),
               static_cast<unsigned long long>(result.compared), result.compared == 1 ? "" : "s",
               result.compared == 1 ? "s" : "");
  return result.differ ? kExitDiffers : 0;
}

}  // namespace e2image
