#include "util/large_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "util/error.h"

// Linux 5.14; older C library headers may lack the name.
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace util {
namespace {

size_t RoundUp(size_t n, size_t unit) {
  return (n + unit - 1) / unit * unit;
}

// Maps `length` bytes starting on an `alignment` boundary (a power of two,
// at least the page size): maps more, then gives back the ends.
uint8_t* MapAligned(size_t length, size_t alignment) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t slack = alignment > page ? alignment : 0;
  void* p =
      ::mmap(nullptr, length + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    throw Error("cannot allocate a buffer of " + std::to_string(length >> 10) +
                " KiB: " + ErrnoText(errno));
  auto* start = static_cast<uint8_t*>(p);
  if (!slack)
    return start;
  const uintptr_t at = reinterpret_cast<uintptr_t>(start);
  const size_t head = (alignment - at % alignment) % alignment;
  if (head)
    ::munmap(start, head);
  if (slack - head)
    ::munmap(start + head + length, slack - head);
  return start + head;
}

}  // namespace

LargeBuffer::LargeBuffer(size_t bytes) : size_(bytes) {
  if (!bytes)
    return;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const bool huge = bytes >= kHugePage;
  mapped_ = RoundUp(bytes, huge ? kHugePage : page);
  data_ = MapAligned(mapped_, huge ? kHugePage : page);
  // Both hints may be refused (THP off, a kernel before 5.14): the pages
  // are then mapped by touching each, still before the buffer is used.
  if (huge)
    (void)::madvise(data_, mapped_, MADV_HUGEPAGE);
  if (::madvise(data_, mapped_, MADV_POPULATE_WRITE) != 0) {
    for (size_t at = 0; at < mapped_; at += page)
      data_[at] = 0;
  }
}

LargeBuffer::LargeBuffer(LargeBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)) {}

LargeBuffer& LargeBuffer::operator=(LargeBuffer&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, 0);
  }
  return *this;
}

LargeBuffer::~LargeBuffer() {
  Release();
}

void LargeBuffer::Release() {
  if (data_)
    ::munmap(data_, mapped_);
  data_ = nullptr;
  size_ = mapped_ = 0;
}

}  // namespace util
