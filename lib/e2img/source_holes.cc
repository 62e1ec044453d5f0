#include "e2img/source_holes.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace e2img {

BlockRun AsBlocks(const util::FileRun& run, uint64_t block_size) {
  if (run.hole && run.length >= block_size)
    return {true, run.length / block_size};
  return {false, std::max<uint64_t>(1, run.hole ? 1 : (run.length + block_size - 1) / block_size)};
}

std::vector<BlockExtent> HoleBlocks(const util::File& file, const std::vector<BlockExtent>& extents,
                                    uint64_t source_offset, uint64_t block_size) {
  util::FileHoles holes(file, true);
  std::vector<BlockExtent> found;
  for (const BlockExtent& extent : extents) {
    uint64_t block = extent.start;
    while (block < extent.end()) {
      const BlockRun run = AsBlocks(
          holes.RunAt(source_offset + block * block_size, (extent.end() - block) * block_size),
          block_size);
      if (run.skip && !found.empty() && found.back().end() == block)
        found.back().count += run.blocks;
      else if (run.skip)
        found.push_back({block, run.blocks});
      block += run.blocks;
    }
  }
  return found;
}

BlockSet WithoutHoles(const util::File& file, const std::vector<BlockExtent>& extents,
                      uint64_t source_offset, uint64_t block_size) {
  return Subtract(extents, HoleBlocks(file, extents, source_offset, block_size));
}

std::vector<uint64_t> FirstDataBlocks(const util::File& file, const std::vector<BlockExtent>& runs,
                                      uint64_t source_offset, uint64_t block_size) {
  std::vector<uint64_t> firsts;
  const bool regular = S_ISREG(file.Stat().st_mode);
  for (const BlockExtent& run : runs) {
    if (!regular) {
      firsts.push_back(run.start);
      continue;
    }
    const uint64_t at = source_offset + run.start * block_size;
    const off_t data = ::lseek(file.fd(), static_cast<off_t>(at), SEEK_DATA);
    if (data < 0 && errno == ENXIO)
      continue;  // only a hole from here to the end
    // A failure of another kind is answered conservatively: data.
    const uint64_t block =
        data < 0 ? run.start : run.start + (static_cast<uint64_t>(data) - at) / block_size;
    if (block < run.end())
      firsts.push_back(block);
  }
  return firsts;
}

}  // namespace e2img
