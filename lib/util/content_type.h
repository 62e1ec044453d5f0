// What a file or device holds when it is not what a program expected: the
// filesystem, partition table or other signature libblkid finds in it.
#pragma once

#include <cstdint>
#include <string>

#include "util/file.h"

namespace util {

// A short description of what `file` holds from byte `offset` on, for an
// error message: "xfs filesystem", "swap", "crypto_LUKS encrypted volume",
// "dos partition table", "empty file", "all zeros" (its first 64 KiB), or ""
// when nothing is recognised. Never throws: a failed read describes nothing.
std::string DescribeContent(const File& file, uint64_t offset = 0);

}  // namespace util
