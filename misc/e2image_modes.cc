#include "e2image_modes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <utility>
#include <vector>

#include "e2img/block_copier.h"
#include "e2img/e2i_writer.h"
#include "e2img/filesystem.h"
#include "e2img/group_tables.h"
#include "e2img/laned_sink.h"
#include "e2img/metadata_map.h"
#include "e2img/overlapped_copy.h"
#include "e2img/scramble.h"
#include "e2img/sinks.h"
#include "e2img/source_holes.h"
#include "qcow2/backing.h"
#include "qcow2/capture_info.h"
#include "qcow2/compress_pool.h"
#include "qcow2/reader.h"
#include "qcow2/stream_reader.h"
#include "qcow2/writer.h"
#include "util/error.h"
#include "util/file.h"
#include "util/output.h"
#include "util/progress.h"
#include "util/same_storage.h"
#include "util/temp_file.h"

namespace e2image {

void Warn(const std::string& message) {
  util::BreakProgressLine();
  std::fprintf(stderr, "e2image: warning: %s\n", message.c_str());
}

void ReportProblems(uint64_t problems, const char* outcome) {
  if (problems)
    std::fprintf(stderr, "e2image: %llu problem%s found; %s\n",
                 static_cast<unsigned long long>(problems), problems == 1 ? "" : "s", outcome);
}

namespace {

void CheckNotSameFile(const std::string& source, const std::string& output) {
  if (util::IsSameFile(source, output))
    throw util::Error(output + ": the output is the source itself; refusing to overwrite it");
  if (util::SharesStorage(source, output))
    throw util::Error(output + ": the output holds the source (a loop device and the file " +
                      "behind it); refusing to overwrite it");
}

// Prints the blocks a run would write (-n), e2image's way.
void PrintBlocks(e2img::BlockSet& blocks, uint64_t first_data_block) {
  for (const e2img::BlockExtent& e : blocks.Extents())
    for (uint64_t b = std::max(e.start, first_data_block); b < e.end(); ++b)
      std::printf("Writing block %llu\n", static_cast<unsigned long long>(b));
}

// Copies a finished temporary file to standard output.
void StreamOut(const util::File& temp, const util::File& out) {
  std::vector<uint8_t> buf(1 << 20);
  uint64_t offset = 0;
  for (;;) {
    const size_t got = temp.ReadUpTo(buf, offset);
    if (!got)
      break;
    out.Write(std::span<const uint8_t>(buf.data(), got));
    offset += got;
  }
}

// Whether an existing output file is written in place: a raw image at an
// offset (-O) goes into a file that may hold other things (a disk image's
// partition table), as with e2fsprogs' e2image.
bool WritesInPlace(const Options& o) {
  return o.raw && !o.qcow2 && o.dest_offset;
}

// The output file of an image, synced before it gets its name unless --no-sync.
util::OutputFile CreateOutput(const Options& o) {
  return util::OutputFile::Create(o.output,
                                  o.no_sync ? util::OutputFile::Durability::kLeftToTheKernel
                                            : util::OutputFile::Durability::kSynced,
                                  WritesInPlace(o) ? util::OutputFile::Existing::kWriteInPlace
                                                   : util::OutputFile::Existing::kReplace);
}

// Refuses the files the qcow2 image reads (its backing chain's files and
// external data files) as the output: they would be overwritten while read.
void CheckNotReferencedByImage(const qcow2::Qcow2Reader& reader, const std::string& output) {
  for (const qcow2::Qcow2Reader* layer = &reader; layer; layer = layer->backing()) {
    std::vector<std::pair<std::string, std::string>> files;
    if (!layer->header().backing_file.empty())
      files.emplace_back("backing file",
                         qcow2::ResolveReferencedPath(layer->path(), layer->header().backing_file,
                                                      "backing file"));
    if (layer->header().incompatible_features & qcow2::kIncompatDataFile)
      files.emplace_back(
          "external data file",
          qcow2::ResolveReferencedPath(layer->path(), qcow2::DataFileName(layer->header()),
                                       "external data file"));
    for (const auto& [what, file] : files)
      if (util::SharesStorage(file, output))
        throw util::Error(output + ": the output is the " + what + " of " + layer->path() + " (" +
                          file + "); refusing to overwrite it");
  }
}

// A temporary file that disappears on close (for e2i on stdout).
util::File AnonymousTempFile() {
  const char* dir = std::getenv("TMPDIR");
  const std::string where = dir && *dir ? dir : "/tmp";
  const int fd = ::open(where.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0)
    throw util::Error(where + ": cannot create a temporary file: " + util::ErrnoText(errno));
  return util::File(fd, where + "/(temporary e2i image)");
}

int CaptureE2i(const Options& o, e2img::Filesystem& fs, e2img::MetadataMap& map,
               e2img::Scrambler* scrambler) {
  util::OutputFile out = CreateOutput(o);
  util::Progress progress(o.progress, e2img::E2iBlockCount(fs), fs.block_size());
  auto update = [&](uint64_t done) { progress.Update(done); };
  uint64_t problems = map.problems;
  e2img::BlockTransform transform;
  if (scrambler)
    transform = [scrambler](uint64_t block, std::span<uint8_t> data) {
      scrambler->Transform(block, data);
    };
  if (out.kind() == util::OutputFile::Kind::kStream) {
    util::File temp = AnonymousTempFile();
    problems += e2img::WriteE2iImage(fs, map, temp, update, Warn, transform);
    if (scrambler && !scrambler->Failure().empty())
      throw util::Error(scrambler->Failure());
    StreamOut(temp, out.file());
  } else {
    problems += e2img::WriteE2iImage(fs, map, out.file(), update, Warn, transform);
  }
  if (scrambler && !scrambler->Failure().empty())
    throw util::Error(scrambler->Failure());
  if (scrambler && scrambler->map())
    scrambler->map()->Commit();
  out.Commit();
  progress.Finish();
  if (scrambler && !scrambler->Summary().empty())
    Warn(scrambler->Summary());
  ReportProblems(problems, "the image was written anyway");
  return 0;
}

// Adds the blocks of `from` to `to`.
void AddAll(e2img::BlockSet& to, e2img::BlockSet from) {
  for (const e2img::BlockExtent& e : from.Extents())
    to.Add(e.start, e.count);
}

// A size for a message: in MiB, or in KiB below one MiB.
std::string SizeText(uint64_t bytes) {
  return bytes >= (1u << 20) ? std::to_string(bytes >> 20) + " MiB"
                             : std::to_string((bytes + 1023) >> 10) + " KiB";
}

// Says so when the compression's memory budget runs fewer threads than
// --threads asked for (the default is cut silently).
void NoteThreadsCut(const Options& o, const qcow2::CompressPool& pool, uint32_t cluster_size) {
  const qcow2::PoolLimits& limits = pool.limits();
  if (limits.threads >= o.threads)
    return;
  util::BreakProgressLine();
  const std::string level = o.compression_level == qcow2::kDefaultLevel
                                ? "its default level"
                                : "level " + std::to_string(o.compression_level);
  std::fprintf(stderr,
               "e2image: compressing on %u thread%s, not %u: a %s codec at %s for %s "
               "clusters takes %s, and the compression holds %s at most\n",
               limits.threads, limits.threads == 1 ? "" : "s", o.threads,
               qcow2::CompressionName(*o.compression).c_str(), level.c_str(),
               SizeText(cluster_size).c_str(), SizeText(limits.codec_bytes).c_str(),
               SizeText(limits.budget_bytes).c_str());
}

// The sink of a raw or qcow2 capture. `blocks` (the map, or most of it) is
// read by compressed captures only, which choose their cluster size from it
// and reserve the L2 tables of `reserved` (default: those of `blocks`).
std::unique_ptr<e2img::ImageSink> MakeSink(const Options& o, const e2img::Filesystem& fs,
                                           const util::OutputFile& out,
                                           const std::vector<e2img::BlockExtent>* blocks,
                                           const std::vector<e2img::BlockExtent>* reserved,
                                           e2img::FinishQcow2 before_finish) {
  if (o.qcow2) {
    e2img::Qcow2SinkOptions q;
    q.cluster_bits = o.cluster_size ? static_cast<uint32_t>(std::countr_zero(o.cluster_size)) : 0;
    if (!o.cluster_size) {
      // The block size by default, or the smallest larger size whose L1 table fits qemu.
      const auto block_bits = static_cast<uint32_t>(std::countr_zero(fs.block_size()));
      q.cluster_bits = qcow2::SmallestClusterBits(fs.blocks_count() * fs.block_size(), block_bits);
      if (o.compression) {
        const uint64_t device_bytes = fs.blocks_count() * fs.block_size();
        const uint32_t bits =
            e2img::CompressedClusterBits(*blocks, fs.block_size(), q.cluster_bits, device_bytes);
        const uint32_t bs = fs.block_size();
        const uint32_t large = e2img::kCompressedClusterBits;
        const uint64_t large_bytes =
            bits < large ? e2img::CompressedImageEstimate(*blocks, bs, large, device_bytes) : 0;
        const uint64_t chosen_bytes =
            e2img::CompressedImageEstimate(*blocks, bs, bits, device_bytes);
        // Said only when it is worth a choice (--cluster-size=65536 would
        // cost a MiB or more): on a small filesystem it would be noise.
        if (large_bytes >= chosen_bytes + (1u << 20)) {
          util::BreakProgressLine();
          std::fprintf(stderr,
                       "e2image: using %u-byte qcow2 clusters: the metadata is spread so thin "
                       "that 64 KiB clusters would make a larger image (estimated: %s, %s of it "
                       "L2 tables, against %s)\n",
                       1u << bits, SizeText(large_bytes).c_str(),
                       SizeText(e2img::L2TableBytes(*blocks, bs, large)).c_str(),
                       SizeText(chosen_bytes).c_str());
        }
        q.cluster_bits = bits;
      } else if (q.cluster_bits != block_bits) {
        util::BreakProgressLine();
        std::fprintf(stderr,
                     "e2image: using %u-byte qcow2 clusters: with %u-byte clusters (the block "
                     "size) the L1 table would be over qemu's 32 MiB limit\n",
                     1u << q.cluster_bits, 1u << block_bits);
      }
    }
    q.version = o.qcow2_version;
    q.compression = o.compression;
    q.compression_level = o.compression_level;
    q.threads = o.threads ? o.threads : qcow2::CompressPool::DefaultThreads();
    // One budget for the workers: the scrambler's lanes queue up to 16 MiB
    // of blocks before the compression's, which gets the rest.
    if (o.scramble)
      q.compression_memory =
          qcow2::CompressPool::kMemoryBudget - e2img::LanedSink::kDefaultQueuedBytes;
    q.blocks = reserved ? reserved : blocks;
    q.before_finish = std::move(before_finish);
    auto sink = std::make_unique<e2img::Qcow2Sink>(out, fs.block_size(), fs.blocks_count(), q);
    if (o.threads && sink->compress_pool())
      NoteThreadsCut(o, *sink->compress_pool(), 1u << q.cluster_bits);
    return sink;
  }
  return std::make_unique<e2img::RawSink>(out, fs.block_size(), fs.blocks_count(), o.dest_offset);
}

}  // namespace

e2img::Filesystem OpenSource(const Options& o) {
  e2img::OpenOptions open;
  open.source_offset = o.source_offset;
  open.superblock = o.superblock;
  open.blocksize = o.blocksize;
  return e2img::Filesystem(o.source, open);
}

void CheckBlockSize(const e2img::Filesystem& fs, const Options& o) {
  if (o.blocksize && !o.superblock && fs.block_size() != o.blocksize)
    throw util::Error(o.source + ": the filesystem's block size is " +
                      std::to_string(fs.block_size()) + ", not " + std::to_string(o.blocksize) +
                      " (-B); -B goes with -b, to open a backup superblock");
}

uint64_t ReportOpen(const e2img::Filesystem& fs, const Options& o) {
  uint64_t problems = 0;
  if (fs.superblock_used() && !o.superblock) {
    Warn(fs.fallback_reason());
    ++problems;
  }
  if (!fs.open_warning().empty()) {
    Warn(fs.open_warning());
    ++problems;
  }
  return problems;
}

e2img::MetadataMap BuildMap(const e2img::Filesystem& fs, e2img::MapOptions options,
                            bool show_progress) {
  util::ScanProgress progress(show_progress, e2img::ScanTotal(fs));
  options.scan_progress = [&](uint64_t done) { progress.Update(done); };
  e2img::MetadataMap map = e2img::BuildMetadataMap(fs, options, Warn);
  progress.Finish();
  return map;
}

bool WarnIfSourceShort(const util::File& source, const e2img::Filesystem& fs, uint64_t offset) {
  uint64_t size = 0;
  try {
    const struct stat st = source.Stat();
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
      return false;  // a character device has no size to go by: the reads will tell
    size = source.Size();
  } catch (const util::Error&) {
    return false;
  }
  const uint64_t held = size > offset ? size - offset : 0;
  if (held >= fs.size_bytes())
    return false;
  const uint64_t block_size = fs.block_size();
  Warn(source.path() + ": " + std::to_string(held) + " bytes" +
       (offset ? " from offset " + std::to_string(offset) : std::string()) +
       ", shorter than its filesystem (" + std::to_string(fs.blocks_count()) + " blocks of " +
       std::to_string(block_size) + " bytes): blocks " + std::to_string(held / block_size) +
       " and on are missing and written as zeros");
  return true;
}

void CheckMount(const std::string& device, bool force) {
  int flags = 0;
  if (ext2fs_check_if_mounted(device.c_str(), &flags) != 0)
    return;
  if ((flags & EXT2_MF_MOUNTED) && !(flags & EXT2_MF_READONLY) && !force)
    throw util::Error(device +
                      " is mounted read-write: an image of it may be inconsistent; "
                      "use -f to go ahead anyway");
}

int ConvertQcow2(const Options& o) {
  CheckNotSameFile(o.source, o.output);
  qcow2::ReferencePolicy policy = o.backing;
  policy.on_open = [](const std::string& line) {
    util::BreakProgressLine();
    std::fprintf(stderr, "e2image: %s\n", line.c_str());
  };
  qcow2::Qcow2Reader reader(o.source, policy);
  for (const std::string& w : reader.warnings())
    Warn(w);
  CheckNotReferencedByImage(reader, o.output);
  util::CheckDisksApart(o.source, {}, o.output, {o.dest_offset, reader.virtual_size()});
  util::OutputFile out = CreateOutput(o);
  out.Reserve(o.dest_offset, reader.virtual_size());
  util::RawWriter writer(out, o.dest_offset, /*zero_gaps=*/out.in_place());
  constexpr uint64_t kUnit = 4096;
  util::Progress progress(o.progress, (reader.virtual_size() + kUnit - 1) / kUnit, kUnit);
  qcow2::ConvertToRaw(reader, writer,
                      [&](uint64_t bytes) { progress.Update((bytes + kUnit - 1) / kUnit); });
  out.Commit();
  // How the image was made, once it is converted (a failed run says only
  // why), before the closing progress line: with -p, the last line stays
  // the "Copied" line that GParted's parse looks for.
  if (const auto capture = qcow2::CaptureInfoOf(reader.header())) {
    util::BreakProgressLine();
    std::fprintf(stderr, "e2image: %s: %s\n", o.source.c_str(),
                 qcow2::CaptureSummary(*capture).c_str());
  }
  progress.Finish();
  return 0;
}

int ConvertQcow2Stream(const Options& o) {
  const util::File in = util::File::Borrow(STDIN_FILENO, "standard input");
  util::OutputFile out = CreateOutput(o);
  util::RawWriter writer(out, o.dest_offset,
                         /*zero_gaps=*/out.kind() == util::OutputFile::Kind::kBlockDevice);
  qcow2::StreamConvertOptions options;
  options.spool_dir = util::TempDirectory();
  options.note = [](const std::string& line) {
    std::fprintf(stderr, "e2image: %s\n", line.c_str());
  };
  qcow2::ConvertStreamToRaw(in, writer, options);
  out.Commit();
  return 0;
}

int Capture(const Options& o) {
  // An e2i image of a mounted filesystem is allowed, as in e2image: its man
  // page suggests taking them regularly, from cron.
  if (o.raw || o.qcow2)
    CheckMount(o.source, o.force);
  CheckNotSameFile(o.source, o.output);
  e2img::Filesystem fs = OpenSource(o);
  CheckBlockSize(fs, o);
  // A qcow2 or e2i image is written from the start of the output.
  util::CheckDisksApart(o.source, {o.source_offset, fs.size_bytes()}, o.output,
                        o.raw && !o.qcow2 ? util::DeviceRegion{o.dest_offset, fs.size_bytes()}
                                          : util::DeviceRegion{});
  const std::time_t started = CaptureTime();
  const std::string start_time = NowText();
  uint64_t open_problems = ReportOpen(fs, o);
  util::File source = util::File::Open(o.source, O_RDONLY);
  // Read errors of the medium leave zeros and a warning, here and in the scan.
  e2img::UnreadableLog unreadable(o.source, o.source_offset, fs.block_size(), Warn);
  const e2img::LibextReadSalvage salvage(fs.get(), source, unreadable);
  const qcow2::CaptureInfo capture_info = DescribeCapture(o, fs, source, started);
  // A source cut short (a partial copy of a failing disk) is said once, here,
  // with both sizes; the copier then writes the missing blocks as zeros
  // without a warning of its own.
  bool source_end_warned = WarnIfSourceShort(source, fs, o.source_offset);
  open_problems += source_end_warned ? 1 : 0;

  struct stat st {};
  e2img::MapOptions map_options;
  map_options.all_data = o.all_data;
  // Whole inode tables where old bytes would otherwise survive under the image.
  map_options.output_is_device = (o.raw || o.qcow2) && ::stat(o.output.c_str(), &st) == 0 &&
                                 (S_ISBLK(st.st_mode) || (S_ISREG(st.st_mode) && WritesInPlace(o)));
  std::optional<e2img::ScrambleMap> scramble_map;  // before the scrambler, which writes to it
  std::optional<e2img::Scrambler> scrambler;
  if (o.scramble) {
    scrambler.emplace(fs, o.scramble_seed ? *o.scramble_seed : std::random_device{}(), Warn);
    scrambler->set_keep_names(o.scramble_keep_names);
    if (!o.scramble_map.empty())
      scramble_map.emplace(o.scramble_map);
    scrambler->set_map(scramble_map ? &*scramble_map : nullptr);
    map_options.observe_inode = [&](uint32_t ino, const ext2_inode& inode) {
      scrambler->ObserveInode(ino, inode);
    };
  }
  // Raw and qcow2 captures copy the group tables while the inode scan runs,
  // and the blocks it found while the directories are parsed: the sink
  // exists before the map is complete. Scrambled ones copy the tables as
  // they are and then again, scrambled, the blocks that change.
  // Map blocks left out unread: holes of a sparse source, blocks scrambled
  // to zeros. -p counts them as copied, so that its total does not depend on
  // how the image is made.
  e2img::BlockSet left_out;
  // The map as last checked for holes: only the blocks added since are checked again.
  e2img::BlockSet hole_checked;
  bool holes_pruned = false;
  const auto leave_out_holes = [&](e2img::BlockSet& blocks) {
    e2img::BlockSet added = e2img::Subtract(blocks.Extents(), hole_checked.Extents());
    e2img::BlockSet holes = e2img::Subtract(
        added.Extents(),
        e2img::WithoutHoles(source, added.Extents(), o.source_offset, fs.block_size()).Extents());
    AddAll(left_out, holes);
    e2img::BlockSet kept = e2img::Subtract(blocks.Extents(), holes.Extents());
    hole_checked = kept;
    holes_pruned = true;
    return kept;
  };
  std::optional<util::OutputFile> out;
  std::unique_ptr<e2img::ImageSink> sink;
  std::optional<e2img::OverlappedCopy> overlapped_copy;
  e2img::CopySource src{&source, o.source_offset, fs.block_size(), fs.first_copied_block()};
  src.end_warned = &source_end_warned;
  src.unreadable = &unreadable;
  const auto create_output = [&](const std::vector<e2img::BlockExtent>* blocks,
                                 const std::vector<e2img::BlockExtent>* reserved = nullptr) {
    out.emplace(CreateOutput(o));
    if (!o.qcow2)
      out->Reserve(o.dest_offset, fs.size_bytes());
    sink = MakeSink(o, fs, *out, blocks, reserved, [&](qcow2::ClusterTarget& writer) {
      RecordCapture(o, capture_info, unreadable, fs.size_bytes(), writer);
    });
    src.skip_holes = !out->in_place();
  };
  const auto overlap_copy = [&] {
    e2img::EarlyBlockCheck check;
    if (scrambler)
      check = [&](uint64_t block, std::span<const uint8_t> data) {
        return scrambler->MayChangeUnplanned(block, data);
      };
    overlapped_copy.emplace(src, *sink, Warn, std::move(check));
  };
  if ((o.raw || o.qcow2) && !o.nop && !o.compression) {
    create_output(nullptr);
    if (sink->SecondPassUnitBlocks())
      overlap_copy();
  }
  if (overlapped_copy) {
    map_options.tables_marked = [&](e2img::MetadataMap& known) { overlapped_copy->Start(known); };
  } else if (o.compression && !o.nop && !scrambler) {
    // A compressed image is sized from the map so far, holes of a sparse
    // source left out: the group tables, most of it, choose the cluster size;
    // L2 tables are reserved for them and for the groups with blocks in use,
    // where the scan finds the rest. Scrambled ones take one pass: a
    // compressed cluster is never rewritten.
    map_options.tables_marked = [&](e2img::MetadataMap& known) {
      known.blocks = leave_out_holes(known.blocks);
      e2img::BlockSet reserved = known.blocks;
      for (const uint64_t block : e2img::FirstDataBlocks(source, e2img::GroupsInUse(fs.get()),
                                                         o.source_offset, fs.block_size()))
        reserved.Add(block);
      create_output(&known.blocks.Extents(), &reserved.Extents());
      overlap_copy();
      overlapped_copy->Start(known, /*holes_pruned=*/true);
    };
  }
  // A checked (scrambled) copy leaves these for the last pass: scrambling changes them.
  map_options.inodes_scanned = [&](e2img::MetadataMap& known) {
    // The copy would leave out the new holes itself: here, they are counted.
    if (holes_pruned)
      known.blocks = leave_out_holes(known.blocks);
    if (overlapped_copy)
      overlapped_copy->Continue(known);
  };
  e2img::MetadataMap map = BuildMap(fs, map_options, o.progress);
  map.problems += open_problems;
  if (scrambler)
    scrambler->Plan(map.blocks);
  if (o.nop) {
    PrintBlocks(map.blocks, fs.first_copied_block());
    ReportProblems(map.problems, "nothing was written (-n)");
    return 0;
  }
  if (!o.raw && !o.qcow2) {
    CaptureE2i(o, fs, map, scrambler ? &*scrambler : nullptr);
    return CloseUnreadable(o, fs, unreadable, start_time);
  }
  if (!out) {
    // The holes of a sparse source are left out of a file image unread:
    // without them in the map, the image reserves no L2 table for them (the
    // 1 GiB journal of the empty 15 TiB filesystem is one).
    const bool holes_left_out = !map_options.output_is_device;
    if (holes_left_out)
      map.blocks = leave_out_holes(map.blocks);
    create_output(&map.blocks.Extents());
    // No hole is left in the map: the copier need not ask the source again.
    if (holes_left_out)
      src.skip_holes = false;
  }

  if (scrambler && !out->in_place()) {
    // Blocks scrambled into zeros are holes of a file image: left unread (the
    // journal of the small-files filesystem is a third of its image). Those
    // copied during the scan come again, zeroed, with the others that change.
    e2img::BlockSet zeroed = scrambler->ZeroedBlocks();
    if (overlapped_copy)
      zeroed = e2img::Subtract(zeroed.Extents(), overlapped_copy->early_blocks());
    AddAll(left_out, e2img::Intersect(map.blocks.Extents(), zeroed.Extents()));
    map.blocks = e2img::Subtract(map.blocks.Extents(), zeroed.Extents());
  }
  // Scrambling costs CPU: it runs on worker threads while the next blocks are read.
  std::unique_ptr<e2img::ImageSink> scrambling;
  if (scrambler)
    scrambling = std::make_unique<e2img::ScramblingSink>(
        *scrambler, *sink, o.threads ? o.threads : qcow2::CompressPool::DefaultThreads());
  e2img::ImageSink& target = scrambling ? *scrambling : *sink;
  if (holes_pruned)
    map.blocks = leave_out_holes(map.blocks);
  // The blocks left out unread count as copied: -p says the same total with
  // and without --compress or -s, e2image's count of the map.
  const uint64_t unread = e2img::Subtract(left_out.Extents(), map.blocks.Extents()).BlockCount();
  util::Progress progress(o.progress, map.blocks.BlockCount() + unread, fs.block_size());
  progress.Update(unread);
  const auto update = [&](uint64_t done) { progress.Update(unread + done); };
  src.stale_tails = &map.stale_tails;
  uint64_t copy_problems = 0;
  if (overlapped_copy && scrambler) {
    e2img::TransformedPass scrambled{&target, scrambler->RoleBlocks()};
    copy_problems = overlapped_copy->Finish(map, update, &scrambled);
  } else if (overlapped_copy) {
    copy_problems = overlapped_copy->Finish(map, update);
  } else {
    copy_problems = e2img::CopyBlocks(src, map.blocks, target, update, Warn);
  }
  target.Finish();
  if (scrambler && !scrambler->Failure().empty())
    throw util::Error(scrambler->Failure());
  if (scrambler && scrambler->map())
    scrambler->map()->Commit();
  out->Commit();
  progress.Finish();
  if (scrambler && !scrambler->Summary().empty())
    Warn(scrambler->Summary());
  ReportProblems(map.problems + copy_problems, "the image was written anyway");
  const int verified = o.verify ? VerifyCapture(o, fs, source, map, unreadable) : 0;
  const int status = CloseUnreadable(o, fs, unreadable, start_time);
  return status ? status : verified;
}

}  // namespace e2image
