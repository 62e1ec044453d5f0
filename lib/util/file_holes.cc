#include "util/file_holes.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace util {

FileHoles::FileHoles(const File& file, bool enabled) : file_(file), enabled_(enabled) {
  if (!enabled_)
    return;
  const struct stat st = file_.Stat();
  enabled_ = S_ISREG(st.st_mode);
  size_ = static_cast<uint64_t>(st.st_size);
}

FileRun FileHoles::RunAt(uint64_t at, uint64_t max_length) {
  if (!enabled_ || at >= size_)
    return {false, max_length};
  if (at < known_start_ || at >= known_end_) {
    // SEEK_DATA: the first data at or after `at`; a failure (ENXIO: only a
    // hole up to the end, or no support) is answered conservatively.
    const off_t data = ::lseek(file_.fd(), static_cast<off_t>(at), SEEK_DATA);
    if (data < 0) {
      known_hole_ = errno == ENXIO;
      known_start_ = at;
      known_end_ = known_hole_ ? size_ : at + max_length;
    } else if (static_cast<uint64_t>(data) > at) {
      known_hole_ = true;
      known_start_ = at;
      known_end_ = static_cast<uint64_t>(data);
    } else {
      const off_t hole = ::lseek(file_.fd(), static_cast<off_t>(at), SEEK_HOLE);
      known_hole_ = false;
      known_start_ = at;
      known_end_ = hole > data ? static_cast<uint64_t>(hole) : size_;
    }
  }
  return {known_hole_, std::min(max_length, known_end_ - at)};
}

}  // namespace util
