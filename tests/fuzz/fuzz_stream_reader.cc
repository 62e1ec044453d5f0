// Fuzzes the one-pass stream reader (e2image -r - OUT): the input is read in
// order, as from a pipe, and converted twice: into an output that can
// rewind (data in any order, gaps left as holes) and into one that takes
// guest order only (early clusters held in the spool). Anything may be
// refused with util::Error; nothing may crash, leak or read out of bounds.
#include <fcntl.h>

#include <cstddef>
#include <cstdint>

#include "fuzz_util.h"
#include "qcow2/stream_reader.h"
#include "util/endian.h"
#include "util/error.h"
#include "util/file.h"
#include "util/output.h"

namespace {

// The guest-order output writes every zero of the virtual disk; the fuzzer
// explores the same code with small disks.
constexpr uint64_t kMaxGuestOrderSize = 32ull << 20;

void Convert(const std::string& input, bool guest_order) {
  try {
    const util::File in = util::File::Open(input, O_RDONLY);
    util::OutputFile out = util::OutputFile::Create(fuzzutil::ScratchDir() + "/output.raw",
                                                    util::OutputFile::Durability::kLeftToTheKernel);
    util::RawWriter writer(out, 0, /*zero_gaps=*/guest_order);
    qcow2::StreamConvertOptions options;
    options.spool_dir = fuzzutil::ScratchDir();
    qcow2::ConvertStreamToRaw(in, writer, options);
    out.Commit();
  } catch (const util::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input = fuzzutil::WriteInput(data, size, "input.qcow2");
  Convert(input, false);
  // The header's virtual size (bytes 24-31), read here only to bound the run.
  if (size >= 32 && util::LoadBE64(data + 24) <= kMaxGuestOrderSize)
    Convert(input, true);
  return 0;
}
