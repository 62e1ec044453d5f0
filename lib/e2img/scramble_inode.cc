#include "e2img/scramble_inode.h"

#include <cstring>

#include "e2img/scramble_xattr.h"

namespace e2img {
namespace {

constexpr uint32_t kXattrMagic = 0xEA020000;
constexpr size_t kIBlockBytes = sizeof(ext2_inode::i_block);

// The in-body xattr area of a large inode, or an empty one.
XattrArea BodyXattrs(std::span<uint8_t> inode) {
  const size_t size = inode.size();
  if (size <= EXT2_GOOD_OLD_INODE_SIZE)
    return {};
  const auto* large = reinterpret_cast<const ext2_inode_large*>(inode.data());
  const size_t start = EXT2_GOOD_OLD_INODE_SIZE + large->i_extra_isize;
  if (large->i_extra_isize % 4 || start + 4 > size)
    return {};
  uint32_t magic = 0;
  std::memcpy(&magic, inode.data() + start, 4);
  if (magic != kXattrMagic)
    return {};
  std::span<uint8_t> entries = inode.subspan(start + 4);
  return XattrArea{entries, entries};
}

// Same-length replacement of a symlink target that may continue in system.data.
void ScrambleTarget(std::span<uint8_t> bytes, Prng& prng) {
  prng.Fill(bytes, kNameAlphabet);
}

}  // namespace

bool ScrambleChangesInode(std::span<const uint8_t> bytes, uint32_t ino, const EaHashChanges* ea) {
  if (bytes.size() < EXT2_GOOD_OLD_INODE_SIZE)
    return false;
  // Only read: the xattr walk takes mutable spans because ScrambleInode writes through them.
  const std::span<uint8_t> inode_bytes(const_cast<uint8_t*>(bytes.data()), bytes.size());
  auto* inode = reinterpret_cast<ext2_inode*>(inode_bytes.data());
  if (inode->i_mode == 0)
    return false;
  const uint32_t flags = inode->i_flags;
  const bool is_dir = LINUX_S_ISDIR(inode->i_mode);
  const bool is_link = LINUX_S_ISLNK(inode->i_mode);
  const bool inline_data = flags & EXT4_INLINE_DATA_FL;
  if ((is_dir || is_link) && inline_data)
    return true;
  if (is_link && !inline_data && ext2fs_is_fast_symlink(inode))
    return true;
  if ((flags & EXT4_EA_INODE_FL) && (!ea || ea->contains(ino)))
    return true;
  const XattrArea xattrs = BodyXattrs(inode_bytes);
  return !xattrs.entries.empty() && HasScrambledXattrs(xattrs);
}

void ScrambleInode(ext2_filsys fs, uint32_t ino, std::span<uint8_t> bytes, uint64_t seed,
                   const EaHashChanges& ea, ScrambleStats& stats, ScrambleMap* map) {
  if (!ScrambleChangesInode(bytes, ino, &ea))
    return;
  auto* inode = reinterpret_cast<ext2_inode*>(bytes.data());
  const uint32_t flags = inode->i_flags;
  const bool encrypted = flags & EXT4_ENCRYPT_FL;
  const bool is_dir = LINUX_S_ISDIR(inode->i_mode);
  const bool is_link = LINUX_S_ISLNK(inode->i_mode);
  const bool inline_data = flags & EXT4_INLINE_DATA_FL;
  const XattrArea xattrs = BodyXattrs(bytes);
  const bool fast_link = is_link && !inline_data && ext2fs_is_fast_symlink(inode);
  const auto ea_change = (flags & EXT4_EA_INODE_FL) ? ea.find(ino) : ea.end();
  const bool ea_value = ea_change != ea.end();
  const bool xattr_work = !xattrs.entries.empty() && HasScrambledXattrs(xattrs);

  auto* large = reinterpret_cast<ext2_inode_large*>(bytes.data());
  const bool csum_ok =
      ext2fs_has_feature_metadata_csum(fs->super) && ext2fs_inode_csum_verify(fs, ino, large);
  Prng prng(Mix(seed, ino));
  auto* i_block = reinterpret_cast<uint8_t*>(inode->i_block);
  const uint64_t size = EXT2_I_SIZE(inode);

  // Inline-data directories: 4 bytes of parent inode, then entries; more in system.data.
  DirNames names(Mix(seed, ino), DirHash{}, {});
  DirRewrite how;
  how.names = &names;
  how.ino = ino;
  how.map = map;
  how.root = ino == EXT2_ROOT_INO;
  how.stats = &stats;
  const bool inline_dir = is_dir && inline_data && !encrypted;
  const bool inline_link = is_link && inline_data && !encrypted;
  if (inline_dir)
    RewriteDirEntries(fs, std::span<uint8_t>(i_block + 4, kIBlockBytes - 4), how);
  if (inline_link)
    ScrambleTarget(std::span<uint8_t>(i_block, std::min<uint64_t>(size, kIBlockBytes)), prng);
  if (fast_link && !encrypted)
    ScrambleTarget(std::span<uint8_t>(i_block, std::min<uint64_t>(size, kIBlockBytes)), prng);

  if (xattr_work) {
    auto inline_value = [&](std::span<uint8_t> value) {
      if (inline_dir)
        RewriteDirEntries(fs, value, how);
      if (inline_link && size > kIBlockBytes)
        ScrambleTarget(value.first(std::min<uint64_t>(value.size(), size - kIBlockBytes)), prng);
    };
    ScrambleXattrs(fs, xattrs, prng, inline_value, ea);
  }
  if (ea_value && ext2fs_get_ea_inode_hash(inode) == ea_change->second.before)
    ext2fs_set_ea_inode_hash(inode, ea_change->second.after);
  if (csum_ok)
    ext2fs_inode_csum_set(fs, ino, large);
}

}  // namespace e2img
