#include "qcow2/backing.h"
#include "util/escape.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>

namespace qcow2 {
namespace {

using Code = ReferenceError::Code;

bool OpenableType(mode_t mode) {
  return S_ISREG(mode) || S_ISBLK(mode);
}

std::string Directory(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// The canonical path (symlinks and ".." resolved), or empty when there is none.
std::string RealPath(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr), &std::free);
  return real ? std::string(real.get()) : std::string();
}

// True when the real path lies inside the real directory `dir`.
bool Inside(const std::string& real, const std::string& dir) {
  if (dir == "/")
    return true;
  return real.size() > dir.size() && real.compare(0, dir.size(), dir) == 0 &&
         real[dir.size()] == '/';
}

// Opens a file an image refers to, read-only, under the scope; one message
// naming the image, the name it gives, the resolved path when it differs,
// and why. The type is checked before open(2) and again, with the identity,
// on the open descriptor (the name may change in between).
util::File OpenReferenced(const std::string& image_path, const std::string& name,
                          const std::string& what, ReferencePolicy::Scope scope,
                          const ReferencePolicy& policy) {
  const std::string& allow_hint = policy.allow_hint;
  const std::string path = ResolveReferencedPath(image_path, name, what);
  // Escaped when shown; an image without a directory resolves nothing.
  const std::string resolved = path == name || !policy.unreachable.empty() ? "" : " (" + path + ")";
  const auto fail = [&](Code code, const std::string& why) {
    const std::string verb = code == Code::kCannotOpen ? "cannot open " : "";
    throw ReferenceError(code, util::PrintableName(image_path) + ": " + verb + what + " '" +
                                   util::PrintableName(name) + "'" + util::PrintableName(resolved) +
                                   (code == Code::kCannotOpen ? ": " : " ") + why);
  };
  if (!policy.unreachable.empty())
    fail(Code::kRefused, policy.unreachable);
  struct stat before;
  if (::stat(path.c_str(), &before) != 0)
    fail(Code::kCannotOpen, util::ErrnoText(errno));
  if (!OpenableType(before.st_mode))
    fail(Code::kRefused, "is not a regular file or block device");
  std::string opened = path;
  if (scope == ReferencePolicy::Scope::kImageDirectory) {
    const std::string real = RealPath(path);
    const std::string dir = RealPath(Directory(image_path));
    if (real.empty() || dir.empty() || !Inside(real, dir))
      fail(Code::kRefused, "is outside the image's directory; " + allow_hint + " allows it");
    opened = real;  // what was checked is what is opened (named as resolved)
  }
  const int fd = ::open(opened.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0)
    fail(Code::kCannotOpen, util::ErrnoText(errno));
  util::File file(fd, path);
  const struct stat after = file.Stat();
  if (!OpenableType(after.st_mode) || after.st_dev != before.st_dev ||
      after.st_ino != before.st_ino)
    fail(Code::kRefused, "changed while it was being opened");
  if (policy.on_open) {
    const std::string real = RealPath(opened);
    policy.on_open(util::PrintableName(image_path) + ": " + what + " '" +
                   util::PrintableName(name) + "' (" +
                   util::PrintableName(real.empty() ? opened : real) + ")");
  }
  return file;
}

}  // namespace

ReferencePolicy PolicyForScope(const std::string& scope) {
  using Scope = ReferencePolicy::Scope;
  ReferencePolicy p;
  if (scope == "any")
    p.backing = p.data_file = Scope::kAny;
  else if (scope == "image-dir")
    p.backing = p.data_file = Scope::kImageDirectory;
  else if (scope == "none")
    p.backing = p.data_file = Scope::kNone;
  else
    throw util::Error("unknown --backing scope '" + scope + "' (any, image-dir or none)");
  return p;
}

