#include "e2img/scramble_dir.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <string_view>

#include "e2img/scramble_map.h"
#include "util/endian.h"

namespace e2img {
namespace {

constexpr int kMaxIndexLevels = 3;

// Walks one index block's entries, recursing into lower index levels.
class HtreeWalker {
 public:
  // tolerant: a bad subtree is skipped instead of failing the walk, and a
  // child is an index node when it looks like one, whatever the depth says.
  HtreeWalker(ext2_filsys fs, uint64_t dir_blocks, const DirBlockReader& read, HtreeLayout& out,
              bool tolerant)
      : fs_(fs),
        dir_blocks_(dir_blocks),
        read_(read),
        out_(out),
        buf_(fs->blocksize),
        tolerant_(tolerant) {}

  // entries: the countlimit+entries area of an index block at `levels` above the leaves.
  bool Walk(std::span<const uint8_t> entries, int levels, LeafRange range) {
    if (entries.size() < 8)
      return false;
    const uint16_t limit = util::LoadLE16(entries.data());
    const uint16_t count = util::LoadLE16(entries.data() + 2);
    if (count == 0 || count > limit || static_cast<size_t>(limit) * 8 > entries.size())
      return false;
    // Copy: recursion reuses the read buffer.
    std::vector<uint8_t> mine(entries.begin(), entries.begin() + count * 8);
    for (uint16_t i = 0; i < count; ++i) {
      const uint8_t* e = mine.data() + i * 8;
      const uint64_t block = util::LoadLE32(e + 4) & 0x0fffffff;
      LeafRange child = range;
      if (i > 0)
        child.lo = util::LoadLE32(e) & ~1u;
      if (i + 1 < count) {
        const uint32_t next = util::LoadLE32(e + 8);
        child.hi = next & ~1u;
        child.hi_inclusive = (next & 1) != 0 || child.hi <= child.lo;
      }
      const bool known = out_.leaf_of.count(block) ||
                         std::find(out_.index_blocks.begin(), out_.index_blocks.end(), block) !=
                             out_.index_blocks.end();
      if (block >= dir_blocks_ || known) {
        if (tolerant_)
          continue;
        return false;
      }
      bool leaf = levels == 0;
      if (tolerant_)
        leaf = levels == 0 || !read_(block, buf_) || !LooksLikeIndexNode(fs_, buf_);
      if (leaf) {
        out_.leaf_of.emplace(block, static_cast<int>(out_.leaves.size()));
        out_.leaves.push_back(child);
        continue;
      }
      if (!tolerant_ && !read_(block, buf_))
        return false;
      // dx_node: a fake entry (inode 0, rec_len = block) then countlimit.
      out_.index_blocks.push_back(block);
      if (!Walk(std::span<const uint8_t>(buf_).subspan(8), levels - 1, child) && !tolerant_)
        return false;
    }
    return true;
  }

