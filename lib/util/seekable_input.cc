#include "util/seekable_input.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdint>
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

// Reads up to buf.size() bytes of fd (the input's offset `at` on), fewer
// only at its end.
size_t ReadFull(int fd, const std::string& name, std::span<uint8_t> buf, uint64_t at) {
  size_t filled = 0;
  while (filled < buf.size()) {
    const ssize_t n = ::read(fd, buf.data() + filled, buf.size() - filled);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      throw Error(AtOffset(name, at + filled, "read error: " + ErrnoText(errno)));
    if (n == 0)
      break;
    filled += static_cast<size_t>(n);
  }
  return filled;
}

// Writes the part of `bytes` (the input's from offset `at`) inside `r`.
void WriteInside(const File& spool, std::span<const uint8_t> bytes, uint64_t at, ByteRange r) {
  const uint64_t end = r.length > UINT64_MAX - r.offset ? UINT64_MAX : r.offset + r.length;
  const uint64_t from = std::max(at, r.offset);
  const uint64_t to = std::min(at + bytes.size(), end);
  if (from < to)
    spool.WriteAt(bytes.subspan(from - at, to - from), from);
}

}  // namespace

void RefuseTerminal(int fd, const std::string& name) {
  if (::isatty(fd))
    throw Error(name + " is a terminal: pipe the image into it or redirect it from a file");
}

SeekableInput MakeSeekable(int fd, const std::string& name, const std::string& spool_dir,
                           const SpoolSelection& selection) {
  struct stat st;
  if (::fstat(fd, &st) != 0)
    throw Error(name + ": cannot stat: " + ErrnoText(errno));
  RefuseTerminal(fd, name);
  if (ReadableInPlace(fd, st))
    return {File::Borrow(fd, name), false};
  File spool = AnonymousTempFile(spool_dir, name + " spool");
  SpoolToEnd(fd, name, {}, spool, selection);
  // The copy is named as the input in every message that follows.
  spool.NameAs(name);
  return {std::move(spool), true};
}

void SpoolToEnd(int fd, const std::string& name, std::span<const uint8_t> already_read,
                const File& spool, const SpoolSelection& selection) {
  assert((already_read.empty() || !selection.keep) && "a selection reads its prefix from fd");
  std::vector<ByteRange> keep{{0, UINT64_MAX}};
  spool.WriteAt(already_read, 0);
  uint64_t total = already_read.size();
  if (selection.keep) {
    std::vector<uint8_t> prefix(selection.prefix);
    prefix.resize(ReadFull(fd, name, prefix, 0));
    WriteInside(spool, prefix, 0, keep[0]);
    total = prefix.size();
    keep = selection.keep(prefix);
    if (total < selection.prefix)
      return;
  }
  std::vector<uint8_t> buf(kChunk);  // whole chunks: fewer, larger writes
  for (;;) {
    const size_t n = ReadFull(fd, name, buf, total);
    for (const ByteRange& r : keep)
      WriteInside(spool, std::span<const uint8_t>(buf.data(), n), total, r);
    total += n;
    if (n < buf.size()) {
      spool.Truncate(total);  // dropped bytes at the end are holes too
      return;
    }
  }
}

}  // namespace util
