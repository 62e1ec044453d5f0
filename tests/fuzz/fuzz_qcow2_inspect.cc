// Fuzzes qcow2-inspect's model of an image: the tolerant ImageView, then
// info, check (the refcount rebuild), map and dump, as the program runs them.
#include <cstddef>
#include <cstdint>
#include <sstream>

#include "fuzz_util.h"
#include "qcow2/image_view.h"
#include "qcow2/inspect.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input = fuzzutil::WriteInput(data, size, "input.qcow2");
  try {
    const qcow2::ImageView image(input);
    std::ostringstream out;
    std::ostringstream err;
    qcow2::PrintInfo(image, true, out);
    qcow2::PrintCheck(image, true, out, err);
    qcow2::PrintDump(image, out, err);
    qcow2::PrintMap(image, false, out);
  } catch (const util::Error&) {
  }
  return 0;
}
