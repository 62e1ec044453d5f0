// Reading guest bytes through a resolved mapping, and the whole-disk
// conversion to raw: host-contiguous runs become large reads, holes stay
// holes (or zeros where the output needs them), and each compressed
// cluster is decompressed once.
#include <algorithm>
#include <cstring>

#include "qcow2/reader.h"
#include "util/error.h"

namespace qcow2 {
namespace {

// Copies the bytes of a resolved mapping (from its start) into dst.
void ReadMapped(const Mapping& m, std::span<uint8_t> dst) {
  switch (m.kind) {
    case ClusterKind::kNormal:
      if (m.pad_past_eof) {
        const size_t got = m.file->ReadUpTo(dst, m.host_offset);
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
    if (m.length == 0)
      Fail(guest_offset + done, "read past the virtual size");
    ReadMapped(m, out.subspan(done, m.length));
    done += m.length;
  }
}

void ConvertToRaw(Qcow2Reader& reader, util::RawWriter& out,
                  const std::function<void(uint64_t)>& progress) {
  const uint64_t size = reader.virtual_size();
  constexpr uint64_t kChunk = 4u << 20;
  std::vector<uint8_t> buf;
  uint64_t at = 0;
  while (at < size) {
    Mapping m = reader.Resolve(at, size - at);
    if (m.kind == ClusterKind::kNormal || m.kind == ClusterKind::kCompressed) {
      // Large sequential reads over host-contiguous runs.
      for (uint64_t done = 0; done < m.length;) {
        Mapping part = m;
        part.guest_offset = at + done;
        part.host_offset = m.kind == ClusterKind::kNormal ? m.host_offset + done : m.host_offset;
        part.length = std::min(kChunk, m.length - done);
        buf.resize(part.length);
        ReadMapped(part, buf);
        out.Write(part.guest_offset, buf);
        done += part.length;
      }
    }
    at += m.length;
    if (progress)
      progress(at);
  }
  out.Finish(size);
}

}  // namespace qcow2
