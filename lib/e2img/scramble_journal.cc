#include "e2img/scramble_journal.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace e2img {
namespace {

constexpr uint32_t kMagic = 0xC03B3998;
enum BlockType : uint32_t { kDescriptor = 1, kCommit = 2, kSuperV1 = 3, kSuperV2 = 4, kRevoke = 5 };
constexpr uint32_t kCompatChecksum = 0x1;
constexpr uint32_t kIncompat64Bit = 0x2;
constexpr uint32_t kIncompatCsumV2 = 0x8;
constexpr uint32_t kIncompatCsumV3 = 0x10;
constexpr uint32_t kIncompatFastCommit = 0x20;
constexpr uint32_t kFlagEscape = 1, kFlagSameUuid = 2, kFlagLastTag = 8;
constexpr uint8_t kCrc32Checksum = 1;  // commit block h_chksum_type of v1 checksums
constexpr uint32_t kDefaultFastCommitBlocks = 256;

uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
void PutBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
uint16_t Be16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// The journal superblock's settings the log walk needs.
struct JournalFormat {
  uint32_t first = 0, last = 0;  // log blocks: [first, last)
  uint32_t start = 0, sequence = 0;
  bool v2 = false, v3 = false, v1_checksum = false, wide = false, fast_commit = false;
  uint32_t csum_seed = 0;
  size_t tag_bytes = 0;
};

JournalFormat ReadFormat(std::span<const uint8_t> sb) {
  JournalFormat f;
  const uint32_t type = Be32(&sb[4]);
  const uint32_t maxlen = Be32(&sb[16]);
  f.first = Be32(&sb[20]);
  f.sequence = Be32(&sb[24]);
  f.start = Be32(&sb[28]);
  if (type == kSuperV2) {
    const uint32_t compat = Be32(&sb[36]), incompat = Be32(&sb[40]);
    f.v1_checksum = compat & kCompatChecksum;
    f.wide = incompat & kIncompat64Bit;
    f.v2 = incompat & kIncompatCsumV2;
    f.v3 = incompat & kIncompatCsumV3;
    f.fast_commit = incompat & kIncompatFastCommit;
  }
  uint32_t fc_blocks = 0;
  if (f.fast_commit) {
    fc_blocks = Be32(&sb[0x54]);
    if (fc_blocks == 0)
      fc_blocks = kDefaultFastCommitBlocks;
  }
  f.last = maxlen > fc_blocks ? maxlen - fc_blocks : maxlen;
  f.csum_seed = ext2fs_crc32c_le(~0u, &sb[48], 16);  // the journal's UUID
  if (f.v3)
    f.tag_bytes = 16;
  else
    f.tag_bytes = 12 + (f.v2 ? 2 : 0) - (f.wide ? 0 : 4);
  return f;
}

// One tag of a descriptor block.
struct Tag {
  size_t offset = 0;  // in the descriptor
  uint64_t target = 0;
  uint32_t flags = 0;
};

std::vector<Tag> ReadTags(const JournalFormat& f, std::span<const uint8_t> block) {
  std::vector<Tag> tags;
  const size_t end = block.size() - ((f.v2 || f.v3) ? 4 : 0);
  for (size_t at = 12; at + f.tag_bytes <= end;) {
    Tag tag;
    tag.offset = at;
    tag.target = Be32(&block[at]);
    tag.flags = f.v3 ? Be32(&block[at + 4]) : Be16(&block[at + 6]);
    if (f.wide)
      tag.target |= uint64_t{Be32(&block[at + 8])} << 32;
    tags.push_back(tag);
    at += f.tag_bytes + ((tag.flags & kFlagSameUuid) ? 0 : 16);
    if (tag.flags & kFlagLastTag)
      break;
  }
  return tags;
}

uint32_t TagChecksum(const JournalFormat& f, uint32_t sequence, std::span<const uint8_t> data) {
  uint8_t seq[4];
  PutBe32(seq, sequence);
  return ext2fs_crc32c_le(ext2fs_crc32c_le(f.csum_seed, seq, 4), data.data(), data.size());
}

uint32_t TailChecksum(const JournalFormat& f, std::span<const uint8_t> block) {
  std::vector<uint8_t> copy(block.begin(), block.end());
  std::memset(copy.data() + copy.size() - 4, 0, 4);
  return ext2fs_crc32c_le(f.csum_seed, copy.data(), copy.size());
}

// Walks the log from its start, as replay does, and plans the rewrites.
class LogWalk {
 public:
  LogWalk(const JournalFormat& f, const std::map<uint64_t, uint64_t>& phys, uint32_t block_size,
          const JournalReader& read, const CopyRewriter& rewrite, JournalPlan& plan)
      : f_(f), phys_(phys), bs_(block_size), read_(read), rewrite_(rewrite), plan_(plan) {}

