// A qcow2 image read from a pipe, in one pass, into a raw image. The tables
// are read as the stream reaches them (header, L1, then each L2 table), and
// each data cluster when it comes, so an image whose tables all come before
// the data they map (streamed by `e2image -Q ... -`, qemu's qcow2-to-stdout
// layout, images qemu-img converts in order) needs no file of its own. The
// bytes that no table read so far claims are kept in a spool file while
// some table is still to come, so that a table coming after its data finds
// them there. An output that takes data in guest order only (a pipe, a
// device) gets every layout exactly: a data cluster that comes before its
// turn is kept in the same spool and written when the output reaches it.
// An image whose L2 entries are extended (subclusters) is spooled whole
// and read by Qcow2Reader.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "util/file.h"
#include "util/output.h"

namespace qcow2 {

// How a stream conversion goes, for its caller.
struct StreamConvertOptions {
  // Where the spool file is made (an unnamed file: nothing is left behind).
  std::string spool_dir;
  // Called once, with one line, when the conversion starts reading from
  // the spool (the image's layout needs it).
  std::function<void(const std::string&)> note;
  // Called with the guest bytes written so far, at most once a cluster.
  std::function<void(uint64_t)> progress;
};

// Reads a qcow2 image from `in` (read in order only, to its end) and writes
// its whole virtual disk through `out`: in guest order unless `out` can
// rewind (a regular file). Throws util::Error with one line naming `in`, the
// offset and the table on a truncated stream or a malformed table, or when
// the layout needs a spool file and none can be made.
void ConvertStreamToRaw(const util::File& in, util::RawWriter& out,
                        const StreamConvertOptions& options);

}  // namespace qcow2
