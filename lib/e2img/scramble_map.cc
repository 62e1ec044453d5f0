#include "e2img/scramble_map.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2img/scramble_names.h"
#include "util/error.h"
#include "util/escape.h"

namespace e2img {
namespace {

constexpr size_t kFlushBytes = 1 << 16;
constexpr const char* kHeader =
    "# e2image -s map: directory inode, old name, new name (tab-separated; bytes other than "
    "printable ASCII as \\xNN, the backslash and the quote as \\\\ and \\')\n";

}  // namespace

ScrambleMap::ScrambleMap(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    throw util::Error(path + ": cannot create the scramble map: " + util::ErrnoText(errno) +
                      (errno == EEXIST ? " (it is never written over)" : ""));
  file_ = util::File(fd, path);
  if (::fchmod(fd, 0600) != 0) {
    ::unlink(path.c_str());
    throw util::Error(path + ": cannot make the scramble map private: " + util::ErrnoText(errno));
  }
  buffer_ = kHeader;
}

ScrambleMap::~ScrambleMap() {
  if (!committed_)
    ::unlink(path_.c_str());
}

void ScrambleMap::Add(uint32_t dir, std::string_view old_name, std::string_view new_name) {
  const uint64_t key = Mix(Fingerprint(old_name, 2), dir);
  std::lock_guard guard(lock_);
  if (!seen_.insert(key).second)
    return;
  buffer_ += std::to_string(dir);
  buffer_ += '\t';
  buffer_ += util::EscapeName(old_name);
  buffer_ += '\t';
  buffer_ += util::EscapeName(new_name);
  buffer_ += '\n';
  if (buffer_.size() >= kFlushBytes)
    Flush();
}

void ScrambleMap::Flush() {
  // Called on the scrambler's threads: a failure waits for Commit.
  try {
    if (error_.empty())
      file_.Write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buffer_.data()),
                                           buffer_.size()));
  } catch (const util::Error& e) {
    error_ = e.what();
  }
  buffer_.clear();
}

void ScrambleMap::Commit() {
  std::lock_guard guard(lock_);
  Flush();
  if (!error_.empty())
    throw util::Error(error_);
  file_.Sync();
  committed_ = true;
}

}  // namespace e2img
