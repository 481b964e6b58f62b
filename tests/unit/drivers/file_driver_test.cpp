// file driver: a protocol node over a host file, checked against the host file itself.
#include <fcntl.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>

#include "blockcore/io/io_hint.h"
#include "tests/unit/drivers/driver_test_util.h"

namespace chainfs {
namespace {

using namespace testing_util;

// Every test runs with io_uring and with the pread/pwrite fallback.
class FileDriverTest : public EngineGraphTest {
 protected:
  NodeRef open_file(const std::string& path, bool read_only = false) {
    return must(graph_.open_named_node(file_spec("img", path, read_only)));
  }
};

TEST_P(FileDriverTest, Read_UnalignedRangesAcrossBlocks_MatchHostBytes) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 300000);
  NodeRef node = open_file(path);
  EXPECT_EQ(node->size(), 300000u);
  const std::pair<uint64_t, size_t> ranges[] = {
      {0, 1}, {1, 4095}, {4095, 2}, {4000, 70000}, {65535, 65538}, {299990, 10}, {123, 0}};
  for (auto [offset, length] : ranges)
    EXPECT_EQ(read(*node, offset, length), pattern(offset, length)) << offset << "+" << length;
  std::vector<std::byte> past(10);
  EXPECT_FALSE(node->read(299995, past).ok());  // the node refuses ranges past its end
}

TEST_P(FileDriverTest, Write_UnalignedRangesAcrossBlocks_ChangeExactlyThoseBytes) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 200000);
  NodeRef node = open_file(path);
  std::vector<std::byte> expected = pattern(0, 200000);
  const std::pair<uint64_t, size_t> ranges[] = {{4093, 10}, {65535, 70000}, {199999, 1}};
  for (auto [offset, length] : ranges) {
    std::vector<std::byte> data(length);
    for (size_t i = 0; i < length; ++i) data[i] = static_cast<std::byte>(~i & 0xff);
    ASSERT_OK(node->write(offset, data));
    std::copy(data.begin(), data.end(), expected.begin() + static_cast<std::ptrdiff_t>(offset));
  }
  EXPECT_OK(node->flush());
  EXPECT_EQ(host_bytes(path, 0, 200000), expected);
  EXPECT_EQ(read(*node, 0, 200000), expected);
  EXPECT_EQ(node->size(), 200000u);
}

TEST_P(FileDriverTest, Submit_MixedBatch_ReadsAndWritesLandTogether) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 1 << 20);
  NodeRef node = open_file(path);
  std::vector<std::byte> r1(5000), r2(70000), w1(3000, std::byte{0x11}), w2(9000, std::byte{0x22});
  IoOp ops[] = {{IoOp::Kind::Read, 100, r1.data(), r1.size()},
                {IoOp::Kind::Write, 200000, w1.data(), w1.size()},
                {IoOp::Kind::Read, 500000, r2.data(), r2.size()},
                {IoOp::Kind::Write, 800001, w2.data(), w2.size()}};
  ASSERT_OK(node->submit(ops));
  EXPECT_EQ(r1, pattern(100, r1.size()));
  EXPECT_EQ(r2, pattern(500000, r2.size()));
  EXPECT_EQ(host_bytes(path, 200000, w1.size()), w1);
  EXPECT_EQ(host_bytes(path, 800001, w2.size()), w2);
}

// Writes of 256 KiB and more at 4 KiB-aligned offsets and lengths bypass the page cache (a second
// O_DIRECT descriptor, the data bounced when its buffer is not aligned); reads stay cached. Pages
// cached before such a write must not be served afterwards.
// How many of the file's pages in [offset, offset + length) are in the host page cache.
size_t resident_pages(const std::string& path, size_t offset, size_t length) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  void* map = ::mmap(nullptr, offset + length, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  EXPECT_NE(map, MAP_FAILED);
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in_core((offset + length) / page);
  EXPECT_EQ(::mincore(map, offset + length, in_core.data()), 0);
  ::munmap(map, offset + length);
  return static_cast<size_t>(std::count_if(in_core.begin() + static_cast<long>(offset / page),
                                           in_core.end(), [](unsigned char c) { return c & 1; }));
}

