// Inode side of the scrambler (-s): rewrites the inodes of an inode table
// block as it passes by: fast symlink targets, inline-data directories and
// symlinks (in i_block and in the system.data xattr), and the xattrs in the
// inode body; the inode checksum is recomputed when it was right.
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <span>

#include "e2img/scramble_dir.h"
#include "e2img/scramble_xattr.h"

namespace e2img {

// Does ScrambleInode change this inode (on-disk bytes)? ea: the ea_inodes
// whose stored hash changes, or nullptr before the plan knows them (every
// ea_inode counts then). Reads the bytes only: safe on any thread.
bool ScrambleChangesInode(std::span<const uint8_t> inode, uint32_t ino, const EaHashChanges* ea);

// Rewrites one inode (inode_size bytes, on-disk layout) in place.
// ea: the ea_inodes whose values are scrambled (their stored hash changes).
// map: where the names of inline-data directories and their replacements go.
void ScrambleInode(ext2_filsys fs, uint32_t ino, std::span<uint8_t> inode, uint64_t seed,
                   const EaHashChanges& ea, ScrambleStats& stats, ScrambleMap* map = nullptr);

}  // namespace e2img
