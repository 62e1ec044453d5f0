// Progress reporting on stderr: "done / total blocks (pct%), rate, time
// left", redrawn on one line on a terminal, plain lines every few seconds
// otherwise, and a final summary. Cheap to call often.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace util {

// Reports the progress of one long operation.
class Progress {
 public:
  Progress(bool enabled, std::string what, uint64_t total, uint32_t unit_bytes);
  void Update(uint64_t done);
  void Finish();

 private:
  void Print(uint64_t done, bool final_line);
  bool enabled_;
  bool tty_;
  std::string what_;
  uint64_t total_;
  uint32_t unit_bytes_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
  uint64_t done_ = 0;
  bool finished_ = false;
};

}  // namespace util