  // The physical blocks of the log, in the order walked.
  std::vector<uint64_t> Walk() {
    std::vector<uint64_t> visited;
    uint32_t pos = f_.start, sequence = f_.sequence;
    std::vector<uint8_t> block(bs_);
    uint32_t crc_before = ~0u, crc_after = ~0u;  // v1 checksums of this transaction
    for (uint64_t steps = 0; steps < uint64_t{f_.last} - f_.first; ++steps) {
      uint64_t at = 0;
      if (!Read(pos, block, &at))
        break;
      if (Be32(&block[0]) != kMagic || Be32(&block[8]) != sequence)
        break;
      visited.push_back(at);
      const uint32_t type = Be32(&block[4]);
      if (type == kDescriptor) {
        uint32_t next = Next(pos);
        if (!Descriptor(at, block, sequence, &next, visited, crc_before, crc_after))
          break;
        pos = next;
        continue;
      }
      if (type == kCommit) {
        Commit(at, block, crc_before, crc_after);
        crc_before = crc_after = ~0u;
        ++sequence;
      } else if (type != kRevoke) {
        break;
      }
      pos = Next(pos);
    }
    return visited;
  }

 private:
  uint32_t Next(uint32_t pos) const { return pos + 1 >= f_.last ? f_.first : pos + 1; }
  bool Read(uint32_t pos, std::span<uint8_t> out, uint64_t* at) const {
    auto it = phys_.find(pos);
    if (it == phys_.end())
      return false;
    *at = it->second;
    return read_(it->second, out);
  }

  // The descriptor at `at` and its data blocks from *next on.
  bool Descriptor(uint64_t at, std::vector<uint8_t>& desc, uint32_t sequence, uint32_t* next,
                  std::vector<uint64_t>& visited, uint32_t& crc_before, uint32_t& crc_after) {
    const bool tail_ok = (f_.v2 || f_.v3) && Be32(&desc[bs_ - 4]) == TailChecksum(f_, desc);
    std::vector<uint8_t> new_desc = desc;
    std::vector<uint8_t> data(bs_);
    std::vector<std::pair<uint64_t, std::vector<uint8_t>>> datas;
    for (const Tag& tag : ReadTags(f_, desc)) {
      uint64_t data_at = 0;
      if (!Read(*next, data, &data_at))
        return false;
      visited.push_back(data_at);
      *next = Next(*next);
      ++plan_.copies;
      std::vector<uint8_t> fresh = data;
      if (tag.flags & kFlagEscape)
        PutBe32(fresh.data(), kMagic);
      rewrite_(tag.target, fresh);
      if (tag.flags & kFlagEscape)
        std::memset(fresh.data(), 0, 4);
      if (fresh != data) {
        FixTag(tag, sequence, data, fresh, new_desc);
      }
      datas.emplace_back(data_at, fresh);
    }
    if (tail_ok && new_desc != desc)
      PutBe32(&new_desc[bs_ - 4], TailChecksum(f_, new_desc));
    // v1 checksums cover the descriptor and its data blocks, up to the commit.
    crc_before = ext2fs_crc32_be(crc_before, desc.data(), bs_);
    crc_after = ext2fs_crc32_be(crc_after, new_desc.data(), bs_);
    for (auto& [block, fresh] : datas) {
      std::vector<uint8_t> old(bs_);
      read_(block, old);
      crc_before = ext2fs_crc32_be(crc_before, old.data(), bs_);
      crc_after = ext2fs_crc32_be(crc_after, fresh.data(), bs_);
      if (fresh != old)
        plan_.rewritten[block] = std::move(fresh);
    }
    if (new_desc != desc)
      plan_.rewritten[at] = std::move(new_desc);
    return true;
  }

