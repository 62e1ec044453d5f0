// Helpers for unit tests: a scratch directory removed at the end, and files in it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/file.h"

namespace testutil {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Creates (or truncates) a file opened read-write.
util::File CreateFile(const std::string& path);
// A buffer of n bytes filled with a pattern derived from seed (never all zero).
std::vector<uint8_t> Pattern(size_t n, uint32_t seed);
// Whole contents of a file.
std::vector<uint8_t> ReadAll(const std::string& path);
// Writes bytes to a new file.
void WriteAll(const std::string& path, const std::vector<uint8_t>& data);

}  // namespace testutil
