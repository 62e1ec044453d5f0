// Fuzzes qcow2-inspect's model of an image: the refcount check and the
// dump of every structure. NOT BUILT YET: written before lib/qcow2/check.*
// and lib/qcow2/inspect.* existed. To enable it once they land: adjust the
// two calls marked below to their real names, add fuzz_qcow2_inspect to
// FUZZERS in tests/fuzz/fuzz.mk, and seed tests/fuzz/corpus/fuzz_qcow2_inspect
// with a copy of corpus/fuzz_qcow2_reader.
#include <cstddef>
#include <cstdint>
#include <sstream>

#include "fuzz_util.h"
#include "qcow2/check.h"
#include "qcow2/inspect.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input = fuzzutil::WriteInput(data, size, "input.qcow2");
  try {
    std::ostringstream sink;
    qcow2::CheckImage(input, sink);  // adjust: the refcount check (qcow2-inspect check)
    qcow2::DumpImage(input, sink);   // adjust: the structure dump (qcow2-inspect dump)
  } catch (const util::Error&) {
  }
  return 0;
}
