#include "util/file.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/background_sync.h"
#include "util/error.h"

namespace util {

File::File(File&& other) noexcept
    : fd_(other.fd_),
      owned_(other.owned_),
      path_(std::move(other.path_)),
      stream_offset_(other.stream_offset_),
      flush_every_(other.flush_every_),
      background_sync_(std::move(other.background_sync_)) {
  other.fd_ = -1;
}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    StopBackgroundSync();
    if (fd_ >= 0 && owned_)
      ::close(fd_);
    fd_ = other.fd_;
    owned_ = other.owned_;
    path_ = std::move(other.path_);
    stream_offset_ = other.stream_offset_;
    flush_every_ = other.flush_every_;
    background_sync_ = std::move(other.background_sync_);
    other.fd_ = -1;
  }
  return *this;
}

File::~File() {
  StopBackgroundSync();
  if (fd_ >= 0 && owned_)
    ::close(fd_);
}

File File::Open(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0)
    throw Error(path + ": cannot open: " + ErrnoText(errno));
  return File(fd, path);
}

File File::Borrow(int fd, std::string name) {
  File f(fd, std::move(name));
  f.owned_ = false;
  return f;
}

void File::ReadAt(std::span<uint8_t> buf, uint64_t offset) const {
  size_t got = ReadUpTo(buf, offset);
  if (got != buf.size())
    throw Error(
        AtOffset(path_, offset + got,
                 "unexpected end of file while reading " + std::to_string(buf.size()) + " bytes"));
}

size_t File::ReadUpTo(std::span<uint8_t> buf, uint64_t offset) const {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pread(fd_, buf.data() + done, buf.size() - done, offset + done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      throw Error(AtOffset(path_, offset + done, "read error: " + ErrnoText(errno)));
    }
    if (n == 0)
      break;
    done += static_cast<size_t>(n);
  }
  return done;
}

void File::WriteAt(std::span<const uint8_t> buf, uint64_t offset) const {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pwrite(fd_, buf.data() + done, buf.size() - done, offset + done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      throw Error(AtOffset(path_, offset + done, "write error: " + ErrnoText(errno)));
    }
    if (n == 0)
      throw Error(AtOffset(path_, offset + done, "write error: no progress"));
    done += static_cast<size_t>(n);
  }
  NoteWritten(buf.size());
}

void File::NoteWritten(size_t bytes) const {
  if (!flush_every_)
    return;
  written_since_flush_ += bytes;
  if (written_since_flush_ < flush_every_)
    return;
  written_since_flush_ = 0;
  // On a thread, not here: starting the writeback of scattered pages (a
  // raw image) can block the caller.
  if (!background_sync_)
    background_sync_ = std::make_unique<BackgroundSync>(fd_);
  background_sync_->Request();
}

int File::StopBackgroundSync() const {
  if (!background_sync_)
    return 0;
  const int error = background_sync_->Stop();
  background_sync_.reset();
  return error;
}

void File::Write(std::span<const uint8_t> buf) const {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::write(fd_, buf.data() + done, buf.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      throw Error(AtOffset(path_, stream_offset_ + done, "write error: " + ErrnoText(errno)));
    }
    if (n == 0)
      throw Error(AtOffset(path_, stream_offset_ + done, "write error: no progress"));
    done += static_cast<size_t>(n);
  }
  stream_offset_ += done;
  NoteWritten(done);
}

uint64_t File::SpliceFrom(const File& from, uint64_t offset, uint64_t length) const {
  uint64_t done = 0;
  while (done < length) {
    loff_t at = static_cast<loff_t>(offset + done);
    const ssize_t n = ::splice(from.fd(), &at, fd_, nullptr, length - done, SPLICE_F_MORE);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    done += static_cast<uint64_t>(n);
  }
  stream_offset_ += done;
  NoteWritten(done);
  return done;
}

void File::Truncate(uint64_t size) const {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
    throw Error(AtOffset(path_, size, "cannot set file size: " + ErrnoText(errno)));
}

void File::Sync() const {
  if (const int error = StopBackgroundSync())
    throw Error(path_ + ": fsync failed: " + ErrnoText(error));
  if (::fsync(fd_) != 0 && errno != EINVAL && errno != EROFS)
    throw Error(path_ + ": fsync failed: " + ErrnoText(errno));
}

struct stat File::Stat() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0)
    throw Error(path_ + ": cannot stat: " + ErrnoText(errno));
  return st;
}

uint64_t File::Size() const {
  struct stat st = Stat();
  if (S_ISBLK(st.st_mode)) {
    uint64_t bytes = 0;
    if (::ioctl(fd_, BLKGETSIZE64, &bytes) != 0)
      throw Error(path_ + ": cannot get device size: " + ErrnoText(errno));
    return bytes;
  }
  return static_cast<uint64_t>(st.st_size);
}

void File::Close() {
  if (fd_ < 0)
    return;
  const int sync_error = StopBackgroundSync();
  int fd = fd_;
  fd_ = -1;
  if (owned_ && ::close(fd) != 0)
    throw Error(path_ + ": close failed: " + ErrnoText(errno));
  if (sync_error)
    throw Error(path_ + ": fsync failed: " + ErrnoText(sync_error));
}

bool IsAllZero(std::span<const uint8_t> data) {
  // Word-wide compare of the bulk, then the tail.
  size_t i = 0;
  const size_t words = data.size() / sizeof(uint64_t);
  for (; i < words; ++i) {
    uint64_t w;
    std::memcpy(&w, data.data() + i * sizeof(uint64_t), sizeof(w));
    if (w != 0)
      return false;
  }
  for (size_t j = words * sizeof(uint64_t); j < data.size(); ++j)
    if (data[j] != 0)
      return false;
  return true;
}

}  // namespace util
