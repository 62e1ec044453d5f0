// Finding the files a qcow2 image refers to: its backing file (raw or qcow2,
// named relative to the image's directory) and its external data file.
#pragma once

#include <string>

#include "qcow2/format.h"

namespace qcow2 {

// Chains deeper than this are refused (they are almost surely loops).
inline constexpr int kMaxBackingDepth = 64;

enum class BackingFormat { kRaw, kQcow2 };

// The path of a file named in `image_path`'s header: absolute names as they
// are, relative ones against the image's directory. "file:" prefixes are
// dropped; other protocols and json: names are refused.
std::string ResolveReferencedPath(const std::string& image_path, const std::string& name,
                                  const std::string& what);

// The format of the backing file: from the backing format header extension
// when present ("raw" or "qcow2"; others are refused), else probed from the
// file's magic. Throws util::Error naming the image.
BackingFormat DetectBackingFormat(const Header& header, const std::string& image_path,
                                  const std::string& backing_path);

// The external data file name from its header extension (empty if none).
std::string DataFileName(const Header& header);

}  // namespace qcow2
