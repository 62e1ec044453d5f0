#include "e2image_options.h"

#include <getopt.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "config.h"
#include "util/error.h"

namespace e2image {
namespace {

constexpr const char* kUsage =
    "Usage: e2image [-r|-Q] [-afnps] [-b superblock] [-B blocksize] [-o src_offset]\n"
    "               [-O dest_offset] [--qcow2-version=2|3] [--cluster-size=BYTES]\n"
    "               [--compress[=zlib|zstd]] [--compress-level=N] [--threads=N]\n"
    "               [--scramble-seed=N] [--scramble-map=FILE] [--scramble-keep-names]\n"
    "               [--no-sync] [--error-map=FILE] [--verify] device image-file\n"
    "       e2image -I device image-file\n"
    "       e2image -ra [-cfnp] [-o src_offset] [-O dest_offset] src_fs [dest_fs]\n"
    "       e2image -r [--no-sync] [--backing=any|image-dir|none] image.qcow2 image.raw\n";

constexpr const char* kHelp =
    "Save the metadata of an ext2/3/4 filesystem as an image for debugging.\n"
    "\n"
    "  (no -r/-Q)      write a classic e2i image (read by dumpe2fs -i, debugfs -i)\n"
    "  -r              write a raw image (metadata at its offsets, the rest holes);\n"
    "                  with a qcow2 file as the source, convert it to raw\n"
    "  -Q              write a qcow2 image\n"
    "  -a              include file data too (with -r or -Q); -ra copies or moves a\n"
    "                  filesystem (one file or device and -O: move it in place)\n"
    "  -b SUPERBLOCK   open the filesystem with this backup superblock\n"
    "  -B BLOCKSIZE    block size to use with -b (alone: must be the filesystem's)\n"
    "  -o OFFSET       the filesystem starts OFFSET bytes into the source (-r)\n"
    "  -O OFFSET       write the image OFFSET bytes into the output (-r)\n"
    "  -c              with -r: write only the blocks that differ from the output's\n"
    "  -n              print the blocks that would be written; write nothing\n"
    "  -I              install the metadata of an e2i image onto the device\n"
    "  -f              allow a filesystem mounted read-write (the image may be inconsistent)\n"
    "  -p              show progress on stderr, in e2fsprogs' e2image's words\n"
    "  -s              scramble: replace every name, symlink target and user/trusted\n"
    "                  xattr value by one of the same length (the image stays e2fsck-clean)\n"
    "      --scramble-seed=N   seed for -s, to make scrambled images reproducible\n"
    "      --scramble-map=FILE\n"
    "                          write each directory inode, old and new name to FILE\n"
    "                          (a new file, mode 0600; never in the image)\n"
    "      --scramble-keep-names\n"
    "                          write the image even if a name has no same-length\n"
    "                          replacement (kept as it is; -s fails without this)\n"
    "      --qcow2-version=N   qcow2 version 2 (default) or 3\n"
    "      --cluster-size=N    qcow2 cluster size in bytes (default: the block size)\n"
    "      --compress[=ALGO]   compress qcow2 clusters with zlib (default) or zstd\n"
    "                          (clusters of 64 KiB unless --cluster-size says otherwise\n"
    "                          or the metadata is too thin for them)\n"
    "      --compress-level=N  the codec's level: zlib 1-9 (default 6), zstd 1-22\n"
    "                          (default 3); higher: smaller images, more CPU\n"
    "      --threads=N         compression and scrambling threads (default: all cores)\n"
    "      --no-sync           leave the image file to the kernel to write out instead\n"
    "                          of syncing it before it gets its name (faster; a crash\n"
    "                          soon after can leave a torn image under the name)\n"
    "      --error-map=FILE    write the source's unreadable ranges to FILE as a GNU\n"
    "                          ddrescue map file (a read error does not end a run)\n"
    "      --verify            read each copied block again from the source and the\n"
    "                          image after writing; report the blocks that differ\n"
    "      --backing=SCOPE     with -r and a qcow2 source: the backing and data files\n"
    "                          it may open: image-dir (default: only files inside the\n"
    "                          directory of the image naming them), any, or none (read\n"
    "                          the image as if it had no backing file)\n"
    "  -h, --help      show this help\n"
    "  -V, --version   show the version\n"
    "\n"
    "Bug report:  e2image -Q /dev/sdXN fs.qcow2\n"
    "Maintainer:  e2image -r fs.qcow2 fs.raw && e2fsck -fn fs.raw\n";

}  // namespace

[[noreturn]] void Usage() {
  std::fputs(kUsage, stderr);
  std::exit(1);
}

static uint64_t ParseNumber(const char* text, const char* what) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 0);
  if (errno || end == text || *end != '\0' || text[0] == '-')
    throw util::Error(std::string("invalid ") + what + ": '" + text + "'");
  return v;
}

// A byte offset: at most what an off_t holds, so that an offset plus a size
// (each below 2^63) never wraps around.
static uint64_t ParseOffset(const char* text, const char* what) {
  const uint64_t v = ParseNumber(text, what);
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    throw util::Error(std::string("invalid ") + what + ": '" + text +
                      "' (past the largest file offset, 2^63 - 1)");
  return v;
}

