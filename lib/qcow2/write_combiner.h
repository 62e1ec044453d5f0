// WriteCombiner gathers writes that continue one another (the data clusters
// a writer allocates one after the other) into one large pwrite: a -Qa
// capture with 4 KiB clusters otherwise makes a system call per cluster.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "util/file.h"

namespace qcow2 {

// A write-behind buffer for one run of consecutive bytes of a file.
class WriteCombiner {
 public:
  explicit WriteCombiner(const util::File& out, size_t capacity = kDefaultCapacity);
  // Writes data at offset, now or later; later only while it extends the run.
  void Write(std::span<const uint8_t> data, uint64_t offset);
  // As Write, for bytes landing on a hole of the file (clusters allocated
  // at its end): their stretches of all-zero 4 KiB pages of kMinHole or
  // more are left as holes. A 2 MiB cluster holding one 4 KiB block then
  // costs at most 64 KiB of disk, not 2 MiB.
  void WriteOverHole(std::span<const uint8_t> data, uint64_t offset);
  // Writes the buffered run. Call before reading those bytes or finishing the file.
  void Flush();

  static constexpr size_t kDefaultCapacity = 1u << 20;
  static constexpr size_t kHolePage = 4096;
  // Shorter stretches of zeros are written: holes among the data of small
  // clusters fragment the file and make reading the image back slower.
  static constexpr size_t kMinHole = 64u << 10;

 private:
  const util::File& out_;
  size_t capacity_;
  std::vector<uint8_t> run_;
  uint64_t run_offset_ = 0;
};

}  // namespace qcow2
