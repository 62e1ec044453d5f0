// LargeBuffer: the size asked for, huge-page alignment for large buffers,
// every page mapped before first use, and ownership that moves.
#include "util/large_buffer.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace {

// How many pages of the buffer's span are resident (mapped) now.
size_t ResidentPages(std::span<const uint8_t> bytes) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t pages = (bytes.size() + page - 1) / page;
  std::vector<unsigned char> vec(pages);
  EXPECT_EQ(0, ::mincore(const_cast<uint8_t*>(bytes.data()), bytes.size(), vec.data()));
  return static_cast<size_t>(
      std::count_if(vec.begin(), vec.end(), [](unsigned char v) { return v & 1; }));
}

TEST(LargeBuffer, EveryPageIsMappedBeforeFirstUse) {
  for (const size_t bytes : {size_t{12288}, size_t{4} << 20, (size_t{3} << 20) + 5}) {
    util::LargeBuffer buffer(bytes);
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    ASSERT_EQ(bytes, buffer.bytes().size());
    EXPECT_EQ((bytes + page - 1) / page, ResidentPages(buffer.bytes())) << bytes << " bytes";
  }
}

TEST(LargeBuffer, LargeBuffersStartOnAHugePageBoundary) {
  util::LargeBuffer large(util::LargeBuffer::kHugePage * 2 + 100);
  EXPECT_EQ(0u, reinterpret_cast<uintptr_t>(large.bytes().data()) % util::LargeBuffer::kHugePage);
  util::LargeBuffer small(8192);
  EXPECT_EQ(0u, reinterpret_cast<uintptr_t>(small.bytes().data()) % ::sysconf(_SC_PAGESIZE));
}

TEST(LargeBuffer, HoldsWhatIsWrittenAndMovesWithIt) {
  util::LargeBuffer buffer(size_t{4} << 20);
  std::span<uint8_t> bytes = buffer.bytes();
  for (size_t i = 0; i < bytes.size(); i += 4093)
    bytes[i] = static_cast<uint8_t>(i * 7);
  const uint8_t* const data = bytes.data();

  util::LargeBuffer moved(std::move(buffer));
  EXPECT_TRUE(buffer.bytes().empty());
  ASSERT_EQ(data, moved.bytes().data());
  util::LargeBuffer assigned(4096);
  assigned = std::move(moved);
  EXPECT_TRUE(moved.bytes().empty());
  ASSERT_EQ(data, assigned.bytes().data());
  for (size_t i = 0; i < bytes.size(); i += 4093)
    ASSERT_EQ(static_cast<uint8_t>(i * 7), assigned.bytes()[i]) << i;
}

TEST(LargeBuffer, ElementsStartAsZerosAndShareTheBytes) {
  util::LargeBuffer buffer(8 * 1000 + 3);
  const std::span<uint64_t> words = buffer.As<uint64_t>();
  ASSERT_EQ(1000u, words.size());
  EXPECT_TRUE(std::all_of(words.begin(), words.end(), [](uint64_t w) { return w == 0; }));
  words[999] = 0x0102030405060708ull;
  uint64_t seen = 0;
  std::memcpy(&seen, buffer.bytes().data() + 999 * 8, 8);
  EXPECT_EQ(0x0102030405060708ull, seen);
}

TEST(LargeBuffer, AnEmptyBufferHasNoBytes) {
  EXPECT_TRUE(util::LargeBuffer().bytes().empty());
  EXPECT_TRUE(util::LargeBuffer(0).bytes().empty());
}

}  // namespace
