// Journal side of the scrambler (-s). A clean journal is never replayed:
// past its superblock it becomes zeros. A journal that needs recovery keeps
// its log (the transactions e2fsck or the kernel replay), each copy of a
// block in it rewritten like the block it stands for, and the checksums
// (block tags, descriptor tails, commit blocks of v1 checksums) that were
// right recomputed; the journal's blocks outside the log become zeros.
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace e2img {

// Reads one filesystem block; false if it cannot.
using JournalReader = std::function<bool(uint64_t block, std::span<uint8_t> out)>;
// Rewrites a journal copy of filesystem block `target` like that block.
using CopyRewriter = std::function<void(uint64_t target, std::span<uint8_t> data)>;

// What becomes of the journal's blocks in the scrambled image.
struct JournalPlan {
  bool needs_recovery = false;
  std::vector<uint64_t> zeroed;                                  // blocks written as zeros
  std::unordered_map<uint64_t, std::vector<uint8_t>> rewritten;  // block -> its new bytes
  uint64_t copies = 0;  // copies of blocks found in the log
  std::string problem;  // what is left as it was, for a warning (empty: nothing)
};

// blocks: the journal inode's (logical, physical) blocks. Reads the log with
// `read`; each copy goes through `rewrite`.
JournalPlan PlanJournal(uint32_t block_size,
                        const std::vector<std::pair<uint64_t, uint64_t>>& blocks,
                        const JournalReader& read, const CopyRewriter& rewrite);

}  // namespace e2img
