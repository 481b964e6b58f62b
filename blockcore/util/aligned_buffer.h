// Aligned memory for buffers the kernel copies into: a page-aligned scratch buffer that grows on
// demand and keeps its memory between uses, and a cache-line-aligned allocator for vectors.
//
// Page alignment is what O_DIRECT needs, and alignment matters for buffered reads too: the kernel
// copies page-cache data into user memory with `rep movsb`, which on this machine's AMD CPU ran at
// 2.2 GB/s instead of ~8 GB/s when the destination was not 64-byte aligned (a large std::vector
// sits 16 bytes past a page boundary); copies *from* misaligned user memory were not affected
// (docs/io.md "Performance notes").
#pragma once

#include <cstddef>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <span>

namespace chainfs {

// `size` bytes (rounded up to a multiple of `align`, a power of two) starting on an `align`
// boundary; release with std::free. Throws std::bad_alloc like operator new.
inline std::byte* allocate_aligned(size_t align, size_t size) {
  if (size > std::numeric_limits<size_t>::max() - align) throw std::bad_array_new_length();
  void* p = std::aligned_alloc(align, (size + align - 1) & ~(align - 1));
  if (!p) throw std::bad_alloc();
  return static_cast<std::byte*>(p);
}

class AlignedBuffer {
 public:
  static constexpr size_t kAlign = 4096;

  // The first `size` bytes of the buffer, grown (contents not kept) when it is smaller.
  std::span<std::byte> get(size_t size) {
    if (size > capacity_) {
      data_.reset(allocate_aligned(kAlign, size));
      capacity_ = (size + kAlign - 1) & ~(kAlign - 1);
    }
    return {data_.get(), size};
  }

 private:
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::unique_ptr<std::byte, Free> data_;
  size_t capacity_ = 0;
};

// An allocator whose memory starts on a 64-byte (cache-line) boundary: what the kernel's fast copy
// into user memory needs (offsets 64, 512 and 2048 from a page measured as fast as 0), without a
// page of slack per allocation. For byte vectors that the kernel reads into, e.g. qcow2 tables.
template <class T>
struct CacheAlignedAllocator {
  using value_type = T;
  static constexpr size_t kAlign = 64;

  CacheAlignedAllocator() = default;
  template <class U>
  constexpr CacheAlignedAllocator(const CacheAlignedAllocator<U>&) noexcept {}

  T* allocate(size_t n) {
    if (n > std::numeric_limits<size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    return reinterpret_cast<T*>(allocate_aligned(kAlign, n * sizeof(T)));
  }
  void deallocate(T* p, size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const CacheAlignedAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace chainfs
