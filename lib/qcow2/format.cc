#include "qcow2/format.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

using util::LoadBE32;
using util::LoadBE64;
using util::StoreBE32;
using util::StoreBE64;

[[noreturn]] void Fail(const std::string& name, uint64_t offset, const std::string& what) {
  throw util::Error(util::AtOffset(name, offset, "qcow2 header: " + what));
}

}  // namespace

uint64_t Header::l1_entries_needed() const {
  const uint64_t per = bytes_per_l1_entry();
  return size / per + (size % per != 0);
}

const HeaderExtension* Header::FindExtension(uint32_t type) const {
  for (const auto& ext : extensions)
    if (ext.type == type)
      return &ext;
  return nullptr;
}

std::vector<uint8_t> Header::Encode() const {
  const uint32_t fixed =
      version >= 3 ? std::max<uint32_t>(header_length, kV3HeaderSize) : kV2HeaderSize;
  std::vector<uint8_t> out(fixed, 0);
  uint8_t* p = out.data();
  StoreBE32(p + 0, kMagic);
  StoreBE32(p + 4, version);
  StoreBE64(p + 8, backing_file_offset);
  StoreBE32(p + 16, backing_file_size);
  StoreBE32(p + 20, cluster_bits);
  StoreBE64(p + 24, size);
  StoreBE32(p + 32, crypt_method);
  StoreBE32(p + 36, l1_size);
  StoreBE64(p + 40, l1_table_offset);
  StoreBE64(p + 48, refcount_table_offset);
  StoreBE32(p + 56, refcount_table_clusters);
  StoreBE32(p + 60, nb_snapshots);
  StoreBE64(p + 64, snapshots_offset);
  if (version >= 3) {
    StoreBE64(p + 72, incompatible_features);
    StoreBE64(p + 80, compatible_features);
    StoreBE64(p + 88, autoclear_features);
    StoreBE32(p + 96, refcount_order);
    StoreBE32(p + 100, fixed);
    if (fixed > kV3HeaderSize)
      p[104] = static_cast<uint8_t>(compression_type);
  }
  // Extensions follow the fixed header in version 2 too, as qemu writes them
  // and DecodeHeader reads them.
  for (const auto& ext : extensions) {
    const size_t at = out.size();
    out.resize(at + 8 + AlignUp8(ext.data.size()), 0);
    StoreBE32(out.data() + at, ext.type);
    StoreBE32(out.data() + at + 4, static_cast<uint32_t>(ext.data.size()));
    std::copy(ext.data.begin(), ext.data.end(), out.begin() + static_cast<ptrdiff_t>(at + 8));
  }
  if (version >= 3 || !extensions.empty())
    out.resize(out.size() + 8, 0);  // end-of-extensions marker
  if (!backing_file.empty()) {
    const uint64_t at = out.size();
    out.insert(out.end(), backing_file.begin(), backing_file.end());
    StoreBE64(out.data() + 8, at);
    StoreBE32(out.data() + 16, static_cast<uint32_t>(backing_file.size()));
  }
  return out;
}

