#include "e2img/scramble.h"

#include <ext2fs/ext2_ext_attr.h>

#include <algorithm>
#include <cstring>

#include "e2img/scramble_inode.h"
#include "e2img/scramble_journal.h"
#include "e2img/scramble_xattr.h"
#include "util/endian.h"
#include "util/error.h"
#include "util/escape.h"

namespace e2img {
namespace {

// Collects a directory's logical -> physical block map.
struct DirBlockList {
  std::vector<std::pair<uint64_t, uint64_t>> blocks;  // (logical, physical)
  uint64_t blocks_count = 0;
};

int CollectDirBlock(ext2_filsys, blk64_t* block_nr, e2_blkcnt_t blockcnt, blk64_t, int,
                    void* priv) {
  auto* list = static_cast<DirBlockList*>(priv);
  if (blockcnt >= 0 && *block_nr < list->blocks_count)
    list->blocks.emplace_back(static_cast<uint64_t>(blockcnt), *block_nr);
  return 0;
}

// About how many names a directory of this many blocks holds: full blocks
// of 16-byte entries (names of 5 to 8 characters); only a reservation.
size_t ExpectedNames(uint32_t blocks, uint32_t block_size) {
  return static_cast<size_t>(blocks) * block_size / 16;
}

}  // namespace

Scrambler::Scrambler(const Filesystem& fs, uint64_t seed,
                     std::function<void(const std::string&)> warn)
    : fs_(fs.get()), seed_(seed), warn_(std::move(warn)) {
  const uint32_t ipg = fs_->super->s_inodes_per_group;
  for (dgrp_t g = 0; g < fs_->group_desc_count; ++g) {
    const uint64_t loc = ext2fs_inode_table_loc(fs_, g);
    if (loc)
      itables_.push_back({loc, fs_->inode_blocks_per_group, g * ipg + 1});
  }
  std::sort(itables_.begin(), itables_.end(),
            [](const ItableRun& a, const ItableRun& b) { return a.start < b.start; });
}

void Scrambler::ObserveInode(uint32_t ino, const ext2_inode& inode_in) {
  auto* inode = const_cast<ext2_inode*>(&inode_in);  // libext2fs takes non-const pointers
  const uint64_t acl = ext2fs_file_acl_block(fs_, inode);
  if (acl && acl < ext2fs_blocks_count(fs_->super))
    roles_.emplace(acl, BlockRole{BlockRole::kXattr, DirNames::kNoLeaf, ino, 0});
  if (inode->i_flags & EXT4_INLINE_DATA_FL)
    return;  // rewritten with the inode table
  if (!ext2fs_inode_has_valid_blocks2(fs_, inode))
    return;
  if (inode->i_flags & EXT4_EA_INODE_FL) {
    ea_inodes_.emplace_back(ino, *inode);
    return;
  }
  if (LINUX_S_ISDIR(inode->i_mode)) {
    ScrambleDir& dir = dirs_[ino];
    dir.flags = inode->i_flags;
    dir.generation = inode->i_generation;
  } else if (LINUX_S_ISLNK(inode->i_mode) && !(inode->i_flags & EXT4_ENCRYPT_FL)) {
    slow_links_.emplace_back(ino, *inode);
  }
}

void Scrambler::Plan(BlockSet& copied) {
  std::vector<uint32_t> dir_inos;
  dir_inos.reserve(dirs_.size());
  for (const auto& [ino, dir] : dirs_)
    dir_inos.push_back(ino);
  std::sort(dir_inos.begin(), dir_inos.end());
  for (uint32_t ino : dir_inos)
    PlanDirectory(ino);
  for (auto& [ino, inode] : slow_links_) {
    blk64_t phys = 0;
    if (ext2fs_bmap2(fs_, ino, &inode, nullptr, 0, 0, nullptr, &phys) || !phys ||
        phys >= ext2fs_blocks_count(fs_->super))
      continue;
    roles_.emplace(phys, BlockRole{BlockRole::kSymlink, DirNames::kNoLeaf, ino,
                                   static_cast<uint32_t>(EXT2_I_SIZE(&inode))});
  }
  slow_links_.clear();
  slow_links_.shrink_to_fit();
  for (auto& [ino, inode] : ea_inodes_)
    PlanEaInode(ino, inode, copied);
  ea_inodes_.clear();
  PlanJournal();
}

void Scrambler::PlanJournal() {
  const uint32_t ino = fs_->super->s_journal_inum;
  if (!ext2fs_has_feature_journal(fs_->super) || !ino || fs_->super->s_journal_dev)
    return;
  DirBlockList list;
  list.blocks_count = ext2fs_blocks_count(fs_->super);
  std::vector<char> scratch(fs_->blocksize * 3);
  if (ext2fs_block_iterate3(fs_, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY, scratch.data(),
                            CollectDirBlock, &list) ||
      list.blocks.empty())
    return;
  auto read = [&](uint64_t block, std::span<uint8_t> out) {
    return io_channel_read_blk64(fs_->io, block, 1, out.data()) == 0;
  };
  ScrambleStats stats;
  auto rewrite = [&](uint64_t target, std::span<uint8_t> data) {
    RewriteCopy(target, data, stats);
  };
  JournalPlan plan = e2img::PlanJournal(fs_->blocksize, list.blocks, read, rewrite);
  stats_.Add(stats);
  if (!plan.problem.empty())
    warn_(plan.problem);
  for (uint64_t block : plan.zeroed)
    roles_.emplace(block, BlockRole{BlockRole::kZero, DirNames::kNoLeaf, ino, 0});
  for (auto& [block, bytes] : plan.rewritten) {
    roles_.emplace(block, BlockRole{BlockRole::kJournal, DirNames::kNoLeaf, ino, 0});
    journal_blocks_[block] = std::move(bytes);
  }
}

namespace {

// Whether a block of unknown role reads as directory entries: a rec_len
// chain from its start to its end, names within their entries.
bool LooksLikeDirBlock(std::span<const uint8_t> data) {
  size_t at = 0;
  bool named = false;
  while (at + 8 <= data.size()) {
    const unsigned rec_len = util::LoadLE16(data.data() + at + 4);
    const unsigned name_len = data[at + 6];
    if (rec_len < 8 || rec_len % 4 || at + rec_len > data.size() || name_len + 8u > rec_len)
      return false;
    named = named || (name_len > 0 && util::LoadLE32(data.data() + at) != 0);
    at += rec_len;
  }
  return at == data.size() && named;
}

}  // namespace

void Scrambler::RewriteCopy(uint64_t target, std::span<uint8_t> data, ScrambleStats& stats) {
  if (const ItableRun* run = ItableOf(target)) {
    RewriteItableBlock(*run, target, data, stats);
    return;
  }
  auto it = roles_.find(target);
  if (it == roles_.end()) {
    // A block no live inode owns (yet): by its content.
    auto* header = reinterpret_cast<const ext2_ext_attr_header*>(data.data());
    if (header->h_magic == EXT2_EXT_ATTR_MAGIC) {
      Prng prng(Mix(seed_, target ^ 0x5a5a5a5a00000000ull));
      ScrambleXattrBlock(fs_, target, data, prng, ea_changes_);
    } else if (LooksLikeDirBlock(data)) {
      DirNames names(Mix(seed_, target ^ 0xd1d1d1d100000000ull), DirHash{}, {});
      DirRewrite how;
      how.names = &names;
      how.block = target;
      how.stats = &stats;
      RewriteDirEntries(fs_, data, how);
    }
    return;
  }
  const BlockRole& role = it->second;
  // The copy may be older than the block: an index node then, or a leaf.
  const bool dir = role.kind == BlockRole::kDirLinear || role.kind == BlockRole::kDirLeaf ||
                   role.kind == BlockRole::kDirIndex;
  const bool index_copy = role.kind == BlockRole::kDirIndex && role.leaf == 0
                              ? data.size() > 32 && data[29] == 8  // dx_root info length
                              : LooksLikeIndexNode(fs_, data);
  if (dir && index_copy) {
    BlockRole index = role;
    index.leaf = role.kind == BlockRole::kDirIndex ? role.leaf : 1;
    ClearIndexSlack(index, data);
    return;
  }
  switch (role.kind) {
    case BlockRole::kDirLinear:
    case BlockRole::kDirLeaf:
      RewriteDirBlock(role, target, data, stats, /*copy=*/true);
      break;
    case BlockRole::kDirIndex: {  // an index block that was a directory block then
      BlockRole linear = role;
      linear.kind = BlockRole::kDirLinear;
      linear.leaf = DirNames::kNoLeaf;
      RewriteDirBlock(linear, target, data, stats, /*copy=*/true);
      break;
    }
    case BlockRole::kXattr:
      RewriteXattrBlock(target, data);
      break;
    case BlockRole::kSymlink:
      RewriteSymlinkBlock(role, target, data);
      break;
    case BlockRole::kEaValue: {
      auto size = ea_sizes_.find(role.ino);
      FillEaValueBlock(seed_, role.ino, static_cast<uint64_t>(role.leaf),
                       size == ea_sizes_.end() ? 0 : size->second, data);
      break;
    }
    case BlockRole::kZero:
    case BlockRole::kJournal:
      break;
  }
}

void Scrambler::PlanEaInode(uint32_t ino, ext2_inode& inode, BlockSet& copied) {
  // Only values the image carries (-a) are rewritten; then the stored value
  // hash and the entries that point to the inode change with them.
  DirBlockList list;
  list.blocks_count = ext2fs_blocks_count(fs_->super);
  std::vector<char> scratch(fs_->blocksize * 3);
  if (ext2fs_block_iterate3(fs_, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY, scratch.data(),
                            CollectDirBlock, &list))
    return;
  const uint64_t size = EXT2_I_SIZE(&inode);
  if (size > (64u << 20))
    return;
  bool any = false;
  for (const auto& [logical, phys] : list.blocks) {
    if (!copied.Contains(phys))
      continue;
    any = true;
    roles_.emplace(phys, BlockRole{BlockRole::kEaValue, static_cast<int32_t>(logical), ino, 0});
  }
  if (!any)
    return;
  const uint32_t bs = fs_->blocksize;
  std::vector<uint8_t> value((size + bs - 1) / bs * bs);
  for (uint64_t logical = 0; logical * bs < value.size(); ++logical)
    FillEaValueBlock(seed_, ino, logical, size,
                     std::span<uint8_t>(value).subspan(logical * bs, bs));
  ea_sizes_[ino] = size;
  ea_changes_[ino] = EaHashChange{ext2fs_get_ea_inode_hash(&inode),
                                  ext2fs_crc32c_le(fs_->csum_seed, value.data(), size)};
}

void Scrambler::PlanDirectory(uint32_t ino) {
  ScrambleDir& dir = dirs_[ino];
  DirBlockList list;
  list.blocks_count = ext2fs_blocks_count(fs_->super);
  std::vector<char> scratch(fs_->blocksize * 3);
  if (ext2fs_block_iterate3(fs_, ino, BLOCK_FLAG_READ_ONLY | BLOCK_FLAG_DATA_ONLY, scratch.data(),
                            CollectDirBlock, &list))
    ++planning_problems_;  // keep what was listed
  HtreeLayout layout;
  // Encrypted directories keep their names, but their index blocks must still
  // be known as such: read as entries, the root's '..' spans the index.
  std::unordered_map<uint64_t, uint64_t> physical;
  auto read = [&](uint64_t logical, std::span<uint8_t> out) {
    auto it = physical.find(logical);
    return it != physical.end() && io_channel_read_blk64(fs_->io, it->second, 1, out.data()) == 0;
  };
  if (dir.flags & EXT2_INDEX_FL) {
    uint64_t logical_end = 0;
    for (const auto& [logical, phys] : list.blocks) {
      physical.emplace(logical, phys);
      logical_end = std::max(logical_end, logical + 1);
    }
    layout = ReadHtreeLayout(fs_, dir.flags, logical_end, read);
  }
  std::vector<uint8_t> block(fs_->blocksize);
  for (const auto& [logical, phys] : list.blocks) {
    BlockRole role{BlockRole::kDirLinear, DirNames::kNoLeaf, ino, 0};
    const bool index = layout.valid &&
                       std::find(layout.index_blocks.begin(), layout.index_blocks.end(), logical) !=
                           layout.index_blocks.end();
    if ((dir.flags & EXT2_INDEX_FL) && !index && (!layout.valid || layout.damaged) &&
        (logical == 0 || (read(logical, block) && LooksLikeIndexNode(fs_, block)))) {
      // A damaged index: what looks like index blocks is kept as it is, for
      // e2fsck to find the same damage.
      role.kind = BlockRole::kDirIndex;
      role.leaf = logical == 0 ? 0 : 1;
    } else if (layout.valid) {
      if (std::find(layout.index_blocks.begin(), layout.index_blocks.end(), logical) !=
          layout.index_blocks.end()) {
        role.kind = BlockRole::kDirIndex;
        role.leaf = logical == 0 ? 0 : 1;  // root or node: where the count/limit sit
      } else if (auto it = layout.leaf_of.find(logical); it != layout.leaf_of.end()) {
        role.kind = BlockRole::kDirLeaf;
        role.leaf = it->second;
      }
    }
    if (roles_.emplace(phys, role).second && role.kind != BlockRole::kDirIndex)
      ++dir.blocks_left;
  }
  if (layout.valid) {
    dir.leaves = std::move(layout.leaves);
    dir.hash = layout.hash;
  }
  if (dir.blocks_left == 0)
    dirs_.erase(ino);
}

const Scrambler::ItableRun* Scrambler::ItableOf(uint64_t block) const {
  auto it = std::upper_bound(itables_.begin(), itables_.end(), block,
                             [](uint64_t b, const ItableRun& r) { return b < r.start; });
  if (it == itables_.begin())
    return nullptr;
  --it;
  return block < it->start + it->count ? &*it : nullptr;
}

bool Scrambler::MayChangeUnplanned(uint64_t block, std::span<const uint8_t> data) const {
  const ItableRun* run = ItableOf(block);
  bool changes = false;
  if (run)
    ForEachInode(*run, block, data, [&](uint32_t ino, std::span<const uint8_t> inode) {
      changes = changes || ScrambleChangesInode(inode, ino, nullptr);
    });
  return changes;
}

BlockSet Scrambler::ZeroedBlocks() const {
  return BlocksWhere([](const BlockRole& role) { return role.kind == BlockRole::kZero; });
}

BlockSet Scrambler::RoleBlocks() const {
  return BlocksWhere([](const BlockRole&) { return true; });
}

void Scrambler::Transform(uint64_t first_block, std::span<uint8_t> data) {
  TransformLane(first_block, data, 0, 1, stats_);
}

unsigned Scrambler::LaneOf(uint64_t block, const BlockRole* role, unsigned lanes) {
  if (role && (role->kind == BlockRole::kDirLinear || role->kind == BlockRole::kDirLeaf ||
               role->kind == BlockRole::kDirIndex))
    return role->ino % lanes;  // a directory's names are chosen in block order
  return static_cast<unsigned>(block % lanes);
}

void Scrambler::TransformLane(uint64_t first_block, std::span<uint8_t> data, unsigned lane,
                              unsigned lanes, ScrambleStats& stats) {
  const uint32_t bs = fs_->blocksize;
  for (uint64_t i = 0; i * bs < data.size(); ++i) {
    const uint64_t block = first_block + i;
    // Inode table blocks first: a role given to one (damage) is not its own.
    const ItableRun* run = ItableOf(block);
    const BlockRole* found = nullptr;
    if (!run) {
      auto it = roles_.find(block);
      if (it == roles_.end())
        continue;
      found = &it->second;
    }
    if (lanes > 1 && LaneOf(block, found, lanes) != lane)
      continue;
    std::span<uint8_t> one = data.subspan(i * bs, bs);
    if (run) {
      RewriteItableBlock(*run, block, one, stats);
      continue;
    }
    const BlockRole& role = *found;
    switch (role.kind) {
      case BlockRole::kDirLinear:
      case BlockRole::kDirLeaf:
        RewriteDirBlock(role, block, one, stats);
        break;
      case BlockRole::kDirIndex:
        ClearIndexSlack(role, one);
        break;
      case BlockRole::kXattr:
        RewriteXattrBlock(block, one);
        break;
      case BlockRole::kSymlink:
        RewriteSymlinkBlock(role, block, one);
        break;
      case BlockRole::kZero:
        std::fill(one.begin(), one.end(), 0);
        break;
      case BlockRole::kJournal: {
        const std::vector<uint8_t>& bytes = journal_blocks_.at(block);
        std::copy(bytes.begin(), bytes.end(), one.begin());
        break;
      }
      case BlockRole::kEaValue: {
        auto size = ea_sizes_.find(role.ino);
        FillEaValueBlock(seed_, role.ino, static_cast<uint64_t>(role.leaf),
                         size == ea_sizes_.end() ? 0 : size->second, one);
        break;
      }
    }
  }
}

void Scrambler::AddStats(const ScrambleStats& lane) {
  stats_.Add(lane);
}

void Scrambler::RewriteItableBlock(const ItableRun& run, uint64_t block, std::span<uint8_t> data,
                                   ScrambleStats& stats) {
  ForEachInode(run, block, data, [&](uint32_t ino, std::span<uint8_t> inode) {
    ScrambleInode(fs_, ino, inode, seed_, ea_changes_, stats, map_);
  });
}

void Scrambler::RewriteDirBlock(const BlockRole& role, uint64_t block, std::span<uint8_t> data,
                                ScrambleStats& stats, bool copy) {
  auto it = dirs_.find(role.ino);
  if (it == dirs_.end())
    return;
  ScrambleDir& dir = it->second;
  if (dir.blocks_left == 0)
    return;  // done with: its state is freed
  const bool encrypted = dir.flags & EXT4_ENCRYPT_FL;
  if (!dir.names && !encrypted)
    dir.names = std::make_unique<DirNames>(Mix(seed_, role.ino), dir.hash, std::move(dir.leaves),
                                           ExpectedNames(dir.blocks_left, fs_->blocksize));
  DirRewrite how;
  how.names = dir.names.get();
  how.ino = role.ino;
  how.block = block;
  how.map = map_;
  how.leaf = role.leaf;
  how.generation = dir.generation;
  how.root = role.ino == EXT2_ROOT_INO;
  how.zero_slack = !(encrypted && (dir.flags & EXT4_CASEFOLD_FL));
  how.stats = &stats;
  e2img::RewriteDirBlock(fs_, role.ino, data, how);
  if (copy)
    return;
  if (dir.names)
    dir.names->FinishLeaf(role.leaf);
  // The names are freed; the entry stays (other lanes may be looking others up).
  if (--dir.blocks_left == 0) {
    dir.names.reset();
    dir.leaves = {};
  }
}

void Scrambler::ClearIndexSlack(const BlockRole& role, std::span<uint8_t> data) {
  // Unused index entries (count..limit) may still hold bytes of the entries
  // the block had before it became an index; the checksum does not cover them.
  const size_t at = role.leaf == 0 ? 32 : 8;
  if (data.size() < at + 4)
    return;
  const uint16_t limit = util::LoadLE16(data.data() + at);
  const uint16_t count = util::LoadLE16(data.data() + at + 2);
  const size_t end = std::min<size_t>(at + static_cast<size_t>(limit) * 8, data.size());
  const size_t from = at + static_cast<size_t>(count) * 8;
  // count includes the count/limit entry itself: a damaged count of 0 leaves it be.
  if (count >= 1 && count <= limit && from < end)
    std::memset(data.data() + from, 0, end - from);
}

// The same new names whether the block is copied live or from the journal:
// the generator is seeded by the block's number.
void Scrambler::RewriteXattrBlock(uint64_t block, std::span<uint8_t> data) {
  Prng prng(Mix(seed_, block ^ 0x5a5a5a5a00000000ull));
  ScrambleXattrBlock(fs_, block, data, prng, ea_changes_);
}

void Scrambler::RewriteSymlinkBlock(const BlockRole& role, uint64_t block,
                                    std::span<uint8_t> data) {
  if (role.length == 0 || role.length >= data.size())
    return;  // not a valid target
  Prng prng(Mix(seed_, block ^ 0xa5a5a5a500000000ull));
  prng.Fill(data.first(role.length), kNameAlphabet);
  std::memset(data.data() + role.length, 0, data.size() - role.length);
}

namespace {

// "directory inode N, entry 'name'" for each listed name, and how many more.
std::string KeptList(const ScrambleStats& stats) {
  std::string s;
  for (const ScrambleLeft& left : stats.kept)
    s += (s.empty() ? "" : ", ") + std::string("directory inode ") + std::to_string(left.dir) +
         ", entry '" + util::EscapeName(left.name) + "'";
  if (stats.names_kept > stats.kept.size())
    s += " and " + std::to_string(stats.names_kept - stats.kept.size()) + " more";
  return s;
}

std::string DamagedList(const ScrambleStats& stats) {
  std::string s;
  for (const ScrambleLeft& left : stats.damaged)
    s += (s.empty() ? "" : ", ") + std::string("directory inode ") + std::to_string(left.dir) +
         (left.block ? " block " + std::to_string(left.block) : std::string(" (inline data)")) +
         " from byte " + std::to_string(left.offset);
  if (stats.bad_blocks > stats.damaged.size())
    s += " and " + std::to_string(stats.bad_blocks - stats.damaged.size()) + " more";
  return s;
}

constexpr const char* kNoFit =
    "no other name of the same length was free or hashed into the same hash-tree leaf";

}  // namespace

std::string Scrambler::Failure() const {
  if (!stats_.names_kept || keep_names_)
    return {};
  return "-s would leave " + std::to_string(stats_.names_kept) + " name(s) as they were (" +
         kNoFit + "): " + KeptList(stats_) +
         "; nothing was written (--scramble-keep-names writes the image with them)";
}

void Scrambler::Conclude() {
  if (const std::string failure = Failure(); !failure.empty())
    throw util::Error(failure);
  if (map_)
    map_->Commit();
}

std::string Scrambler::Summary() const {
  std::string s;
  if (stats_.names_kept && keep_names_)
    s += std::to_string(stats_.names_kept) + " name(s) kept as they were (--scramble-keep-names; " +
         kNoFit + "): " + KeptList(stats_);
  if (stats_.bad_blocks) {
    if (!s.empty())
      s += "; ";
    s += std::to_string(stats_.bad_blocks) +
         " directory block(s) hold bytes that parse as no entry, copied as they were (any name "
         "in them stays readable; the entries found after them were scrambled): " +
         DamagedList(stats_);
  }
  return s;
}

ScramblingSink::ScramblingSink(Scrambler& scrambler, ImageSink& inner, unsigned lanes)
    : scrambler_(scrambler),
      lane_stats_(std::max(1u, lanes)),
      lanes_(inner, lanes, [this](uint64_t first_block, std::span<uint8_t> data, unsigned lane) {
        scrambler_.TransformLane(first_block, data, lane, static_cast<unsigned>(lane_stats_.size()),
                                 lane_stats_[lane]);
      }) {}

void ScramblingSink::Finish() {
  lanes_.Finish();
  for (const ScrambleStats& stats : lane_stats_)
    scrambler_.AddStats(stats);
  lane_stats_.assign(lane_stats_.size(), ScrambleStats{});
}

}  // namespace e2img
