#include "e2img/scramble_names.h"

#include <algorithm>

namespace e2img {
namespace {

// Attempts per name with each alphabet before the old name is kept.
constexpr uint64_t kMinTries = 4096;
constexpr uint64_t kTriesPerLeaf = 64;
// Names kept for a (leaf, length) that has not been seen yet: as many as
// entries of that length fit in a 4 KiB leaf, so few candidates are wasted.
size_t SpareLimit(size_t length) { return 4096 / (8 + ((length + 3) & ~size_t{3})) + 1; }

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
    c = alphabet[(bits & 0xff) % alphabet.size()];
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
  uint64_t h = 0xcbf29ce484222325ull ^ salt;
  for (unsigned char c : bytes)
    h = (h ^ c) * 0x100000001b3ull;
  return Mix(h, bytes.size());
}

uint32_t DirHash::Of(std::string_view name) const {
  ext2_dirhash_t hash = 0;
  if (ext2fs_dirhash2(version, name.data(), static_cast<int>(name.size()), charset, flags, seed,
                      &hash, nullptr))
    return 0;
  return hash;
}

DirNames::DirNames(uint64_t seed, DirHash hash, std::vector<LeafRange> leaves)
    : prng_(seed), hash_(hash), leaves_(std::move(leaves)), finished_(leaves_.size(), false) {}

int DirNames::LeafOf(uint32_t hash) const {
  auto it = std::upper_bound(leaves_.begin(), leaves_.end(), hash,
                             [](uint32_t h, const LeafRange& r) { return h < r.lo; });
  if (it == leaves_.begin())
    return kNoLeaf;
  const int leaf = static_cast<int>(it - leaves_.begin()) - 1;
  return leaves_[leaf].Holds(hash) ? leaf : kNoLeaf;
}

bool DirNames::Fits(std::string_view name, int leaf, uint32_t* hash_out) {
  if (leaf == kNoLeaf || leaves_.empty())
    return true;
  *hash_out = hash_.Of(name);
  return leaves_[leaf].Holds(*hash_out);
}

void DirNames::Take(std::string_view name, uint64_t old_fp, std::span<char> out) {
  used_.insert(Fingerprint(name, 0));
  by_old_.emplace(old_fp, std::string(name));
  std::copy(name.begin(), name.end(), out.begin());
}

bool DirNames::Choose(std::string_view old, int leaf, std::span<char> out) {
  if (leaf >= static_cast<int>(leaves_.size()))
    leaf = kNoLeaf;
  const uint64_t old_fp = Fingerprint(old, 1);
  if (auto it = by_old_.find(old_fp); it != by_old_.end() && it->second.size() == old.size()) {
    std::copy(it->second.begin(), it->second.end(), out.begin());
    return true;
  }
  const size_t length = old.size();
  if (leaf != kNoLeaf) {
    auto spare = spare_.find(SpareKey(leaf, length));
    while (spare != spare_.end() && !spare->second.empty()) {
      std::string name = std::move(spare->second.back());
      spare->second.pop_back();
      if (!used_.contains(Fingerprint(name, 0))) {
        Take(name, old_fp, out);
        return true;
      }
    }
  }
  const uint64_t tries =
      std::max<uint64_t>(kMinTries, kTriesPerLeaf * static_cast<uint64_t>(leaves_.size()));
  std::string candidate(length, 'a');
  for (std::string_view alphabet : {kNameAlphabet, kWideAlphabet}) {
    for (uint64_t i = 0; i < tries; ++i) {
      prng_.Fill(std::span<char>(candidate), alphabet);
      if (used_.contains(Fingerprint(candidate, 0)))
        continue;
      uint32_t hash = 0;
      if (Fits(candidate, leaf, &hash)) {
        Take(candidate, old_fp, out);
        return true;
      }
      const int other = LeafOf(hash);
      if (other != kNoLeaf && !finished_[other]) {
        std::vector<std::string>& bucket = spare_[SpareKey(other, length)];
        if (bucket.size() < SpareLimit(length))
          bucket.push_back(candidate);
      }
    }
  }
  // No same-length name hashes into this leaf (very short names in big
  // directories): keep the old one, which is known to fit.
  used_.insert(Fingerprint(old, 0));
  by_old_.emplace(old_fp, std::string(old));
  std::copy(old.begin(), old.end(), out.begin());
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