TEST_P(FileDriverTest, LargeWritesOfABackgroundCopy_StayInThePageCache_GuestsGoDirect) {
  const std::string path = dir_.file("a.img");
  constexpr size_t kMiB = size_t{1} << 20;
  // The guest's write lands 4 MiB away: a direct write drops the whole (large) folios it
  // touches from the page cache, up to 2 MiB here.
  constexpr size_t kGuestAt = 4 * kMiB;
  write_pattern_file(path, 8 * kMiB);
  {
    const int fd = ::open(path.c_str(), O_RDONLY);  // start with none of it cached
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    ::close(fd);
  }
  NodeRef node = open_file(path);
  std::vector<std::byte> data(kMiB, std::byte{0x5a});
  {
    const ScopedBackgroundIo background;  // what a job's thread does
    ASSERT_OK(node->write(0, data));
  }
  EXPECT_FALSE(background_io()) << "the scope ends with the object";
  ASSERT_OK(node->write(kGuestAt, data));
  const size_t pages = kMiB / static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  EXPECT_EQ(resident_pages(path, 0, kMiB), pages) << "a job's copy was written around the cache";
  // The guest's large write went O_DIRECT: the page cache holds none of it (this host's file
  // system takes direct writes; the driver would fall back to buffered where it does not).
  EXPECT_EQ(resident_pages(path, kGuestAt, kMiB), 0u);
  EXPECT_EQ(read(*node, 0, kMiB), data);
  EXPECT_EQ(read(*node, kGuestAt, kMiB), data);
}

TEST_P(FileDriverTest, StartWriteback_IsAHintThatKeepsTheDataAndTheFlush) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 4 << 20);
  NodeRef node = open_file(path);
  std::vector<std::byte> data(1 << 20, std::byte{0x6b});
  {
    const ScopedBackgroundIo background;  // buffered, as a job writes
    ASSERT_OK(node->write(1 << 20, data));
  }
  ASSERT_OK(node->start_writeback());
  ASSERT_OK(node->start_writeback());  // nothing new: still fine
  EXPECT_EQ(read(*node, 1 << 20, data.size()), data);
  ASSERT_OK(node->flush());  // the hint promised nothing: flush still does the sync
  std::vector<std::byte> host(data.size());
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::pread(fd, host.data(), host.size(), 1 << 20), static_cast<ssize_t>(host.size()));
  ::close(fd);
  EXPECT_EQ(host, data);

  write_pattern_file(dir_.file("b.img"), 1 << 20);
  NodeRef read_only = must(graph_.open_named_node(file_spec("ro", dir_.file("b.img"), true)));
  EXPECT_OK(read_only->start_writeback());  // read-only: nothing to write, no error
}

