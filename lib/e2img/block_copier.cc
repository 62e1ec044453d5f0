#include "e2img/block_copier.h"

#include <algorithm>
#include <vector>

#include "e2img/read_ahead.h"
#include "e2img/source_holes.h"
#include "util/error.h"

namespace e2img {

uint64_t CopyBlocks(const CopySource& source, BlockSet& blocks, ImageSink& sink,
                    const ProgressFn& progress, const CopyWarningFn& warn) {
  constexpr uint64_t kChunkBytes = 4u << 20;
  const uint64_t bs = source.block_size;
  const uint64_t chunk_blocks = std::max<uint64_t>(1, kChunkBytes / bs);
  std::vector<uint8_t> buf;
  uint64_t done = 0;
  uint64_t problems = 0;
  uint64_t source_end = UINT64_MAX;  // where a short read found the source ending
  bool end_warned_here = false;
  bool& end_warned = source.end_warned ? *source.end_warned : end_warned_here;
  util::FileHoles holes(*source.file, source.skip_holes);
  ExtentReadAhead read_ahead(*source.file, blocks.Extents(), source.offset, source.block_size,
                             source.skip_holes);
  for (const BlockExtent& extent : blocks.Extents()) {
    uint64_t start = std::max(extent.start, source.first_data_block);
    while (start < extent.end()) {
      uint64_t count = std::min(chunk_blocks, extent.end() - start);
      const uint64_t at = source.offset + start * bs;
      // Holes of a sparse source are zeros: skip whole blocks of them unread.
      const BlockRun run = AsBlocks(holes.RunAt(at, count * bs), bs);
      if (run.skip) {
        start += run.blocks;
        done += run.blocks;
        read_ahead.ReaderDone(done);
        if (progress)
          progress(done);
        continue;
      }
      count = std::min(count, run.blocks);
      // Read straight into the sink's room where it has some (the
      // compression queue: no copy of each cluster on its way there).
      std::span<uint8_t> into = sink.RoomFor(start, count);
      if (into.empty()) {
        buf.resize(count * bs);
        into = buf;
      } else {
        count = into.size() / bs;
      }
      // Past where a read found the source ending, blocks are zeros unread;
      // the end is warned of once.
      size_t got = 0;
      if (at < source_end)
        got = source.unreadable ? ReadSalvaging(*source.file, into, at, *source.unreadable)
                                : source.file->ReadUpTo(into, at);
      // Once the source has failed a read (here or anywhere), nothing it
      // gives is taken to be its bytes: it is not to be asked twice.
      if (source.unreadable && !source.unreadable->empty())
        sink.NoteChanged(start, count);
      if (got < into.size()) {
        sink.NoteChanged(start + got / bs, count - got / bs);
        std::fill(into.begin() + static_cast<std::ptrdiff_t>(got), into.end(), 0);
        source_end = std::min(source_end, at + got);
        if (!end_warned) {
          end_warned = true;
          warn(util::AtOffset(source.file->path(), at + got,
                              "source ends before block " + std::to_string(start + got / bs) +
                                  "; the missing blocks are written as zeros"));
          ++problems;
        }
      }
      if (source.stale_tails) {
        for (auto it = source.stale_tails->lower_bound(start);
             it != source.stale_tails->end() && it->first < start + count; ++it) {
          sink.NoteChanged(it->first, 1);
          auto from = into.begin() + static_cast<std::ptrdiff_t>((it->first - start) * bs);
          std::fill(from + it->second, from + static_cast<std::ptrdiff_t>(bs), 0);
        }
      }
      sink.WriteBlocks(start, into);
      start += count;
      done += count;
      read_ahead.ReaderDone(done);
      if (progress)
        progress(done);
    }
  }
  return problems;
}

}  // namespace e2img
