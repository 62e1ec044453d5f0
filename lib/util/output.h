// Where results go. OutputFile gives all-or-nothing semantics to regular
// files (a temporary name beside the destination, renamed into place when
// complete and synced, removed on error or on SIGINT/SIGTERM); devices and
// stdout are written in place. RawWriter lays image bytes at increasing
// offsets, leaving holes where it can and zeros where it must.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "util/file.h"

namespace util {

// The destination of one program run.
class OutputFile {
 public:
  enum class Kind { kRegular, kBlockDevice, kStream };
  // Whether Commit syncs a regular file before it gets its name, or leaves
  // the writing out to the kernel (--no-sync: faster, but a crash soon
  // after can leave a torn image under the name). Devices are always synced.
  enum class Durability { kSynced, kLeftToTheKernel };

  // "-" is stdout. An existing block device is opened in place; anything
  // else becomes a new file committed by Commit().
  static OutputFile Create(const std::string& path, Durability durability = Durability::kSynced);
  OutputFile(OutputFile&&) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  OutputFile(const OutputFile&) = delete;
  ~OutputFile();

  const File& file() const { return file_; }
  Kind kind() const { return kind_; }
  const std::string& path() const { return path_; }
  // Syncs the file (unless left to the kernel) or device, then renames the
  // temporary file into place (regular files). Without it, the destructor
  // removes the temporary file.
  void Commit();

 private:
  OutputFile() = default;
  File file_;
  Kind kind_ = Kind::kStream;
  Durability durability_ = Durability::kSynced;
  std::string path_;
  std::string final_path_;  // path_ with a symlink at the destination resolved
  std::string temp_path_;
  bool committed_ = false;
};

// Writes a raw image: chunks at increasing offsets relative to `base`.
class RawWriter {
 public:
  // zero_gaps: write zeros over ranges that get no data (devices whose old
  // bytes must not survive). Streams always get zeros.
  RawWriter(const OutputFile& out, uint64_t base, bool zero_gaps);
  // Writes data at offset (>= every earlier offset + size). All-zero pages
  // of a regular file become holes.
  void Write(uint64_t offset, std::span<const uint8_t> data);
  // After Rewind: writes data at offset over bytes the first pass wrote,
  // all-zero pages included (they replace other bytes, not a hole).
  void Overwrite(uint64_t offset, std::span<const uint8_t> data);
  // Ends the image at `size` bytes (past base): sets a regular file's size,
  // or fills the remaining gap with zeros.
  void Finish(uint64_t size);
  uint64_t bytes_written() const { return bytes_written_; }
  // Can a second ascending pass follow (a regular file without zero_gaps,
  // whose gaps are holes, so bytes below the last write may still come)?
  bool CanRewind() const;
  // Starts that second pass: later writes may lie below earlier ones, never
  // over bytes already written (but for Overwrite).
  void Rewind();

 private:
  void StartStream();
  void FillZeros(uint64_t from, uint64_t to);
  const OutputFile& out_;
  uint64_t base_;
  bool zero_gaps_;
  uint64_t position_ = 0;  // everything before this is written or a hole
  uint64_t bytes_written_ = 0;
  bool stream_started_ = false;  // the zeros before base_ are written to the stream
};

}  // namespace util
