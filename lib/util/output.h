// Where results go. OutputFile gives all-or-nothing semantics to regular
// files (a 0600 temporary name beside the destination, renamed into place
// when complete and synced, removed on error or on any signal that ends the
// process); devices, pipes and stdout, and existing files when asked, are
// written in place. It never does more than opening the path would let the
// caller do: an existing path is opened through the kernel first, which
// applies permissions and fs.protected_symlinks/fifos/regular. RawWriter
// lays image bytes at increasing offsets, leaving holes where it can and
// zeros where it must.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "util/file.h"

namespace util {

// The destination of one program run.
class OutputFile {
 public:
  // kRegular: a new file under a temporary name (or an existing one that
  // could not be replaced, truncated); kInPlaceFile: an existing regular file
  // whose bytes outside what is written survive, as on a block device.
  enum class Kind { kRegular, kInPlaceFile, kBlockDevice, kStream };
  // Whether Commit syncs a regular file before it gets its name, or leaves
  // the writing out to the kernel (--no-sync: faster, but a crash soon
  // after can leave a torn image under the name). Devices are always synced.
  enum class Durability { kSynced, kLeftToTheKernel };

  // What becomes of an existing regular file: replaced by the new image
  // (atomically, keeping its owner, group and mode), or written in place.
  enum class Existing { kReplace, kWriteInPlace };

  // "-" is stdout. An existing block device, FIFO or character device is
  // opened in place; anything else becomes a new file committed by Commit().
  // Throws util::Error (one line: the path and the reason) when the kernel
  // would not let the caller open an existing path for writing.
  static OutputFile Create(const std::string& path, Durability durability = Durability::kSynced,
                           Existing existing = Existing::kReplace);
  OutputFile(OutputFile&&) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  OutputFile(const OutputFile&) = delete;
  ~OutputFile();

  const File& file() const { return file_; }
  Kind kind() const { return kind_; }
  const std::string& path() const { return path_; }
  // Bytes already there that the image does not cover survive (a device or
  // a file written in place): zeros of the image must be written, not skipped.
  bool in_place() const { return kind_ == Kind::kInPlaceFile || kind_ == Kind::kBlockDevice; }
  // Refuses, before anything is written, an image of `size` bytes at
  // `offset` whose end overflows, passes what an off_t can address, or
  // passes the end of a block device; a file is extended to that end up
  // front, so that a file system's size limit is met now, not part way.
  void Reserve(uint64_t offset, uint64_t size) const;
  // Syncs the file (unless left to the kernel) or device, then renames the
  // temporary file into place (regular files). Without it, the destructor
  // removes the temporary file.
  void Commit();

 private:
  OutputFile() = default;
  // Creates the temporary file (and the directory handle for the rename);
  // false when an existing file can be written but not replaced as it is.
  bool StartReplacement();
  File file_;
  Kind kind_ = Kind::kStream;
  Durability durability_ = Durability::kSynced;
  std::string path_;
  std::string final_path_;  // path_ with a symlink at the destination resolved
  std::string temp_path_;
  File dir_;                     // the directory of final_path_ (O_PATH), for the rename
  bool replaces_ = false;        // an existing file is replaced: only the inode checked
  struct stat replaced_ {};      // that file's identity, owner and mode
  bool created_target_ = false;  // the open created final_path_ (a symlink to nothing)
  bool committed_ = false;
};

// Throws util::Error, naming file's path, when `size` bytes at `offset`
// overflow, pass what an off_t can address, or pass the end of a block
// device; nothing is changed.
void CheckRegionFits(const File& file, uint64_t offset, uint64_t size);

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
