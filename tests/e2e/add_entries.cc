// Test helper: adds COUNT empty regular files named PREFIX<i> to each given
// directory of a filesystem image through libext2fs. On a hash-tree directory
// ext2fs_link inserts through the index, so big directories are built in
// seconds (mke2fs -d links into linear directories, quadratic in time).
#include <ext2fs/ext2fs.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

int Fail(const char* what, errcode_t err) {
  std::fprintf(stderr, "add_entries: %s failed (error %ld)\n", what, static_cast<long>(err));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: add_entries IMAGE PREFIX COUNT DIR_INO...\n");
    return 1;
  }
  const std::string prefix = argv[2];
  const unsigned long count = std::strtoul(argv[3], nullptr, 0);
  ext2_filsys fs = nullptr;
  if (errcode_t err =
          ext2fs_open(argv[1], EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs))
    return Fail("open", err);
  if (errcode_t err = ext2fs_read_bitmaps(fs))
    return Fail("read bitmaps", err);
  for (int arg = 4; arg < argc; ++arg) {
    const ext2_ino_t dir = static_cast<ext2_ino_t>(std::strtoul(argv[arg], nullptr, 0));
    for (unsigned long i = 1; i <= count; ++i) {
      ext2_ino_t ino = 0;
      if (errcode_t err = ext2fs_new_inode(fs, dir, LINUX_S_IFREG | 0644, nullptr, &ino))
        return Fail("new inode", err);
      ext2_inode inode{};
      inode.i_mode = LINUX_S_IFREG | 0644;
      inode.i_links_count = 1;
      if (errcode_t err = ext2fs_write_new_inode(fs, ino, &inode))
        return Fail("write inode", err);
      ext2fs_inode_alloc_stats2(fs, ino, +1, 0);
      const std::string name = prefix + std::to_string(i);
      errcode_t err = ext2fs_link(fs, dir, name.c_str(), ino, EXT2_FT_REG_FILE);
      if (err) {  // no room: a new block (or inline data moved to a block), then again
        if ((err = ext2fs_expand_dir(fs, dir)))
          return Fail("expand dir", err);
        err = ext2fs_link(fs, dir, name.c_str(), ino, EXT2_FT_REG_FILE);
      }
      if (err)
        return Fail("link", err);
    }
  }
  if (errcode_t err = ext2fs_close_free(&fs))
    return Fail("close", err);
  return 0;
}
