#include "util/background_sync.h"

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
    while (::fdatasync(fd_) != 0) {
      error = errno;
      if (error != EINTR)
        break;
      error = 0;
    }
    lock.lock();
    // EINVAL and EROFS: a file that cannot be synced, as File::Sync allows.
    if (error && error != EINVAL && error != EROFS && !first_error_)
      first_error_ = error;
  }
}

}  // namespace util
