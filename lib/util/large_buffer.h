// LargeBuffer is anonymous memory for the multi-MiB buffers that data passes
// through or lives in (a qcow2 to raw conversion's batches, the L1 tables of
// the qcow2 writer and reader), mapped in full when it is made: on huge
// pages where the kernel gives them, and otherwise in one system call,
// instead of one page fault per 4 KiB page on first touch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

namespace util {

// A buffer of at least `bytes` bytes, its pages mapped up front. Move-only.
class LargeBuffer {
 public:
  LargeBuffer() = default;
  // Throws util::Error when the memory cannot be had.
  explicit LargeBuffer(size_t bytes);
  LargeBuffer(LargeBuffer&& other) noexcept;
  LargeBuffer& operator=(LargeBuffer&& other) noexcept;
  LargeBuffer(const LargeBuffer&) = delete;
  LargeBuffer& operator=(const LargeBuffer&) = delete;
  ~LargeBuffer();

  // The bytes asked for (the mapping may be larger); zeros when made.
  std::span<uint8_t> bytes() const { return {data_, size_}; }
  // The same bytes as whole elements of T (the buffer is page-aligned).
  template <typename T>
  std::span<T> As() const {
    static_assert(std::is_trivially_copyable_v<T>);
    return {reinterpret_cast<T*>(data_), size_ / sizeof(T)};
  }

  // Buffers this large and larger start on a huge page boundary.
  static constexpr size_t kHugePage = size_t{2} << 20;

 private:
  void Release();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;
};

}  // namespace util
