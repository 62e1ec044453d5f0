#include "util/seekable_input.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "util/error.h"
#include "util/temp_file.h"

namespace util {
namespace {

// Large enough that a pipe's reads are not the cost; small against memory.
constexpr size_t kChunk = 1 << 20;

// True when fd can be read at any offset and reads from its start.
bool ReadableInPlace(int fd, const struct stat& st) {
  return (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) && ::lseek(fd, 0, SEEK_CUR) == 0;
}

// Copies fd from its position to its end into spool; returns the bytes.
uint64_t CopyToEnd(int fd, const std::string& name, const File& spool) {
  std::vector<uint8_t> buf(kChunk);
  uint64_t total = 0;
  for (;;) {
    size_t filled = 0;  // a full chunk before each write: fewer, larger writes
    while (filled < buf.size()) {
      const ssize_t n = ::read(fd, buf.data() + filled, buf.size() - filled);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        throw Error(AtOffset(name, total + filled, "read error: " + ErrnoText(errno)));
      if (n == 0)
        break;
      filled += static_cast<size_t>(n);
    }
    if (filled)
      spool.WriteAt(std::span<const uint8_t>(buf.data(), filled), total);
    total += filled;
    if (filled < buf.size())
      return total;
  }
}

}  // namespace

SeekableInput MakeSeekable(int fd, const std::string& name, const std::string& spool_dir) {
  struct stat st;
  if (::fstat(fd, &st) != 0)
    throw Error(name + ": cannot stat: " + ErrnoText(errno));
  if (::isatty(fd))
    throw Error(name + " is a terminal: pipe the image into it or redirect it from a file");
  if (ReadableInPlace(fd, st))
    return {File::Borrow(fd, name), false};
  const File spool = AnonymousTempFile(spool_dir, name + " spool");
  CopyToEnd(fd, name, spool);
  // The copy is named as the input in every message that follows.
  const int copy = ::fcntl(spool.fd(), F_DUPFD_CLOEXEC, 0);
  if (copy < 0)
    throw Error(spool.path() + ": cannot duplicate the descriptor: " + ErrnoText(errno));
  return {File(copy, name), true};
}

}  // namespace util
