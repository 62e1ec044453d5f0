#include "qcow2/reader.h"

#include <fcntl.h>

#include <algorithm>
#include <cstring>

#include "qcow2/compress.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

bool IsQcow2File(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  util::File f(fd, path);
  uint8_t magic[4];
  return f.ReadUpTo(magic, 0) == 4 && HasQcow2Magic(magic);
}

Qcow2Reader::Qcow2Reader(const std::string& path)
    : file_(util::File::Open(path, O_RDONLY)) {
  file_size_ = file_.Size();
  std::vector<uint8_t> first(std::min<uint64_t>(file_size_, 1u << kMaxClusterBits));
  file_.ReadAt(first, 0);
  header_ = DecodeHeader(first, path);
  ValidateHeader();
  LoadL1();
  const uint64_t entries = header_.l2_entries();
  auto load = [this](uint64_t host, std::span<uint64_t> table) {
    std::vector<uint8_t> raw(table.size() * 8);
    file_.ReadAt(raw, host);
    for (size_t i = 0; i < table.size(); ++i) table[i] = util::LoadBE64(&raw[i * 8]);
  };
  auto store = [](uint64_t, std::span<const uint64_t>) {};
  l2_cache_ = std::make_unique<L2Cache>(kDefaultL2CacheTables, entries, load, store);
}

void Qcow2Reader::CheckHostRange(uint64_t offset, uint64_t length, const std::string& what) const {
  if (offset + length < offset || offset + length > file_size_)
    throw util::Error(util::AtOffset(path(), offset, what + " (length " + std::to_string(length) +
                                                          ") runs past the end of the file"));
}

void Qcow2Reader::ValidateHeader() {
  const Header& h = header_;
  const uint64_t cs = h.cluster_size();
  if (h.crypt_method != 0)
    throw util::Error(path() + ": encrypted qcow2 images are not supported (crypt_method " +
                      std::to_string(h.crypt_method) + ")");
  const uint64_t unknown = h.incompatible_features & ~kIncompatKnown;
  if (unknown)
    throw util::Error(path() + ": unknown incompatible qcow2 feature bits " + Hex(unknown));
  if (h.incompatible_features & kIncompatExtendedL2)
    throw util::Error(path() + ": extended L2 entries are not supported yet");
  if (h.incompatible_features & kIncompatDataFile)
    throw util::Error(path() + ": external data files are not supported yet");
  if (!h.backing_file.empty())
    throw util::Error(path() + ": backing files are not supported yet (backing file " +
                      h.backing_file + ")");
  if (h.incompatible_features & kIncompatDirty)
    warnings_.push_back(path() + ": image is marked dirty (refcounts may be stale); reading anyway");
  if (h.incompatible_features & kIncompatCorrupt)
    warnings_.push_back(path() + ": image is marked corrupt; reading anyway");
  if (h.l1_table_offset % cs != 0)
    throw util::Error(util::AtOffset(path(), h.l1_table_offset, "L1 table is not cluster aligned"));
  if (h.l1_size < h.l1_entries_needed())
    throw util::Error(path() + ": L1 table has " + std::to_string(h.l1_size) +
                      " entries, too few for virtual size " + std::to_string(h.size));
  if (uint64_t{h.l1_size} * 8 > kMaxL1Bytes)
    throw util::Error(path() + ": L1 table of " + std::to_string(h.l1_size) +
                      " entries is over the 32 MiB limit");
  if (h.l1_size && h.l1_table_offset < cs)
    throw util::Error(util::AtOffset(path(), h.l1_table_offset, "L1 table overlaps the header"));
}