 private:
  ext2_filsys fs_;
  uint64_t dir_blocks_;
  const DirBlockReader& read_;
  HtreeLayout& out_;
  std::vector<uint8_t> buf_;
  bool tolerant_;
};

bool IsDotName(std::string_view name) {
  return name == "." || name == "..";
}

}  // namespace

bool LooksLikeIndexNode(ext2_filsys fs, std::span<const uint8_t> block) {
  // libext2fs takes the entry by non-const pointer but only reads it.
  auto* first = reinterpret_cast<ext2_dir_entry*>(const_cast<uint8_t*>(block.data()));
  unsigned int rec_len = 0;
  if (block.size() < 12 || first->inode != 0 || ext2fs_dirent_name_len(first) != 0 ||
      ext2fs_get_rec_len(fs, first, &rec_len) != 0 || rec_len != fs->blocksize)
    return false;
  // The limit is always the most entries that fit (before the dx_tail with
  // metadata_csum): an emptied leaf holding stale names is not taken for one.
  const size_t tail = ext2fs_has_feature_metadata_csum(fs->super) ? 8 : 0;
  return util::LoadLE16(block.data() + 8) == (block.size() - 8 - tail) / 8;
}

HtreeLayout ReadHtreeLayout(ext2_filsys fs, uint32_t dir_flags, uint64_t dir_blocks,
                            const DirBlockReader& read) {
  HtreeLayout layout;
  std::vector<uint8_t> root(fs->blocksize);
  if (dir_blocks < 2 || !read(0, root))
    return layout;
  // dx_root: '.' (12 bytes), '..' (rec_len to the end), then dx_root_info.
  constexpr size_t kInfo = 24;
  const uint8_t hash_version = root[kInfo + 4];
  const uint8_t info_length = root[kInfo + 5];
  const uint8_t levels = root[kInfo + 6];
  if (info_length != 8 || hash_version > EXT2_HASH_SIPHASH)
    return layout;
  layout.hash.version = hash_version;
  if (hash_version <= EXT2_HASH_TEA && (fs->super->s_flags & EXT2_FLAGS_UNSIGNED_HASH))
    layout.hash.version += 3;
  if (dir_flags & EXT4_CASEFOLD_FL) {
    layout.hash.charset = fs->encoding;
    layout.hash.flags = EXT4_CASEFOLD_FL;
  }
  layout.hash.seed = fs->super->s_hash_seed;
  layout.index_blocks.push_back(0);
  const std::span<const uint8_t> entries = std::span<const uint8_t>(root).subspan(kInfo + 8);
  if (levels < kMaxIndexLevels) {
    HtreeWalker walker(fs, dir_blocks, read, layout, /*tolerant=*/false);
    layout.valid = walker.Walk(entries, levels, LeafRange{});
  }
  // A damaged tree: e2fsck still checks the leaves it reaches against the
  // hash ranges above them, so as much of the tree as can be read is used,
  // each block taken for what it looks like (a node or a leaf).
  if (!layout.valid) {
    layout.leaves.clear();
    layout.leaf_of.clear();
    layout.index_blocks.resize(1);
    HtreeWalker walker(fs, dir_blocks, read, layout, /*tolerant=*/true);
    walker.Walk(entries, kMaxIndexLevels - 1, LeafRange{});
    layout.damaged = true;
    layout.valid = !layout.leaves.empty();
  }
  if (!layout.valid) {
    layout.leaves.clear();
    layout.leaf_of.clear();
  }
  return layout;
}

void ScrambleStats::Add(const ScrambleStats& other) {
  names += other.names;
  names_kept += other.names_kept;
  bad_blocks += other.bad_blocks;
  for (const ScrambleLeft& left : other.kept)
    if (kept.size() < kListed)
      kept.push_back(left);
  for (const ScrambleLeft& left : other.damaged)
    if (damaged.size() < kListed)
      damaged.push_back(left);
}

namespace {

// One entry's header, if it is a plausible one within `entries` at `at`.
struct EntryHeader {
  uint32_t inode = 0;
  unsigned rec_len = 0;
  unsigned name_len = 0;
};
bool ReadEntry(ext2_filsys fs, std::span<uint8_t> entries, size_t at, EntryHeader* out) {
  if (at + 8 > entries.size())
    return false;
  auto* dirent = reinterpret_cast<ext2_dir_entry*>(entries.data() + at);
  unsigned int rec_len = 0;
  if (ext2fs_get_rec_len(fs, dirent, &rec_len) || rec_len < 8 || rec_len % 4 ||
      rec_len > entries.size() - at)
    return false;
  const unsigned name_len = ext2fs_dirent_name_len(dirent);
  if (name_len + 8u > rec_len)
    return false;
  *out = EntryHeader{dirent->inode, rec_len, name_len};
  return true;
}

// Whether bytes met after damage look like an entry: a header that fits, a
// name, and an inode number the filesystem has (random bytes rarely do).
bool PlausibleEntry(ext2_filsys fs, std::span<uint8_t> entries, size_t at, EntryHeader* out) {
  return ReadEntry(fs, entries, at, out) && out->name_len > 0 &&
         out->inode <= fs->super->s_inodes_count;
}

// Replaces the name of the entry at `at` (Choose for live entries).
void ReplaceName(const EntryHeader& entry, char* name, const DirRewrite& how) {
  const std::string_view old(name, entry.name_len);
  if (!how.names || IsDotName(old) || (how.root && old == "lost+found"))
    return;
  std::array<char, 256> saved;  // Choose writes over the old name
  std::copy(old.begin(), old.end(), saved.begin());
  const bool replaced = how.names->Choose(std::string_view(saved.data(), entry.name_len), how.leaf,
                                          std::span<char>(name, entry.name_len));
  if (how.map)
    how.map->Add(how.ino, std::string_view(saved.data(), entry.name_len),
                 std::string_view(name, entry.name_len));
  if (replaced) {
    if (how.stats)
      ++how.stats->names;
    return;
  }
  if (!how.stats)
    return;
  ++how.stats->names_kept;
  if (how.stats->kept.size() < ScrambleStats::kListed)
    how.stats->kept.push_back(ScrambleLeft{how.ino, how.block, std::string(old), 0});
}

// After a malformed entry at `from`: every 4-byte step that holds a
// plausible entry gets its name replaced (its header and the bytes around
// it stay, so that e2fsck salvages the same entries); stretches that hold
// none are reported.
void ScanDamaged(ext2_filsys fs, std::span<uint8_t> entries, size_t from, const DirRewrite& how) {
  bool reported = false;
  for (size_t at = from; at + 8 <= entries.size();) {
    EntryHeader entry;
    if (!PlausibleEntry(fs, entries, at, &entry)) {
      if (!reported && how.stats) {
        reported = true;
        ++how.stats->bad_blocks;
        if (how.stats->damaged.size() < ScrambleStats::kListed)
          how.stats->damaged.push_back(
              ScrambleLeft{how.ino, how.block, {}, static_cast<uint32_t>(at)});
      }
      at += 4;
      continue;
    }
    char* name = reinterpret_cast<char*>(entries.data() + at + 8);
    if (entry.inode == 0 && how.names) {
      Prng prng(Fingerprint(std::string_view(name, entry.name_len), at));
      prng.Fill(std::span<char>(name, entry.name_len), kNameAlphabet);
    } else if (entry.inode != 0) {
      ReplaceName(entry, name, how);
    }
    at += 8 + ((entry.name_len + 3) & ~3u);
  }
}

}  // namespace

bool RewriteDirEntries(ext2_filsys fs, std::span<uint8_t> entries, const DirRewrite& how) {
  size_t at = 0;
  while (at + 8 <= entries.size()) {
    EntryHeader entry;
    if (!ReadEntry(fs, entries, at, &entry)) {
      ScanDamaged(fs, entries, at, how);
      return false;
    }
    char* name = reinterpret_cast<char*>(entries.data() + at + 8);
    if (how.zero_slack)
      std::memset(name + entry.name_len, 0, entry.rec_len - 8 - entry.name_len);
    if (entry.inode == 0)
      std::memset(name, 0, entry.name_len);  // a deleted entry: its name is not needed
    else if (entry.name_len > 0)
      ReplaceName(entry, name, how);
    at += entry.rec_len;
  }
  return true;
}

bool HasDirentTail(std::span<const uint8_t> block) {
  constexpr size_t kTail = sizeof(ext2_dir_entry_tail);
  if (block.size() < kTail)
    return false;
  const uint8_t* t = block.data() + block.size() - kTail;
  return util::LoadLE32(t) == 0 && util::LoadLE16(t + 4) == kTail &&
         util::LoadLE16(t + 6) == EXT2_DIR_NAME_LEN_CSUM;
}

bool DirentChainReachesTail(std::span<const uint8_t> block) {
  if (!HasDirentTail(block))
    return false;
  const size_t top = block.size() - sizeof(ext2_dir_entry_tail);
  size_t at = 0;
  while (at < top) {
    const unsigned rec_len =
        util::LoadLE16(block.data() + at + 4);  // as stored: 0 is not 65536 here
    if (rec_len < 8 || rec_len % 4)
      return false;
    at += rec_len;
  }
  return at == top;
}

uint32_t DirentChecksum(ext2_filsys fs, uint32_t ino, uint32_t generation,
                        std::span<const uint8_t> entries) {
  uint8_t ino_gen[8];
  util::StoreLE32(ino_gen, ino);
  util::StoreLE32(ino_gen + 4, generation);
  const uint32_t crc = ext2fs_crc32c_le(fs->csum_seed, ino_gen, sizeof(ino_gen));
  return ext2fs_crc32c_le(crc, entries.data(), static_cast<unsigned>(entries.size()));
}

void RewriteDirBlock(ext2_filsys fs, uint32_t ino, std::span<uint8_t> block,
                     const DirRewrite& how) {
  size_t entries_end = block.size();
  bool had_good_csum = false;
  uint8_t* checksum = nullptr;
  if (ext2fs_has_feature_metadata_csum(fs->super) && HasDirentTail(block)) {
    entries_end -= sizeof(ext2_dir_entry_tail);
    checksum = block.data() + entries_end + offsetof(ext2_dir_entry_tail, det_checksum);
    had_good_csum = DirentChainReachesTail(block) &&
                    util::LoadLE32(checksum) ==
                        DirentChecksum(fs, ino, how.generation, block.first(entries_end));
  }
  RewriteDirEntries(fs, block.first(entries_end), how);
  if (had_good_csum)
    util::StoreLE32(checksum, DirentChecksum(fs, ino, how.generation, block.first(entries_end)));
}

}  // namespace e2img
