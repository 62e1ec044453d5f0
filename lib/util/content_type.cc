#include "util/content_type.h"

#include <blkid.h>

#include <memory>
#include <vector>

#include "util/error.h"

namespace util {
namespace {

struct ProbeDeleter {
  void operator()(blkid_probe probe) const { blkid_free_probe(probe); }
};
using Probe = std::unique_ptr<std::remove_pointer_t<blkid_probe>, ProbeDeleter>;

std::string Lookup(blkid_probe probe, const char* name) {
  const char* value = nullptr;
  if (blkid_probe_lookup_value(probe, name, &value, nullptr) != 0 || value == nullptr)
    return "";
  return value;
}

// The single signature libblkid finds (none when it finds several that
// disagree), in words.
std::string Signature(const File& file, uint64_t offset) {
  const Probe probe(blkid_new_probe());
  if (!probe ||
      blkid_probe_set_device(probe.get(), file.fd(), static_cast<blkid_loff_t>(offset), 0))
    return "";
  blkid_probe_enable_superblocks(probe.get(), 1);
  blkid_probe_set_superblocks_flags(probe.get(), BLKID_SUBLKS_TYPE | BLKID_SUBLKS_USAGE);
  blkid_probe_enable_partitions(probe.get(), 1);
  if (blkid_do_safeprobe(probe.get()) != 0)
    return "";
  const std::string type = Lookup(probe.get(), "TYPE");
  const std::string usage = Lookup(probe.get(), "USAGE");
  if (!type.empty()) {
    if (usage == "filesystem")
      return type + " filesystem";
    if (usage == "crypto")
      return type + " encrypted volume";
    if (usage == "raid")
      return type + " RAID member";
    return type;
  }
  const std::string table = Lookup(probe.get(), "PTTYPE");
  return table.empty() ? "" : table + " partition table";
}

}  // namespace

std::string DescribeContent(const File& file, uint64_t offset) {
  std::vector<uint8_t> head(64 * 1024);
  size_t got = 0;
  try {
    got = file.ReadUpTo(head, offset);
  } catch (const Error&) {
    return "";
  }
  if (got == 0)
    return offset == 0 ? "empty file" : "nothing at that offset";
  std::string signature = Signature(file, offset);
  if (signature.empty() && IsAllZero(std::span<const uint8_t>(head.data(), got)))
    return "all zeros";
  return signature;
}

}  // namespace util
