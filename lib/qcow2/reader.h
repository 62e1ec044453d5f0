// Qcow2Reader opens a qcow2 image, validates its header and tables against
// the file, and maps guest offsets to what backs them. ConvertToRaw streams
// the whole virtual disk into a raw output.
#pragma once

#include <functional>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "qcow2/format.h"
#include "qcow2/l2_cache.h"
#include "util/file.h"
#include "util/output.h"

namespace qcow2 {

// One run of guest bytes that share a kind (and, for kNormal, are
// contiguous on the host).
struct Mapping {
  ClusterKind kind = ClusterKind::kUnallocated;
  uint64_t guest_offset = 0;
  uint64_t length = 0;
  uint64_t host_offset = 0;  // kNormal: host byte of guest_offset; kCompressed: entry's offset
  uint64_t compressed_size = 0;
};

// Read access to one qcow2 image (the active layer).
class Qcow2Reader {
 public:
  // Opens and validates; throws util::Error with file, table and offset.
  explicit Qcow2Reader(const std::string& path);

  const Header& header() const { return header_; }
  const std::string& path() const { return file_.path(); }
  uint64_t virtual_size() const { return header_.size; }
  uint64_t file_size() const { return file_size_; }
  const std::vector<uint64_t>& l1_table() const { return l1_; }

  // The mapping that starts at guest_offset, at most up to the end of its
  // L2 table's range and of the virtual size.
  Mapping Map(uint64_t guest_offset);
  // Reads guest bytes (zeros where unallocated).
  void Read(uint64_t guest_offset, std::span<uint8_t> out);
  // Warnings noticed on open (dirty or corrupt bits), one line each.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  void ValidateHeader();
  void LoadL1();
  uint64_t L2Entry(uint64_t guest_cluster);
  void CheckHostRange(uint64_t offset, uint64_t length, const std::string& what) const;
  void ReadCompressed(const Mapping& m, std::span<uint8_t> cluster);

  util::File file_;
  uint64_t file_size_ = 0;
  Header header_;
  std::vector<uint64_t> l1_;
  std::unique_ptr<L2Cache> l2_cache_;
  std::vector<std::string> warnings_;
};

// Writes the image's whole virtual disk to `out` (exactly virtual_size bytes);
// progress, if given, gets the number of bytes of the virtual disk done.
void ConvertToRaw(Qcow2Reader& reader, util::RawWriter& out,
                  const std::function<void(uint64_t bytes_done)>& progress = {});

// True when the file at path starts with the qcow2 magic.
bool IsQcow2File(const std::string& path);

}  // namespace qcow2
