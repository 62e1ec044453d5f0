#include "qcow2/backing.h"

#include <fcntl.h>

#include "util/error.h"
#include "util/file.h"

namespace qcow2 {

std::string ResolveReferencedPath(const std::string& image_path, const std::string& name,
                                  const std::string& what) {
  std::string n = name;
  if (n.rfind("file:", 0) == 0)
    n = n.substr(5);
  if (n.empty())
    throw util::Error(image_path + ": empty " + what + " name");
  if (n.find('\0') != std::string::npos)
    throw util::Error(image_path + ": " + what + " name contains a NUL byte");
  const auto colon = n.find(':');
  if (n.rfind("json:", 0) == 0 || (colon != std::string::npos && n.find('/') > colon))
    throw util::Error(image_path + ": " + what + " '" + n +
                      "' uses a protocol; only local files are supported");
  if (n[0] == '/')
    return n;
  const auto slash = image_path.rfind('/');
  if (slash == std::string::npos)
    return n;
  return image_path.substr(0, slash + 1) + n;
}

BackingFormat DetectBackingFormat(const Header& header, const std::string& image_path,
                                  const std::string& backing_path) {
  util::File f = util::File::Open(backing_path, O_RDONLY);
  uint8_t magic[4];
  const bool is_qcow2 = f.ReadUpTo(magic, 0) == 4 && HasQcow2Magic(magic);
  const HeaderExtension* ext = header.FindExtension(kExtBackingFormat);
  if (!ext)
    return is_qcow2 ? BackingFormat::kQcow2 : BackingFormat::kRaw;
  const std::string format(ext->data.begin(), ext->data.end());
  if (format == "raw")
    return BackingFormat::kRaw;
  if (format == "qcow2") {
    if (!is_qcow2)
      throw util::Error(image_path + ": backing file " + backing_path +
                        " is declared qcow2 but has no qcow2 magic");
    return BackingFormat::kQcow2;
  }
  throw util::Error(image_path + ": backing file format '" + format +
                    "' is not supported (only raw and qcow2)");
}

std::string DataFileName(const Header& header) {
  const HeaderExtension* ext = header.FindExtension(kExtDataFile);
  return ext ? std::string(ext->data.begin(), ext->data.end()) : std::string();
}

}  // namespace qcow2
