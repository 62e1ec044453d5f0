// e2image-ng: saves the metadata of an ext2/3/4 filesystem as a raw, qcow2
// or e2i image, copies and moves filesystems (-ra), installs e2i metadata
// (-I), and turns qcow2 images back into raw ones. Options follow
// e2fsprogs' e2image.
#include <cstdio>
#include <new>

#include "e2image_modes.h"
#include "e2image_options.h"
#include "qcow2/reader.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/same_storage.h"

namespace {

using e2image::Options;

int Run(const Options& o) {
  if (o.install) {
    if (o.raw || o.qcow2 || o.all_data || o.scramble || o.nop || o.check || o.no_sync)
      throw util::Error("-I takes no other image option: e2image -I device image-file");
    return e2image::Install(o);
  }
  if (o.all_data && !o.raw && !o.qcow2)
    throw util::Error("-a option can only be used with raw or QCOW2 images.");
  if (o.superblock && !o.raw && !o.qcow2)
    throw util::Error("-b option can only be used with raw or QCOW2 images.");
  if ((o.source_offset || o.dest_offset) && !o.raw)
    throw util::Error("Offsets are only allowed with raw images.");
  if (o.move_in_place && !o.all_data)
    throw util::Error("Move mode requires all data mode.");
  if (o.check && !o.raw)
    throw util::Error("The -c option only supported in raw mode");
  if (o.check && o.output == "-")
    throw util::Error(
        "-c compares with the blocks already in the output: standard output has none");
  if ((o.cluster_size || o.compression || o.qcow2_version != 2) && !o.qcow2 &&
      !(o.raw && qcow2::IsQcow2File(o.source)))
    throw util::Error("--qcow2-version, --cluster-size and --compress go with -Q");
  if (o.threads && !o.compression && !o.scramble)
    throw util::Error(
        "--threads goes with --compress or -s (it sets the compression or scrambling threads)");
  if ((o.scramble_seed || !o.scramble_map.empty() || o.scramble_keep_names) && !o.scramble)
    throw util::Error("--scramble-seed, --scramble-map and --scramble-keep-names go with -s");
  if (!o.scramble_map.empty() && o.scramble_map == o.output)
    throw util::Error("--scramble-map must name another file than the image");
  if (o.verify && (!(o.raw || o.qcow2) || o.scramble || o.nop || o.output == "-" ||
                   (o.raw && o.all_data &&
                    (o.move_in_place || o.check || util::IsSameFile(o.source, o.output)))))
    throw util::Error(
        "--verify goes with -r or -Q image files (not e2i images, -s, which changes blocks, -n, "
        "standard output, or copies in place)");
  if (o.backing_given && !(o.raw && (o.source == "-" || qcow2::IsQcow2File(o.source))))
    throw util::Error("--backing goes with -r and a qcow2 image as the source");
  if (o.raw && o.source == "-") {
    if (o.scramble || o.all_data || o.source_offset)
      throw util::Error("-r - reads a qcow2 image from standard input: it takes no -s, -a or -o");
    return e2image::ConvertQcow2Stream(o);
  }
  if (o.raw && qcow2::IsQcow2File(o.source)) {
    if (o.scramble)
      throw util::Error("-s scrambles a filesystem, not a qcow2 image");
    return e2image::ConvertQcow2(o);
  }
  if (o.raw &&
      (o.check || (o.all_data && (o.move_in_place || util::IsSameFile(o.source, o.output))))) {
    if (o.scramble)
      throw util::Error(
          "-s cannot scramble an image written in place (-r with -c, or -ra with "
          "one file); write the scrambled image to a new file");
    if (o.no_sync)
      throw util::Error(
          "--no-sync goes with image files: an image written in place (-r with -c, "
          "or -ra with one file) is always synced");
    return e2image::CopyOrMove(o);
  }
  return e2image::Capture(o);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(e2image::ParseOptions(argc, argv));
  } catch (const util::Error& e) {
    util::BreakProgressLine();
    std::fprintf(stderr, "e2image: %s\n", e.what());
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "e2image: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "e2image: internal error: %s\n", e.what());
  }
  return 1;
}