void Qcow2Reader::LoadL1() {
  const Header& h = header_;
  // Only the entries that map the virtual size matter.
  const uint64_t used = h.l1_entries_needed();
  l1_.assign(used, 0);
  if (used == 0) return;
  CheckHostRange(h.l1_table_offset, used * 8, "L1 table");
  std::vector<uint8_t> raw(used * 8);
  file_.ReadAt(raw, h.l1_table_offset);
  const uint64_t cs = h.cluster_size();
  for (uint64_t i = 0; i < used; ++i) {
    const uint64_t entry = util::LoadBE64(&raw[i * 8]);
    const uint64_t l2 = entry & kL1OffsetMask;
    const uint64_t at = h.l1_table_offset + i * 8;
    if (entry & 0x7f000000000001ffull)
      throw util::Error(util::AtOffset(path(), at, "L1 entry " + std::to_string(i) +
                                                        " has reserved bits set: " + Hex(entry)));
    if (l2 == 0) continue;
    if (l2 % cs != 0)
      throw util::Error(util::AtOffset(path(), at, "L1 entry " + std::to_string(i) +
                                                        ": L2 table offset " + Hex(l2) +
                                                        " is not cluster aligned"));
    if (l2 < cs)
      throw util::Error(util::AtOffset(path(), at, "L1 entry " + std::to_string(i) +
                                                        ": L2 table overlaps the header"));
    CheckHostRange(l2, cs, "L2 table of L1 entry " + std::to_string(i));
    l1_[i] = l2;
  }
}

uint64_t Qcow2Reader::L2Entry(uint64_t guest_cluster) {
  const uint64_t per = header_.l2_entries();
  const uint64_t l1_index = guest_cluster / per;
  if (l1_index >= l1_.size() || l1_[l1_index] == 0) return 0;
  return l2_cache_->Get(l1_index, l1_[l1_index], false, false)[guest_cluster % per];
}

Mapping Qcow2Reader::Map(uint64_t guest_offset) {
  const Header& h = header_;
  const uint64_t cs = h.cluster_size();
  Mapping m;
  m.guest_offset = guest_offset;
  if (guest_offset >= h.size) return m;
  const uint64_t per = h.l2_entries();
  uint64_t cluster = guest_offset / cs;
  const uint64_t in_cluster = guest_offset % cs;
  const uint64_t table_end =
      std::min(h.size, (cluster / per + 1) * per * cs);  // end of this L2 table's range
  // No L2 table: its whole range, and that of the empty L1 entries after it,
  // is unallocated (a 15 TiB image has millions of them; never walk them cluster by cluster).
  if (cluster / per >= l1_.size() || l1_[cluster / per] == 0) {
    uint64_t l1_index = cluster / per + 1;
    while (l1_index < l1_.size() && l1_[l1_index] == 0) ++l1_index;
    m.length = std::min(h.size, l1_index * per * cs) - guest_offset;
    return m;
  }
  const uint64_t raw = L2Entry(cluster);
  const uint64_t entry_at = l1_[cluster / per] + (cluster % per) * 8;
  if (raw & kOflagCompressed) {
    ::qcow2::L2Entry e = DecodeL2Entry(raw, h);
    // The sector-rounded size may run past the end of the file; the start may not.
    if (e.host_offset < cs || e.host_offset >= file_size_)
      throw util::Error(util::AtOffset(path(), entry_at,
                                       "L2 entry for guest cluster " + std::to_string(cluster) +
                                           ": compressed data offset " + Hex(e.host_offset) +
                                           " is outside the file's data area"));
    m.kind = ClusterKind::kCompressed;
    m.host_offset = e.host_offset;
    m.compressed_size = e.compressed_size;
    m.length = std::min(cs - in_cluster, h.size - guest_offset);
    return m;
  }
  if (raw & 0x3f000000000001feull)
    throw util::Error(util::AtOffset(path(), entry_at, "L2 entry for guest cluster " +
                                                          std::to_string(cluster) +
                                                          " has reserved bits set: " + Hex(raw)));
  ::qcow2::L2Entry first = DecodeL2Entry(raw, h);
  if (first.kind == ClusterKind::kNormal) {
    if (first.host_offset % cs != 0)
      throw util::Error(util::AtOffset(path(), entry_at, "L2 entry for guest cluster " +
                                                            std::to_string(cluster) +
                                                            ": data offset " + Hex(first.host_offset) +
                                                            " is not cluster aligned"));
    if (first.host_offset < cs)
      throw util::Error(util::AtOffset(path(), entry_at, "L2 entry for guest cluster " +
                                                            std::to_string(cluster) +
                                                            " points into the header"));
    CheckHostRange(first.host_offset, cs, "data cluster of guest cluster " + std::to_string(cluster));
  }
  m.kind = first.kind == ClusterKind::kZeroAllocated ? ClusterKind::kZero : first.kind;
  m.host_offset = first.host_offset + in_cluster;
  uint64_t end = (cluster + 1) * cs;
  // Extend over following clusters of the same kind (contiguous on the host for data).
  while (end < table_end) {
    const uint64_t next = cluster + 1;
    const uint64_t next_raw = L2Entry(next);
    if (next_raw & kOflagCompressed) break;
    ::qcow2::L2Entry e = DecodeL2Entry(next_raw, h);
    const ClusterKind kind = e.kind == ClusterKind::kZeroAllocated ? ClusterKind::kZero : e.kind;
    if (kind != m.kind) break;
    if (kind == ClusterKind::kNormal) {
      if (e.host_offset != first.host_offset + (next - guest_offset / cs) * cs) break;
    }
    cluster = next;
    end += cs;
  }
  m.length = std::min(end, h.size) - guest_offset;
  return m;
}