TEST_P(FileDriverTest, LargeAlignedWrites_FromUnalignedBuffers_LandAndReadBackFresh) {
  const std::string path = dir_.file("a.img");
  constexpr size_t kSize = 4 << 20;
  write_pattern_file(path, kSize);
  NodeRef node = open_file(path);
  std::vector<std::byte> expected = pattern(0, kSize);
  EXPECT_EQ(read(*node, 0, kSize), expected);  // every page now in the page cache

  auto filled = [](size_t length, uint8_t seed) {
    std::vector<std::byte> v(length + 1);  // data from v.data() + 1: never 4 KiB-aligned
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::byte>((i * 7 + seed) & 0xff);
    return v;
  };
  std::vector<std::byte> big = filled(1536 << 10, 1);  // direct, bounced in 1 MiB pieces
  std::vector<std::byte> grow = filled(512 << 10, 2);  // direct, past the end
  std::vector<std::byte> odd = filled(300000, 3);      // large but unaligned: buffered
  std::vector<std::byte> small = filled(3000, 4);      // buffered
  std::vector<std::byte> r(70000);
  IoOp ops[] = {{IoOp::Kind::Write, 1 << 20, big.data() + 1, big.size() - 1},
                {IoOp::Kind::Write, 100, small.data() + 1, small.size() - 1},
                {IoOp::Kind::Read, 3 << 20, r.data(), r.size()},
                {IoOp::Kind::Write, kSize, grow.data() + 1, grow.size() - 1},
                {IoOp::Kind::Write, 2900001, odd.data() + 1, odd.size() - 1}};
  ASSERT_OK(node->submit(ops));
  EXPECT_EQ(r, pattern(3 << 20, r.size()));
  expected.resize(kSize + grow.size() - 1);
  for (const IoOp& op : ops)
    if (op.kind == IoOp::Kind::Write)
      std::copy(op.buf, op.buf + op.length,
                expected.begin() + static_cast<std::ptrdiff_t>(op.offset));
  EXPECT_EQ(node->size(), expected.size());

  // Through write() too, from an aligned buffer (no bounce).
  std::unique_ptr<void, decltype(&std::free)> raw(std::aligned_alloc(4096, 256 << 10), &std::free);
  ASSERT_NE(raw, nullptr);
  std::span<std::byte> page_aligned(static_cast<std::byte*>(raw.get()), 256 << 10);
  std::fill(page_aligned.begin(), page_aligned.end(), std::byte{0x5a});
  ASSERT_OK(node->write(64 << 10, page_aligned));
  std::copy(page_aligned.begin(), page_aligned.end(), expected.begin() + (64 << 10));

  EXPECT_EQ(read(*node, 0, expected.size()), expected);  // no stale cached page
  EXPECT_OK(node->flush());
  EXPECT_EQ(host_bytes(path, 0, expected.size()), expected);
  EXPECT_EQ(host_size(path), expected.size());
}

TEST_P(FileDriverTest, WritePastEof_GrowsTheFileAndItsSize) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 10000);
  NodeRef node = open_file(path);

  // A format driver appending a cluster: through submit() ...
  std::vector<std::byte> cluster(65536, std::byte{0x33});
  IoOp append{IoOp::Kind::Write, 65536, cluster.data(), cluster.size()};
  ASSERT_OK(node->submit({&append, 1}));
  EXPECT_EQ(node->size(), 131072u);
  EXPECT_EQ(host_size(path), 131072u);
  EXPECT_EQ(read(*node, 10000, 55536), std::vector<std::byte>(55536, std::byte{0}));  // the gap
  EXPECT_EQ(read(*node, 65536, 65536), cluster);

  // ... and through the driver's write().
  std::vector<std::byte> tail(100, std::byte{0x44});
  ASSERT_OK(node->driver().write(131072 + 50, tail));
  EXPECT_EQ(node->size(), 131072u + 150);
  EXPECT_EQ(host_bytes(path, 131072 + 50, 100), tail);
}

TEST_P(FileDriverTest, Truncate_GrowsWithZerosThenShrinks) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 5000);
  NodeRef node = open_file(path);
  ASSERT_TRUE(node->capabilities().truncate_grow);
  ASSERT_TRUE(node->capabilities().truncate_shrink);

  ASSERT_OK(node->truncate(1 << 20));
  EXPECT_EQ(node->size(), 1u << 20);
  EXPECT_EQ(host_size(path), 1u << 20);
  EXPECT_EQ(read(*node, 0, 5000), pattern(0, 5000));
  EXPECT_EQ(read(*node, 5000, 10000), std::vector<std::byte>(10000, std::byte{0}));

  ASSERT_OK(node->truncate(3000));
  EXPECT_EQ(node->size(), 3000u);
  EXPECT_EQ(host_size(path), 3000u);
  EXPECT_EQ(read(*node, 0, 3000), pattern(0, 3000));
}

