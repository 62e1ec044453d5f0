#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace util {

using Clock = std::chrono::steady_clock;

namespace {

// The length of the line being redrawn on stderr (0: none is open).
size_t open_line_length = 0;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// HH:MM:SS, as e2image prints a duration.
std::string Clockface(double seconds) {
  const auto s = static_cast<unsigned long long>(std::max(seconds, 0.0));
  char text[32];
  std::snprintf(text, sizeof text, "%02llu:%02llu:%02llu", s / 3600, s / 60 % 60, s % 60);
  return text;
}

// e2image's rounded percentage, held below 100 until the last unit is done.
unsigned Percent(uint64_t done, uint64_t total) {
  if (!total || done >= total)
    return 100;
  const auto pct = static_cast<unsigned>(100.0 * static_cast<double>(done) / total + 0.5);
  return std::min(pct, 99u);
}

std::string Counts(uint64_t done, uint64_t total) {
  char text[96];
  std::snprintf(text, sizeof text, "%llu / %llu blocks (%u%%)",
                static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                Percent(done, total));
  return text;
}

// Replaces the open line (if any) by `text`: a carriage return, the text,
// and what erases the rest of the old line (an escape sequence on a
// terminal, spaces elsewhere); `end` closes the line.
void Redraw(const std::string& text, bool tty, bool end) {
  std::string line;
  if (open_line_length)
    line += '\r';
  line += text;
  if (tty)
    line += "\033[K";
  else if (open_line_length > text.size())
    line.append(open_line_length - text.size(), ' ');
  open_line_length = end ? 0 : std::max<size_t>(text.size(), 1);
  if (end)
    line += '\n';
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace

void BreakProgressLine() {
  if (!open_line_length)
    return;
  std::fputc('\n', stderr);
  open_line_length = 0;
}

Progress::Progress(bool enabled, uint64_t total, uint32_t unit_bytes, Words words)
    : enabled_(enabled),
      tty_(::isatty(STDERR_FILENO)),
      words_(words),
      total_(total),
      unit_bytes_(unit_bytes),
      start_(Clock::now()),
      last_(start_) {
  if (enabled_)
    Draw(0);
}

void Progress::Update(uint64_t done) {
  done_ = done;
  if (!enabled_ || finished_)
    return;
  const auto now = Clock::now();
  const auto interval = tty_ ? std::chrono::milliseconds(200) : std::chrono::seconds(1);
  if (now - last_ < interval)
    return;
  last_ = now;
  Draw(done);
}

void Progress::Draw(uint64_t done) {
  std::string text = std::string(words_.doing) + " " + Counts(done, total_);
  const double seconds = SecondsSince(start_);
  if (tty_ && seconds >= 1 && done && done < total_) {
    // The extras of a terminal, after what programs parse.
    const double mib = static_cast<double>(done) * unit_bytes_ / (1024.0 * 1024.0);
    const double left = seconds * static_cast<double>(total_ - done) / static_cast<double>(done);
    char extra[96];
    std::snprintf(extra, sizeof extra, ", %.1f MiB/s, %s left", mib / seconds,
                  Clockface(left).c_str());
    text += extra;
  }
  Redraw(text, tty_, false);
}

void Progress::Finish() {
  if (finished_)
    return;
  finished_ = true;
  if (!enabled_)
    return;
  const double seconds = SecondsSince(start_);
  std::string text =
      std::string(words_.done) + " " + Counts(done_, total_) + " in " + Clockface(seconds);
  if (seconds >= 1) {
    // A rate over less than a second says nothing.
    const double mib = static_cast<double>(done_) * unit_bytes_ / (1024.0 * 1024.0);
    char rate[48];
    std::snprintf(rate, sizeof rate, " at %.2f MB/s", mib / seconds);
    text += rate;
  }
  Redraw(text, tty_, true);
}

namespace {
constexpr const char* kScanning = "Scanning inodes...";
}

ScanProgress::ScanProgress(bool enabled, uint64_t total)
    : enabled_(enabled), tty_(::isatty(STDERR_FILENO)), total_(total), last_(Clock::now()) {
  if (enabled_)
    Redraw(kScanning, tty_, !tty_);
}

void ScanProgress::Update(uint64_t done) {
  if (!enabled_ || !tty_ || finished_)
    return;
  const auto now = Clock::now();
  if (now - last_ < std::chrono::milliseconds(200))
    return;
  last_ = now;
  Redraw(std::string(kScanning) + " " + Counts(done, total_) + " of inode tables", tty_, false);
}

void ScanProgress::Finish() {
  if (finished_)
    return;
  finished_ = true;
  if (enabled_ && tty_)
    Redraw(kScanning, tty_, true);
}

}  // namespace util
