// A descriptor read in order only (standard input: a pipe, a socket, a
// character device) made into a file that can be read at any offset, for
// readers that need to seek: copied whole into an unnamed spool file, unless
// it already is a regular file or block device.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "util/file.h"
#include "util/range_set.h"

namespace util {

// Which bytes a spool keeps when its reader will read only some: the first
// `prefix` bytes, and the ranges `keep` names once it has seen them. The
// others are read and dropped: they read back as zeros (holes). Without
// `keep`, everything is kept.
struct SpoolSelection {
  uint64_t prefix = 0;
  std::function<std::vector<ByteRange>(std::span<const uint8_t> prefix)> keep;
};

// The input, readable at any offset, and how it was made so.
struct SeekableInput {
  File file;             // named as the input; read-only use
  bool spooled = false;  // a copy: the input's own allocation is unknown
};

// Throws util::Error with one line when `fd` is a terminal: a reader of an
// image there would wait for typing.
void RefuseTerminal(int fd, const std::string& name);

// Returns the bytes of `fd` from its current position to its end as a file
// named `name`. A regular file or block device positioned at its start is
// used as it is (borrowed, not closed); anything else is read to its end
// into an unnamed file made in `spool_dir` (AnonymousTempFile), as large as
// the input (only the bytes `selection` keeps are written: a sparse file).
// Throws util::Error with one line: a terminal (which would wait for
// typing), a read error naming the input and offset, a spool that cannot be
// made or written (naming the spool file and offset).
SeekableInput MakeSeekable(int fd, const std::string& name, const std::string& spool_dir,
                           const SpoolSelection& selection = {});

// Copies the input `name` into `spool`, each byte at its own offset:
// `already_read`, the input's first bytes (read from `fd` before), then the
// rest of `fd` to its end; the spool's size becomes the input's. Only the
// bytes `selection` keeps are written; a selection reads its prefix from
// `fd` itself, so it comes with no `already_read`. Throws util::Error with
// one line: a read error naming the input and offset, a write error naming
// the spool and offset.
void SpoolToEnd(int fd, const std::string& name, std::span<const uint8_t> already_read,
                const File& spool, const SpoolSelection& selection = {});

}  // namespace util
