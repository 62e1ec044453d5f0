// The modes of e2image, each a function of the parsed command line: capture
// (raw, qcow2 or e2i image, or -n: the list of blocks), -ra copy and move,
// -I install, qcow2-to-raw conversion. Each returns the exit status.
#pragma once

#include <string>

#include "e2image_options.h"
#include "e2img/filesystem.h"
#include "e2img/metadata_map.h"
#include "util/disk_range.h"

namespace e2image {

// One "e2image: warning: ..." line on stderr.
void Warn(const std::string& message);
// The closing line when problems were met ("" for none).
void ReportProblems(uint64_t problems, const char* outcome);

// True when a and b are one file or one block device, through any path.
bool IsSameFile(const std::string& a, const std::string& b);
// IsSameFile, or one is a loop device over the other (or both over one file).
bool SharesStorage(const std::string& a, const std::string& b);
// Refuses an output whose region (bytes of the output device) shares bytes of
// one disk with the source's region: a partition and its whole disk, or
// partitions that overlap. `hint` ends the message.
void CheckDisksApart(const std::string& source, util::DeviceRegion source_region,
                     const std::string& output, util::DeviceRegion output_region,
                     const std::string& hint = "");
// Refuses a source mounted read-write unless forced.
void CheckMount(const std::string& device, bool force);

// Opens the source filesystem with -o, -b and -B.
e2img::Filesystem OpenSource(const Options& o);

// Warns about how the filesystem was opened (a backup superblock chosen as
// e2fsck would, unknown features ignored); returns the number of problems.
uint64_t ReportOpen(const e2img::Filesystem& fs, const Options& o);

// Builds the metadata map, showing the inode scan's progress with -p.
e2img::MetadataMap BuildMap(const e2img::Filesystem& fs, e2img::MapOptions options,
                            bool show_progress);

int ConvertQcow2(const Options& o);
// -r - OUT: a qcow2 image read from standard input, in one pass.
int ConvertQcow2Stream(const Options& o);
int Capture(const Options& o);
int CopyOrMove(const Options& o);
int Install(const Options& o);

}  // namespace e2image
