#include "e2img/capture_plan.h"

#include <bit>
#include <cassert>
#include <memory>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "e2img/group_tables.h"
#include "e2img/laned_sink.h"
#include "e2img/overlapped_copy.h"
#include "e2img/source_holes.h"
#include "qcow2/compress_pool.h"
#include "qcow2/writer.h"
#include "util/error.h"
#include "util/progress.h"

namespace e2img {
namespace {

// A size for a message: in MiB, or in KiB below one MiB.
std::string SizeText(uint64_t bytes) {
  return bytes >= (1u << 20) ? std::to_string(bytes >> 20) + " MiB"
                             : std::to_string((bytes + 1023) >> 10) + " KiB";
}

// Adds the blocks of `from` to `to`.
void AddAll(BlockSet& to, BlockSet from) {
  for (const BlockExtent& e : from.Extents())
    to.Add(e.start, e.count);
}

// The output of an image, synced before it gets its name unless --no-sync;
// a raw image at an offset goes into an existing file in place (it may hold
// a partition table), as with e2fsprogs' e2image.
util::OutputFile CreateOutput(const CaptureSettings& s, uint64_t image_bytes) {
  util::OutputFile out =
      util::OutputFile::Create(s.output,
                               s.no_sync ? util::OutputFile::Durability::kLeftToTheKernel
                                         : util::OutputFile::Durability::kSynced,
                               !s.qcow2 && s.dest_offset ? util::OutputFile::Existing::kWriteInPlace
                                                         : util::OutputFile::Existing::kReplace);
  if (!s.qcow2)
    out.Reserve(s.dest_offset, image_bytes);
  return out;
}

// Takes the holes of a sparse source out of the map, each block asked once,
// and keeps the blocks so left out unread.
class HolePruner {
 public:
  HolePruner(const CopySource& source, BlockSet& left_out) : source_(source), left_out_(left_out) {}

  BlockSet Prune(BlockSet& blocks) {
    BlockSet added = Subtract(blocks.Extents(), checked_.Extents());
    BlockSet holes = Subtract(
        added.Extents(),
        WithoutHoles(*source_.file, added.Extents(), source_.offset, source_.block_size).Extents());
    AddAll(left_out_, holes);
    checked_ = Subtract(blocks.Extents(), holes.Extents());
    used_ = true;
    return checked_;
  }
  // Whether the map holds no hole of the source since the first Prune.
  bool used() const { return used_; }

 private:
  const CopySource& source_;
  BlockSet& left_out_;
  BlockSet checked_;  // the map as last pruned: only blocks added since are asked again
  bool used_ = false;
};

// What every strategy shares: the output, its sink, the source and the
// blocks of the map left out unread (counted as copied by -p).
struct Shared {
  Shared(const CaptureSettings& s, const CaptureContext& c, util::OutputFile& o)
      : settings(s), context(c), out(o), source(c.source) {}

  const CaptureSettings& settings;
  const CaptureContext& context;
  util::OutputFile& out;
  CopySource source;
  BlockSet left_out;
  HolePruner holes{source, left_out};
  std::unique_ptr<ImageSink> sink;

