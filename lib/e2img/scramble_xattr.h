// Extended attributes side of the scrambler (-s): the values of user.* and
// trusted.* attributes and the names of user.* ones are replaced (same
// lengths), entry hashes follow; other namespaces (security, system, ACLs,
// encryption context, inline data) keep their bytes. Works on the entries
// in an inode body and in an xattr block.
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>

#include "e2img/scramble_names.h"

namespace e2img {

// One list of xattr entries and the area its values live in.
struct XattrArea {
  std::span<uint8_t> entries;  // from the first entry to the end of the area
  std::span<uint8_t> values;   // e_value_offs counts from values.data()
};

// The stored value hash of an ea_inode whose value the image carries, before
// and after scrambling (entries that point to it follow the change).
struct EaHashChange {
  uint32_t before = 0;
  uint32_t after = 0;
};
using EaHashChanges = std::unordered_map<uint32_t, EaHashChange>;

// Writes block `logical` of the scrambled value (value_size bytes in all) of
// ea_inode `ino`: alphabet characters, zeros past the value's end.
void FillEaValueBlock(uint64_t seed, uint32_t ino, uint64_t logical, uint64_t value_size,
                      std::span<uint8_t> block);

// Called with the value of system.data (inline data) so that the caller can
// rewrite it (directory entries, symlink target).
using InlineDataFn = std::function<void(std::span<uint8_t> value)>;

// Whether the area holds anything ScrambleXattrs rewrites (user.*, trusted.*,
// system.data): most inodes carry only security.* or ACLs.
bool HasScrambledXattrs(const XattrArea& area);

// Rewrites the entries in place; returns true if anything changed. Entry
// hashes are recomputed when they were right (either variant e2fsck accepts).
bool ScrambleXattrs(ext2_filsys fs, const XattrArea& area, Prng& prng,
                    const InlineDataFn& inline_data, const EaHashChanges& ea);

// Rewrites an xattr block in place: entries, then h_hash and the checksum
// when they were right. block_nr: its number (the checksum covers it).
void ScrambleXattrBlock(ext2_filsys fs, uint64_t block_nr, std::span<uint8_t> block, Prng& prng,
                        const EaHashChanges& ea);

}  // namespace e2img