std::string HexString(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

bool HasQcow2Magic(std::span<const uint8_t> first_bytes) {
  return first_bytes.size() >= 4 && LoadBE32(first_bytes.data()) == kMagic;
}

uint64_t HeaderClusterBytes(std::span<const uint8_t> first_bytes) {
  if (first_bytes.size() < 24)
    return uint64_t{1} << kMaxClusterBits;
  const uint32_t cluster_bits = LoadBE32(first_bytes.data() + 20);
  if (cluster_bits < kMinClusterBits || cluster_bits > kMaxClusterBits)
    return uint64_t{1} << kMaxClusterBits;
  return uint64_t{1} << cluster_bits;
}

Header DecodeHeader(std::span<const uint8_t> b, const std::string& name) {
  if (b.size() < kV2HeaderSize)
    Fail(name, b.size(), "file too short for a qcow2 header");
  if (!HasQcow2Magic(b))
    Fail(name, 0, "bad magic");
  Header h;
  const uint8_t* p = b.data();
  h.version = LoadBE32(p + 4);
  if (h.version != 2 && h.version != 3)
    Fail(name, 4, "unsupported version " + std::to_string(h.version));
  h.backing_file_offset = LoadBE64(p + 8);
  h.backing_file_size = LoadBE32(p + 16);
  h.cluster_bits = LoadBE32(p + 20);
  h.size = LoadBE64(p + 24);
  h.crypt_method = LoadBE32(p + 32);
  h.l1_size = LoadBE32(p + 36);
  h.l1_table_offset = LoadBE64(p + 40);
  h.refcount_table_offset = LoadBE64(p + 48);
  h.refcount_table_clusters = LoadBE32(p + 56);
  h.nb_snapshots = LoadBE32(p + 60);
  h.snapshots_offset = LoadBE64(p + 64);
  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits)
    Fail(name, 20, "cluster_bits " + std::to_string(h.cluster_bits) + " out of range 9..21");
  if (h.version >= 3) {
    if (b.size() < kV3HeaderSize)
      Fail(name, b.size(), "file too short for a version 3 header");
    h.incompatible_features = LoadBE64(p + 72);
    h.compatible_features = LoadBE64(p + 80);
    h.autoclear_features = LoadBE64(p + 88);
    h.refcount_order = LoadBE32(p + 96);
    h.header_length = LoadBE32(p + 100);
    if (h.header_length < kV3HeaderSize || h.header_length % 8 != 0)
      Fail(name, 100, "bad header_length " + std::to_string(h.header_length));
    if (h.header_length > h.cluster_size())
      Fail(name, 100, "header_length larger than a cluster");
    if (h.header_length > kV3HeaderSize) {
      if (b.size() < kV3HeaderSize + 1)
        Fail(name, 104, "file too short for compression_type");
      const uint8_t type = p[104];
      if (type > 1)
        Fail(name, 104, "unknown compression type " + std::to_string(type));
      h.compression_type = static_cast<CompressionType>(type);
    }
    if (h.compression_type != CompressionType::kZlib &&
        !(h.incompatible_features & kIncompatCompression))
      Fail(name, 104, "compression type set without the compression incompatible bit");
  }
  if (h.refcount_order > 6)
    Fail(name, 96, "refcount_order " + std::to_string(h.refcount_order) + " out of range 0..6");

  // Header extensions follow the fixed header (in version 2 too, as qemu
  // writes them) and end before the backing file name.
  {
    uint64_t at = h.header_length;
    uint64_t limit = std::min<uint64_t>(b.size(), h.cluster_size());
    if (h.backing_file_offset != 0)  // a name right after the fixed header leaves no room
      limit = std::min(limit, std::max(h.backing_file_offset, at));
    while (at < limit) {
      if (at + 8 > limit)
        Fail(name, at, "header extension runs past the first cluster");
      const uint32_t type = LoadBE32(p + at);
      const uint32_t len = LoadBE32(p + at + 4);
      if (type == kExtEnd)
        break;
      if (at + 8 + len > limit)
        Fail(name, at,
             "header extension " + std::to_string(type) + " of " + std::to_string(len) +
                 " bytes runs past the first cluster");
      HeaderExtension ext;
      ext.type = type;
      ext.data.assign(p + at + 8, p + at + 8 + len);
      ext.offset = at + 8;
      h.extensions.push_back(std::move(ext));
      at += 8 + AlignUp8(len);
    }
  }
  if (h.backing_file_offset != 0) {
    if (h.backing_file_size > 1023)
      Fail(name, 16, "backing file name longer than 1023 bytes");
    if (h.backing_file_offset < h.header_length)
      Fail(name, 8, "backing file name overlaps the fixed header");
    const uint64_t end = h.backing_file_offset + h.backing_file_size;
    if (end > std::min<uint64_t>(b.size(), h.cluster_size()) || end < h.backing_file_offset)
      Fail(name, 8, "backing file name outside the first cluster");
    h.backing_file.assign(reinterpret_cast<const char*>(p + h.backing_file_offset),
                          h.backing_file_size);
  }
  return h;
}

L2Entry DecodeL2Entry(uint64_t raw, const Header& header) {
  L2Entry e;
  if (raw & kOflagCompressed) {
    const uint32_t x = 62 - (header.cluster_bits - 8);
    const uint64_t offset_mask = (uint64_t{1} << x) - 1;
    e.kind = ClusterKind::kCompressed;
    e.host_offset = raw & offset_mask;
    const uint64_t extra_sectors = (raw & ~kOflagCopied & ~kOflagCompressed) >> x;
    e.compressed_size = (extra_sectors + 1) * 512 - (e.host_offset & 511);
    return e;
  }
  e.host_offset = raw & kL2OffsetMask;
  const bool zero = header.version >= 3 && (raw & kOflagZero);
  if (zero)
    e.kind = e.host_offset ? ClusterKind::kZeroAllocated : ClusterKind::kZero;
  else
    e.kind = e.host_offset ? ClusterKind::kNormal : ClusterKind::kUnallocated;
  return e;
}

void DecodeBigEndianTable(std::span<const uint8_t> raw, std::span<uint64_t> words) {
  for (size_t i = 0; i < words.size(); ++i)
    words[i] = LoadBE64(raw.data() + i * 8);
}

void EncodeBigEndianTable(std::span<const uint64_t> words, std::span<uint8_t> raw) {
  for (size_t i = 0; i < words.size(); ++i)
    StoreBE64(raw.data() + i * 8, words[i]);
}

uint64_t EncodeCompressedL2Entry(uint64_t host_offset, uint64_t compressed_bytes,
                                 uint32_t cluster_bits) {
  const uint32_t x = 62 - (cluster_bits - 8);
  const uint64_t extra_sectors = ((host_offset + compressed_bytes - 1) >> 9) - (host_offset >> 9);
  return kOflagCompressed | (extra_sectors << x) | host_offset;
}

}  // namespace qcow2
