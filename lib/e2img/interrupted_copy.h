// InterruptedCopy: where a -ra copy or move stood when a read or write
// failed, and the one-line account of it that lets the user finish the job
// (rerun the command when the source is untouched, or the exact dd
// commands when an in-place move already overwrote part of its source).
#pragma once

#include <cstdint>
#include <string>

namespace e2img {

// The state of a copy stopped part way. Offsets inside the filesystem are
// byte offsets from its start (block N starts at N * block_size).
struct InterruptedCopy {
  std::string source_path;
  std::string dest_path;
  uint64_t source_offset = 0;
  uint64_t dest_offset = 0;
  uint32_t block_size = 0;
  uint64_t first_block = 0;  // the copy covers blocks first_block..end_block-1
  uint64_t end_block = 0;
  bool in_place = false;       // a move within one file or device
  bool highest_first = false;  // a backwards move: from the highest blocks down
  // Lowest first: the bytes below `frontier` are at the destination, the
  // others are not. Highest first: the bytes at and above it are there.
  uint64_t frontier = 0;
  bool source_overwritten = false;  // a write (maybe the failing one) hit the source
};

// What was done, what was not, and how to finish, as one line without the
// cause (the caller puts the I/O error first).
std::string DescribeInterruptedCopy(const InterruptedCopy& copy);

}  // namespace e2img
