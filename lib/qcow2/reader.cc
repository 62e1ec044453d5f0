#include "qcow2/reader.h"

#include <fcntl.h>

#include <algorithm>

#include "qcow2/image_file.h"
#include "qcow2/metadata_layout.h"
#include "util/endian.h"
#include "util/error.h"

namespace qcow2 {
namespace {

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

Qcow2Reader::Qcow2Reader(const std::string& path, const ReferencePolicy& policy)
    : Qcow2Reader(util::File::Open(path, O_RDONLY), policy) {}

Qcow2Reader::Qcow2Reader(util::File file, const ReferencePolicy& policy) : file_(std::move(file)) {
  BackingChain chain(file_, policy);
  Open(chain);
}

Qcow2Reader::Qcow2Reader(ChainKey, util::File file, BackingChain& chain) : file_(std::move(file)) {
  Open(chain);
}

Qcow2Reader::~Qcow2Reader() = default;

void Qcow2Reader::Fail(uint64_t offset, const std::string& what) const {
  throw util::Error(util::AtOffset(path(), offset, what));
}

int Qcow2Reader::backing_depth() const {
  return backing_qcow2_ ? 1 + backing_qcow2_->backing_depth() : (has_backing_ ? 1 : 0);
}

void Qcow2Reader::Open(BackingChain& chain) {
  file_size_ = file_.Size();
  header_ = LoadHeader(file_, file_size_);
  warnings_ = ValidateForReading(header_, path());
  layout_ = std::make_unique<MetadataLayout>(path(), file_size_, header_.cluster_size());
  LoadL1();
  ClaimRefcountTables(file_, header_, *layout_);
  ClaimSnapshots(ReadSnapshotTable(file_, file_size_, header_), header_, *layout_);
  ClaimBitmaps(ReadBitmapDirectory(file_, file_size_, header_), header_, *layout_);
  ClaimL2Tables();

  // Never more tables than the file can hold (a small hostile file must not
  // make the cache allocate for hundreds of tables it does not have).
  const uint64_t file_clusters = file_size_ / header_.cluster_size();
  const size_t tables = static_cast<size_t>(std::clamp<uint64_t>(
      std::min(kL2CacheBytes / header_.cluster_size(), file_clusters), 2, kDefaultL2CacheTables));
  auto load = [this](uint64_t host, std::span<uint64_t> table) {
    ReadBigEndianTable(file_, host, table);
  };
  auto store = [](uint64_t, std::span<const uint64_t>) {};
  // The cache's tables are whole clusters of 64-bit words (two per
  // extended L2 entry).
  l2_cache_ = std::make_unique<L2Cache>(tables, header_.cluster_size() / 8, load, store);

  data_file_ = OpenDataFile(path(), header_, chain.policy());
  has_data_file_ = data_file_.is_open();
  data_file_size_ = has_data_file_ ? data_file_.Size() : 0;
  OpenBacking(chain);
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

void Qcow2Reader::OpenBacking(BackingChain& chain) {
  std::optional<BackingFile> b = chain.Next(path(), header_);
  if (!b)
    return;
  has_backing_ = true;
  if (b->format == BackingFormat::kQcow2) {
    backing_qcow2_ = std::make_unique<Qcow2Reader>(ChainKey{}, std::move(b->file), chain);
    backing_size_ = backing_qcow2_->virtual_size();
    for (const std::string& w : backing_qcow2_->warnings())
      warnings_.push_back(w);
  } else {
    backing_raw_ = std::move(b->file);
    backing_size_ = backing_raw_.Size();
  }
}

}  // namespace qcow2
