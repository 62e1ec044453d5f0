#include "qcow2/reader.h"

#include <fcntl.h>

#include <algorithm>

#include "qcow2/backing.h"
#include "qcow2/metadata_layout.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

// Smallest cluster that still gives 512-byte subclusters (qemu's rule too).
constexpr uint32_t kMinExtendedL2ClusterBits = 14;
// Memory bound of one layer's L2 cache.
constexpr uint64_t kL2CacheBytes = 32ull << 20;

}  // namespace

bool IsQcow2File(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  util::File f(fd, path);
  uint8_t magic[4];
  return f.ReadUpTo(magic, 0) == 4 && HasQcow2Magic(magic);
}

Qcow2Reader::Qcow2Reader(const std::string& path) : file_(util::File::Open(path, O_RDONLY)) {
  std::set<FileId> open_layers;
  Open(0, open_layers);
}

Qcow2Reader::Qcow2Reader(ChainKey, const std::string& path, int depth,
                         std::set<FileId>& open_layers)
    : file_(util::File::Open(path, O_RDONLY)) {
  Open(depth, open_layers);
}

Qcow2Reader::~Qcow2Reader() = default;

void Qcow2Reader::Fail(uint64_t offset, const std::string& what) const {
  throw util::Error(util::AtOffset(path(), offset, what));
}

int Qcow2Reader::backing_depth() const {
  return backing_qcow2_ ? 1 + backing_qcow2_->backing_depth() : (has_backing_ ? 1 : 0);
}

void Qcow2Reader::Open(int depth, std::set<FileId>& open_layers) {
  const struct stat st = file_.Stat();
  if (!open_layers.insert({st.st_dev, st.st_ino}).second)
    throw util::Error(path() + ": the backing chain loops back to this file");
  file_size_ = file_.Size();
  // The header and its extensions are in the first cluster: only that is
  // read, not a buffer of the largest cluster size.
  uint8_t fixed[24] = {};
  file_.ReadUpTo(fixed, 0);
  std::vector<uint8_t> first(std::min<uint64_t>(file_size_, HeaderClusterBytes(fixed)));
  file_.ReadAt(first, 0);
  header_ = DecodeHeader(first, path());
  ValidateHeader();
  layout_ = std::make_unique<MetadataLayout>(path(), file_size_, header_.cluster_size());
  LoadL1();
  ClaimRefcountTables(file_, header_, *layout_);
  ClaimSnapshots(file_, header_, *layout_);
  ClaimBitmaps(file_, header_, *layout_);
  ClaimL2Tables();

  const uint64_t words = header_.cluster_size() / 8;  // an L2 table as 64-bit words
  // Never more tables than the file can hold (a small hostile file must not
  // make the cache allocate for hundreds of tables it does not have).
  const uint64_t file_clusters = file_size_ / header_.cluster_size();
  const size_t tables = static_cast<size_t>(std::clamp<uint64_t>(
      std::min(kL2CacheBytes / header_.cluster_size(), file_clusters), 2, kDefaultL2CacheTables));
  auto load = [this](uint64_t host, std::span<uint64_t> table) {
    std::vector<uint8_t> raw(table.size() * 8);
    file_.ReadAt(raw, host);
    for (size_t i = 0; i < table.size(); ++i)
      table[i] = util::LoadBE64(&raw[i * 8]);
  };
  auto store = [](uint64_t, std::span<const uint64_t>) {};
  l2_cache_ = std::make_unique<L2Cache>(tables, words, load, store);

  OpenDataFile();
  OpenBacking(depth, open_layers);
}

