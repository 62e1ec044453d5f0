// Name choice for the scrambler (-s): a seeded generator of same-length
// replacement names, and the per-directory chooser that keeps names unique
// and, in hash-tree directories, keeps each name's hash in its leaf's range.
#pragma once

#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace e2img {

// A small deterministic generator (splitmix64): the same seed gives the same names.
class Prng {
 public:
  explicit Prng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Overwrites `out` with characters of `alphabet`.
  void Fill(std::span<char> out, std::string_view alphabet);
  void Fill(std::span<uint8_t> out, std::string_view alphabet);

 private:
  uint64_t state_;
};

// Mixes values into one 64-bit seed or fingerprint.
uint64_t Mix(uint64_t a, uint64_t b);
uint64_t Fingerprint(std::string_view bytes, uint64_t salt);

// Characters of replacement names: safe in shells and unchanged by case folding.
inline constexpr std::string_view kNameAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789_-";
// A wider set for short names that find no hash match in the first one
// (printable ASCII without '/', '.' and upper case).
inline constexpr std::string_view kWideAlphabet =
    "abcdefghijklmnopqrstuvwxyz0123456789!\"#$%&'()*+,-:;<=>?@[\\]^_`{|}~";

// How a directory hashes names: the htree version, and case folding.
struct DirHash {
  int version = 0;  // with the +3 of EXT2_FLAGS_UNSIGNED_HASH already applied
  const ext2fs_nls_table* charset = nullptr;
  int flags = 0;  // EXT4_CASEFOLD_FL for casefolded directories
  const uint32_t* seed = nullptr;
  uint32_t Of(std::string_view name) const;
};

// The hash range of one hash-tree leaf block: hashes h with lo <= h < hi, or
// h <= hi when hi_inclusive (the next leaf continues a hash collision).
struct LeafRange {
  uint32_t lo = 0;
  uint32_t hi = 0xffffffff;
  bool hi_inclusive = true;
  bool Holds(uint32_t h) const { return h >= lo && (h < hi || (hi_inclusive && h == hi)); }
};

// A generated name, stored as the generator state that writes it (no string
// per name); alphabet 0: kNameAlphabet, 1: kWideAlphabet, 2: the old name
// kept, 3: a name found by a hash search (state: its index in DirNames).
struct NamePick {
  uint64_t state = 0;
  uint8_t alphabet = 0;
};

// An open-addressing table from 64-bit fingerprints to picks: no allocation
// per entry (directories hold up to millions of names).
class PickTable {
 public:
  const NamePick* Find(uint64_t key) const;
  // Keeps the first value given for a key; false when the key was there.
  bool Insert(uint64_t key, NamePick value);
  // Room for this many entries without growing.
  void Reserve(size_t entries);

 private:
  struct Slot {
    uint64_t key = 0;  // 0: empty
    NamePick value;
  };
  static uint64_t Stored(uint64_t key) { return key ? key : 1; }
  void Grow();
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

// Chooses the new names of one directory. Linear directories only need
// unique names; in a hash-tree directory each new name must also hash into
// its leaf's range. Candidates that land in other, not yet seen leaves are
// kept for them, so a directory of L leaves costs about one hash per name
// instead of L.
class DirNames {
 public:
  static constexpr int kNoLeaf = -1;
  // expected_names: about how many names the directory holds (its tables
  // are sized for them up front, within a bound; 0: grown as names come).
  DirNames(uint64_t seed, DirHash hash, std::vector<LeafRange> leaves, size_t expected_names = 0);

  // Writes the replacement of `old` (same length) into `out`; returns false
  // when no replacement was found and the old name was kept.
  bool Choose(std::string_view old, int leaf, std::span<char> out);
  // The leaf will not be seen again: drop what was kept for it.
  void FinishLeaf(int leaf);
  bool hashed() const { return !leaves_.empty(); }

 private:
  using Pick = NamePick;
  static constexpr uint8_t kKept = 2;
  static constexpr uint8_t kFound = 3;
  void Write(const Pick& pick, std::span<char> out) const;
  // The searches after random draws failed: a hash search for long names,
  // every legal name for short ones. Fills `out`; false if none fits.
  bool Search(std::string_view old, int leaf, uint64_t old_fp, std::span<char> out);
  bool TakeFound(std::string_view name, uint64_t old_fp, std::span<char> out);
  int LeafOf(uint32_t hash) const;
  bool Fits(std::span<const char> name, int leaf, uint32_t* hash_out) const;
  // The key of a name in used_, 0 for long names (never remembered).
  static uint64_t UsedKey(std::span<const char> name);
  bool Used(uint64_t used_key) const;
  // Gives the name out; false when it was already given (a short name).
  bool Take(const Pick& pick, uint64_t used_key, uint64_t old_fp);

  Prng prng_;
  DirHash hash_;
  std::vector<LeafRange> leaves_;  // sorted by lo
  std::vector<bool> finished_;
  PickTable used_;                                         // fingerprints of short names given out
  PickTable by_old_;                                       // old name's fingerprint -> its pick
  std::unordered_map<uint64_t, std::vector<Pick>> spare_;  // (leaf, length) -> picks
  std::vector<std::string> found_;                         // names of kFound picks
};

}  // namespace e2img
