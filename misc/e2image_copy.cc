// -ra copies and moves (lib/e2img/device_copy) and -I (lib/e2img/install).
#include <fcntl.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "e2image_modes.h"
#include "e2img/device_copy.h"
#include "e2img/filesystem.h"
#include "e2img/install.h"
#include "e2img/metadata_map.h"
#include "util/error.h"
#include "util/output.h"
#include "util/progress.h"
#include "util/same_storage.h"

namespace e2image {
namespace {

void RefuseMounted(const std::string& device) {
  int flags = 0;
  if (ext2fs_check_if_mounted(device.c_str(), &flags) == 0 && (flags & EXT2_MF_MOUNTED))
    throw util::Error(device + " is mounted: refusing to write to it");
}

// The tail of an error once every block is written (the file size or the
// final sync failed): what state the destination and the source are in.
std::string AfterTheCopy(const Options& o, bool same, uint64_t fs_bytes) {
  const std::string where = same ? "at offset " + std::to_string(o.dest_offset) : "in " + o.output;
  std::string s = "every block was written " + where + " but may not all be on the disk; ";
  const uint64_t distance = o.source_offset > o.dest_offset ? o.source_offset - o.dest_offset
                                                            : o.dest_offset - o.source_offset;
  if (same && distance < fs_bytes)
    return s +
           "the source is partly overwritten, so do NOT rerun this command; check the "
           "filesystem " +
           where + " with e2fsck -fn";
  return s + "the source is untouched: rerun the same command to be sure";
}

}  // namespace

int CopyOrMove(const Options& o) {
  const bool same = o.move_in_place || util::IsSameFile(o.source, o.output);
  if (same && o.source_offset == o.dest_offset)
    throw util::Error(o.output +
                      ": the output is the source itself at the same offset; "
                      "refusing to overwrite it (give -O to move the filesystem)");
  if (!same && util::SharesStorage(o.source, o.output))
    throw util::Error(o.output +
                      ": the output holds the source (a loop device and the file behind it); "
                      "name one of them to move the filesystem");
  CheckMount(o.source, o.force);
  if (same)
    RefuseMounted(o.source);
  else if (!o.nop)
    RefuseMounted(o.output);

  e2img::Filesystem fs = OpenSource(o);
  CheckBlockSize(fs, o);
  if (!same)
    util::CheckDisksApart(o.source, {o.source_offset, fs.size_bytes()}, o.output,
                          {o.dest_offset, fs.size_bytes()},
                          " (to move a filesystem, name one device twice, with -O)");
  const std::string start_time = NowText();
  const uint64_t open_problems = ReportOpen(fs, o);
  // Read errors of the medium leave zeros and a warning, in the scan and the copy.
  const util::File scan_source = util::File::Open(o.source, O_RDONLY);
  e2img::UnreadableLog unreadable(
      o.source, o.source_offset, fs.block_size(), Warn,
      o.check ? "left as the destination has it" : "written as zeros in the copy");
  const e2img::LibextReadSalvage salvage(fs.get(), scan_source, unreadable);
  e2img::MapOptions map_options;
  map_options.all_data = o.all_data;
  // A copy is a filesystem: whole inode tables. -rc without -a updates an
  // image: the metadata -r would write there.
  struct stat out_st {};
  map_options.output_is_device =
      o.all_data || (::stat(o.output.c_str(), &out_st) == 0 && S_ISBLK(out_st.st_mode));
  e2img::MetadataMap map = BuildMap(fs, map_options, o.progress);
  map.problems += open_problems;

  const bool writes = !o.nop;
  util::File source = util::File::Open(o.source, same && writes ? O_RDWR : O_RDONLY);
  util::File dest_file;
  if (!same) {
    struct stat st {};
    const bool exists = ::stat(o.output.c_str(), &st) == 0;
    if (writes)
      dest_file = util::File::Open(o.output, O_RDWR | O_CREAT, 0600);
    else if (exists)
      dest_file = util::File::Open(o.output, O_RDONLY);
    else
      dest_file = util::File::Open("/dev/zero", O_RDONLY);
  }
  const util::File& dest = same ? source : dest_file;
  util::CheckRegionFits(dest, o.dest_offset, fs.size_bytes());

  e2img::DeviceCopyOptions copy;
  copy.source_offset = o.source_offset;
  copy.dest_offset = o.dest_offset;
  copy.block_size = fs.block_size();
  copy.first_data_block = fs.first_copied_block();
  copy.compare = o.check;
  copy.print_only = o.nop;
  copy.unreadable = &unreadable;
  util::Progress progress(o.progress, map.blocks.BlockCount(), fs.block_size());
  const e2img::DeviceCopyResult result = e2img::CopyToDevice(
      source, dest, map.blocks, copy, [&](uint64_t done) { progress.Update(done); }, Warn);
  if (writes) {
    const uint64_t end = o.dest_offset + fs.size_bytes();
    try {
      if (S_ISREG(dest.Stat().st_mode) && dest.Size() < end)
        dest.Truncate(end);
      dest.Sync();
    } catch (const util::Error& e) {
      throw util::Error(std::string(e.what()) + "; " + AfterTheCopy(o, same, fs.size_bytes()));
    }
  }
  progress.Finish();
  if (o.check)  // on stdout, in e2image's words
    std::printf("%llu blocks already contained the data to be copied\n",
                static_cast<unsigned long long>(result.skipped));
  ReportProblems(map.problems + result.problems, "the copy was made anyway");
  return CloseUnreadable(o, fs, unreadable, start_time);
}

int Install(const Options& o) {
  // e2image -I device image-file
  RefuseMounted(o.source);
  if (util::SharesStorage(o.source, o.output))
    throw util::Error(o.output + ": the image is the device itself");
  util::CheckDisksApart(o.output, {}, o.source, {});
  const e2img::E2iInstallSize size =
      o.progress ? e2img::E2iInstallBlocks(o.output) : e2img::E2iInstallSize{};
  util::Progress progress(o.progress, size.blocks, size.block_size, {"Installing", "Installed"});
  e2img::InstallE2iImage(
      o.output, o.source, [&](uint64_t done) { progress.Update(done); }, o.force);
  progress.Finish();
  return 0;
}

}  // namespace e2image
