// The layers qcow2-inspect map walks, as qemu-img map does: the image, then
// its backing files (qcow2 or raw) for what the image leaves unallocated.
// Each qcow2 layer's L1/L2 entries (standard or extended, with subclusters)
// are checked against the spec and the file as they are read.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qcow2/backing.h"
#include "qcow2/image_view.h"

namespace qcow2 {

// What one layer says about a run of guest bytes, as qemu's block status.
struct LayerStatus {
  uint64_t length = 0;
  bool data = false;               // reads from this layer (data, compressed or raw data)
  bool zero = false;               // reads as zeros from this layer
  std::optional<uint64_t> offset;  // host offset of the run's first byte
  bool compressed = false;
  // data || zero: the layer decides; otherwise the backing file does.
  bool allocated() const { return data || zero; }
};

// One run of guest bytes with the same status, as qemu-img map reports it.
struct MapRange {
  uint64_t start = 0;
  uint64_t length = 0;
  bool present = false;  // this layer or a backing file decides what it reads
  bool zero = false;
  bool data = false;
  bool compressed = false;
  std::optional<uint64_t> offset;     // host offset, when the data has one
  int depth = 0;                      // 0: the image itself, 1: its backing file...
  const std::string* file = nullptr;  // the file `offset` points into
};

// One file of the chain.
class MapLayer {
 public:
  virtual ~MapLayer() = default;
  // Guest bytes this layer covers (qemu's length of the backing file).
  virtual uint64_t size() const = 0;
  // The file host offsets point into (the image, its data file, a raw file).
  virtual const std::string& host_file() const = 0;
  // The status of the run starting at `offset`, at most `length` bytes.
  virtual LayerStatus Status(uint64_t offset, uint64_t length) = 0;
};

// The image and its backing chain; opening follows every backing file the
// policy allows, so a missing one, a loop or an unsupported format is an
// error (ReferenceError).
class MapChain {
 public:
  explicit MapChain(const ImageView& top, const ReferencePolicy& policy = {});
  ~MapChain();
  MapChain(const MapChain&) = delete;
  MapChain& operator=(const MapChain&) = delete;

  // The run at `offset` (at most `length` bytes): its status and the depth
  // of the layer that decided it, as qemu-img map's get_block_status.
  MapRange Resolve(uint64_t offset, uint64_t length);

 private:
  std::vector<std::unique_ptr<ImageView>> views_;  // backing qcow2 images
  std::vector<std::unique_ptr<MapLayer>> layers_;  // top first
};

}  // namespace qcow2