std::string ResolveReferencedPath(const std::string& image_path, const std::string& name,
                                  const std::string& what) {
  std::string n = name;
  if (n.rfind("file:", 0) == 0)
    n = n.substr(5);
  if (n.empty())
    throw ReferenceError(Code::kBadName,
                         util::PrintableName(image_path) + ": empty " + what + " name");
  if (n.find('\0') != std::string::npos)
    throw ReferenceError(Code::kBadName, util::PrintableName(image_path) + ": " + what +
                                             " name contains a NUL byte");
  const auto colon = n.find(':');
  if (n.rfind("json:", 0) == 0 || (colon != std::string::npos && n.find('/') > colon))
    throw ReferenceError(Code::kBadName, util::PrintableName(image_path) + ": " + what + " '" +
                                             util::PrintableName(n) +
                                             "' uses a protocol; only local files are supported");
  if (n[0] == '/')
    return n;
  const auto slash = image_path.rfind('/');
  if (slash == std::string::npos)
    return n;
  return image_path.substr(0, slash + 1) + n;
}

BackingFormat DetectBackingFormat(const Header& header, const std::string& image_path,
                                  const util::File& backing) {
  uint8_t magic[4];
  const bool is_qcow2 = backing.ReadUpTo(magic, 0) == 4 && HasQcow2Magic(magic);
  const HeaderExtension* ext = header.FindExtension(kExtBackingFormat);
  if (!ext)
    return is_qcow2 ? BackingFormat::kQcow2 : BackingFormat::kRaw;
  const std::string format(ext->data.begin(), ext->data.end());
  if (format == "raw")
    return BackingFormat::kRaw;
  if (format == "qcow2") {
    if (!is_qcow2)
      throw ReferenceError(Code::kFormat, util::PrintableName(image_path) + ": backing file " +
                                              util::PrintableName(backing.path()) +
                                              " is declared qcow2 but has no qcow2 magic");
    return BackingFormat::kQcow2;
  }
  throw ReferenceError(Code::kFormat, util::PrintableName(image_path) + ": backing file format '" +
                                          util::PrintableName(format) +
                                          "' is not supported (only raw and qcow2)");
}

std::string DataFileName(const Header& header) {
  const HeaderExtension* ext = header.FindExtension(kExtDataFile);
  return ext ? std::string(ext->data.begin(), ext->data.end()) : std::string();
}

util::File OpenDataFile(const std::string& image_path, const Header& header,
                        const ReferencePolicy& policy) {
  if (!(header.incompatible_features & kIncompatDataFile))
    return {};
  const std::string name = DataFileName(header);
  if (policy.data_file == ReferencePolicy::Scope::kNone)
    throw ReferenceError(Code::kRefused, util::PrintableName(image_path) +
                                             ": external data file '" + util::PrintableName(name) +
                                             "' is not opened under --backing=none; " +
                                             policy.allow_hint + " allows it");
  return OpenReferenced(image_path, name, "external data file", policy.data_file, policy);
}

BackingChain::BackingChain(const util::File& top, ReferencePolicy policy) : policy_(policy) {
  const struct stat st = top.Stat();
  seen_.insert({st.st_dev, st.st_ino});
}

std::optional<BackingFile> BackingChain::Next(const std::string& image_path, const Header& header) {
  if (header.backing_file.empty() || policy_.backing == ReferencePolicy::Scope::kNone)
    return std::nullopt;
  if (depth_ + 1 > kMaxBackingDepth)
    throw ReferenceError(Code::kTooDeep, util::PrintableName(image_path) +
                                             ": backing chain is deeper than " +
                                             std::to_string(kMaxBackingDepth) + " files");
  BackingFile b;
  b.name = header.backing_file;
  b.file = OpenReferenced(image_path, b.name, "backing file", policy_.backing, policy_);
  const struct stat st = b.file.Stat();
  if (!seen_.insert({st.st_dev, st.st_ino}).second)
    throw ReferenceError(Code::kLoop, util::PrintableName(image_path) + ": backing file '" +
                                          util::PrintableName(b.name) +
                                          "' loops back in the chain");
  b.format = DetectBackingFormat(header, image_path, b.file);
  b.depth = ++depth_;
  return b;
}

}  // namespace qcow2
