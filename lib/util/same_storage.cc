#include "util/same_storage.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "util/file.h"

namespace util {

bool IsSameFile(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  if (a == "-" || b == "-" || ::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0)
    return false;
  const bool same_inode = sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  const bool same_device = S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode) && sa.st_rdev == sb.st_rdev;
  return same_inode || same_device;
}

namespace {

// The file behind a loop device (its st_dev and st_ino), if path is one.
std::optional<std::pair<uint64_t, uint64_t>> LoopBackingFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISBLK(st.st_mode))
    return std::nullopt;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  const util::File device(fd, path);
  loop_info64 info{};
  if (::ioctl(device.fd(), LOOP_GET_STATUS64, &info) != 0)
    return std::nullopt;
  return std::make_pair(static_cast<uint64_t>(info.lo_device),
                        static_cast<uint64_t>(info.lo_inode));
}

// The files a path stores its bytes in: itself, and the file behind it if it is a loop device.
std::vector<std::pair<uint64_t, uint64_t>> Storage(const std::string& path) {
  std::vector<std::pair<uint64_t, uint64_t>> files;
  struct stat st {};
  if (path == "-" || ::stat(path.c_str(), &st) != 0)
    return files;
  files.emplace_back(st.st_dev, st.st_ino);
  if (const auto backing = LoopBackingFile(path))
    files.push_back(*backing);
  return files;
}

}  // namespace

bool SharesStorage(const std::string& a, const std::string& b) {
  if (IsSameFile(a, b))
    return true;
  const auto fa = Storage(a);
  const auto fb = Storage(b);
  for (const auto& f : fa)
    if (std::find(fb.begin(), fb.end(), f) != fb.end())
      return true;
  return false;
}

}  // namespace util