  // A tag's checksum of the data block, when it was right, follows the new bytes.
  void FixTag(const Tag& tag, uint32_t sequence, std::span<const uint8_t> old,
              std::span<const uint8_t> fresh, std::vector<uint8_t>& desc) {
    if (f_.v3) {
      uint8_t* csum = &desc[tag.offset + 12];
      if (Be32(csum) == TagChecksum(f_, sequence, old))
        PutBe32(csum, TagChecksum(f_, sequence, fresh));
    } else if (f_.v2) {
      uint8_t* csum = &desc[tag.offset + 4];
      if (Be16(csum) == static_cast<uint16_t>(TagChecksum(f_, sequence, old)))
        PutBe16(csum, static_cast<uint16_t>(TagChecksum(f_, sequence, fresh)));
    }
  }

  void Commit(uint64_t at, std::span<const uint8_t> commit, uint32_t crc_before,
              uint32_t crc_after) {
    if (!f_.v1_checksum || commit[12] != kCrc32Checksum || Be32(&commit[16]) != crc_before ||
        crc_before == crc_after)
      return;
    std::vector<uint8_t> fresh(commit.begin(), commit.end());
    PutBe32(&fresh[16], crc_after);
    plan_.rewritten[at] = std::move(fresh);
  }

  const JournalFormat& f_;
  const std::map<uint64_t, uint64_t>& phys_;
  uint32_t bs_;
  const JournalReader& read_;
  const CopyRewriter& rewrite_;
  JournalPlan& plan_;
};

}  // namespace

JournalPlan PlanJournal(uint32_t block_size,
                        const std::vector<std::pair<uint64_t, uint64_t>>& blocks,
                        const JournalReader& read, const CopyRewriter& rewrite) {
  JournalPlan plan;
  std::map<uint64_t, uint64_t> phys(blocks.begin(), blocks.end());
  auto first = phys.find(0);
  std::vector<uint8_t> sb(block_size);
  if (first == phys.end() || block_size < 1024 || !read(first->second, sb) ||
      Be32(&sb[0]) != kMagic || (Be32(&sb[4]) != kSuperV1 && Be32(&sb[4]) != kSuperV2))
    return plan;
  const JournalFormat f = ReadFormat(sb);
  std::vector<uint64_t> keep;
  if (f.start != 0) {
    plan.needs_recovery = true;
    if (f.start < f.first || f.start >= f.last || f.first == 0) {
      plan.problem = "the journal superblock's log start is out of range";
      return plan;
    }
    LogWalk walk(f, phys, block_size, read, rewrite, plan);
    keep = walk.Walk();
    if (f.fast_commit) {
      for (uint64_t logical = f.last; logical < phys.size(); ++logical)
        if (auto it = phys.find(logical); it != phys.end())
          keep.push_back(it->second);
      plan.problem = "the journal's fast-commit blocks are copied as they are, names included";
    }
  }
  std::sort(keep.begin(), keep.end());
  for (const auto& [logical, block] : phys)
    if (logical != 0 && !std::binary_search(keep.begin(), keep.end(), block))
      plan.zeroed.push_back(block);
  return plan;
}

}  // namespace e2img
