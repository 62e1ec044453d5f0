// File descriptors with RAII and complete reads and writes: every transfer
// loops over short counts and EINTR, and failures throw util::Error naming
// the file and the offset.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "util/background_sync.h"

namespace util {

// An open file descriptor, closed on destruction; remembers its path for messages.
class File {
 public:
  File() = default;
  File(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  // Opens path with open(2) flags; throws util::Error on failure.
  static File Open(const std::string& path, int flags, mode_t mode = 0644);
  // Wraps a descriptor the process does not own (stdin/stdout): never closed.
  static File Borrow(int fd, std::string name);

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  bool is_open() const { return fd_ >= 0; }
  // Names the file `path` in messages from now on (a spool copy named as
  // the input it holds).
  void NameAs(std::string path) { path_ = std::move(path); }

  // Reads exactly buf.size() bytes at offset; throws on error or end of file.
  void ReadAt(std::span<uint8_t> buf, uint64_t offset) const;
  // Reads up to buf.size() bytes at offset, stopping early only at end of file.
  size_t ReadUpTo(std::span<uint8_t> buf, uint64_t offset) const;
  // Writes all of buf at offset.
  void WriteAt(std::span<const uint8_t> buf, uint64_t offset) const;
  // Writes all of buf at the current position (for pipes and stdout).
  void Write(std::span<const uint8_t> buf) const;
  // Moves up to `length` bytes of `from` at `offset` to the current position
  // of this pipe in the kernel, without a copy through this process
  // (splice). Returns how many it moved: fewer when the kernel cannot splice
  // between the two, `from` ends or a transfer fails. The caller reads and
  // writes the rest itself, so that an error names the file it is in.
  uint64_t SpliceFrom(const File& from, uint64_t offset, uint64_t length) const;
  void Truncate(uint64_t size) const;
  // fsync(2); also reports a failed background flush (FlushInBackgroundEvery).
  void Sync() const;
  // From now on, every `bytes` written through WriteAt/Write ask a thread
  // to write the file's dirty pages out to the disk (BackgroundSync) while
  // writing goes on, so that the final Sync() finds little left to write.
  void FlushInBackgroundEvery(uint64_t bytes) { flush_every_ = bytes; }
  struct stat Stat() const;
  // Size in bytes: st_size for files, BLKGETSIZE64 for block devices.
  uint64_t Size() const;
  // Closes now, reporting close(2) errors (which can carry delayed write
  // errors) and a failed background flush.
  void Close();

 private:
  int fd_ = -1;
  bool owned_ = true;
  std::string path_;
  mutable uint64_t stream_offset_ = 0;  // bytes written by Write(), for messages
  uint64_t flush_every_ = 0;            // 0: leave writeback to the kernel
  mutable uint64_t written_since_flush_ = 0;
  mutable std::unique_ptr<BackgroundSync> background_sync_;  // made by the first flush
  void NoteWritten(size_t bytes) const;
  // Ends the background flush; returns the errno of its first failure, or 0.
  int StopBackgroundSync() const;
};

// True when every byte of data is zero.
bool IsAllZero(std::span<const uint8_t> data);

// Calls write(start, run) for each run of data between its stretches of
// all-zero pages (page bytes each from data's start, the last one possibly
// shorter) of at least min_hole bytes: what a regular file must be given
// where the bytes land on a hole. Shorter stretches are written with the
// data around them.
template <typename WriteRun>
void ForEachNonZeroRun(std::span<const uint8_t> data, size_t page, size_t min_hole,
                       WriteRun&& write) {
  size_t unwritten = 0;  // bytes before this are written or left as a hole
  size_t i = 0;
  while (i < data.size()) {
    const size_t n = std::min(page, data.size() - i);
    if (!IsAllZero(data.subspan(i, n))) {
      i += n;
      continue;
    }
    size_t j = i + n;  // the end of the zero stretch from i
    while (j < data.size()) {
      const size_t m = std::min(page, data.size() - j);
      if (!IsAllZero(data.subspan(j, m)))
        break;
      j += m;
    }
    if (j - i >= min_hole) {
      if (i > unwritten)
        write(unwritten, data.subspan(unwritten, i - unwritten));
      unwritten = j;
    }
    i = j;
  }
  if (data.size() > unwritten)
    write(unwritten, data.subspan(unwritten));
}

}  // namespace util
