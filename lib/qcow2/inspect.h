// qcow2-inspect's reports on an ImageView: info (as qemu-img info), check
// (as qemu-img check), map (as qemu-img map) and dump (every structure).
// Each prints text or JSON; problems in the image go to `err`, one line each.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>

#include "qcow2/backing.h"
#include "qcow2/check.h"
#include "qcow2/image_view.h"
#include "qcow2/map_chain.h"

namespace qcow2 {

// Calls `emit` for each maximal range of the virtual disk, in order, the
// backing chain's included (as qemu-img map). Throws util::Error naming the
// table, entry and offset of a bad L1 or L2 entry, or the backing file that
// cannot be opened. Backing and data files are opened as the policy allows.
void ForEachMapRange(const ImageView& image, const std::function<void(const MapRange&)>& emit,
                     const ReferencePolicy& policy = {});

// The backing chain is walked as the policy allows.
void PrintInfo(const ImageView& image, bool json, std::ostream& out,
               const ReferencePolicy& policy = {});
// Walks the image once to validate it, then prints while walking again: a
// bad entry leaves `out` untouched, and memory does not grow with the map.
void PrintMap(const ImageView& image, bool json, std::ostream& out,
              const ReferencePolicy& policy = {});
// Runs the check, each problem to err as it is found, then prints the report
// to out. Returns qemu-img check's exit code.
int PrintCheck(const ImageView& image, bool json, std::ostream& out, std::ostream& err);
// Prints every structure; returns the number of problems written to err.
uint64_t PrintDump(const ImageView& image, std::ostream& out, std::ostream& err);

}  // namespace qcow2
