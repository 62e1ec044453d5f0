// Helpers shared by the fuzz harnesses: a scratch directory in memory
// (/dev/shm when it exists) holding the input as a file, since the code under
// test opens files by name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace fuzzutil {

// A per-process scratch directory, created on first use and removed at exit.
const std::string& ScratchDir();

// Writes the fuzz input to a fixed file in the scratch directory and returns its path.
std::string WriteInput(const uint8_t* data, size_t size, const std::string& name);

}  // namespace fuzzutil