TEST_P(FileDriverTest, Discard_PunchesAHoleThatReadsAsZerosAndSeeksAsHole) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 1 << 20);
  NodeRef node = open_file(path);
  const uint64_t before = must(node->allocated_bytes());

  ASSERT_OK(node->discard(256 << 10, 256 << 10));
  EXPECT_EQ(node->size(), 1u << 20);  // KEEP_SIZE
  EXPECT_EQ(read(*node, 256 << 10, 256 << 10), std::vector<std::byte>(256 << 10, std::byte{0}));
  EXPECT_EQ(read(*node, 0, 256 << 10), pattern(0, 256 << 10));

  BlockStatus data = must(node->block_status(0, 1 << 20));
  EXPECT_EQ(data.kind, Alloc::Data);
  EXPECT_EQ(data.length, 256u << 10);
  BlockStatus hole = must(node->block_status(256 << 10, 768 << 10));
  EXPECT_EQ(hole.kind, Alloc::Zero);
  EXPECT_EQ(hole.length, 256u << 10);
  int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_EQ(::lseek(fd, 0, SEEK_HOLE), 256 << 10);  // the host agrees
  ::close(fd);
  EXPECT_EQ(must(node->allocated_bytes()), before - (256 << 10));
}

TEST_P(FileDriverTest, WriteZeroes_ZerosTheRangeOnlyAndGrowsPastTheEnd) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 100000);
  NodeRef node = open_file(path);

  ASSERT_OK(node->write_zeroes(1000, 5000));
  EXPECT_EQ(read(*node, 0, 1000), pattern(0, 1000));
  EXPECT_EQ(read(*node, 1000, 5000), std::vector<std::byte>(5000, std::byte{0}));
  EXPECT_EQ(read(*node, 6000, 94000), pattern(6000, 94000));

  // A range that runs past the end grows the file (the node's range check is bypassed by
  // calling the driver, as a format driver extending its image would).
  ASSERT_OK(node->driver().write_zeroes(99000, 11000));
  EXPECT_EQ(node->size(), 110000u);
  EXPECT_EQ(host_size(path), 110000u);
  EXPECT_EQ(read(*node, 98000, 1000), pattern(98000, 1000));
  EXPECT_EQ(read(*node, 99000, 11000), std::vector<std::byte>(11000, std::byte{0}));
}

TEST_P(FileDriverTest, BlockStatus_SparseFile_ReportsHolesAndDataClippedToTheAsk) {
  const std::string path = dir_.file("sparse.img");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  ASSERT_EQ(::ftruncate(fd, 8 << 20), 0);
  auto data = pattern(0, 64 << 10);
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), 2 << 20), static_cast<ssize_t>(data.size()));
  ::close(fd);
  NodeRef node = open_file(path);

  auto status = [&](uint64_t offset, uint64_t length) {
    BlockStatus st = must(node->block_status(offset, length));
    return std::make_pair(st.kind, st.length);
  };
  EXPECT_EQ(status(0, 8 << 20), std::make_pair(Alloc::Zero, uint64_t{2} << 20));
  EXPECT_EQ(status(0, 4096), std::make_pair(Alloc::Zero, uint64_t{4096}));
  EXPECT_EQ(status(2 << 20, 6 << 20), std::make_pair(Alloc::Data, uint64_t{64} << 10));
  EXPECT_EQ(status(2 << 20, 100), std::make_pair(Alloc::Data, uint64_t{100}));
  EXPECT_EQ(status((2 << 20) + (64 << 10), (6 << 20) - (64 << 10)),
            std::make_pair(Alloc::Zero, (uint64_t{6} << 20) - (64 << 10)));
  EXPECT_EQ(must(node->allocated_bytes()), 64u << 10);
}

