// DiskRange says where a block device's bytes lie on the whole disk that
// holds them (a partition: its start and size; a whole disk: all of it), as
// sysfs tells, so that e2image can refuse an output on the same disk as its
// source when the bytes it writes would land on the bytes it reads
// (/dev/sda1 into /dev/sda).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace util {

struct DiskRange {
  dev_t disk = 0;      // the whole disk's device number
  uint64_t start = 0;  // byte offset of the device on that disk
  uint64_t size = 0;   // bytes
};

// Where the block device `device` (a device number) lies, read from
// sysfs_root/dev/block/MAJ:MIN; nullopt when sysfs does not say.
std::optional<DiskRange> DiskRangeOfDevice(dev_t device, const std::string& sysfs_root = "/sys");

// Where the block device at `path` lies; nullopt for anything but a block
// device, or when sysfs does not say.
std::optional<DiskRange> DiskRangeOf(const std::string& path,
                                     const std::string& sysfs_root = "/sys");

// A region of a device: `length` bytes from `offset` (UINT64_MAX: to its end).
struct DeviceRegion {
  uint64_t offset = 0;
  uint64_t length = UINT64_MAX;
};

// Where the region starts on the device's disk, clipped to the device.
uint64_t DiskOffsetOf(const DiskRange& range, DeviceRegion region);

// Do region a of device a and region b of device b share bytes of one disk?
// False when either is not a block device on a disk sysfs describes.
bool DiskRegionsOverlap(const std::optional<DiskRange>& a, DeviceRegion region_a,
                        const std::optional<DiskRange>& b, DeviceRegion region_b);

// Refuses an output whose region (bytes of the output device) shares bytes of
// one disk with the source's region: a partition and its whole disk, or
// partitions that overlap. `hint` ends the message.
void CheckDisksApart(const std::string& source, DeviceRegion source_region,
                     const std::string& output, DeviceRegion output_region,
                     const std::string& hint = "");

}  // namespace util
