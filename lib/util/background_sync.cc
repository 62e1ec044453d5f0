#include "util/background_sync.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace util {

void BackgroundSync::Request() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_)
      return;
    requested_ = true;
    if (!thread_.joinable())
      thread_ = std::thread([this] { Run(); });
  }
  wake_.notify_one();
}

int BackgroundSync::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable())
    thread_.join();
  std::lock_guard lock(mutex_);
  return first_error_;
}

void BackgroundSync::Run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return requested_ || stopping_; });
    if (!requested_)
      return;
    requested_ = false;
    lock.unlock();
    int error = 0;
    // The page cache's writeback, waited for, but no flush of the disk's own
    // cache (fdatasync), which stalls large captures when done every few
    // MiB; the final fsync flushes that cache once.
    constexpr unsigned kWriteAndWait =
        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
    while (::sync_file_range(fd_, 0, 0, kWriteAndWait) != 0) {
      error = errno;
      if (error != EINTR)
        break;
      error = 0;
    }
    lock.lock();
    // EINVAL and ESPIPE: a file sync_file_range cannot write out (a pipe),
    // no failure of the output's, as EINVAL and EROFS are none for File::Sync.
    if (error && error != EINVAL && error != ESPIPE && !first_error_)
      first_error_ = error;
  }
}

}  // namespace util
