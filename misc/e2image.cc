// e2image-ng: saves the metadata of an ext2/3/4 filesystem as a raw or qcow2
// image, and turns qcow2 images back into raw ones. Options follow e2fsprogs'
// e2image.
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "config.h"
#include "e2img/block_copier.h"
#include "e2img/filesystem.h"
#include "e2img/metadata_map.h"
#include "e2img/read_ahead.h"
#include "e2img/sinks.h"
#include "qcow2/compress_pool.h"
#include "qcow2/reader.h"
#include "util/error.h"
#include "util/file.h"
#include "util/output.h"
#include "util/progress.h"

namespace {

constexpr const char* kUsage =
    "Usage: e2image [-r|-Q] [-afnps] [-b superblock] [-B blocksize] [-o src_offset]\n"
    "               [-O dest_offset] [--qcow2-version=2|3] [--cluster-size=BYTES]\n"
    "               [--compress[=zlib|zstd]] [--threads=N] device image-file\n"
    "       e2image -r image.qcow2 image.raw\n";

constexpr const char* kHelp =
    "Save the metadata of an ext2/3/4 filesystem as an image for debugging.\n"
    "\n"
    "  -r              write a raw image (metadata at its offsets, the rest holes);\n"
    "                  with a qcow2 file as the source, convert it to raw\n"
    "  -Q              write a qcow2 image\n"
    "  -a              include file data too (with -r or -Q)\n"
    "  -b SUPERBLOCK   open the filesystem with this backup superblock\n"
    "  -B BLOCKSIZE    block size to use with -b\n"
    "  -o OFFSET       the filesystem starts OFFSET bytes into the source (-r)\n"
    "  -O OFFSET       write the image OFFSET bytes into the output (-r)\n"
    "  -f              allow a filesystem mounted read-write (the image may be inconsistent)\n"
    "  -p              show progress on stderr\n"
    "  -n, -s, -c, -I  accepted as in e2fsprogs' e2image (see the man page)\n"
    "      --qcow2-version=N   qcow2 version 2 (default) or 3\n"
    "      --cluster-size=N    qcow2 cluster size in bytes (default: the block size)\n"
    "      --compress[=ALGO]   compress qcow2 clusters with zlib (default) or zstd\n"
    "                          (clusters of 64 KiB unless --cluster-size says otherwise)\n"
    "      --threads=N         compression threads (default: all cores)\n"
    "  -h, --help      show this help\n"
    "  -V, --version   show the version\n"
    "\n"
    "Bug report:  e2image -Q /dev/sdXN fs.qcow2\n"
    "Maintainer:  e2image -r fs.qcow2 fs.raw && e2fsck -fn fs.raw\n";

// Everything the command line says.
struct Options {
  bool raw = false;
  bool qcow2 = false;
  bool all_data = false;
  bool force = false;
  bool progress = false;
  bool nop = false;
  bool scramble = false;
  bool check = false;
  bool install = false;
  uint64_t superblock = 0;
  uint32_t blocksize = 0;
  uint64_t source_offset = 0;
  uint64_t dest_offset = 0;
  uint32_t qcow2_version = 2;
  uint64_t cluster_size = 0;
  std::optional<qcow2::CompressionType> compression;
  unsigned threads = 0;  // 0: all cores
  std::string source;
  std::string output;
};

[[noreturn]] void Usage() {
  std::fputs(kUsage, stderr);
  std::exit(1);
}

void Warn(const std::string& message) { std::fprintf(stderr, "e2image: warning: %s\n", message.c_str()); }

uint64_t ParseNumber(const char* text, const char* what) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 0);
  if (errno || end == text || *end != '\0' || text[0] == '-')
    throw util::Error(std::string("invalid ") + what + ": '" + text + "'");
  return v;
}

