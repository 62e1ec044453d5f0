// Whether two paths store their bytes in the same place: one file or one
// block device through any path, or a loop device over a file. e2image
// refuses such outputs rather than overwrite its source.
#pragma once

#include <string>

namespace util {

// True when a and b are one file or one block device, through any path
// ("-" is never the same as anything).
bool IsSameFile(const std::string& a, const std::string& b);
// IsSameFile, or one is a loop device over the other (or both over one file).
bool SharesStorage(const std::string& a, const std::string& b);

}  // namespace util
