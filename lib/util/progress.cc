#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace util {

using Clock = std::chrono::steady_clock;

Progress::Progress(bool enabled, std::string what, uint64_t total, uint32_t unit_bytes)
    : enabled_(enabled),
      tty_(::isatty(STDERR_FILENO)),
      what_(std::move(what)),
      total_(total),
      unit_bytes_(unit_bytes),
      start_(Clock::now()),
      last_(start_) {}

void Progress::Update(uint64_t done) {
  done_ = done;
  if (!enabled_)
    return;
  const auto now = Clock::now();
  const auto interval = tty_ ? std::chrono::milliseconds(200) : std::chrono::seconds(5);
  if (now - last_ < interval)
    return;
  last_ = now;
  Print(done, false);
}

void Progress::Print(uint64_t done, bool final_line) {
  const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
  const double mib = static_cast<double>(done) * unit_bytes_ / (1024.0 * 1024.0);
  const double rate = seconds > 0 ? mib / seconds : 0;
  const unsigned pct = total_ ? static_cast<unsigned>(done * 100 / total_) : 100;
  char line[256];
  if (final_line) {
    std::snprintf(line, sizeof line, "%s %llu / %llu blocks (%u%%) in %.1fs, %.1f MiB/s",
                  what_.c_str(), static_cast<unsigned long long>(done),
                  static_cast<unsigned long long>(total_), pct, seconds, rate);
  } else {
    const double left = done && total_ > done ? seconds * (total_ - done) / done : 0;
    std::snprintf(line, sizeof line, "%s %llu / %llu blocks (%u%%), %.1f MiB/s, %.0fs left",
                  what_.c_str(), static_cast<unsigned long long>(done),
                  static_cast<unsigned long long>(total_), pct, rate, left);
  }
  if (tty_)
    std::fprintf(stderr, "\r%s\033[K%s", line, final_line ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line);
  std::fflush(stderr);
}

void Progress::Finish() {
  if (finished_)
    return;
  finished_ = true;
  if (enabled_)
    Print(done_, true);
}

}  // namespace util
