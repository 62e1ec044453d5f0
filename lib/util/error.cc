#include "util/error.h"

#include <cstring>

namespace util {

std::string AtOffset(const std::string& file, uint64_t offset, const std::string& what) {
  return file + ": " + what + " at offset " + std::to_string(offset);
}

std::string ErrnoText(int errnum) {
  return std::strerror(errnum);
}

}  // namespace util
