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

#include "e2img/capture_plan.h"
#include "e2img/e2i_writer.h"
#include "e2img/filesystem.h"
#include "e2img/group_tables.h"
#include "e2img/metadata_map.h"
#include "e2img/scramble.h"
#include "e2img/sinks.h"
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
#include "util/seekable_input.h"
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
  if (scrambler)
    scrambler->Conclude();
  out.Commit();
  progress.Finish();
  if (scrambler && !scrambler->Summary().empty())
    Warn(scrambler->Summary());
  ReportProblems(problems, "the image was written anyway");
  return 0;
}

// What a raw or qcow2 capture writes, in the library's words.
e2img::CaptureSettings ImageSettings(const Options& o) {
  e2img::CaptureSettings s;
  s.qcow2 = o.qcow2;
  s.output = o.output;
  s.no_sync = o.no_sync;
  s.dest_offset = o.dest_offset;
  s.qcow2_version = o.qcow2_version;
  s.cluster_size = o.cluster_size;
  s.compression = o.compression;
  s.compression_level = o.compression_level;
  s.threads = o.threads;
  s.progress = o.progress;
  struct stat st {};
  // Whole inode tables where old bytes would otherwise survive under the image.
  s.output_is_device = ::stat(o.output.c_str(), &st) == 0 &&
                       (S_ISBLK(st.st_mode) || (S_ISREG(st.st_mode) && WritesInPlace(o)));
  return s;
}

// The scrambler of a -s capture, and the --scramble-map file it writes to;
// none without -s.
class ScrambleSetup {
 public:
  // Hooks the scrambler into the scan of `map_options`.
  ScrambleSetup(const Options& o, const e2img::Filesystem& fs, e2img::MapOptions& map_options) {
    if (!o.scramble)
      return;
    scrambler_.emplace(fs, o.scramble_seed ? *o.scramble_seed : std::random_device{}(), Warn);
    scrambler_->set_keep_names(o.scramble_keep_names);
    if (!o.scramble_map.empty())
      map_.emplace(o.scramble_map);
    scrambler_->set_map(map_ ? &*map_ : nullptr);
    map_options.observe_inode = [this](uint32_t ino, const ext2_inode& inode) {
      scrambler_->ObserveInode(ino, inode);
    };
  }
  ScrambleSetup(const ScrambleSetup&) = delete;
  ScrambleSetup& operator=(const ScrambleSetup&) = delete;
  e2img::Scrambler* get() { return scrambler_ ? &*scrambler_ : nullptr; }

 private:
  std::optional<e2img::ScrambleMap> map_;  // before the scrambler, which writes to it
  std::optional<e2img::Scrambler> scrambler_;
};

// A message of its own line on stderr (not a warning).
void Note(const std::string& message) {
  util::BreakProgressLine();
  std::fprintf(stderr, "e2image: %s\n", message.c_str());
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
  policy.on_open = Note;
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
  if (const auto capture = qcow2::CaptureInfoOf(reader.header()))
    Note(o.source + ": " + qcow2::CaptureSummary(*capture));
  progress.Finish();
  return 0;
}

int ConvertQcow2Stream(const Options& o) {
  util::RefuseTerminal(STDIN_FILENO, "standard input");
  const util::File in = util::File::Borrow(STDIN_FILENO, "standard input");
  util::OutputFile out = CreateOutput(o);
  util::RawWriter writer(out, o.dest_offset,
                         /*zero_gaps=*/out.kind() == util::OutputFile::Kind::kBlockDevice);
  qcow2::StreamConvertOptions options;
  options.spool_dir = util::TempDirectory();
  options.note = Note;
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

  const bool image = o.raw || o.qcow2;
  const e2img::CaptureSettings settings = image ? ImageSettings(o) : e2img::CaptureSettings{};
  e2img::MapOptions map_options;
  map_options.all_data = o.all_data;
  map_options.output_is_device = settings.output_is_device;
  ScrambleSetup scramble(o, fs, map_options);
  e2img::Scrambler* scrambler = scramble.get();
  const auto build_map = [&](e2img::MapOptions options) {
    e2img::MetadataMap map = BuildMap(fs, std::move(options), o.progress);
    map.problems += open_problems;
    return map;
  };
  if (o.nop || !image) {
    e2img::MetadataMap map = build_map(map_options);
    if (scrambler)
      scrambler->Plan(map.blocks);
    if (!o.nop) {
      CaptureE2i(o, fs, map, scrambler);
      return CloseUnreadable(o, fs, unreadable, start_time);
    }
    PrintBlocks(map.blocks, fs.first_copied_block());
    ReportProblems(map.problems, "nothing was written (-n)");
    return 0;
  }
  e2img::CaptureContext context;
  context.fs = &fs;
  context.source = {&source, o.source_offset, fs.block_size(), fs.first_copied_block()};
  context.source.end_warned = &source_end_warned;
  context.source.unreadable = &unreadable;
  context.scrambler = scrambler;
  context.record = [&](qcow2::ClusterTarget& writer) {
    RecordCapture(o, capture_info, unreadable, fs.size_bytes(), writer);
  };
  context.warn = Warn;
  context.note = Note;
  context.build_map = build_map;
  e2img::CaptureResult result = e2img::WriteImage(settings, context, map_options);
  if (scrambler && !scrambler->Summary().empty())
    Warn(scrambler->Summary());
  ReportProblems(result.map.problems + result.copy_problems, "the image was written anyway");
  const int verified = o.verify ? VerifyCapture(o, fs, source, result.map, unreadable) : 0;
  const int status = CloseUnreadable(o, fs, unreadable, start_time);
  return status ? status : verified;
}

}  // namespace e2image