Options ParseOptions(int argc, char** argv) {
  enum { kQcow2Version = 256, kClusterSize, kCompress, kThreads };
  static const option long_options[] = {
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {"qcow2-version", required_argument, nullptr, kQcow2Version},
      {"cluster-size", required_argument, nullptr, kClusterSize},
      {"compress", optional_argument, nullptr, kCompress},
      {"threads", required_argument, nullptr, kThreads},
      {nullptr, 0, nullptr, 0}};
  Options o;
  int c;
  while ((c = getopt_long(argc, argv, "b:B:nrsIQafo:O:pchV", long_options, nullptr)) != -1) {
    switch (c) {
      case 'r':
      case 'Q':
        if (o.raw || o.qcow2) Usage();
        (c == 'r' ? o.raw : o.qcow2) = true;
        break;
      case 'a': o.all_data = true; break;
      case 'f': o.force = true; break;
      case 'p': o.progress = true; break;
      case 'n': o.nop = true; break;
      case 's': o.scramble = true; break;
      case 'c': o.check = true; break;
      case 'I': o.install = true; break;
      case 'b': o.superblock = ParseNumber(optarg, "superblock"); break;
      case 'B': o.blocksize = static_cast<uint32_t>(ParseNumber(optarg, "block size")); break;
      case 'o': o.source_offset = ParseNumber(optarg, "source offset"); break;
      case 'O': o.dest_offset = ParseNumber(optarg, "destination offset"); break;
      case kQcow2Version:
        o.qcow2_version = static_cast<uint32_t>(ParseNumber(optarg, "qcow2 version"));
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
      case kThreads:
        o.threads = static_cast<unsigned>(ParseNumber(optarg, "thread count"));
        if (o.threads < 1 || o.threads > 256) throw util::Error("--threads must be from 1 to 256");
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
  if (optind != argc - 2) Usage();
  o.source = argv[optind];
  o.output = argv[optind + 1];
  if (o.compression == qcow2::CompressionType::kZstd && o.qcow2_version < 3) o.qcow2_version = 3;
  return o;
}

// Refuses to overwrite the source through any path.
void CheckNotSameFile(const std::string& source, const std::string& output) {
  struct stat a{}, b{};
  if (output == "-" || ::stat(source.c_str(), &a) != 0 || ::stat(output.c_str(), &b) != 0) return;
  const bool same_inode = a.st_dev == b.st_dev && a.st_ino == b.st_ino;
  const bool same_device = S_ISBLK(a.st_mode) && S_ISBLK(b.st_mode) && a.st_rdev == b.st_rdev;
  if (same_inode || same_device)
    throw util::Error(output + ": the output is the source itself; refusing to overwrite it");
}

void CheckMount(const std::string& device, bool force) {
  int flags = 0;
  if (ext2fs_check_if_mounted(device.c_str(), &flags) != 0) return;
  if ((flags & EXT2_MF_MOUNTED) && !(flags & EXT2_MF_READONLY) && !force)
    throw util::Error(device +
                      " is mounted read-write: an image of it may be inconsistent; "
                      "use -f to go ahead anyway");
}

int ConvertQcow2(const Options& o) {
  CheckNotSameFile(o.source, o.output);
  e2img::HintWholeFile(o.source);  // a metadata image: have it all on its way at once
  qcow2::Qcow2Reader reader(o.source);
  for (const std::string& w : reader.warnings()) Warn(w);
  util::OutputFile out = util::OutputFile::Create(o.output);
  util::RawWriter writer(out, o.dest_offset,
                         /*zero_gaps=*/out.kind() == util::OutputFile::Kind::kBlockDevice);
  qcow2::ConvertToRaw(reader, writer);
  out.Commit();
  return 0;
}

int Capture(const Options& o) {
  CheckMount(o.source, o.force);
  CheckNotSameFile(o.source, o.output);
  e2img::OpenOptions open;
  open.source_offset = o.source_offset;
  open.superblock = o.superblock;
  open.blocksize = o.blocksize;
  e2img::Filesystem fs(o.source, open);
  util::File source = util::File::Open(o.source, O_RDONLY);

  util::OutputFile out = util::OutputFile::Create(o.output);
  e2img::MapOptions map_options;
  map_options.all_data = o.all_data;
  map_options.output_is_device = out.kind() == util::OutputFile::Kind::kBlockDevice;
  e2img::MetadataMap map = e2img::BuildMetadataMap(fs, map_options, Warn);

  std::unique_ptr<e2img::ImageSink> sink;
  if (o.qcow2) {
    e2img::Qcow2SinkOptions q;
    q.cluster_bits = o.cluster_size ? static_cast<uint32_t>(std::countr_zero(o.cluster_size)) : 0;
    q.version = o.qcow2_version;
    q.compression = o.compression;
    q.threads = o.threads ? o.threads : qcow2::CompressPool::DefaultThreads();
    sink = std::make_unique<e2img::Qcow2Sink>(out, fs.block_size(), fs.blocks_count(), q);
  } else {
    sink = std::make_unique<e2img::RawSink>(out, fs.block_size(), fs.blocks_count(), o.dest_offset);
  }
  util::Progress progress(o.progress, "Copied", map.blocks.BlockCount(), fs.block_size());
  e2img::CopySource src{&source, o.source_offset, fs.block_size(), fs.super()->s_first_data_block};
  src.skip_holes = out.kind() != util::OutputFile::Kind::kBlockDevice;
  const uint64_t copy_problems = e2img::CopyBlocks(
      src, map.blocks, *sink, [&](uint64_t done) { progress.Update(done); }, Warn);
  sink->Finish();
  out.Commit();
  progress.Finish();
  const uint64_t problems = map.problems + copy_problems;
  if (problems)
    std::fprintf(stderr, "e2image: %llu problem%s found; the image was written anyway\n",
                 static_cast<unsigned long long>(problems), problems == 1 ? "" : "s");
  return 0;
}

int Run(const Options& o) {
  if (o.all_data && !o.raw && !o.qcow2)
    throw util::Error("-a option can only be used with raw or QCOW2 images.");
  if ((o.source_offset || o.dest_offset) && !o.raw)
    throw util::Error("Offsets are only allowed with raw images.");
  if (o.superblock && !o.raw && !o.qcow2)
    throw util::Error("-b option can only be used with raw or QCOW2 images.");
  if ((o.cluster_size || o.compression || o.qcow2_version != 2) && !o.qcow2 &&
      !(o.raw && qcow2::IsQcow2File(o.source)))
    throw util::Error("--qcow2-version, --cluster-size and --compress go with -Q");
  if (o.raw && qcow2::IsQcow2File(o.source)) return ConvertQcow2(o);
  if (o.install || o.nop || o.check || o.scramble)
    throw util::Error("-I, -n, -c and -s are not implemented yet in e2image-ng");
  if (!o.raw && !o.qcow2)
    throw util::Error("normal (e2i) image files are not implemented yet; use -r or -Q");
  return Capture(o);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(ParseOptions(argc, argv));
  } catch (const util::Error& e) {
    std::fprintf(stderr, "e2image: %s\n", e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "e2image: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "e2image: internal error: %s\n", e.what());
  }
  return 1;
}
