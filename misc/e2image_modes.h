// The modes of e2image, each a function of the parsed command line: capture
// (raw, qcow2 or e2i image, or -n: the list of blocks), -ra copy and move,
// -I install, qcow2-to-raw conversion. Each returns the exit status.
#pragma once

#include <ctime>
#include <string>

#include "e2image_options.h"
#include "e2img/filesystem.h"
#include "e2img/metadata_map.h"
#include "e2img/unreadable.h"
#include "qcow2/capture_info.h"
#include "qcow2/writer.h"
#include "util/disk_range.h"
#include "util/file.h"

namespace e2image {

// The exit status of a run that wrote its image or copy but left out
// unreadable ranges of the source (e2fsprogs' e2image exits with 0 or 1).
inline constexpr int kExitIncomplete = 3;
// The exit status of a run whose image --verify found to differ from the
// source (and that left nothing out: kExitIncomplete comes first).
inline constexpr int kExitDiffers = 4;

// One "e2image: warning: ..." line on stderr.
void Warn(const std::string& message);
// The closing line when problems were met ("" for none).
void ReportProblems(uint64_t problems, const char* outcome);

// Refuses a source mounted read-write unless forced.
void CheckMount(const std::string& device, bool force);

// Opens the source filesystem with -o, -b and -B.
e2img::Filesystem OpenSource(const Options& o);
// Refuses a -B given without -b that is not the filesystem's block size, as
// e2image does (libext2fs reads -B alone as a statement of the block size).
void CheckBlockSize(const e2img::Filesystem& fs, const Options& o);

// Warns about how the filesystem was opened (a backup superblock chosen as
// e2fsck would, unknown features ignored); returns the number of problems.
uint64_t ReportOpen(const e2img::Filesystem& fs, const Options& o);

// Builds the metadata map, showing the inode scan's progress with -p.
e2img::MetadataMap BuildMap(const e2img::Filesystem& fs, e2img::MapOptions options,
                            bool show_progress);

// The start of a run, as a ddrescue map file's heading shows it.
std::string NowText();
// Says how many unreadable ranges were left out (nothing when none) and
// writes --error-map; returns the exit status: 0, or kExitIncomplete.
int CloseUnreadable(const Options& o, const e2img::Filesystem& fs,
                    const e2img::UnreadableLog& unreadable, const std::string& start_time);

// The time a capture records: now, or SOURCE_DATE_EPOCH (or
// E2FSPROGS_FAKE_TIME) when set, for reproducible images.
std::time_t CaptureTime();
// What a capture records of itself in its qcow2 image (the count of
// unreadable blocks aside, known at its end).
qcow2::CaptureInfo DescribeCapture(const Options& o, const e2img::Filesystem& fs,
                                   const util::File& source, std::time_t started);
// Adds the capture extension, and the bitmap of the unreadable ranges, to a
// qcow2 image being finished.
void RecordCapture(const Options& o, qcow2::CaptureInfo info,
                   const e2img::UnreadableLog& unreadable, uint64_t virtual_size,
                   qcow2::ClusterTarget& writer);
// --verify: reads the written image again and compares each block with the
// source; returns 0, or kExitDiffers.
int VerifyCapture(const Options& o, const e2img::Filesystem& fs, const util::File& source,
                  e2img::MetadataMap& map, const e2img::UnreadableLog& unreadable);

int ConvertQcow2(const Options& o);
// -r - OUT: a qcow2 image read from standard input, in one pass.
int ConvertQcow2Stream(const Options& o);
int Capture(const Options& o);
int CopyOrMove(const Options& o);
int Install(const Options& o);

}  // namespace e2image