  // Makes the sink. `blocks` (the map, or most of it): read by compressed
  // images, which choose their cluster size from it and reserve the L2
  // tables of `reserved` (default: those of `blocks`).
  void MakeSink(const std::vector<BlockExtent>* blocks,
                const std::vector<BlockExtent>* reserved = nullptr);
  // The cluster size of a qcow2 image, when --cluster-size left it open.
  uint32_t ChosenClusterBits(const std::vector<BlockExtent>* blocks) const;
  // Says so when the memory budget runs fewer threads than --threads.
  void NoteThreadsCut(const qcow2::CompressPool& pool, uint32_t cluster_size) const;
};

uint32_t Shared::ChosenClusterBits(const std::vector<BlockExtent>* blocks) const {
  const Filesystem& fs = *context.fs;
  const uint32_t bs = fs.block_size();
  const auto block_bits = static_cast<uint32_t>(std::countr_zero(bs));
  const uint64_t device_bytes = fs.blocks_count() * bs;
  // The block size by default, or the smallest larger size whose L1 table fits qemu.
  const uint32_t fitting = qcow2::SmallestClusterBits(device_bytes, block_bits);
  if (!settings.compression) {
    if (fitting != block_bits)
      context.note("using " + std::to_string(1u << fitting) + "-byte qcow2 clusters: with " +
                   std::to_string(1u << block_bits) +
                   "-byte clusters (the block size) the L1 table would be over qemu's 32 MiB "
                   "limit");
    return fitting;
  }
  const uint32_t bits = CompressedClusterBits(*blocks, bs, fitting, device_bytes);
  const uint64_t large_bytes =
      bits < kCompressedClusterBits
          ? CompressedImageEstimate(*blocks, bs, kCompressedClusterBits, device_bytes)
          : 0;
  const uint64_t chosen_bytes = CompressedImageEstimate(*blocks, bs, bits, device_bytes);
  // Said only when it is worth a choice (--cluster-size=65536 would cost a
  // MiB or more): on a small filesystem it would be noise.
  if (large_bytes >= chosen_bytes + (1u << 20))
    context.note("using " + std::to_string(1u << bits) +
                 "-byte qcow2 clusters: the metadata is spread so thin that 64 KiB clusters "
                 "would make a larger image (estimated: " +
                 SizeText(large_bytes) + ", " +
                 SizeText(L2TableBytes(*blocks, bs, kCompressedClusterBits)) +
                 " of it L2 tables, against " + SizeText(chosen_bytes) + ")");
  return bits;
}

void Shared::NoteThreadsCut(const qcow2::CompressPool& pool, uint32_t cluster_size) const {
  const qcow2::PoolLimits& limits = pool.limits();
  if (limits.threads >= settings.threads)
    return;
  const std::string level = settings.compression_level == qcow2::kDefaultLevel
                                ? "its default level"
                                : "level " + std::to_string(settings.compression_level);
  context.note("compressing on " + std::to_string(limits.threads) + " thread" +
               (limits.threads == 1 ? "" : "s") + ", not " + std::to_string(settings.threads) +
               ": a " + qcow2::CompressionName(*settings.compression) + " codec at " + level +
               " for " + SizeText(cluster_size) + " clusters takes " +
               SizeText(limits.codec_bytes) + ", and the compression holds " +
               SizeText(limits.budget_bytes) + " at most");
}

void Shared::MakeSink(const std::vector<BlockExtent>* blocks,
                      const std::vector<BlockExtent>* reserved) {
  const Filesystem& fs = *context.fs;
  source.skip_holes = !out.in_place();
  if (!settings.qcow2) {
    sink = std::make_unique<RawSink>(out, fs.block_size(), fs.blocks_count(), settings.dest_offset);
    return;
  }
  Qcow2SinkOptions q;
  q.cluster_bits = settings.cluster_size
                       ? static_cast<uint32_t>(std::countr_zero(settings.cluster_size))
                       : ChosenClusterBits(blocks);
  q.version = settings.qcow2_version;
  q.compression = settings.compression;
  q.compression_level = settings.compression_level;
  q.threads = settings.threads ? settings.threads : qcow2::CompressPool::DefaultThreads();
  // One budget for the workers: the scrambler's lanes queue up to 16 MiB of
  // blocks before the compression's, which gets the rest.
  if (context.scrambler)
    q.compression_memory = qcow2::CompressPool::kMemoryBudget - LanedSink::kDefaultQueuedBytes;
  q.blocks = reserved ? reserved : blocks;
  q.before_finish = context.record;
  if (!context.scrambler) {
    q.source = source.file;
    q.source_offset = source.offset;
  }
  auto qcow2_sink = std::make_unique<Qcow2Sink>(out, fs.block_size(), fs.blocks_count(), q);
  if (settings.threads && qcow2_sink->compress_pool())
    NoteThreadsCut(*qcow2_sink->compress_pool(), 1u << q.cluster_bits);
  sink = std::move(qcow2_sink);
}

// One way of getting the map's blocks into the image.
class Strategy {
 public:
  explicit Strategy(Shared& shared) : shared_(shared) {}
  virtual ~Strategy() = default;
  Strategy(const Strategy&) = delete;
  Strategy& operator=(const Strategy&) = delete;

