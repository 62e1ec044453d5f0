// --verify: once an image is written, each block it holds is read again
// from the source and from the image and compared, to find the blocks a
// live filesystem changed while it was captured.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>

#include "e2img/block_set.h"
#include "e2img/unreadable.h"
#include "util/file.h"

namespace e2img {

// Reads `data.size()` bytes of the image from the start of `block`.
using ImageBlockReader = std::function<void(uint64_t block, std::span<uint8_t> data)>;

// What to compare the image with.
struct VerifySource {
  const util::File* file = nullptr;
  uint64_t offset = 0;  // -o
  uint32_t block_size = 0;
  uint64_t first_data_block = 0;  // blocks below it are not in the image
  // Blocks whose bytes from an offset on were zeroed in the image.
  const std::map<uint64_t, uint32_t>* stale_tails = nullptr;
  // Ranges left out of the image as unreadable: their blocks are skipped.
  const UnreadableLog* unreadable = nullptr;
};

// What a verification found.
struct VerifyResult {
  uint64_t compared = 0;    // blocks compared
  uint64_t differ = 0;      // blocks that differ
  uint64_t unreadable = 0;  // blocks skipped as unreadable (then or now)
};

// Compares every block of `blocks`; `warn` gets one line per run of
// consecutive blocks that differ.
VerifyResult VerifyBlocks(const VerifySource& source, BlockSet& blocks,
                          const ImageBlockReader& read_image,
                          const std::function<void(const std::string&)>& warn);

}  // namespace e2img
