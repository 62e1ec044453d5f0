// Temporary files that have no name: nothing is left behind, whatever ends
// the process.
#pragma once

#include <string>

#include "util/file.h"

namespace util {

// The directory for temporary files: $TMPDIR, or /tmp.
std::string TempDirectory();
// A new empty read-write file in dir that no name reaches (O_TMPFILE, or a
// name unlinked at once where the filesystem lacks it); `what` names it in
// messages. Throws util::Error saying why when none can be made.
File AnonymousTempFile(const std::string& dir, const std::string& what);

}  // namespace util
