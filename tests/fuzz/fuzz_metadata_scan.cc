// Fuzzes the filesystem side: opens the input as an ext2/3/4 filesystem
// through libext2fs, builds the metadata map and the scrambler's plan (as
// -r -s does) and copies the mapped blocks, scrambled, into a raw image. A
// damaged filesystem may be refused or give warnings; it must never crash
// or read out of bounds.
#include <fcntl.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "e2img/block_copier.h"
#include "e2img/filesystem.h"
#include "e2img/metadata_map.h"
#include "e2img/scramble.h"
#include "e2img/sinks.h"
#include "fuzz_util.h"
#include "util/error.h"
#include "util/file.h"
#include "util/output.h"

namespace {

// Filesystems that claim to be bigger than this are only scanned, not
// copied: the copy would be a big sparse file of zeros read past the end.
constexpr uint64_t kMaxCopyBytes = 64ull << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input = fuzzutil::WriteInput(data, size, "input.img");
  try {
    e2img::Filesystem fs(input, e2img::OpenOptions{});
    uint64_t warnings = 0;
    auto warn = [&](const std::string&) { ++warnings; };
    e2img::Scrambler scrambler(fs, /*seed=*/1, warn);
    e2img::MapOptions options;
    options.observe_inode = [&](uint32_t ino, const ext2_inode& inode) {
      scrambler.ObserveInode(ino, inode);
    };
    e2img::MetadataMap map = e2img::BuildMetadataMap(fs, options, warn);
    scrambler.Plan(map.blocks);
    if (fs.size_bytes() > kMaxCopyBytes)
      return 0;
    util::File source = util::File::Open(input, O_RDONLY);
    util::OutputFile out = util::OutputFile::Create(fuzzutil::ScratchDir() + "/output.raw");
    e2img::RawSink raw(out, fs.block_size(), fs.blocks_count(), 0);
    e2img::ScramblingSink sink(scrambler, raw);
    e2img::CopySource src{&source, 0, fs.block_size(), fs.super()->s_first_data_block};
    e2img::CopyBlocks(
        src, map.blocks, sink, [](uint64_t) {}, warn);
    sink.Finish();
    out.Commit();
  } catch (const util::Error&) {
  }
  return 0;
}
