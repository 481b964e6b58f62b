// TableCache: LRU order, dirty tables, and the buffer an eviction hands to the next load.
#include <gtest/gtest.h>

#include <cstdint>

#include "blockcore/drivers/qcow2/table_cache.h"

namespace chainfs {
namespace {

using qcow2::TableBytes;
using qcow2::TableCache;

TableBytes filled(size_t size, std::byte value) { return TableBytes(size, value); }

TEST(TableCache, FindMakesMostRecentlyUsed_VictimIsTheLeastRecent) {
  TableCache cache(3);
  cache.insert(0x10000, filled(512, std::byte{1}), false);
  cache.insert(0x20000, filled(512, std::byte{2}), true);
  cache.insert(0x30000, filled(512, std::byte{3}), false);
  EXPECT_TRUE(cache.full());
  EXPECT_EQ(cache.victim()->offset, 0x10000u);
  ASSERT_NE(cache.find(0x10000), nullptr);
  EXPECT_EQ(cache.victim()->offset, 0x20000u);
  EXPECT_EQ(cache.find(0x40000), nullptr);
  auto dirty = cache.dirty_tables();
  ASSERT_EQ(dirty.size(), 1u);
  EXPECT_EQ(dirty[0]->offset, 0x20000u);
  EXPECT_EQ(dirty[0]->bytes[511], std::byte{2});
}

TEST(TableCache, TakeBuffer_ReusesTheErasedTablesMemory_OfTheSameSize) {
  TableCache cache(2);
  cache.insert(0x10000, filled(65536, std::byte{7}), false);
  const std::byte* memory = cache.find(0x10000)->bytes.data();
  cache.erase(0x10000);
  EXPECT_EQ(cache.find(0x10000), nullptr);
  TableBytes reused = cache.take_buffer(65536);
  EXPECT_EQ(reused.data(), memory);  // no allocation, no zeroing
  EXPECT_EQ(reused.size(), 65536u);
  // Taken once: the next buffer is new, and zeroed.
  TableBytes fresh = cache.take_buffer(65536);
  EXPECT_NE(fresh.data(), memory);
  EXPECT_EQ(fresh[0], std::byte{0});
  EXPECT_EQ(fresh[65535], std::byte{0});
}

TEST(TableCache, TakeBuffer_OfAnotherSize_IsNewAndZeroed) {
  TableCache cache(2);
  cache.insert(0x10000, filled(512, std::byte{7}), false);
  cache.erase(0x10000);
  TableBytes other = cache.take_buffer(4096);
  ASSERT_EQ(other.size(), 4096u);
  for (std::byte b : other) ASSERT_EQ(b, std::byte{0});
}

TEST(TableCache, TableMemory_IsCacheLineAligned) {
  // The kernel's copy into a buffer off a 64-byte boundary is several times slower here
  // (aligned_buffer.h), and every cache miss reads a table from the host file.
  for (size_t size : {size_t{512}, size_t{4096}, size_t{65536}, size_t{2} << 20}) {
    TableCache cache(2);
    TableBytes bytes = cache.take_buffer(size);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(bytes.data()) % 64, 0u) << size;
    cache.insert(1, std::move(bytes), false);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(cache.find(1)->bytes.data()) % 64, 0u) << size;
  }
}

}  // namespace
}  // namespace chainfs
