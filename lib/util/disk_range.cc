#include "util/disk_range.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace util {
namespace {

constexpr uint64_t kSectorBytes = 512;  // sysfs counts start and size in 512-byte sectors

std::optional<uint64_t> ReadNumber(const std::filesystem::path& file) {
  std::ifstream in(file);
  uint64_t value = 0;
  if (!(in >> value))
    return std::nullopt;
  return value;
}

// "MAJ:MIN" as sysfs writes a device number.
std::optional<dev_t> ReadDeviceNumber(const std::filesystem::path& file) {
  std::ifstream in(file);
  unsigned major_number = 0, minor_number = 0;
  char colon = 0;
  if (!(in >> major_number >> colon >> minor_number) || colon != ':')
    return std::nullopt;
  return makedev(major_number, minor_number);
}

// The region's [begin, end) on its disk, clipped to the device.
std::pair<uint64_t, uint64_t> OnDisk(const DiskRange& range, DeviceRegion region) {
  const uint64_t begin = DiskOffsetOf(range, region);
  const uint64_t length = std::min(region.length, range.start + range.size - begin);
  return {begin, begin + length};
}

}  // namespace

uint64_t DiskOffsetOf(const DiskRange& range, DeviceRegion region) {
  return range.start + std::min(region.offset, range.size);
}

std::optional<DiskRange> DiskRangeOfDevice(dev_t device, const std::string& sysfs_root) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path link = fs::path(sysfs_root) / "dev" / "block" /
                        (std::to_string(major(device)) + ":" + std::to_string(minor(device)));
  const fs::path dir = fs::canonical(link, ec);
  if (ec)
    return std::nullopt;
  const auto size = ReadNumber(dir / "size");
  if (!size)
    return std::nullopt;
  DiskRange range{device, 0, *size * kSectorBytes};
  if (!fs::exists(dir / "partition", ec))
    return range;
  // A partition: its directory sits in its disk's, which names the disk's number.
  const auto start = ReadNumber(dir / "start");
  const auto disk = ReadDeviceNumber(dir.parent_path() / "dev");
  if (!start || !disk)
    return std::nullopt;
  range.disk = *disk;
  range.start = *start * kSectorBytes;
  return range;
}

std::optional<DiskRange> DiskRangeOf(const std::string& path, const std::string& sysfs_root) {
  struct stat st {};
  if (path == "-" || ::stat(path.c_str(), &st) != 0 || !S_ISBLK(st.st_mode))
    return std::nullopt;
  return DiskRangeOfDevice(st.st_rdev, sysfs_root);
}

bool DiskRegionsOverlap(const std::optional<DiskRange>& a, DeviceRegion region_a,
                        const std::optional<DiskRange>& b, DeviceRegion region_b) {
  if (!a || !b || a->disk != b->disk)
    return false;
  const auto [a_begin, a_end] = OnDisk(*a, region_a);
  const auto [b_begin, b_end] = OnDisk(*b, region_b);
  return a_begin < b_end && b_begin < a_end;
}

void CheckDisksApart(const std::string& source, DeviceRegion source_region,
                     const std::string& output, DeviceRegion output_region,
                     const std::string& hint) {
  const auto source_range = DiskRangeOf(source);
  const auto output_range = DiskRangeOf(output);
  if (!DiskRegionsOverlap(source_range, source_region, output_range, output_region))
    return;
  throw Error(output + ": the bytes to be written (from byte " +
              std::to_string(DiskOffsetOf(*output_range, output_region)) + " of disk " +
              std::to_string(major(output_range->disk)) + ":" +
              std::to_string(minor(output_range->disk)) + ") overlap the source " + source +
              " (from byte " + std::to_string(DiskOffsetOf(*source_range, source_region)) +
              "); refusing to overwrite the source" + hint);
}

}  // namespace util
