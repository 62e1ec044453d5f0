#include "test_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

namespace testutil {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/e2image-ng-unit-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data()))
    throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

util::File CreateFile(const std::string& path) {
  return util::File::Open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
}

std::vector<uint8_t> Pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    v[i] = static_cast<uint8_t>((x >> 16) | 1);
  }
  return v;
}

std::vector<uint8_t> ReadAll(const std::string& path) {
  util::File f = util::File::Open(path, O_RDONLY);
  std::vector<uint8_t> data(f.Size());
  f.ReadAt(data, 0);
  return data;
}

void WriteAll(const std::string& path, const std::vector<uint8_t>& data) {
  util::File f = CreateFile(path);
  f.WriteAt(data, 0);
}

}  // namespace testutil
