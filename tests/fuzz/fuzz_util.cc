#include "fuzz_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "util/file.h"

namespace fuzzutil {
namespace {

std::string MakeScratchDir() {
  struct stat st {};
  std::string base = ::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
  if (const char* tmp = std::getenv("FUZZ_TMPDIR"))
    base = tmp;
  std::string templ = base + "/e2image-fuzz-XXXXXX";
  std::vector<char> name(templ.begin(), templ.end());
  name.push_back('\0');
  if (!::mkdtemp(name.data())) {
    std::perror("mkdtemp");
    std::abort();
  }
  return name.data();
}

// Removes the scratch directory when the process exits normally.
struct ScratchHolder {
  std::string path = MakeScratchDir();
  ~ScratchHolder() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

const std::string& ScratchDir() {
  static ScratchHolder holder;
  return holder.path;
}

std::string WriteInput(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = ScratchDir() + "/" + name;
  util::File f = util::File::Open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  f.WriteAt({data, size}, 0);
  return path;
}

}  // namespace fuzzutil