void Qcow2Reader::ValidateHeader() {
  const Header& h = header_;
  if (h.crypt_method == 1)
    Fail(32, "AES-encrypted qcow2 images are not supported");
  if (h.crypt_method == 2)
    Fail(32, "LUKS-encrypted qcow2 images are not supported");
  if (h.crypt_method != 0)
    Fail(32, "unknown encryption method " + std::to_string(h.crypt_method));
  if (const HeaderExtension* fde = h.FindExtension(kExtFullDiskEncryption))
    Fail(fde->offset - 8, "full disk encryption header extension in an unencrypted image");
  const uint64_t unknown = h.incompatible_features & ~kIncompatKnown;
  if (unknown)
    Fail(72, "unknown incompatible qcow2 feature " + DescribeIncompatibleBits(h, unknown));
  if ((h.incompatible_features & kIncompatCompression) &&
      h.compression_type == CompressionType::kZlib)
    Fail(72, "compression type bit set but the compression type is zlib");
  if (h.extended_l2() && h.cluster_bits < kMinExtendedL2ClusterBits)
    Fail(20, "extended L2 entries need clusters of at least 16 KiB, not " +
                 std::to_string(h.cluster_size()));
  if ((h.incompatible_features & kIncompatDataFile) && DataFileName(h).empty())
    Fail(72, "external data file bit set but no data file name extension");
  if ((h.incompatible_features & kIncompatDataFile) && h.nb_snapshots)
    Fail(60, "internal snapshots in an image with an external data file");
  if (h.incompatible_features & kIncompatDirty)
    warnings_.push_back(path() +
                        ": image is marked dirty (refcounts may be stale); reading anyway");
  if (h.incompatible_features & kIncompatCorrupt)
    warnings_.push_back(path() + ": image is marked corrupt; reading anyway");
  if (uint64_t{h.l1_size} * 8 > kMaxL1Bytes)
    Fail(36, "L1 table of " + std::to_string(h.l1_size) + " entries is over the 32 MiB limit");
  if (h.l1_size < h.l1_entries_needed())
    Fail(36, "L1 table has " + std::to_string(h.l1_size) + " entries, too few for virtual size " +
                 std::to_string(h.size));
}

void Qcow2Reader::LoadL1() {
  const Header& h = header_;
  if (h.l1_size)
    layout_->Claim(h.l1_table_offset, uint64_t{h.l1_size} * 8, "L1 table", 40);
  // Only the entries that map the virtual size matter.
  const uint64_t used = h.l1_entries_needed();
  if (used == 0)
    return;
  // Read in place, then turned from big-endian entries into offsets.
  l1_storage_ = util::LargeBuffer(used * 8);
  file_.ReadAt(l1_storage_.bytes(), h.l1_table_offset);
  l1_ = l1_storage_.As<uint64_t>();
  const uint8_t* raw = l1_storage_.bytes().data();
  for (uint64_t i = 0; i < used; ++i) {
    const uint64_t entry = util::LoadBE64(raw + i * 8);
    if (entry & 0x7f000000000001ffull)
      Fail(h.l1_table_offset + i * 8,
           "L1 table entry " + std::to_string(i) + ": reserved bits set in " + HexString(entry));
    l1_[i] = entry & kL1OffsetMask;
  }
}

void Qcow2Reader::ClaimL2Tables() {
  for (uint64_t i = 0; i < l1_.size(); ++i)
    if (l1_[i])
      layout_->Claim(l1_[i], header_.cluster_size(),
                     "L1 table entry " + std::to_string(i) + ": L2 table",
                     header_.l1_table_offset + i * 8);
}

void Qcow2Reader::OpenDataFile() {
  if (!(header_.incompatible_features & kIncompatDataFile))
    return;
  const std::string name =
      ResolveReferencedPath(path(), DataFileName(header_), "external data file");
  try {
    data_file_ = util::File::Open(name, O_RDONLY);
  } catch (const util::Error& e) {
    throw util::Error(path() + ": cannot open external data file '" + name + "': " + e.what());
  }
  has_data_file_ = true;
}

void Qcow2Reader::OpenBacking(int depth, std::set<FileId>& open_layers) {
  if (header_.backing_file.empty())
    return;
  if (depth + 1 > kMaxBackingDepth)
    throw util::Error(path() + ": backing chain is deeper than " +
                      std::to_string(kMaxBackingDepth) + " files");
  const std::string name = ResolveReferencedPath(path(), header_.backing_file, "backing file");
  BackingFormat format;
  try {
    format = DetectBackingFormat(header_, path(), name);
  } catch (const util::Error& e) {
    if (std::string(e.what()).rfind(path() + ":", 0) == 0)
      throw;
    const std::string resolved = name == header_.backing_file ? "" : " (" + name + ")";
    throw util::Error(path() + ": cannot open backing file '" + header_.backing_file + "'" +
                      resolved + ": " + e.what());
  }
  has_backing_ = true;
  if (format == BackingFormat::kQcow2) {
    backing_qcow2_ = std::make_unique<Qcow2Reader>(ChainKey{}, name, depth + 1, open_layers);
    backing_size_ = backing_qcow2_->virtual_size();
    for (const std::string& w : backing_qcow2_->warnings())
      warnings_.push_back(w);
  } else {
    backing_raw_ = util::File::Open(name, O_RDONLY);
    backing_size_ = backing_raw_.Size();
  }
}

}  // namespace qcow2
