// Fuzzes the qcow2 reader: opens the input as an image, maps and reads a
// few guest ranges, then converts the whole virtual disk to a raw file.
// Anything may be refused with util::Error; nothing may crash, leak or
// read out of bounds.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_util.h"
#include "qcow2/reader.h"
#include "util/error.h"
#include "util/output.h"

namespace {

// Converting a huge, mostly-unallocated virtual disk is correct but slow;
// the fuzzer explores the same code with small ones.
constexpr uint64_t kMaxVirtualSize = 32ull << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input = fuzzutil::WriteInput(data, size, "input.qcow2");
  try {
    qcow2::Qcow2Reader reader(input);
    const uint64_t vsize = reader.virtual_size();
    // Map the start and the end, and read across a cluster boundary.
    (void)reader.Map(0);
    if (vsize > 0)
      (void)reader.Map(vsize - 1);
    const uint64_t cs = reader.header().cluster_size();
    if (vsize > cs) {
      std::vector<uint8_t> buf(std::min<uint64_t>(2 * cs, vsize - cs / 2));
      reader.Read(cs / 2, buf);
    }
    if (vsize > kMaxVirtualSize)
      return 0;
    util::OutputFile out = util::OutputFile::Create(fuzzutil::ScratchDir() + "/output.raw");
    util::RawWriter writer(out, 0, false);
    qcow2::ConvertToRaw(reader, writer);
    out.Commit();
  } catch (const util::Error&) {
  }
  return 0;
}
