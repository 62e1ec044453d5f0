// BackgroundSync writes a file's dirty pages out to its disk on a thread of
// its own while the caller goes on writing it, so that the final fsync of a
// large output finds little left to write instead of waiting for all of it,
// and the writer never blocks on the writeback.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

namespace util {

// One thread running sync_file_range(2), writing and waiting, on a
// descriptor (not owned) when asked.
class BackgroundSync {
 public:
  explicit BackgroundSync(int fd) : fd_(fd) {}
  ~BackgroundSync() { Stop(); }
  BackgroundSync(const BackgroundSync&) = delete;
  BackgroundSync& operator=(const BackgroundSync&) = delete;

  // Asks for a flush without waiting: one asked while another runs is
  // merged into the next. Starts the thread on first use.
  void Request();
  // Waits for the flushes asked so far (one not yet begun runs now, and
  // leaves the caller's fsync little to do) and ends the thread. Returns the
  // errno of the first flush that failed, or 0: the kernel reports a write
  // error once only, so a failure met here is not met again by an fsync.
  int Stop();

 private:
  const int fd_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool requested_ = false;
  bool stopping_ = false;
  int first_error_ = 0;
  std::thread thread_;
  void Run();
};

}  // namespace util
