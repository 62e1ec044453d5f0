// The --scramble-map file of -s: for each directory entry, the directory's
// inode, the old name and the new one, so that what is said about the
// scrambled image can be translated back. It is never part of the image.
//
// Format: a comment line starting with '#', then one line per name:
// inode TAB old TAB new. Names are escaped by util::EscapeName: printable ASCII
// but for the backslash and the quote as it is, those two as \\ and \',
// every other byte (space, tab, newline, non-ASCII) as \xNN.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>

#include "util/file.h"

namespace e2img {

// The open map file; names are added from any thread.
class ScrambleMap {
 public:
  // Creates `path` with mode 0600; refuses an existing file or a symlink
  // there (util::Error), so that no other file is written through it.
  explicit ScrambleMap(const std::string& path);
  // Removes the file unless Commit was called (no map without its image).
  ~ScrambleMap();
  ScrambleMap(const ScrambleMap&) = delete;
  ScrambleMap& operator=(const ScrambleMap&) = delete;

  // Records a name once per directory (the same name seen again is skipped).
  void Add(uint32_t dir, std::string_view old_name, std::string_view new_name);
  // Writes out what is buffered and syncs the file; it is kept.
  void Commit();

 private:
  void Flush();

  std::string path_;
  util::File file_;
  std::mutex lock_;
  std::string buffer_;
  std::unordered_set<uint64_t> seen_;  // fingerprints of (directory, old name)
  std::string error_;                  // the first write error, for Commit
  bool committed_ = false;
};

}  // namespace e2img
