// FileHoles tells the holes of a sparse file from its data (SEEK_DATA and
// SEEK_HOLE), so that readers never read a hole: it reads as zeros. A
// 15 TiB filesystem in a sparse file has a 1 GiB journal that is all hole,
// and a qcow2 image of 2 MiB clusters holds mostly holes.
#pragma once

#include <cstdint>

#include "util/file.h"

namespace util {

// What a file holds at an offset: a hole or data, and for how long.
struct FileRun {
  bool hole = false;
  uint64_t length = 0;  // bytes from the offset, at most the length asked
};

// Answers "hole or data?" for byte ranges of one file, remembering the last
// run so sequential queries cost one or two lseek calls per run.
class FileHoles {
 public:
  // enabled: the file's holes may be skipped (only a regular file's are).
  FileHoles(const File& file, bool enabled);
  // The run starting at `at`, cut at `at + max_length`. Past the end of the
  // file, or when holes are not looked for, everything is data.
  FileRun RunAt(uint64_t at, uint64_t max_length);
  const File& file() const { return file_; }

 private:
  const File& file_;
  bool enabled_;
  uint64_t size_ = 0;
  bool known_hole_ = false;  // the cached run [known_start_, known_end_)
  uint64_t known_start_ = 0;
  uint64_t known_end_ = 0;
};

}  // namespace util
