// Reading guest bytes through a resolved mapping, and the whole-disk
// conversion to raw: host-contiguous runs become large reads, holes stay
// holes (or zeros where the output needs them), each compressed cluster is
// decompressed once, and the reading runs on a thread of its own, a few
// batches ahead of the writing. The holes of the files that back clusters
// are not read: a 2 MiB cluster holding a few metadata blocks is mostly hole.
#include <algorithm>
#include <cassert>
#include <cstring>
#include <deque>
#include <span>
#include <stop_token>
#include <thread>
#include <vector>

#include "qcow2/reader.h"
#include "util/batch_ring.h"
#include "util/error.h"
#include "util/file_holes.h"
#include "util/large_buffer.h"

namespace qcow2 {
namespace {

// Copies the bytes of a resolved mapping (from its start) into dst.
void ReadMapped(const Mapping& m, std::span<uint8_t> dst) {
  switch (m.kind) {
    case ClusterKind::kNormal:
      if (m.pad_past_eof) {
        const uint64_t stored = m.host_offset < m.file_size
                                    ? std::min<uint64_t>(dst.size(), m.file_size - m.host_offset)
                                    : 0;
        const size_t got = m.file->ReadUpTo(dst.first(stored), m.host_offset);
        std::fill(dst.begin() + static_cast<ptrdiff_t>(got), dst.end(), 0);
      } else {
        m.file->ReadAt(dst, m.host_offset);
      }
      break;
    case ClusterKind::kCompressed: {
      std::span<const uint8_t> cluster = m.layer->CompressedCluster(m);
      const uint64_t in_cluster = m.guest_offset % m.layer->header().cluster_size();
      std::memcpy(dst.data(), cluster.data() + in_cluster, dst.size());
      break;
    }
    default:
      std::fill(dst.begin(), dst.end(), 0);
  }
}

}  // namespace

void Qcow2Reader::Read(uint64_t guest_offset, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    const Mapping m = Resolve(guest_offset + done, out.size() - done);
    assert(m.length > 0 && "Read is called within the virtual size");
    ReadMapped(m, out.subspan(done, m.length));
    done += m.length;
  }
}

namespace {

// Guest runs read into one buffer, on their way from the reading thread to
// the writing one.
struct ConvertBatch {
  struct Run {
    uint64_t guest_offset;
    size_t at;  // in bytes
    size_t length;
  };
  static constexpr size_t kBytes = 4u << 20;
  static constexpr size_t kMaxRuns = 4096;
  // Mapped up front, not zeroed: every byte handed on is read first, and
  // no page is faulted in on first touch inside the reading thread's copies.
  util::LargeBuffer storage{kBytes};
  std::span<uint8_t> bytes = storage.bytes();
  size_t used = 0;
  std::vector<Run> runs;
  uint64_t progress_to = 0;  // the guest bytes done once the runs are written
  bool last = false;

  void Clear() {
    used = 0;
    runs.clear();
    last = false;
  }
};

// The reading side of a conversion, on a thread of its own: maps the guest
// disk in order and reads (or decompresses) what backs it into batches.
class ConvertReader {
 public:
  ConvertReader(Qcow2Reader& reader, util::BatchRing<ConvertBatch>& ring)
      : reader_(reader), ring_(ring) {}
  void Run(const std::stop_token& stop) {
    try {
      ReadAll(stop);
    } catch (...) {
      ring_.Fail(std::current_exception());
    }
  }

 private:
  // A batch goes over when full, or when the guest went a long way past
  // the last one handed over (so that progress moves over empty space).
  static constexpr uint64_t kProgressStep = 1ull << 30;
  // Holes are looked for in runs of at least this many bytes: in smaller
  // ones reading the zeros costs less than asking where they are (small
  // clusters would otherwise cost an lseek call per page of zeros).
  static constexpr uint64_t kHoleLookupBytes = 64u << 10;

  void ReadAll(const std::stop_token& stop) {
    const uint64_t size = reader_.virtual_size();
    uint64_t handed_at = 0;
    ConvertBatch* batch = Take(stop);
    for (uint64_t at = 0; batch && at < size;) {
      const Mapping m = reader_.Resolve(at, size - at);
      if (m.kind == ClusterKind::kNormal || m.kind == ClusterKind::kCompressed) {
        for (uint64_t done = 0; batch && done < m.length;) {
          if (batch->used == ConvertBatch::kBytes || batch->runs.size() == ConvertBatch::kMaxRuns) {
            batch->progress_to = handed_at = at + done;
            ring_.Fill(batch);
            batch = Take(stop);
            continue;
          }
          Mapping part = m;
          part.guest_offset = at + done;
          part.host_offset = m.kind == ClusterKind::kNormal ? m.host_offset + done : m.host_offset;
          part.length = std::min<uint64_t>(ConvertBatch::kBytes - batch->used, m.length - done);
          if (m.kind == ClusterKind::kNormal && part.length >= kHoleLookupBytes) {
            const util::FileRun run = HolesOf(*m.file).RunAt(part.host_offset, part.length);
            part.length = run.length;
            if (run.hole) {  // reads as zeros: left out, as unallocated ranges are
              done += part.length;
              continue;
            }
          }
          ReadMapped(part, batch->bytes.subspan(batch->used, part.length));
          batch->runs.push_back({part.guest_offset, batch->used, part.length});
          batch->used += part.length;
          done += part.length;
        }
      }
      at += m.length;
      if (batch && at - handed_at >= kProgressStep && at < size) {
        batch->progress_to = handed_at = at;
        ring_.Fill(batch);
        batch = Take(stop);
      }
    }
    if (!batch)
      return;  // stopped
    batch->progress_to = size;
    batch->last = true;
    ring_.Fill(batch);
  }
  // The holes of a file backing clusters (the image, its data file, a raw
  // backing file), found as the reading moves on.
  util::FileHoles& HolesOf(const util::File& file) {
    for (util::FileHoles& holes : holes_)
      if (&holes.file() == &file)
        return holes;
    return holes_.emplace_back(file, true);
  }
  ConvertBatch* Take(const std::stop_token& stop) {
    ConvertBatch* b = ring_.NextFree(stop);
    if (b)
      b->Clear();
    return b;
  }

  Qcow2Reader& reader_;
  util::BatchRing<ConvertBatch>& ring_;
  std::deque<util::FileHoles> holes_;  // one per file, none moved
};

}  // namespace

void ConvertToRaw(Qcow2Reader& reader, util::RawWriter& out,
                  const std::function<void(uint64_t)>& progress) {
  // Reading (page cache copies, decompression) and writing each take a
  // core: three batches let each side work while the other does.
  util::BatchRing<ConvertBatch> ring(3);
  ConvertReader converter(reader, ring);
  std::jthread reading([&](std::stop_token stop) { converter.Run(stop); });
  for (bool last = false; !last;) {
    ConvertBatch& batch = ring.NextFull();
    for (const ConvertBatch::Run& run : batch.runs)
      out.Write(run.guest_offset,
                std::span<const uint8_t>(batch.bytes.subspan(run.at, run.length)));
    if (progress)
      progress(batch.progress_to);
    last = batch.last;
    ring.Release(batch);
  }
  reading.join();
  out.Finish(reader.virtual_size());
}

}  // namespace qcow2