  // Hooks the copy into the scan.
  virtual void BeforeScan(MapOptions& /*options*/) {}
  // With the map complete: the sink exists after this.
  virtual void AfterScan(MetadataMap& /*map*/) {}
  // Blocks already copied as they are (none when the copy waits for the map).
  virtual std::vector<BlockExtent> EarlyBlocks() { return {}; }
  // Copies what is left of the map through `target` (the sink, or the
  // scrambling in front of it); returns the problems met.
  virtual uint64_t Copy(MetadataMap& map, const ProgressFn& progress, ImageSink& target) = 0;

 protected:
  Shared& shared_;
};

// Copies the complete map in one ascending pass: the way into a stream or a
// device, and into a scrambled compressed image (its clusters are never rewritten).
class AfterScanCopy : public Strategy {
 public:
  using Strategy::Strategy;
  uint64_t Copy(MetadataMap& map, const ProgressFn& progress, ImageSink& target) override {
    shared_.source.stale_tails = &map.stale_tails;
    return CopyBlocks(shared_.source, map.blocks, target, progress, shared_.context.warn);
  }
};

// A raw image on a stream or device: the sink is made up front.
class StreamCopy : public AfterScanCopy {
 public:
  explicit StreamCopy(Shared& shared) : AfterScanCopy(shared) { shared_.MakeSink(nullptr); }
};

// Scrambled and compressed: the sink is sized from the complete map, holes of
// a sparse source left out of a file image (no L2 table is reserved for them).
class CompressedAfterScanCopy : public AfterScanCopy {
 public:
  using AfterScanCopy::AfterScanCopy;
  void AfterScan(MetadataMap& map) override {
    const bool holes_left_out = !shared_.settings.output_is_device;
    if (holes_left_out)
      map.blocks = shared_.holes.Prune(map.blocks);
    shared_.MakeSink(&map.blocks.Extents());
    // No hole is left in the map: the copier need not ask the source again.
    if (holes_left_out)
      shared_.source.skip_holes = false;
  }
};

// Copies beside the scan (OverlappedCopy); scrambled, the early blocks go as
// they are and those scrambling changes are written again in the last pass.
class OverlappedStrategy : public Strategy {
 public:
  explicit OverlappedStrategy(Shared& shared) : Strategy(shared) {}
  void BeforeScan(MapOptions& options) override {
    options.inodes_scanned = [this](MetadataMap& known) {
      // The copy would leave out the new holes itself: here, they are counted.
      if (shared_.holes.used())
        known.blocks = shared_.holes.Prune(known.blocks);
      copy_->Continue(known);
    };
  }
  std::vector<BlockExtent> EarlyBlocks() override { return copy_->early_blocks(); }
  uint64_t Copy(MetadataMap& map, const ProgressFn& progress, ImageSink& target) override {
    if (!shared_.context.scrambler)
      return copy_->Finish(map, progress);
    TransformedPass scrambled{&target, shared_.context.scrambler->RoleBlocks()};
    return copy_->Finish(map, progress, &scrambled);
  }

