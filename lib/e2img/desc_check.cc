#include "e2img/desc_check.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace e2img {
namespace {

// Blocks [start, end) that one descriptor field (or a reserved area) claims.
struct Claim {
  uint64_t start;
  uint64_t end;
  bool reserved;  // a superblock or descriptor block: may repeat, never collide with a table
};

// The claims of one kind for every group, in group order, made one at a time
// as they are asked for: the superblock and descriptor blocks (as
// ext2fs_reserve_super_and_bgd marks them), or the block bitmaps, the inode
// bitmaps or the inode tables (after the range checks ext2fs_check_desc
// makes).
class ClaimStream {
 public:
  enum class Kind { kReserved, kBlockBitmap, kInodeBitmap, kInodeTable };

  ClaimStream(ext2_filsys fs, Kind kind)
      : fs_(fs),
        kind_(kind),
        blocks_count_(ext2fs_blocks_count(fs->super)),
        old_desc_blocks_(ext2fs_has_feature_meta_bg(fs->super)
                             ? fs->super->s_first_meta_bg
                             : fs->desc_blocks + fs->super->s_reserved_gdt_blocks),
        flex_bg_(ext2fs_has_feature_flex_bg(fs->super)) {}

  // The next claim into `out`; false at the end, or when a claim lies outside
  // its allowed range (then out_of_range() says so).
  bool Next(Claim& out) {
    while (pending_at_ == pending_count_) {
      if (out_of_range_ || group_ == fs_->group_desc_count)
        return false;
      pending_at_ = pending_count_ = 0;
      if (!(kind_ == Kind::kReserved ? AddReserved(group_) : AddTable(group_))) {
        out_of_range_ = true;
        return false;
      }
      ++group_;
    }
    out = pending_[pending_at_++];
    return true;
  }
  bool out_of_range() const { return out_of_range_; }

 private:
  bool AddReserved(dgrp_t g) {
    auto add = [&](uint64_t start, uint64_t count) {
      if (start >= blocks_count_)
        return false;
      pending_[pending_count_++] = {start, start + count, true};
      return true;
    };
    blk64_t super = 0, old_desc = 0, new_desc = 0;
    blk_t used = 0;
    ext2fs_super_and_bgd_loc2(fs_, g, &super, &old_desc, &new_desc, &used);
    // Block 0 of a bigalloc filesystem of 1 KiB blocks, before the
    // superblock in block 1, to keep the stream in block order.
    if (g == 0 && fs_->blocksize == 1024 && EXT2FS_CLUSTER_RATIO(fs_) > 1 && !add(0, 1))
      return false;
    if ((super || g == 0) && !add(super, 1))
      return false;
    if (old_desc && !add(old_desc, std::min<uint64_t>(old_desc_blocks_, blocks_count_ - old_desc)))
      return false;
    return !new_desc || add(new_desc, 1);
  }

  bool AddTable(dgrp_t g) {
    uint64_t first = fs_->super->s_first_data_block;
    uint64_t last = blocks_count_ - 1;
    if (!flex_bg_) {
      first = ext2fs_group_first_block2(fs_, g);
      last = ext2fs_group_last_block2(fs_, g);
    }
    uint64_t start = 0, length = 1;
    switch (kind_) {
      case Kind::kBlockBitmap:
        start = ext2fs_block_bitmap_loc(fs_, g);
        break;
      case Kind::kInodeBitmap:
        start = ext2fs_inode_bitmap_loc(fs_, g);
        break;
      default:
        start = ext2fs_inode_table_loc(fs_, g);
        length = fs_->inode_blocks_per_group;
        break;
    }
    if (start < first || start + length - 1 > last || start + length < start)
      return false;
    pending_[pending_count_++] = {start, start + length, false};
    return true;
  }

