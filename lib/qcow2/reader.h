// Qcow2Reader opens a qcow2 image, validates its header and tables against
// the file, and maps guest offsets to what backs them: its own clusters and
// subclusters, an external data file, or a backing file (raw or qcow2, in a
// chain). ConvertToRaw streams the whole virtual disk into a raw output.
#pragma once

#include <sys/types.h>
#include <cstdint>
#include <functional>
#include <memory>

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "qcow2/backing.h"
#include "qcow2/format.h"
#include "qcow2/l2_cache.h"
#include "qcow2/subcluster.h"
#include "util/file.h"
#include "util/large_buffer.h"
#include "util/output.h"

namespace qcow2 {

class Qcow2Reader;
class MetadataLayout;

// One run of guest bytes that share a kind (and, for kNormal, are
// contiguous on the host). Map() describes one layer; Resolve() follows
// unallocated ranges down the backing chain, and then kUnallocated means
// "reads as zeros".
struct Mapping {
  ClusterKind kind = ClusterKind::kUnallocated;
  uint64_t guest_offset = 0;
  uint64_t length = 0;
  uint64_t host_offset = 0;  // kNormal: host byte of guest_offset; kCompressed: entry's offset
  uint64_t compressed_size = 0;
  // kNormal: the file holding the bytes (image, data file or raw backing
  // file). When pad_past_eof, bytes at and past file_size (the file's size
  // when opened) read as zeros without being read, as qemu reads them: a
  // file whose reads do not stop at its size (/proc) gives nothing more.
  const util::File* file = nullptr;
  bool pad_past_eof = false;
  uint64_t file_size = 0;
  // kCompressed: the layer whose cluster this is.
  Qcow2Reader* layer = nullptr;
};

// Read access to one qcow2 image (the active layer) and its backing chain.
class Qcow2Reader {
  struct ChainKey {  // only a reader opens its backing layers
    explicit ChainKey() = default;
  };

 public:
  // Opens and validates the image and everything it refers to, following
  // backing and data files as the policy allows; throws util::Error naming
  // the file, the table, the entry and the offset (ReferenceError for a
  // backing or data file that cannot be followed).
  explicit Qcow2Reader(const std::string& path, const ReferencePolicy& policy = {});
  // The same for an image already open (a spool copy of a stream): every
  // message names it as file.path(), and the files it names are found as
  // the policy says, relative to that path.
  Qcow2Reader(util::File file, const ReferencePolicy& policy);
  // A backing layer, opened by the chain walk of the reader above it.
  Qcow2Reader(ChainKey, util::File file, BackingChain& chain);
  ~Qcow2Reader();
  Qcow2Reader(const Qcow2Reader&) = delete;
  Qcow2Reader& operator=(const Qcow2Reader&) = delete;

  const Header& header() const { return header_; }
  const std::string& path() const { return file_.path(); }
  uint64_t virtual_size() const { return header_.size; }
  uint64_t file_size() const { return file_size_; }
  std::span<const uint64_t> l1_table() const { return l1_; }
  // The backing layer (null when there is none or it is raw).
  const Qcow2Reader* backing() const { return backing_qcow2_.get(); }
  // Layers below this one (0 without a backing file).
  int backing_depth() const;

  // This layer's mapping that starts at guest_offset, at most up to the end
  // of its L2 table's range and of the virtual size.
  Mapping Map(uint64_t guest_offset);
  // The mapping at guest_offset through the whole chain, at most max_length long.
  Mapping Resolve(uint64_t guest_offset, uint64_t max_length);
  // Reads guest bytes through the chain (zeros where nothing is allocated);
  // the bytes asked for lie within the virtual size.
  void Read(uint64_t guest_offset, std::span<uint8_t> out);
  // The decompressed guest cluster of a compressed mapping of this layer;
  // the last cluster is kept, so none is decompressed twice in a row.
  std::span<const uint8_t> CompressedCluster(const Mapping& m);
  // Warnings noticed on open (dirty or corrupt bits), one line each, the
  // backing chain's included.
  const std::vector<std::string>& warnings() const { return warnings_; }
  // Compressed clusters decompressed so far (this layer).
  uint64_t decompressions() const { return decompressions_; }

 private:
  void Open(BackingChain& chain);
  void LoadL1();
  void ClaimL2Tables();
  void OpenBacking(BackingChain& chain);
  // The checked descriptor of a guest cluster.
  ClusterDescriptor Descriptor(uint64_t guest_cluster);
  [[noreturn]] void Fail(uint64_t offset, const std::string& what) const;

  util::File file_;
  uint64_t file_size_ = 0;
  Header header_;
  // The L1 entries that map the virtual size, offsets only (15 MiB for
  // 15 TiB of 8 KiB clusters): mapped up front, not faulted in page by page.
  util::LargeBuffer l1_storage_;
  std::span<uint64_t> l1_;
  std::unique_ptr<L2Cache> l2_cache_;
  std::unique_ptr<MetadataLayout> layout_;
  std::vector<std::string> warnings_;

  util::File data_file_;  // open when the image has an external data file
  bool has_data_file_ = false;
  uint64_t data_file_size_ = 0;

  std::unique_ptr<Qcow2Reader> backing_qcow2_;
  util::File backing_raw_;
  uint64_t backing_size_ = 0;
  bool has_backing_ = false;

  uint64_t cached_compressed_offset_ = ~uint64_t{0};
  std::vector<uint8_t> cached_cluster_;
  uint64_t decompressions_ = 0;
};

// Writes the image's whole virtual disk to `out` (exactly virtual_size bytes);
// progress, if given, gets the number of bytes of the virtual disk done.
void ConvertToRaw(Qcow2Reader& reader, util::RawWriter& out,
                  const std::function<void(uint64_t bytes_done)>& progress = {});

// True when the file at path starts with the qcow2 magic.
bool IsQcow2File(const std::string& path);

}  // namespace qcow2