 protected:
  // Starts the worker on the sink made by now.
  void StartCopy() {
    assert(shared_.sink->SecondPassUnitBlocks() > 0);
    EarlyBlockCheck check;
    if (Scrambler* scrambler = shared_.context.scrambler)
      check = [scrambler](uint64_t block, std::span<const uint8_t> data) {
        return scrambler->MayChangeUnplanned(block, data);
      };
    copy_.emplace(shared_.source, *shared_.sink, shared_.context.warn, std::move(check));
  }
  std::optional<OverlappedCopy> copy_;
};

// A raw file or uncompressed qcow2 image: the sink is made up front, the copy
// starts once the group tables are marked.
class UpFrontOverlappedCopy : public OverlappedStrategy {
 public:
  explicit UpFrontOverlappedCopy(Shared& shared) : OverlappedStrategy(shared) {
    shared_.MakeSink(nullptr);
    StartCopy();
  }
  void BeforeScan(MapOptions& options) override {
    OverlappedStrategy::BeforeScan(options);
    options.tables_marked = [this](MetadataMap& known) { copy_->Start(known); };
  }
};

// A compressed image, sized once the group tables (most of the map) are marked,
// holes left out; L2 tables are also reserved where the groups in use start.
class CompressedCopy : public OverlappedStrategy {
 public:
  using OverlappedStrategy::OverlappedStrategy;
  void BeforeScan(MapOptions& options) override {
    OverlappedStrategy::BeforeScan(options);
    options.tables_marked = [this](MetadataMap& known) {
      known.blocks = shared_.holes.Prune(known.blocks);
      const CopySource& source = shared_.source;
      BlockSet reserved = known.blocks;
      for (const uint64_t block :
           FirstDataBlocks(*source.file, GroupsInUse(shared_.context.fs->get()), source.offset,
                           source.block_size))
        reserved.Add(block);
      shared_.MakeSink(&known.blocks.Extents(), &reserved.Extents());
      StartCopy();
      copy_->Start(known, /*holes_pruned=*/true);
    };
  }
};

std::unique_ptr<Strategy> MakeStrategy(CopyStrategy strategy, Shared& shared) {
  switch (strategy) {
    case CopyStrategy::kAfterScan:
      return std::make_unique<StreamCopy>(shared);
    case CopyStrategy::kOverlapped:
      return std::make_unique<UpFrontOverlappedCopy>(shared);
    case CopyStrategy::kCompressed:
      return std::make_unique<CompressedCopy>(shared);
    case CopyStrategy::kCompressedAfterScan:
      return std::make_unique<CompressedAfterScanCopy>(shared);
  }
  assert(false);
  return nullptr;
}

// Blocks scrambled into zeros are holes of a file image: left unread (the
// journal of a small-files filesystem is a third of its image). Those copied
// during the scan come again, zeroed, with the others that change.
void LeaveOutZeroed(const Scrambler& scrambler, Strategy& strategy, MetadataMap& map,
                    BlockSet& left_out) {
  BlockSet zeroed = Subtract(scrambler.ZeroedBlocks().Extents(), strategy.EarlyBlocks());
  AddAll(left_out, Intersect(map.blocks.Extents(), zeroed.Extents()));
  map.blocks = Subtract(map.blocks.Extents(), zeroed.Extents());
}

}  // namespace

CopyStrategy ChooseStrategy(const CaptureSettings& settings, util::OutputFile::Kind output,
                            bool scrambled) {
  if (!settings.qcow2)  // a raw image is rewound for a second pass in a new file only
    return output == util::OutputFile::Kind::kRegular ? CopyStrategy::kOverlapped
                                                      : CopyStrategy::kAfterScan;
  if (!settings.compression)
    return CopyStrategy::kOverlapped;
  return scrambled ? CopyStrategy::kCompressedAfterScan : CopyStrategy::kCompressed;
}

CaptureResult WriteImage(const CaptureSettings& settings, const CaptureContext& context,
                         MapOptions map_options) {
  const Filesystem& fs = *context.fs;
  util::OutputFile out = CreateOutput(settings, fs.size_bytes());
  Shared shared(settings, context, out);
  const CopyStrategy chosen = ChooseStrategy(settings, out.kind(), context.scrambler != nullptr);
  const std::unique_ptr<Strategy> strategy = MakeStrategy(chosen, shared);
  strategy->BeforeScan(map_options);
  CaptureResult result{context.build_map(map_options), 0, chosen};
  MetadataMap& map = result.map;
  Scrambler* scrambler = context.scrambler;
  if (scrambler)
    scrambler->Plan(map.blocks);
  strategy->AfterScan(map);
  if (scrambler && !out.in_place())
    LeaveOutZeroed(*scrambler, *strategy, map, shared.left_out);
  // Scrambling costs CPU: it runs on worker threads while the next blocks are read.
  std::unique_ptr<ImageSink> scrambling;
  if (scrambler)
    scrambling = std::make_unique<ScramblingSink>(
        *scrambler, *shared.sink,
        settings.threads ? settings.threads : qcow2::CompressPool::DefaultThreads());
  ImageSink& target = scrambling ? *scrambling : *shared.sink;
  if (shared.holes.used())
    map.blocks = shared.holes.Prune(map.blocks);
  // The blocks left out unread count as copied: -p says the same total with
  // and without --compress or -s, e2image's count of the map.
  const uint64_t unread = Subtract(shared.left_out.Extents(), map.blocks.Extents()).BlockCount();
  util::Progress progress(settings.progress, map.blocks.BlockCount() + unread, fs.block_size());
  progress.Update(unread);
  result.copy_problems = strategy->Copy(
      map, [&](uint64_t done) { progress.Update(unread + done); }, target);
  target.Finish();
  if (scrambler)
    scrambler->Conclude();
  out.Commit();
  progress.Finish();
  return result;
}

}  // namespace e2img