  ext2_filsys fs_;
  Kind kind_;
  // Read from the superblock once, not per group.
  uint64_t blocks_count_;
  uint64_t old_desc_blocks_;  // after a superblock, without meta_bg: descriptors and reserved GDT
  bool flex_bg_;              // tables may lie anywhere, not only in their own group
  dgrp_t group_ = 0;
  std::array<Claim, 4> pending_{};  // the current group's claims not yet handed out
  size_t pending_at_ = 0;
  size_t pending_count_ = 0;
  bool out_of_range_ = false;
};

// Takes claims in ascending order of their first block and finds the first
// one that collides with an earlier one: it starts before the furthest end
// seen so far. Only reserved areas may overlap each other.
class CollisionSweep {
 public:
  // False when c collides with a claim added before it.
  bool Add(const Claim& c) {
    if (c.start < table_end_ || (!c.reserved && c.start < reserved_end_))
      return false;
    uint64_t& end = c.reserved ? reserved_end_ : table_end_;
    end = std::max(end, c.end);
    return true;
  }

 private:
  uint64_t reserved_end_ = 0;
  uint64_t table_end_ = 0;
};

using ClaimStreams = std::array<ClaimStream, 4>;

ClaimStreams AllClaims(ext2_filsys fs) {
  using Kind = ClaimStream::Kind;
  return {ClaimStream(fs, Kind::kReserved), ClaimStream(fs, Kind::kBlockBitmap),
          ClaimStream(fs, Kind::kInodeBitmap), ClaimStream(fs, Kind::kInodeTable)};
}

enum class Verdict { kSound, kUnsound, kOutOfOrder };

// The sweep over the four streams merged, without storing or sorting a
// claim: memory stays constant, whatever the number of groups. Gives up
// (kOutOfOrder) when a stream turns out not to be in block order, as a
// moved table makes it.
Verdict SweepInOrder(ext2_filsys fs) {
  ClaimStreams streams = AllClaims(fs);
  std::array<Claim, 4> heads{};
  std::array<bool, 4> live{};
  for (size_t i = 0; i < streams.size(); ++i)
    live[i] = streams[i].Next(heads[i]);
  CollisionSweep sweep;
  for (;;) {
    size_t lowest = streams.size();
    for (size_t i = 0; i < streams.size(); ++i) {
      if (streams[i].out_of_range())
        return Verdict::kUnsound;
      if (live[i] && (lowest == streams.size() || heads[i].start < heads[lowest].start))
        lowest = i;
    }
    if (lowest == streams.size())
      return Verdict::kSound;
    const Claim claim = heads[lowest];
    if (!sweep.Add(claim))
      return Verdict::kUnsound;
    live[lowest] = streams[lowest].Next(heads[lowest]);
    if (live[lowest] && heads[lowest].start < claim.start)
      return Verdict::kOutOfOrder;
  }
}

// The same sweep over all claims collected and sorted, for any order.
bool SortAndSweep(ext2_filsys fs) {
  std::vector<Claim> claims;
  claims.reserve(uint64_t{fs->group_desc_count} * 3 + 64);
  for (ClaimStream& stream : AllClaims(fs)) {
    for (Claim c{}; stream.Next(c);)
      claims.push_back(c);
    if (stream.out_of_range())
      return false;
  }
  std::sort(claims.begin(), claims.end(),
            [](const Claim& a, const Claim& b) { return a.start < b.start; });
  CollisionSweep sweep;
  return std::all_of(claims.begin(), claims.end(), [&](const Claim& c) { return sweep.Add(c); });
}

}  // namespace

bool DescriptorsClearlySound(ext2_filsys fs) {
  const uint32_t desc_size = EXT2_DESC_SIZE(fs->super);
  if (desc_size & (desc_size - 1))
    return false;
  switch (SweepInOrder(fs)) {
    case Verdict::kSound:
      return true;
    case Verdict::kUnsound:
      return false;
    case Verdict::kOutOfOrder:
      break;
  }
  return SortAndSweep(fs);
}

errcode_t CheckDescriptors(ext2_filsys fs) {
  return DescriptorsClearlySound(fs) ? 0 : ext2fs_check_desc(fs);
}

}  // namespace e2img
