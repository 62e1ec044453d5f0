#include "e2img/extent_walk.h"

#include <ext2fs/ext2_err.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <vector>

namespace e2img {
namespace {

// On-disk extent node layout (little endian): a 12-byte header, then 12-byte
// entries, index entries above the leaves, extents in the leaves.
constexpr uint16_t kExtentMagic = 0xF30A;
constexpr size_t kHeaderBytes = 12;
constexpr size_t kEntryBytes = 12;
constexpr uint16_t kMaxDepth = 5;              // ext4 never builds deeper trees
constexpr uint16_t kUninitLengthBias = 32768;  // ee_len above this: unwritten extent

uint16_t Le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}
uint32_t Le32(const uint8_t* p) {
  return Le16(p) | static_cast<uint32_t>(Le16(p + 2)) << 16;
}

// One walk: the filesystem, what to collect, and a buffer per tree level.
class Walker {
 public:
  Walker(ext2_filsys fs, bool with_data, BlockSet& blocks)
      : fs_(fs),
        with_data_(with_data),
        blocks_(blocks),
        blocks_count_(ext2fs_blocks_count(fs->super)) {}

  // node: a header and its entries; depth_expected: the depth the parent
  // promises (or -1 for the root).
  void Node(std::span<const uint8_t> node, int depth_expected) {
    if (node.size() < kHeaderBytes || Le16(node.data()) != kExtentMagic)
      return Fail(EXT2_ET_EXTENT_HEADER_BAD);
    const uint16_t entries = Le16(node.data() + 2);
    const uint16_t depth = Le16(node.data() + 6);
    if (depth > kMaxDepth || (depth_expected >= 0 && depth != depth_expected))
      return Fail(EXT2_ET_EXTENT_HEADER_BAD);
    const size_t capacity = (node.size() - kHeaderBytes) / kEntryBytes;
    if (entries > capacity)
      return Fail(EXT2_ET_EXTENT_HEADER_BAD);
    for (size_t i = 0; i < entries; ++i) {
      const uint8_t* e = node.data() + kHeaderBytes + i * kEntryBytes;
      if (depth == 0) {
        Extent(e);
      } else {
        const uint64_t child = Le32(e + 4) | static_cast<uint64_t>(Le16(e + 8)) << 32;
        Child(child, depth - 1);
      }
    }
  }

  ExtentWalkResult result() const { return result_; }

 private:
  void Fail(errcode_t err) {
    if (!result_.error)
      result_.error = err;
  }

  bool InRange(uint64_t block, uint64_t count) {
    if (block < blocks_count_ && count <= blocks_count_ - block)
      return true;
    result_.out_of_range += block < blocks_count_ ? count - (blocks_count_ - block) : count;
    return false;
  }

  void Extent(const uint8_t* e) {
    if (!with_data_)
      return;
    uint64_t length = Le16(e + 4);
    if (length > kUninitLengthBias)
      length -= kUninitLengthBias;
    const uint64_t start = Le32(e + 8) | static_cast<uint64_t>(Le16(e + 6)) << 32;
    if (!length)
      return;
    if (InRange(start, length)) {
      blocks_.Add(start, length);
    } else if (start < blocks_count_) {
      blocks_.Add(start, blocks_count_ - start);  // the part that exists
    }
  }

  void Child(uint64_t block, uint16_t depth) {
    if (!InRange(block, 1))
      return;
    blocks_.Add(block);
    std::vector<uint8_t>& buf = Buffer(depth);
    const errcode_t err = io_channel_read_blk64(fs_->io, block, 1, buf.data());
    if (err)
      return Fail(err);
    Node(buf, depth);
  }

  std::vector<uint8_t>& Buffer(uint16_t depth) {
    std::vector<uint8_t>& buf = buffers_[std::min<uint16_t>(depth, kMaxDepth)];
    buf.resize(fs_->blocksize);
    return buf;
  }

  ext2_filsys fs_;
  bool with_data_;
  BlockSet& blocks_;
  uint64_t blocks_count_;
  std::vector<uint8_t> buffers_[kMaxDepth + 1];
  ExtentWalkResult result_;
};

}  // namespace

ExtentWalkResult WalkExtentTree(ext2_filsys fs, const ext2_inode& inode, bool with_data,
                                BlockSet& blocks) {
  uint8_t root[sizeof(inode.i_block)];
  std::memcpy(root, inode.i_block, sizeof(root));
  Walker walker(fs, with_data, blocks);
  walker.Node(root, -1);
  return walker.result();
}

}  // namespace e2img
