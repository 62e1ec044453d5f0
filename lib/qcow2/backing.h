// The files a qcow2 image refers to: its backing file (raw or qcow2, named
// relative to the image's directory) and its external data file. This is
// the one place that turns such a name into an open file: the reader, map,
// info and check all follow references through it, under one policy.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "qcow2/format.h"
#include "util/error.h"
#include "util/file.h"

namespace qcow2 {

// Chains deeper than this are refused (they are almost surely loops).
inline constexpr int kMaxBackingDepth = 64;

enum class BackingFormat { kRaw, kQcow2 };

// Which files an image may make us open. Each kind of reference has its
// own scope, so a caller can trust data files while ignoring backing files.
// Whatever the scope, only a regular file or a block device is opened: a
// FIFO, socket, character device or directory is refused without being
// opened (so nothing blocks in open(2) and no device sees an open). The
// default is the image's directory: an image from a stranger reads nothing
// else unless the user says so.
struct ReferencePolicy {
  enum class Scope {
    kAny,             // any local file the name resolves to
    kImageDirectory,  // a file inside the directory of the image naming it,
                      // after resolving symlinks and ".."
    kNone,            // none: a backing file is ignored (the image read as if
                      // it had none); a data file is refused
  };
  Scope backing = Scope::kImageDirectory;
  Scope data_file = Scope::kImageDirectory;
  // Named in refusals: what the user can pass to allow the file.
  std::string allow_hint = "--backing=any";
  // Set when the image was read from a stream: it has no directory for its
  // names to be found in, so each file it names is refused with this reason
  // whatever the scope (kNone still ignores a backing file).
  std::string unreachable;
  // Called with one line for each backing or data file opened, naming the
  // image, the name it gives and the path opened (names escaped).
  std::function<void(const std::string&)> on_open;
};

// The policy of a --backing=SCOPE option: "any", "image-dir" or "none", for
// backing and data files alike. Throws util::Error on another word.
ReferencePolicy PolicyForScope(const std::string& scope);

// A reference from an image to another file that cannot be followed. The
// code tells the kinds apart for callers that report them differently.
class ReferenceError : public util::Error {
 public:
  enum class Code {
    kBadName,     // empty, NUL byte, or a protocol other than file:
    kCannotOpen,  // open(2) failed
    kRefused,     // the policy does not allow it
    kFormat,      // unsupported or inconsistent backing format
    kLoop,        // the chain comes back to a file already in it
    kTooDeep,     // more than kMaxBackingDepth backing files
  };
  ReferenceError(Code code, const std::string& message) : util::Error(message), code_(code) {}
  Code code() const { return code_; }

 private:
  Code code_;
};

// The path of a file named in `image_path`'s header: absolute names as they
// are, relative ones against the image's directory. "file:" prefixes are
// dropped; other protocols and json: names are refused (ReferenceError).
std::string ResolveReferencedPath(const std::string& image_path, const std::string& name,
                                  const std::string& what);

// The format of the backing file: from the backing format header extension
// when present ("raw" or "qcow2"; others are refused), else probed from the
// file's magic. Throws ReferenceError naming the image.
BackingFormat DetectBackingFormat(const Header& header, const std::string& image_path,
                                  const util::File& backing);

// The external data file name from its header extension (empty if none).
std::string DataFileName(const Header& header);

// Opens the external data file of the image at image_path under the
// policy; a closed File when the image has none. Throws ReferenceError.
util::File OpenDataFile(const std::string& image_path, const Header& header,
                        const ReferencePolicy& policy);

// One backing file of a chain, open.
struct BackingFile {
  std::string name;  // as the image names it
  util::File file;   // path() is the resolved path
  BackingFormat format = BackingFormat::kRaw;
  int depth = 0;  // 1: the top image's backing file
};

// Walks one backing chain from its top image down, one file at a time:
// resolves each name under the policy, refuses loops and chains deeper than
// kMaxBackingDepth, and decides each file's format. Every chain in the
// library (reader, map, info) is walked by this class.
class BackingChain {
 public:
  BackingChain(const util::File& top, ReferencePolicy policy);

  // The backing file of the lowest layer so far (`image_path`, whose header
  // is `header`), or nothing when it names none or the policy ignores it.
  // Throws ReferenceError naming image_path.
  std::optional<BackingFile> Next(const std::string& image_path, const Header& header);
  const ReferencePolicy& policy() const { return policy_; }

 private:
  ReferencePolicy policy_;
  std::set<std::pair<dev_t, ino_t>> seen_;
  int depth_ = 0;
};

}  // namespace qcow2