Options ParseOptions(int argc, char** argv) {
  enum {
    kQcow2Version = 256,
    kClusterSize,
    kCompress,
    kScrambleSeed,
    kThreads,
    kNoSync,
    kCompressLevel,
    kScrambleMap,
    kScrambleKeepNames,
    kErrorMap,
    kVerify,
    kBacking
  };
  static const option long_options[] = {
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {"qcow2-version", required_argument, nullptr, kQcow2Version},
      {"cluster-size", required_argument, nullptr, kClusterSize},
      {"compress", optional_argument, nullptr, kCompress},
      {"compress-level", required_argument, nullptr, kCompressLevel},
      {"scramble-seed", required_argument, nullptr, kScrambleSeed},
      {"scramble-map", required_argument, nullptr, kScrambleMap},
      {"scramble-keep-names", no_argument, nullptr, kScrambleKeepNames},
      {"threads", required_argument, nullptr, kThreads},
      {"no-sync", no_argument, nullptr, kNoSync},
      {"error-map", required_argument, nullptr, kErrorMap},
      {"verify", no_argument, nullptr, kVerify},
      {"backing", required_argument, nullptr, kBacking},
      {nullptr, 0, nullptr, 0}};
  Options o;
  bool qcow2_version_given = false;
  int c;
  while ((c = getopt_long(argc, argv, "b:B:nrsIQafo:O:pchV", long_options, nullptr)) != -1) {
    switch (c) {
      case 'r':
      case 'Q':
        if (o.raw || o.qcow2)
          Usage();
        (c == 'r' ? o.raw : o.qcow2) = true;
        break;
      case 'a':
        o.all_data = true;
        break;
      case 'f':
        o.force = true;
        break;
      case 'p':
        o.progress = true;
        break;
      case 'n':
        o.nop = true;
        break;
      case 's':
        o.scramble = true;
        break;
      case 'c':
        o.check = true;
        break;
      case 'I':
        o.install = true;
        break;
      case 'b':
        o.superblock = ParseNumber(optarg, "superblock");
        break;
      case 'B':
        o.blocksize = static_cast<uint32_t>(ParseNumber(optarg, "block size"));
        break;
      case 'o':
        o.source_offset = ParseOffset(optarg, "source offset");
        break;
      case 'O':
        o.dest_offset = ParseOffset(optarg, "destination offset");
        break;
      case kQcow2Version:
        o.qcow2_version = static_cast<uint32_t>(ParseNumber(optarg, "qcow2 version"));
        qcow2_version_given = true;
        if (o.qcow2_version != 2 && o.qcow2_version != 3)
          throw util::Error("--qcow2-version must be 2 or 3");
        break;
      case kClusterSize: {
        o.cluster_size = ParseNumber(optarg, "cluster size");
        if (!std::has_single_bit(o.cluster_size) || o.cluster_size < 512 ||
            o.cluster_size > (2u << 20))
          throw util::Error("--cluster-size must be a power of two from 512 to 2097152");
        break;
      }
      case kThreads:
        o.threads =
            static_cast<unsigned>(std::min<uint64_t>(ParseNumber(optarg, "thread count"), 1000));
        if (o.threads < 1 || o.threads > 256)
          throw util::Error("--threads must be from 1 to 256");
        break;
      case kNoSync:
        o.no_sync = true;
        break;
      case kErrorMap:
        o.error_map = optarg;
        break;
      case kVerify:
        o.verify = true;
        break;
      case kBacking:
        o.backing = qcow2::PolicyForScope(optarg);
        o.backing_given = true;
        break;
      case kScrambleSeed:
        o.scramble_seed = ParseNumber(optarg, "scramble seed");
        break;
      case kScrambleMap:
        o.scramble_map = optarg;
        break;
      case kScrambleKeepNames:
        o.scramble_keep_names = true;
        break;
      case kCompress: {
        const std::string algo = optarg ? optarg : "zlib";
        if (algo == "zlib")
          o.compression = qcow2::CompressionType::kZlib;
        else if (algo == "zstd")
          o.compression = qcow2::CompressionType::kZstd;
        else
          throw util::Error("--compress takes zlib or zstd, not '" + algo + "'");
        break;
      }
      case kCompressLevel:
        o.compression_level =
            static_cast<int>(std::min<uint64_t>(ParseNumber(optarg, "compression level"), 1000));
        break;
      case 'h':
        std::fputs(kUsage, stdout);
        std::fputs("\n", stdout);
        std::fputs(kHelp, stdout);
        std::exit(0);
      case 'V':
        std::printf("e2image (e2image-ng) %s\n", PACKAGE_VERSION);
        std::exit(0);
      default:
        Usage();
    }
  }
  // One file and an offset: move mode (e2image's rule; it needs -ra, which
  // the caller checks, so that the messages come in e2image's order).
  const bool move = optind == argc - 1 && (o.source_offset || o.dest_offset);
  if (optind != argc - 2 && !move)
    Usage();
  o.source = argv[optind];
  o.output = move ? o.source : argv[optind + 1];
  o.move_in_place = move;
  if (o.compression_level != qcow2::kDefaultLevel) {
    if (!o.compression)
      throw util::Error("--compress-level needs --compress");
    const int max = qcow2::MaxLevel(*o.compression);
    if (o.compression_level < 1 || o.compression_level > max)
      throw util::Error("--compress-level must be from 1 to " + std::to_string(max) + " for " +
                        qcow2::CompressionName(*o.compression));
  }
  if (o.compression == qcow2::CompressionType::kZstd && o.qcow2_version < 3) {
    if (qcow2_version_given)
      throw util::Error(
          "--compress=zstd needs --qcow2-version=3: a version 2 image has no field to name "
          "the compression type (zlib is the one it can hold)");
    o.qcow2_version = 3;
  }
  return o;
}

}  // namespace e2image
