#include "e2img/scramble_names.h"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>

#include "e2img/scramble_hash.h"

namespace e2img {
namespace {

// Attempts per name with each alphabet before the old name is kept: at
// least these, and enough for a narrow leaf (kTriesPerHit times the tries a
// random hash needs to land in it), up to kMaxTries.
constexpr uint64_t kMinTries = 4096;
constexpr uint64_t kTriesPerLeaf = 64;
constexpr uint64_t kTriesPerHit = 24;
constexpr uint64_t kMaxTries = uint64_t{1} << 23;
// Candidates of a hash search (see DirNames::Search) at most, per alphabet.
constexpr uint64_t kSearchTries = uint64_t{1} << 32;
// Names kept for a (leaf, length) that has not been seen yet: as many as
// entries of that length fit in a 4 KiB leaf, so few candidates are wasted.
bool SameAs(std::span<const char> a, std::string_view b) {
  return a.size() == b.size() && (a.empty() || a[0] == b[0]) &&
         std::memcmp(a.data(), b.data(), a.size()) == 0;
}

// For 1- and 2-character names there are few candidates: a bounded number
// of draws sees them all (about 8 draws per name).
uint64_t FewNames(uint8_t alphabet, size_t length) {
  const uint64_t size = alphabet == 0 ? kNameAlphabet.size() : kWideAlphabet.size();
  if (length > 2)
    return ~uint64_t{0};
  return 8 * (length == 1 ? size : size * size);
}

// Names at least this long are not checked for uniqueness (see Used).
constexpr size_t kLongName = 12;

size_t SpareLimit(size_t length) {
  return 4096 / (8 + ((length + 3) & ~size_t{3})) + 1;
}

uint64_t SpareKey(int leaf, size_t length) {
  return (static_cast<uint64_t>(leaf) << 8) | (length & 0xff);
}

}  // namespace

uint64_t Prng::Next() {
  state_ += 0x9e3779b97f4a7c15ull;
  uint64_t z = state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void Prng::Fill(std::span<char> out, std::string_view alphabet) {
  uint64_t bits = 0;
  int left = 0;
  for (char& c : out) {
    if (left == 0) {
      bits = Next();
      left = 8;
    }
    c = alphabet[((bits & 0xff) * alphabet.size()) >> 8];
    bits >>= 8;
    --left;
  }
}

void Prng::Fill(std::span<uint8_t> out, std::string_view alphabet) {
  Fill(std::span<char>(reinterpret_cast<char*>(out.data()), out.size()), alphabet);
}

uint64_t Mix(uint64_t a, uint64_t b) {
  Prng p(a ^ (b * 0xd6e8feb86659fd93ull));
  return p.Next();
}

uint64_t Fingerprint(std::string_view bytes, uint64_t salt) {
  // Eight bytes at a time, each word folded in with a multiply and a rotation.
  uint64_t h = 0xcbf29ce484222325ull ^ salt ^ (bytes.size() * 0x9e3779b97f4a7c15ull);
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = std::rotl((h ^ w) * 0xff51afd7ed558ccdull, 29);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, bytes.data() + i, bytes.size() - i);
  h = std::rotl((h ^ tail) * 0xc4ceb9fe1a85ec53ull, 31);
  return Mix(h, bytes.size());
}

uint32_t DirHash::Of(std::string_view name) const {
  ext2_dirhash_t hash = 0;
  if (ext2fs_dirhash2(version, name.data(), static_cast<int>(name.size()), charset, flags, seed,
                      &hash, nullptr))
    return 0;
  return hash;
}

const NamePick* PickTable::Find(uint64_t key) const {
  if (slots_.empty())
    return nullptr;
  key = Stored(key);
  const size_t mask = slots_.size() - 1;
  for (size_t i = key & mask;; i = (i + 1) & mask) {
    if (slots_[i].key == key)
      return &slots_[i].value;
    if (slots_[i].key == 0)
      return nullptr;
  }
}

bool PickTable::Insert(uint64_t key, NamePick value) {
  if ((size_ + 1) * 2 > slots_.size())
    Grow();
  key = Stored(key);
  const size_t mask = slots_.size() - 1;
  for (size_t i = key & mask;; i = (i + 1) & mask) {
    if (slots_[i].key == key)
      return false;
    if (slots_[i].key == 0) {
      slots_[i] = Slot{key, value};
      ++size_;
      return true;
    }
  }
}

void PickTable::Reserve(size_t entries) {
  size_t slots = slots_.empty() ? 64 : slots_.size();
  while (slots < 2 * entries)
    slots *= 2;
  if (slots == slots_.size())
    return;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(slots, Slot{});
  size_ = 0;
  for (const Slot& slot : old)
    if (slot.key)
      Insert(slot.key, slot.value);
}

void PickTable::Grow() {
  Reserve(slots_.empty() ? 1 : slots_.size());
}

DirNames::DirNames(uint64_t seed, DirHash hash, std::vector<LeafRange> leaves,
                   size_t expected_names)
    : prng_(seed), hash_(hash), leaves_(std::move(leaves)), finished_(leaves_.size(), false) {
  // Bounded: a directory of millions of names grows its tables as it goes.
  constexpr size_t kMaxReserved = size_t{1} << 16;
  expected_names = std::min(expected_names, kMaxReserved);
  if (expected_names) {
    by_old_.Reserve(expected_names);
    used_.Reserve(expected_names);
  }
}

void DirNames::Write(const Pick& pick, std::span<char> out) const {
  if (pick.alphabet == kFound) {
    const std::string& name = found_[pick.state];
    std::copy(name.begin(), name.end(), out.begin());
    return;
  }
  Prng p(pick.state);
  p.Fill(out, pick.alphabet == 0 ? kNameAlphabet : kWideAlphabet);
}

int DirNames::LeafOf(uint32_t hash) const {
  auto it = std::upper_bound(leaves_.begin(), leaves_.end(), hash,
                             [](uint32_t h, const LeafRange& r) { return h < r.lo; });
  if (it == leaves_.begin())
    return kNoLeaf;
  const int leaf = static_cast<int>(it - leaves_.begin()) - 1;
  return leaves_[leaf].Holds(hash) ? leaf : kNoLeaf;
}

bool DirNames::Fits(std::span<const char> name, int leaf, uint32_t* hash_out) const {
  if (leaf == kNoLeaf || leaves_.empty())
    return true;
  *hash_out = hash_.Of(std::string_view(name.data(), name.size()));
  return leaves_[leaf].Holds(*hash_out);
}

uint64_t DirNames::UsedKey(std::span<const char> name) {
  // Long generated names cannot meet by chance (38^12 > 10^18); only short
  // ones are remembered.
  if (name.size() >= kLongName)
    return 0;
  return Fingerprint(std::string_view(name.data(), name.size()), 0) | 1;
}

bool DirNames::Used(uint64_t used_key) const {
  return used_key && used_.Find(used_key) != nullptr;
}

bool DirNames::Take(const Pick& pick, uint64_t used_key, uint64_t old_fp) {
  if (used_key && !used_.Insert(used_key, pick))
    return false;
  by_old_.Insert(old_fp, pick);
  return true;
}

bool DirNames::Choose(std::string_view old, int leaf, std::span<char> out) {
  if (leaf >= static_cast<int>(leaves_.size()))
    leaf = kNoLeaf;
  const uint64_t old_fp = Fingerprint(old, 1);
  // Characters no name may hold ('/', NUL) stay where they are, so that e2fsck
  // finds the same illegal name in the image.
  bool illegal = false;
  for (char c : old)
    illegal |= c == '/' || c == '\0';
  auto write = [&](const Pick& pick) {
    Write(pick, out);
    if (illegal)
      for (size_t i = 0; i < old.size(); ++i)
        if (old[i] == '/' || old[i] == '\0')
          out[i] = old[i];
  };
  if (const Pick* seen = by_old_.Find(old_fp)) {  // the same name again
    if (seen->alphabet == kKept)
      return false;
    write(*seen);
    return true;
  }
  const size_t length = old.size();
  if (leaf != kNoLeaf && !leaves_.empty()) {
    // A name the original already has in the wrong leaf (damage) goes where
    // its hash points, so that e2fsck finds the same fault in the image.
    const uint32_t old_hash = hash_.Of(old);
    if (!leaves_[leaf].Holds(old_hash))
      leaf = LeafOf(old_hash);
  }
  if (leaf != kNoLeaf && !illegal) {
    auto spare = spare_.find(SpareKey(leaf, length));
    while (spare != spare_.end() && !spare->second.empty()) {
      const Pick pick = spare->second.back();
      spare->second.pop_back();
      write(pick);
      if (!SameAs(out, old) && Take(pick, UsedKey(out), old_fp))
        return true;
    }
  }
  uint64_t tries =
      std::max<uint64_t>(kMinTries, kTriesPerLeaf * static_cast<uint64_t>(leaves_.size()));
  if (leaf != kNoLeaf) {
    const LeafRange& range = leaves_[leaf];
    const uint64_t width = uint64_t{range.hi} - range.lo + (range.hi_inclusive ? 1 : 0);
    const uint64_t per_hit = width ? (uint64_t{1} << 32) / width : kMaxTries;
    tries = std::max(tries, std::min(kMaxTries, kTriesPerHit * per_hit));
    // A leaf too narrow for the draws to be sure of: the hash search, many
    // times faster per candidate, takes over at once.
    if (tries == kMaxTries && length > 2 && !illegal && HashSearch::Supports(hash_) &&
        kTriesPerHit * per_hit > kMaxTries)
      tries = 0;
  }
  for (uint8_t alphabet = 0; alphabet < 2; ++alphabet) {
    for (uint64_t i = 0; i < std::min(tries, FewNames(alphabet, length)); ++i) {
      const Pick pick{prng_.Next(), alphabet};
      write(pick);
      if (SameAs(out, old))
        continue;
      const uint64_t used_key = UsedKey(out);
      if (leaf == kNoLeaf || leaves_.empty()) {  // any unused name does: one probe
        if (Take(pick, used_key, old_fp))
          return true;
        continue;
      }
      if (Used(used_key))
        continue;
      uint32_t hash = 0;
      if (Fits(out, leaf, &hash)) {
        Take(pick, used_key, old_fp);
        return true;
      }
      const int other = LeafOf(hash);
      if (other != kNoLeaf && !finished_[other] && !illegal) {
        std::vector<Pick>& bucket = spare_[SpareKey(other, length)];
        if (bucket.size() < SpareLimit(length))
          bucket.push_back(pick);
      }
    }
  }
  if (!illegal && Search(old, leaf, old_fp, out))
    return true;
  // No same-length name hashes into this leaf (or, for very short names, is
  // free): keep the old one, which is known to fit. The caller reports it.
  std::copy(old.begin(), old.end(), out.begin());
  const Pick kept{0, kKept};
  if (const uint64_t used_key = UsedKey(out))
    used_.Insert(used_key, kept);
  by_old_.Insert(old_fp, kept);
  return false;
}

bool DirNames::TakeFound(std::string_view name, uint64_t old_fp, std::span<char> out) {
  const Pick pick{found_.size(), kFound};
  found_.emplace_back(name);
  std::copy(name.begin(), name.end(), out.begin());
  if (Take(pick, UsedKey(out), old_fp))
    return true;
  found_.pop_back();
  return false;
}

bool DirNames::Search(std::string_view old, int leaf, uint64_t old_fp, std::span<char> out) {
  const size_t length = old.size();
  const bool hashed = leaf != kNoLeaf && !leaves_.empty();
  auto free_name = [&](std::string_view name) {
    return name != old && name != "." && name != ".." &&
           !Used(UsedKey(std::span<const char>(name.data(), name.size())));
  };
  if (hashed && length > 2 && HashSearch::Supports(hash_)) {
    // A random name lands in a leaf of E even hash values once in 2^31 / E
    // draws: enough draws for a few such hits, within a bound.
    const LeafRange& range = leaves_[leaf];
    const uint64_t width = uint64_t{range.hi} - range.lo + (range.hi_inclusive ? 1 : 0);
    const uint64_t evens = std::max<uint64_t>(1, width / 2);
    const uint64_t tries = std::min(kSearchTries, 8 * ((uint64_t{1} << 31) / evens));
    for (std::string_view alphabet : {kNameAlphabet, kWideAlphabet}) {
      HashSearch search(hash_, length, alphabet, prng_.Next());
      std::string hit;
      if (search.Find(range, tries, [&](std::string_view name) {
            hit = name;
            return free_name(name);
          }))
        return TakeFound(hit, old_fp, out);
    }
    return false;
  }
  if (length > 2)
    return false;
  // Every legal name of one or two bytes: any byte but '/' and NUL, or, in
  // casefolded directories, printable ASCII without upper case.
  std::string legal;
  for (int c = 1; c < 256; ++c)
    if (c != '/' &&
        (!(hash_.flags & EXT4_CASEFOLD_FL) || (c > ' ' && c < 0x7f && !std::isupper(c))))
      legal += static_cast<char>(c);
  std::string name(length, '\0');
  const size_t second = length == 2 ? legal.size() : 1;
  for (char first : legal)
    for (size_t j = 0; j < second; ++j) {
      name[0] = first;
      if (length == 2)
        name[1] = legal[j];
      if (!free_name(name) || (hashed && !leaves_[leaf].Holds(hash_.Of(name))))
        continue;
      if (TakeFound(name, old_fp, out))
        return true;
    }
  return false;
}

void DirNames::FinishLeaf(int leaf) {
  if (leaf < 0 || leaf >= static_cast<int>(leaves_.size()))
    return;
  finished_[leaf] = true;
  for (size_t length = 0; length < 256; ++length) {
    auto it = spare_.find(SpareKey(leaf, length));
    if (it != spare_.end())
      spare_.erase(it);
  }
}

}  // namespace e2img
