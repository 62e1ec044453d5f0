// Error reporting shared by every layer: one exception type whose message is
// the whole one-line diagnostic (what went wrong, and where).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace util {

// An error meant for the user: what() is a complete line without "e2image:".
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Builds "FILE: WHAT at offset N" style messages consistently.
std::string AtOffset(const std::string& file, uint64_t offset, const std::string& what);

// strerror(errnum) as std::string.
std::string ErrnoText(int errnum);

}  // namespace util
