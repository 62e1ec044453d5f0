// Where an image's metadata lives on the host, checked as it is learned:
// every table must be aligned, inside the file, and clear of the header and
// of every other table. Data clusters are checked against it afterwards.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "qcow2/format.h"
#include "qcow2/image_file.h"
#include "util/file.h"

namespace qcow2 {

// The claimed metadata ranges of one image file.
class MetadataLayout {
 public:
  MetadataLayout(std::string path, uint64_t file_size, uint64_t cluster_size);

  // Checks [start, start + length) and claims it. `what` names the table (and
  // the entry pointing at it), `where` is the file offset of that pointer.
  // Two L1 entries sharing an L2 table are refused too: qemu never writes
  // that, and it would let a small file describe a huge disk of data.
  void Claim(uint64_t start, uint64_t length, const std::string& what, uint64_t where);
  // What is wrong with data at [start, start + length): past the end of
  // the file or overlapping metadata; empty when nothing is.
  std::string DataProblem(uint64_t start, uint64_t length) const;
  // Throws unless offset is cluster aligned, naming what and where.
  void CheckAligned(uint64_t offset, const std::string& what, uint64_t where) const;

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }

 private:
  struct Range {
    uint64_t end;
    std::string name;
  };
  [[noreturn]] void Fail(uint64_t where, const std::string& what, uint64_t start,
                         const std::string& problem) const;
  // The claimed range overlapping [start, end), or nullptr.
  const std::pair<const uint64_t, Range>* Overlap(uint64_t start, uint64_t end) const;

  std::string path_;
  uint64_t file_size_;
  uint64_t cluster_size_;
  std::map<uint64_t, Range> ranges_;  // disjoint, keyed by start
};

// Checks the refcount table and claims it and its refcount blocks.
void ClaimRefcountTables(const util::File& file, const Header& h, MetadataLayout& layout);
// Claims the internal snapshot table (read by ReadSnapshotTable) and the
// snapshots' L1 tables; version 3 entries need 16 bytes of extra data.
void ClaimSnapshots(const SnapshotTable& table, const Header& h, MetadataLayout& layout);
// Claims the bitmap directory (read by ReadBitmapDirectory) and each
// bitmap table, within qemu's 64 MiB limit per table.
void ClaimBitmaps(const BitmapDirectory& dir, const Header& h, MetadataLayout& layout);

// "bit 5" or, when the feature name table knows it, "bit 5 (name)" for each
// set incompatible bit, comma separated.
std::string DescribeIncompatibleBits(const Header& h, uint64_t bits);

}  // namespace qcow2
