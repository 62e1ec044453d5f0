// Progress reporting on stderr in the words of e2fsprogs' e2image, which
// programs parse (GParted reads the last line for "Copying N / M blocks" and
// waits for a line starting "Copied "): "Copying N / M blocks (P%)" redrawn
// after a carriage return about once a second, then "Copied N / M blocks
// (100%) in HH:MM:SS", with " at R MB/s" once a second has passed. On a
// terminal the rate and the time left follow the counts, and are redrawn
// more often. Cheap to call often.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace util {

// Ends the progress line being redrawn on stderr, if any, so that a message
// printed next starts on a line of its own.
void BreakProgressLine();

// The words of a progress line while copying and at the end: e2image's
// "Copying" and "Copied" unless told otherwise.
struct ProgressWords {
  const char* doing = "Copying";
  const char* done = "Copied";
};

// Reports the progress of one copy of `total` units of `unit_bytes` each.
class Progress {
 public:
  using Words = ProgressWords;
  Progress(bool enabled, uint64_t total, uint32_t unit_bytes, Words words = {});
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  void Update(uint64_t done);
  void Finish();

 private:
  void Draw(uint64_t done);
  bool enabled_;
  bool tty_;
  Words words_;
  uint64_t total_;
  uint32_t unit_bytes_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
  uint64_t done_ = 0;
  bool finished_ = false;
};

// The "Scanning inodes..." line e2image prints before it copies; on a
// terminal, the count of inode table blocks scanned follows it while the
// scan runs and is erased at the end.
class ScanProgress {
 public:
  ScanProgress(bool enabled, uint64_t total);
  ScanProgress(const ScanProgress&) = delete;
  ScanProgress& operator=(const ScanProgress&) = delete;
  void Update(uint64_t done);
  void Finish();

 private:
  bool enabled_;
  bool tty_;
  uint64_t total_;
  std::chrono::steady_clock::time_point last_;
  bool finished_ = false;
};

}  // namespace util
