// Fast search for names of a given length whose hash-tree hash falls in a
// narrow range: the directory hashes (half_md4, tea, legacy) computed here
// on ASCII names, with the state of the name's unchanging first part kept,
// so that each candidate costs one hash round of its last chunk.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "e2img/scramble_names.h"

namespace e2img {

// The hash of an ASCII name (bytes < 0x80, no upper case: case folding
// keeps them) as DirHash::Of computes it; false for hashes it does not know
// (siphash).
bool FastDirHash(const DirHash& hash, std::string_view name, uint32_t* out);

// Searches names of one length over an alphabet of ASCII characters without
// upper case.
class HashSearch {
 public:
  static bool Supports(const DirHash& hash);
  HashSearch(const DirHash& hash, size_t length, std::string_view alphabet, uint64_t seed);
  // Tries up to `tries` candidates; calls accept(name) for those whose hash
  // the range holds, and stops at the first it accepts (true then).
  bool Find(const LeafRange& range, uint64_t tries,
            const std::function<bool(std::string_view)>& accept);

 private:
  bool FindLegacy(const LeafRange& range, uint64_t tries,
                  const std::function<bool(std::string_view)>& accept);
  bool FindBlocks(const LeafRange& range, uint64_t tries,
                  const std::function<bool(std::string_view)>& accept);

  DirHash hash_;
  std::string alphabet_;
  std::string name_;
  Prng prng_;
};

}  // namespace e2img
