// A bounded cache of cluster-sized metadata tables (L2 tables, refcount blocks), keyed by their
// host offset, least-recently-used first out. It only keeps tables and their dirty bits: the owner
// (Image) does the I/O and decides the write-back order, because a dirty L2 table may be written
// only after the refcount blocks it depends on (see image.h).
//
// Not thread-safe: every call happens under Image::meta_mutex_. A Table* stays valid until the
// table is erased, which the owner does only when it evicts; the owner never holds a Table* of
// one cache across a load into the same cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "blockcore/util/aligned_buffer.h"

namespace chainfs::qcow2 {

// A table's bytes, cache-line aligned: tables are read from the host file on every miss, and the
// kernel's copy into a misaligned buffer is ~3.5x slower here (aligned_buffer.h).
using TableBytes = std::vector<std::byte, CacheAlignedAllocator<std::byte>>;

class TableCache {
 public:
  struct Table {
    uint64_t offset = 0;
    TableBytes bytes;
    bool dirty = false;
  };

  explicit TableCache(size_t capacity) : capacity_(capacity < 2 ? 2 : capacity) {}

  size_t capacity() const { return capacity_; }
  size_t size() const { return index_.size(); }
  bool full() const { return index_.size() >= capacity_; }

  // The table at `offset`, made most recently used; nullptr when not cached.
  Table* find(uint64_t offset) {
    auto it = index_.find(offset);
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->get();
  }
  // The least recently used table (the next to evict), or nullptr when empty.
  Table* victim() { return lru_.empty() ? nullptr : lru_.back().get(); }

  Table* insert(uint64_t offset, TableBytes bytes, bool dirty) {
    auto table = std::make_unique<Table>();
    table->offset = offset;
    table->bytes = std::move(bytes);
    table->dirty = dirty;
    lru_.push_front(std::move(table));
    index_[offset] = lru_.begin();
    return lru_.front().get();
  }

  // Drops the table; its memory is kept for the next take_buffer().
  void erase(uint64_t offset) {
    auto it = index_.find(offset);
    if (it == index_.end()) return;
    spare_ = std::move((*it->second)->bytes);
    lru_.erase(it->second);
    index_.erase(it);
  }

  // A buffer of `size` bytes for a table about to be inserted: the last erased table's memory
  // when it has that size (holding its old bytes: the caller overwrites or clears all of them),
  // else newly allocated zeros. A miss in a full cache then neither allocates nor zeroes.
  TableBytes take_buffer(size_t size) {
    TableBytes out = std::move(spare_);
    spare_ = TableBytes();
    if (out.size() != size) out = TableBytes(size);
    return out;
  }

  std::vector<Table*> dirty_tables() {
    std::vector<Table*> out;
    for (auto& t : lru_)
      if (t->dirty) out.push_back(t.get());
    return out;
  }

 private:
  size_t capacity_;
  std::list<std::unique_ptr<Table>> lru_;  // front = most recently used
  std::unordered_map<uint64_t, std::list<std::unique_ptr<Table>>::iterator> index_;
  TableBytes spare_;  // the last erased table's memory
};

}  // namespace chainfs::qcow2
