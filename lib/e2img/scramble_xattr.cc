#include "e2img/scramble_xattr.h"

#include <ext2fs/ext2_ext_attr.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "e2img/scramble_dir.h"

namespace e2img {
namespace {

constexpr uint8_t kIndexUser = 1;
constexpr uint8_t kIndexTrusted = 4;
constexpr uint8_t kIndexSystem = 7;
constexpr uint32_t kXattrMagic = 0xEA020000;

// An entry with its position, after bounds checks.
struct EntryRef {
  ext2_ext_attr_entry* entry;
  uint8_t* value;  // nullptr when the value is in an ea_inode or empty
};

// The entries of an area, stopping at the end marker or the first bad one.
// Calls visit(EntryRef) for each entry, stopping at the end marker, the
// first bad entry, or when visit returns false.
template <typename Visit>
void ForEachEntry(const XattrArea& area, Visit visit) {
  size_t at = 0;
  while (at + sizeof(ext2_ext_attr_entry) <= area.entries.size()) {
    uint8_t* p = area.entries.data() + at;
    if (EXT2_EXT_IS_LAST_ENTRY(reinterpret_cast<uint32_t*>(p)))
      break;
    auto* e = reinterpret_cast<ext2_ext_attr_entry*>(p);
    const size_t len = EXT2_EXT_ATTR_LEN(e->e_name_len);
    if (at + len > area.entries.size())
      break;
    uint8_t* value = nullptr;
    if (e->e_value_inum == 0 && e->e_value_size) {
      const size_t padded = EXT2_EXT_ATTR_SIZE(e->e_value_size);
      if (e->e_value_offs + padded > area.values.size())
        break;
      value = area.values.data() + e->e_value_offs;
    }
    if (!visit(EntryRef{e, value}))
      break;
    at += len;
  }
}

std::vector<EntryRef> ListEntries(const XattrArea& area) {
  std::vector<EntryRef> list;
  ForEachEntry(area, [&](const EntryRef& r) {
    list.push_back(r);
    return true;
  });
  return list;
}

// The two hashes e2fsck accepts for an entry (unsigned and signed name bytes).
struct EntryHashes {
  uint32_t plain = 0;
  uint32_t sign = 0;
  bool ok = true;
};

EntryHashes HashesOf(ext2_filsys fs, const EntryRef& r) {
  EntryHashes h;
  if (r.entry->e_value_inum) {
    std::lock_guard lock(InodeReadLock());  // reads the ea_inode (its value hash)
    h.ok = ext2fs_ext_attr_hash_entry3(fs, r.entry, nullptr, &h.plain, &h.sign) == 0;
  } else {
    h.plain = ext2fs_ext_attr_hash_entry(r.entry, r.value);
    h.sign = ext2fs_ext_attr_hash_entry_signed(r.entry, r.value);
  }
  return h;
}

// New user.* names, sorted like the old ones so block lookups still work:
// entries of one name length get sorted distinct new names, in the order
// the old ones had.
void ScrambleUserNames(std::vector<EntryRef>& list, Prng& prng) {
  std::vector<std::vector<size_t>> by_length(256);
  for (size_t i = 0; i < list.size(); ++i)
    if (list[i].entry->e_name_index == kIndexUser)
      by_length[list[i].entry->e_name_len].push_back(i);
  for (size_t length = 1; length < 256; ++length) {
    std::vector<size_t>& group = by_length[length];
    if (group.empty())
      continue;
    std::set<std::string> names;
    std::string candidate(length, 'a');
    for (int tries = 0; names.size() < group.size() && tries < 4096; ++tries) {
      prng.Fill(std::span<char>(candidate), tries < 2048 ? kNameAlphabet : kWideAlphabet);
      names.insert(candidate);
    }
    while (names.size() < group.size())
      names.insert(candidate + std::to_string(names.size()));
    // Order the old entries by name, hand out the new names in that order.
    std::sort(group.begin(), group.end(), [&](size_t a, size_t b) {
      return std::memcmp(EXT2_EXT_ATTR_NAME(list[a].entry), EXT2_EXT_ATTR_NAME(list[b].entry),
                         length) < 0;
    });
    auto name = names.begin();
    for (size_t i : group) {
      std::memcpy(EXT2_EXT_ATTR_NAME(list[i].entry), name->data(), length);
      ++name;
    }
  }
}

}  // namespace

void FillEaValueBlock(uint64_t seed, uint32_t ino, uint64_t logical, uint64_t value_size,
                      std::span<uint8_t> block) {
  const uint64_t start = logical * block.size();
  const uint64_t used =
      start < value_size ? std::min<uint64_t>(block.size(), value_size - start) : 0;
  Prng prng(Mix(Mix(seed, ino), logical + 0xea));
  prng.Fill(block.first(used), kNameAlphabet);
  std::fill(block.begin() + static_cast<std::ptrdiff_t>(used), block.end(), 0);
}

bool HasScrambledXattrs(const XattrArea& area) {
  bool found = false;
  ForEachEntry(area, [&](const EntryRef& r) {
    const uint8_t index = r.entry->e_name_index;
    found = index == kIndexUser || index == kIndexTrusted || index == kIndexSystem;
    return !found;
  });
  return found;
}

bool ScrambleXattrs(ext2_filsys fs, const XattrArea& area, Prng& prng,
                    const InlineDataFn& inline_data, const EaHashChanges& ea) {
  std::vector<EntryRef> list = ListEntries(area);
  std::vector<EntryHashes> before;
  before.reserve(list.size());
  bool changed = false;
  for (const EntryRef& r : list)
    before.push_back(HashesOf(fs, r));
  for (EntryRef& r : list) {
    const uint8_t index = r.entry->e_name_index;
    if ((index == kIndexUser || index == kIndexTrusted) && r.value) {
      prng.Fill(std::span<uint8_t>(r.value, r.entry->e_value_size), kNameAlphabet);
      changed = true;
    } else if (index == kIndexSystem && r.entry->e_name_len == 4 &&
               std::memcmp(EXT2_EXT_ATTR_NAME(r.entry), "data", 4) == 0 && inline_data) {
      inline_data(std::span<uint8_t>(r.value ? r.value : area.values.data(),
                                     r.value ? r.entry->e_value_size : 0));
      changed = true;
    }
    if (index == kIndexUser)
      changed = true;
  }
  ScrambleUserNames(list, prng);
  for (size_t i = 0; i < list.size(); ++i) {
    ext2_ext_attr_entry* e = list[i].entry;
    if (e->e_hash == 0 || !before[i].ok)
      continue;  // no hash kept, or unknown
    const EntryHashes after = HashesOf(fs, list[i]);
    if (!after.ok)
      continue;
    // An entry's hash ends with an XOR of its ea_inode's value hash.
    uint32_t value_change = 0;
    if (auto it = ea.find(e->e_value_inum); e->e_value_inum && it != ea.end())
      value_change = it->second.before ^ it->second.after;
    if (e->e_hash == before[i].plain)
      e->e_hash = after.plain ^ value_change;
    else if (e->e_hash == before[i].sign)
      e->e_hash = after.sign ^ value_change;
  }
  return changed;
}

void ScrambleXattrBlock(ext2_filsys fs, uint64_t block_nr, std::span<uint8_t> block, Prng& prng,
                        const EaHashChanges& ea) {
  auto* header = reinterpret_cast<ext2_ext_attr_header*>(block.data());
  if (block.size() < sizeof(*header) + 4 || header->h_magic != kXattrMagic || header->h_blocks != 1)
    return;
  const bool csum_ok = ext2fs_has_feature_metadata_csum(fs->super) &&
                       ext2fs_ext_attr_block_csum_verify(fs, 0, block_nr, header);
  XattrArea area{block.subspan(sizeof(*header)), block};
  std::vector<EntryRef> list = ListEntries(area);
  auto* end = reinterpret_cast<ext2_ext_attr_entry*>(
      list.empty() ? area.entries.data()
                   : reinterpret_cast<uint8_t*>(list.back().entry) +
                         EXT2_EXT_ATTR_LEN(list.back().entry->e_name_len));
  // Was h_hash right? Recompute it on a copy of the header.
  ext2_ext_attr_header probe = *header;
  ext2fs_ext_attr_block_rehash(header, end);
  const bool hash_ok = header->h_hash == probe.h_hash;
  header->h_hash = probe.h_hash;
  ScrambleXattrs(fs, area, prng, nullptr, ea);
  if (hash_ok)
    ext2fs_ext_attr_block_rehash(header, end);
  if (csum_ok)
    ext2fs_ext_attr_block_csum_set(fs, 0, block_nr, header);
}

}  // namespace e2img
