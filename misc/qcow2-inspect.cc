// qcow2-inspect: looks inside a qcow2 image without qemu. info and map
// report what qemu-img info and map report; check rebuilds the refcounts as
// qemu-img check does, with its counts and exit codes; dump prints every
// on-disk structure. Output is written only once the command succeeded.
#include <fcntl.h>
#include <getopt.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <new>
#include <set>
#include <sstream>
#include <string>

#include "config.h"
#include "qcow2/backing.h"
#include "qcow2/check.h"
#include "qcow2/format.h"
#include "qcow2/image_file.h"
#include "qcow2/image_view.h"
#include "qcow2/inspect.h"
#include "util/content_type.h"
#include "util/error.h"
#include "util/file.h"
#include "util/seekable_input.h"
#include "util/temp_file.h"

namespace {

const char kUsage[] =
    "Usage: qcow2-inspect info [--json] [--backing=SCOPE] IMAGE|-\n"
    "       qcow2-inspect check [--json] [--backing=SCOPE] IMAGE|-\n"
    "       qcow2-inspect map [--json] [--backing=SCOPE] IMAGE|-\n"
    "       qcow2-inspect dump [--backing=SCOPE] IMAGE|-\n";

const char kHelp[] =
    "\n"
    "  info    format version, sizes, cluster size, compression, refcount bits,\n"
    "          features, backing chain, snapshots, bitmaps, dirty/corrupt bits\n"
    "  check   rebuild the refcounts and compare: exit 0 clean, 2 corruptions,\n"
    "          3 leaked clusters only, 1 when the image cannot be checked\n"
    "  map     guest ranges with their kind, host offset and backing depth\n"
    "  dump    every header field and extension, snapshots, refcount table,\n"
    "          bitmap directory and tables, L1 table with L2 summaries\n"
    "  -       read the image from standard input (a pipe is first copied to\n"
    "          an unnamed file in $TMPDIR, whole but for info; the files it\n"
    "          names are not opened)\n"
    "  --json  machine-readable output (info, check, map)\n"
    "  --backing=SCOPE\n"
    "          backing and data files info and map may open: image-dir (the\n"
    "          default: only files inside the directory of the image naming\n"
    "          them), any, or none (the image read as if it had no backing\n"
    "          file); check and dump open none. Each file opened is named\n"
    "          on stderr\n"
    "  -h, --help     show this help\n"
    "  -V, --version  show the version\n";

[[noreturn]] void Usage(int code) {
  std::fputs(kUsage, code ? stderr : stdout);
  if (code == 0)
    std::fputs(kHelp, stdout);
  std::exit(code);
}

[[noreturn]] void Version() {
  std::printf("qcow2-inspect (e2image-ng) %s\n", PACKAGE_VERSION);
  std::exit(0);
}

struct Options {
  std::string command;
  std::string image;
  bool json = false;
  qcow2::ReferencePolicy policy;
};

Options ParseOptions(int argc, char** argv) {
  static const option kLong[] = {{"json", no_argument, nullptr, 'j'},
                                 {"backing", required_argument, nullptr, 'b'},
                                 {"help", no_argument, nullptr, 'h'},
                                 {"version", no_argument, nullptr, 'V'},
                                 {nullptr, 0, nullptr, 0}};
  Options o;
  int c;
  while ((c = getopt_long(argc, argv, "+hV", kLong, nullptr)) != -1) {
    if (c == 'h')
      Usage(0);
    if (c == 'V')
      Version();
    Usage(1);
  }
  if (optind >= argc)
    Usage(1);
  o.command = argv[optind++];
  // --json may come before or after the image name.
  while ((c = getopt_long(argc, argv, "hV", kLong, nullptr)) != -1) {
    if (c == 'j')
      o.json = true;
    else if (c == 'b')
      o.policy = qcow2::PolicyForScope(optarg);
    else if (c == 'h')
      Usage(0);
    else if (c == 'V')
      Version();
    else
      Usage(1);
  }
  if (optind + 1 != argc)
    Usage(1);
  o.image = argv[optind];
  if (o.command != "info" && o.command != "check" && o.command != "map" && o.command != "dump")
    throw util::Error("unknown command '" + o.command + "' (info, check, map or dump)");
  if (o.json && o.command == "dump")
    throw util::Error("dump has no --json output");
  return o;
}

// Refuses a file without the qcow2 magic, saying what it holds instead.
void RequireQcow2Magic(const util::File& file) {
  uint8_t magic[4];
  if (file.ReadUpTo(magic, 0) < sizeof magic || qcow2::HasQcow2Magic(magic))
    return;  // a short header is the reader's to report
  const std::string holds = util::DescribeContent(file);
  throw util::Error(file.path() + ": not a qcow2 image" +
                    (holds.empty() ? " (no qcow2 magic at offset 0)" : ": " + holds));
}

// The image operand: a file, or "-" for standard input, read in place when
// it is a regular file and through an unnamed spool file otherwise (for
// info, only the header, snapshot table and bitmap directory are written
// to it). An image from standard input has no directory: the files it
// names are refused (ignored under --backing=none).
qcow2::ImageView OpenImage(const std::string& operand, bool info_only,
                           qcow2::ReferencePolicy& policy) {
  if (operand != "-") {
    util::File file = util::File::Open(operand, O_RDONLY);
    RequireQcow2Magic(file);
    return qcow2::ImageView(std::move(file));
  }
  policy.unreachable =
      "is not looked for: an image from standard input has no directory to look in; give the "
      "image as a file";
  util::SpoolSelection selection;
  if (info_only)
    selection = {uint64_t{1} << qcow2::kMaxClusterBits, qcow2::HeaderLoadRanges};
  util::SeekableInput in =
      util::MakeSeekable(STDIN_FILENO, "standard input", util::TempDirectory(), selection);
  RequireQcow2Magic(in.file);
  return qcow2::ImageView(std::move(in.file), /*disk_size_known=*/!in.spooled);
}

int Run(Options o) {
  // One line per file, however many times the commands walk the chain.
  std::set<std::string> named;
  o.policy.on_open = [&named](const std::string& line) {
    if (named.insert(line).second)
      std::fprintf(stderr, "qcow2-inspect: %s\n", line.c_str());
  };
  const qcow2::ImageView image = OpenImage(o.image, o.command == "info", o.policy);
  std::ios::sync_with_stdio(false);
  int code = 0;
  if (o.command == "info") {
    std::ostringstream out;  // small: printed only once complete
    qcow2::PrintInfo(image, o.json, out, o.policy);
    std::cout << out.str();
  } else if (o.command == "map") {
    qcow2::PrintMap(image, o.json, std::cout, o.policy);
  } else if (o.command == "check") {
    std::ostringstream out;
    code = qcow2::PrintCheck(image, o.json, out, std::cerr);
    std::cout << out.str();
  } else {
    code = qcow2::PrintDump(image, std::cout, std::cerr) ? 1 : 0;
  }
  std::cout.flush();
  if (!std::cout)
    throw util::Error("cannot write to standard output");
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(ParseOptions(argc, argv));
  } catch (const util::Error& e) {
    std::fprintf(stderr, "qcow2-inspect: %s\n", e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "qcow2-inspect: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qcow2-inspect: internal error: %s\n", e.what());
  }
  return 1;
}