TEST_P(FileDriverTest, OpenErrors_SayWhatIsWrongAndNameThePath) {
  const std::string missing = dir_.file("missing.img");
  auto absent = graph_.open_named_node(file_spec("m", missing));
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.error().code, Errc::NotFound);
  EXPECT_NE(absent.error().message.find(missing), std::string::npos) << absent.error().message;

  std::filesystem::create_directory(dir_.file("folder"));
  for (bool read_only : {true, false}) {
    auto folder = graph_.open_named_node(file_spec("d", dir_.file("folder"), read_only));
    ASSERT_FALSE(folder.ok());
    EXPECT_EQ(folder.error().code, Errc::Invalid);
    EXPECT_NE(folder.error().message.find("directory"), std::string::npos);
  }

  ASSERT_EQ(::mkfifo(dir_.file("fifo").c_str(), 0644), 0);
  auto fifo = graph_.open_named_node(file_spec("f", dir_.file("fifo"), true));
  ASSERT_FALSE(fifo.ok());  // and it did not hang waiting for a writer
  EXPECT_EQ(fifo.error().code, Errc::Invalid);

  auto under_file = graph_.open_named_node(file_spec("u", missing + "/x/y"));
  ASSERT_FALSE(under_file.ok());
  EXPECT_EQ(under_file.error().code, Errc::NotFound);
}

TEST_P(FileDriverTest, OpenWithoutPermission_IsRefusedWithAccess) {
  const std::string path = dir_.file("locked.img");
  write_pattern_file(path, 4096);
  ASSERT_EQ(::chmod(path.c_str(), 0400), 0);  // the owner may read it, nobody may write it
  ASSERT_EQ(::chmod(dir_.file("").c_str(), 0755), 0);
  // Root passes every permission check, so as root the opening thread takes another user's
  // file-system identity (setfsuid acts on the calling thread only and drops root's override).
  const bool as_root = ::geteuid() == 0;
  std::optional<Result<NodeRef>> opened;
  std::thread opener([&] {
    if (as_root) ::setfsuid(65534);
    opened.emplace(graph_.open_named_node(file_spec("l", path)));
    if (as_root) ::setfsuid(0);
  });
  opener.join();
  ASSERT_FALSE(opened->ok());
  EXPECT_EQ(opened->error().code, Errc::Access);
  EXPECT_NE(opened->error().message.find(path), std::string::npos) << opened->error().message;
}

TEST_P(FileDriverTest, ReadOnly_ReadsButRefusesEveryChange) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 8192);
  NodeRef node = open_file(path, /*read_only=*/true);
  Capabilities caps = node->capabilities();
  EXPECT_FALSE(caps.writable);
  EXPECT_FALSE(caps.discard);
  EXPECT_FALSE(caps.truncate_grow);
  EXPECT_EQ(read(*node, 0, 8192), pattern(0, 8192));

  std::vector<std::byte> data(10, std::byte{1});
  EXPECT_EQ(node->write(0, data).error().code, Errc::ReadOnly);
  EXPECT_EQ(node->discard(0, 4096).error().code, Errc::ReadOnly);
  EXPECT_EQ(node->write_zeroes(0, 4096).error().code, Errc::ReadOnly);
  EXPECT_EQ(node->truncate(100).error().code, Errc::ReadOnly);
  IoOp op{IoOp::Kind::Write, 0, data.data(), data.size()};
  EXPECT_EQ(node->submit({&op, 1}).error().code, Errc::ReadOnly);
  EXPECT_OK(node->flush());
  EXPECT_EQ(host_bytes(path, 0, 8192), pattern(0, 8192));
}

TEST_P(FileDriverTest, WritableNode_ReportsItsCapabilities) {
  const std::string path = dir_.file("a.img");
  write_pattern_file(path, 4096);
  NodeRef node = open_file(path);
  Capabilities caps = node->capabilities();
  EXPECT_TRUE(caps.writable);
  EXPECT_TRUE(caps.discard);
  EXPECT_TRUE(caps.write_zeroes);
  EXPECT_TRUE(caps.truncate_grow);
  EXPECT_TRUE(caps.truncate_shrink);
  EXPECT_FALSE(caps.has_backing);
  EXPECT_EQ(node->driver_name(), "file");
  EXPECT_EQ(node->filename(), path);
}

std::string engine_name(const testing::TestParamInfo<bool>& param) {
  return param.param ? "Fallback" : "IoUring";
}
INSTANTIATE_TEST_SUITE_P(Engines, FileDriverTest, testing::Values(false, true), engine_name);

}  // namespace
}  // namespace chainfs
