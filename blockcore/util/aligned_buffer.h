// A page-aligned scratch buffer that grows on demand and keeps its memory between uses.
//
// Page alignment is what O_DIRECT needs, and it also matters for buffered I/O: the kernel copies
// page-cache data to and from user memory with `rep movsb`, which measured several times slower
// on this machine's AMD CPU when the user buffer sat 16 bytes past a page boundary (where malloc
// puts a large std::vector) than when it was page-aligned (docs/io.md "Performance notes").
#pragma once

#include <cstddef>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
#include <span>

namespace chainfs {

class AlignedBuffer {
 public:
  static constexpr size_t kAlign = 4096;

  // The first `size` bytes of the buffer, grown (contents not kept) when it is smaller.
  std::span<std::byte> get(size_t size) {
    if (size > capacity_) {
      const size_t rounded = (size + kAlign - 1) & ~(kAlign - 1);
      void* p = std::aligned_alloc(kAlign, rounded);
      if (!p) throw std::bad_alloc();
      data_.reset(static_cast<std::byte*>(p));
      capacity_ = rounded;
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
    if (n > (std::numeric_limits<size_t>::max() - kAlign) / sizeof(T)) throw std::bad_array_new_length();
    const size_t bytes = (n * sizeof(T) + kAlign - 1) & ~(kAlign - 1);
    void* p = std::aligned_alloc(kAlign, bytes);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t) noexcept { std::free(p); }
  template <class U>
  bool operator==(const CacheAlignedAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace chainfs