void Qcow2Reader::ReadCompressed(const Mapping& m, std::span<uint8_t> cluster) {
  const uint64_t available = file_size_ > m.host_offset ? file_size_ - m.host_offset : 0;
  const uint64_t n = std::min(m.compressed_size, available);
  if (n == 0)
    throw util::Error(util::AtOffset(path(), m.host_offset, "compressed cluster past end of file"));
  std::vector<uint8_t> in(n);
  file_.ReadAt(in, m.host_offset);
  if (!DecompressCluster(header_.compression_type, in, cluster))
    throw util::Error(util::AtOffset(path(), m.host_offset,
                                     "cannot decompress " + CompressionName(header_.compression_type) +
                                         " cluster at guest offset " +
                                         std::to_string(m.guest_offset)));
}

void Qcow2Reader::Read(uint64_t guest_offset, std::span<uint8_t> out) {
  const uint64_t cs = header_.cluster_size();
  std::vector<uint8_t> cluster;
  size_t done = 0;
  while (done < out.size()) {
    Mapping m = Map(guest_offset + done);
    if (m.length == 0)
      throw util::Error(util::AtOffset(path(), guest_offset + done, "read past the virtual size"));
    const size_t n = static_cast<size_t>(std::min<uint64_t>(m.length, out.size() - done));
    std::span<uint8_t> dst = out.subspan(done, n);
    switch (m.kind) {
      case ClusterKind::kNormal:
        file_.ReadAt(dst, m.host_offset);
        break;
      case ClusterKind::kCompressed: {
        cluster.resize(cs);
        ReadCompressed(m, cluster);
        std::memcpy(dst.data(), cluster.data() + (m.guest_offset % cs), n);
        break;
      }
      default:
        std::fill(dst.begin(), dst.end(), 0);
    }
    done += n;
  }
}

void ConvertToRaw(Qcow2Reader& reader, util::RawWriter& out) {
  const uint64_t size = reader.virtual_size();
  constexpr uint64_t kChunk = 4u << 20;
  std::vector<uint8_t> buf;
  uint64_t at = 0;
  while (at < size) {
    Mapping m = reader.Map(at);
    if (m.kind == ClusterKind::kNormal) {
      // Large sequential reads over host-contiguous runs.
      for (uint64_t done = 0; done < m.length;) {
        const uint64_t n = std::min(kChunk, m.length - done);
        buf.resize(n);
        reader.Read(at + done, buf);
        out.Write(at + done, buf);
        done += n;
      }
    } else if (m.kind == ClusterKind::kCompressed) {
      buf.resize(m.length);
      reader.Read(at, buf);
      out.Write(at, buf);
    }
    at += m.length;
  }
  out.Finish(size);
}

}  // namespace qcow2
