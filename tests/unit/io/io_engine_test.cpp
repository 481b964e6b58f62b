// IoEngine: batches through io_uring and through the pread/pwrite fallback must give the same
// results: data, zero-filled reads past EOF, errors after all ops, concurrency.
#include "blockcore/io/io_engine.h"

#include <fcntl.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace chainfs {
namespace {

namespace fs = std::filesystem;

// The byte every test file holds at `offset`: position-dependent, so misplaced data shows.
std::byte pattern_at(uint64_t offset) {
  return static_cast<std::byte>((offset * 2654435761u >> 13) ^ (offset >> 9));
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "chainfs-io-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Writes `size` pattern bytes into a new file and returns its fd (opened with `flags`).
int make_pattern_file(const std::string& path, size_t size, int flags = O_RDWR) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::vector<std::byte> data(size);
  for (size_t i = 0; i < size; ++i) data[i] = pattern_at(i);
  EXPECT_EQ(::pwrite(fd, data.data(), size, 0), static_cast<ssize_t>(size));
  if (flags != O_RDWR) {
    ::close(fd);
    fd = ::open(path.c_str(), flags | O_CLOEXEC);
  }
  return fd;
}

class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  int fd_;
};

enum class Mode { Uring, UringEvenSingleOps, Fallback };

std::string mode_name(const testing::TestParamInfo<Mode>& info) {
  switch (info.param) {
    case Mode::Uring:
      return "Uring";
    case Mode::UringEvenSingleOps:
      return "UringEvenSingleOps";
    case Mode::Fallback:
      return "Fallback";
  }
  return "?";
}

class IoEngineTest : public testing::TestWithParam<Mode> {
 protected:
  std::unique_ptr<IoEngine> make_engine(unsigned ring_entries = 64, unsigned max_rings = 64) {
    IoEngineOptions options;
    options.ring_entries = ring_entries;
    options.max_rings = max_rings;
    options.force_fallback = GetParam() == Mode::Fallback;
    options.direct_single_op = GetParam() != Mode::UringEvenSingleOps;
    auto engine = IoEngine::create(nullptr, options);
    if (GetParam() != Mode::Fallback && !engine->uses_io_uring())
      ADD_FAILURE() << "io_uring is unavailable on this host; the uring modes cannot be tested";
    return engine;
  }

  TempDir dir_;
};

TEST_P(IoEngineTest, Run_BatchOfScatteredReads_ReturnsFileBytes) {
  constexpr size_t kSize = 1 << 20;
  int fd = make_pattern_file(dir_.file("data"), kSize, O_RDONLY);
  FdCloser closer(fd);
  auto engine = make_engine();

  std::mt19937_64 rng(42);
  std::vector<std::vector<std::byte>> bufs;
  std::vector<IoOp> ops;
  for (int i = 0; i < 40; ++i) {
    size_t length = 1 + rng() % 20000;  // unaligned sizes and offsets
    uint64_t offset = rng() % (kSize - length);
    bufs.emplace_back(length, std::byte{0xEE});
    ops.push_back(IoOp{IoOp::Kind::Read, offset, bufs.back().data(), length});
  }
  ASSERT_TRUE(engine->run(fd, ops).ok());
  for (size_t i = 0; i < ops.size(); ++i)
    for (size_t j = 0; j < ops[i].length; ++j)
      ASSERT_EQ(bufs[i][j], pattern_at(ops[i].offset + j)) << "op " << i << " byte " << j;
}

TEST_P(IoEngineTest, Run_BatchOfWrites_LandWhereAsked) {
  int fd = make_pattern_file(dir_.file("data"), 256 << 10);
  FdCloser closer(fd);
  auto engine = make_engine();

  std::vector<std::vector<std::byte>> bufs;
  std::vector<IoOp> ops;
  for (uint64_t i = 0; i < 16; ++i) {
    const uint64_t offset = i * 12345 + 7;
    bufs.emplace_back(3000, static_cast<std::byte>(i + 1));
    ops.push_back(IoOp{IoOp::Kind::Write, offset, bufs.back().data(), 3000});
  }
  // Past the end too: the file grows.
  bufs.emplace_back(100, std::byte{0x77});
  ops.push_back(IoOp{IoOp::Kind::Write, (256 << 10) + 50, bufs.back().data(), 100});
  ASSERT_TRUE(engine->run(fd, ops).ok());

  for (size_t i = 0; i < ops.size(); ++i) {
    std::vector<std::byte> back(ops[i].length);
    ASSERT_EQ(::pread(fd, back.data(), back.size(), ops[i].offset),
              static_cast<ssize_t>(back.size()));
    EXPECT_EQ(back, bufs[i]) << "op " << i;
  }
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, (256 << 10) + 150);
}

TEST_P(IoEngineTest, Run_ReadsAcrossAndPastEof_AreZeroFilled) {
  constexpr size_t kSize = 10000;
  int fd = make_pattern_file(dir_.file("data"), kSize, O_RDONLY);
  FdCloser closer(fd);
  auto engine = make_engine();

  std::vector<std::byte> across(4096, std::byte{0xAA});
  std::vector<std::byte> past(512, std::byte{0xAA});
  std::vector<std::byte> before(100, std::byte{0xAA});
  IoOp ops[] = {{IoOp::Kind::Read, 8192, across.data(), across.size()},
                {IoOp::Kind::Read, 20000, past.data(), past.size()},
                {IoOp::Kind::Read, 0, before.data(), before.size()}};
  ASSERT_TRUE(engine->run(fd, ops).ok());
  for (size_t j = 0; j < across.size(); ++j)
    ASSERT_EQ(across[j], 8192 + j < kSize ? pattern_at(8192 + j) : std::byte{0}) << j;
  EXPECT_EQ(past, std::vector<std::byte>(512, std::byte{0}));
  for (size_t j = 0; j < before.size(); ++j) ASSERT_EQ(before[j], pattern_at(j));

  // And as a single op.
  std::vector<std::byte> single(4096, std::byte{0xAA});
  IoOp one{IoOp::Kind::Read, 9000, single.data(), single.size()};
  ASSERT_TRUE(engine->run(fd, {&one, 1}).ok());
  for (size_t j = 0; j < single.size(); ++j)
    ASSERT_EQ(single[j], 9000 + j < kSize ? pattern_at(9000 + j) : std::byte{0}) << j;
}

TEST_P(IoEngineTest, Run_WriteOnReadOnlyFd_FailsAfterTheOtherOpsFinished) {
  constexpr size_t kSize = 64 << 10;
  int fd = make_pattern_file(dir_.file("data"), kSize, O_RDONLY);
  FdCloser closer(fd);
  auto engine = make_engine();

  std::vector<std::byte> first(4096), write_buf(4096, std::byte{1}), last(4096);
  IoOp ops[] = {{IoOp::Kind::Read, 0, first.data(), first.size()},
                {IoOp::Kind::Write, 4096, write_buf.data(), write_buf.size()},
                {IoOp::Kind::Read, 32768, last.data(), last.size()}};
  auto result = engine->run(fd, ops);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::Io);  // EBADF has no closer Errc
  EXPECT_NE(result.error().message.find("write of 4096 bytes at offset 4096"), std::string::npos)
      << result.error().message;
  for (size_t j = 0; j < 4096; ++j) {
    ASSERT_EQ(first[j], pattern_at(j));
    ASSERT_EQ(last[j], pattern_at(32768 + j));
  }
}

TEST_P(IoEngineTest, Run_BadFd_FailsForEveryOp) {
  auto engine = make_engine();
  std::vector<std::byte> buf(2048);  // a gap between the two reads: they must not be merged
  IoOp ops[] = {{IoOp::Kind::Read, 0, buf.data(), 512},
                {IoOp::Kind::Read, 512, buf.data() + 1024, 512}};
  auto batch = engine->run(-1, ops);
  ASSERT_FALSE(batch.ok());
  EXPECT_NE(batch.error().message.find("read of 512 bytes at offset 0 "), std::string::npos)
      << batch.error().message;  // the first op's error, not the last one's
  EXPECT_FALSE(engine->run(-1, {ops, 1}).ok());
}

TEST_P(IoEngineTest, Run_MoreOpsThanRingEntries_AllComplete) {
  constexpr size_t kSize = 512 << 10;
  int fd = make_pattern_file(dir_.file("data"), kSize);
  FdCloser closer(fd);
  auto engine = make_engine(/*ring_entries=*/4);

  // Backwards through the file, so that no op continues the one before it (which the engine
  // would merge into one transfer).
  std::vector<std::byte> buf(kSize);
  std::vector<IoOp> ops;
  for (size_t off = kSize; off > 0; off -= 4096)
    ops.push_back(IoOp{IoOp::Kind::Read, off - 4096, buf.data() + off - 4096, 4096});
  ASSERT_EQ(ops.size(), 128u);
  ASSERT_TRUE(engine->run(fd, ops).ok());
  for (size_t j = 0; j < kSize; ++j) ASSERT_EQ(buf[j], pattern_at(j)) << j;
}

TEST_P(IoEngineTest, Run_OpsContinuingEachOther_GiveTheSameBytesAsSeparateOps) {
  constexpr size_t kSize = 300000;
  int fd = make_pattern_file(dir_.file("data"), kSize);
  FdCloser closer(fd);
  auto engine = make_engine();

  // One buffer read by 64 KiB pieces in order (mergeable), running past EOF, then a write that
  // continues the last read in the file but must not be merged with it.
  std::vector<std::byte> buf(6 * 65536, std::byte{0xAA});
  std::vector<IoOp> ops;
  for (size_t i = 0; i < 6; ++i)
    ops.push_back(IoOp{IoOp::Kind::Read, i * 65536, buf.data() + i * 65536, 65536});
  std::vector<std::byte> out(100, std::byte{0x99});
  ops.push_back(IoOp{IoOp::Kind::Write, 6 * 65536, out.data(), out.size()});
  ASSERT_TRUE(engine->run(fd, ops).ok());
  for (size_t j = 0; j < buf.size(); ++j)
    ASSERT_EQ(buf[j], j < kSize ? pattern_at(j) : std::byte{0}) << j;
  std::vector<std::byte> back(100);
  ASSERT_EQ(::pread(fd, back.data(), 100, 6 * 65536), 100);
  EXPECT_EQ(back, out);
  EXPECT_EQ(ops.size(), 7u);  // the caller's ops are left as they were
  EXPECT_EQ(ops[0].length, 65536u);
}

TEST_P(IoEngineTest, Run_EmptyBatchAndZeroLengthOps_Succeed) {
  int fd = make_pattern_file(dir_.file("data"), 4096);
  FdCloser closer(fd);
  auto engine = make_engine();
  EXPECT_TRUE(engine->run(fd, {}).ok());
  std::byte byte{0x55};
  IoOp ops[] = {{IoOp::Kind::Read, 0, &byte, 0}, {IoOp::Kind::Write, 100, &byte, 0}};
  EXPECT_TRUE(engine->run(fd, ops).ok());
  EXPECT_EQ(byte, std::byte{0x55});
}

TEST_P(IoEngineTest, Run_EightThreadsConcurrently_EachSeesItsOwnWrites) {
  constexpr size_t kRegion = 64 << 10;
  constexpr int kThreads = 8;
  int fd = make_pattern_file(dir_.file("data"), kRegion * kThreads);
  FdCloser closer(fd);
  // Fewer rings than threads: some callers wait for a ring to come back.
  auto engine = make_engine(/*ring_entries=*/8, /*max_rings=*/3);

  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const uint64_t base = static_cast<uint64_t>(t) * kRegion;
      std::vector<std::byte> out(kRegion), in(kRegion);
      for (int round = 0; round < 20; ++round) {
        for (size_t j = 0; j < kRegion; ++j)
          out[j] = static_cast<std::byte>((j + static_cast<size_t>(t) * 31 + round) & 0xff);
        std::vector<IoOp> writes, reads;
        for (size_t off = kRegion; off > 0; off -= 16384) {  // 4 ops per batch, none mergeable
          writes.push_back(
              IoOp{IoOp::Kind::Write, base + off - 16384, out.data() + off - 16384, 16384});
          reads.push_back(
              IoOp{IoOp::Kind::Read, base + off - 16384, in.data() + off - 16384, 16384});
        }
        if (!engine->run(fd, writes).ok() || !engine->run(fd, reads).ok() || in != out)
          failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_P(IoEngineTest, Fsync_DataOnlyAndFull_SucceedOnAFileAndFailOnABadFd) {
  int fd = make_pattern_file(dir_.file("data"), 4096);
  FdCloser closer(fd);
  auto engine = make_engine();
  EXPECT_TRUE(engine->fsync(fd, true).ok());
  EXPECT_TRUE(engine->fsync(fd, false).ok());
  auto bad = engine->fsync(-1, true);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("fdatasync"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Modes, IoEngineTest,
                         testing::Values(Mode::Uring, Mode::UringEvenSingleOps, Mode::Fallback),
                         mode_name);

// ---- creation and the fallback announcement ------------------------------------------------

struct CapturedLog {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  std::shared_ptr<spdlog::logger> logger = [this] {
    auto l = std::make_shared<spdlog::logger>("io-test", sink);
    l->set_level(spdlog::level::trace);
    return l;
  }();
  int count(const std::string& needle) const {
    int n = 0;
    for (const auto& line : sink->last_formatted())
      if (line.find(needle) != std::string::npos) ++n;
    return n;
  }
};

TEST(IoEngineCreate, ForceFallback_AnnouncedExactlyOnceWithTheReason) {
  CapturedLog log;
  auto engine = IoEngine::create(log.logger, IoEngineOptions{.force_fallback = true});
  EXPECT_FALSE(engine->uses_io_uring());

  TempDir dir;
  int fd = make_pattern_file(dir.file("data"), 8192);
  FdCloser closer(fd);
  std::vector<std::byte> a(4096), b(4096);
  IoOp ops[] = {{IoOp::Kind::Read, 0, a.data(), 4096}, {IoOp::Kind::Read, 4096, b.data(), 4096}};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(engine->run(fd, ops).ok());

  EXPECT_EQ(log.count("pread/pwrite"), 1);
  EXPECT_EQ(log.count("disabled by option"), 1);
}

TEST(IoEngineCreate, Default_UsesIoUringOrSaysWhyNot) {
  CapturedLog log;
  auto engine = IoEngine::create(log.logger);
  if (engine->uses_io_uring()) {
    EXPECT_EQ(log.count("pread/pwrite"), 0);
  } else {
    EXPECT_EQ(log.count("io_uring unavailable"), 1);  // with the reason in parentheses
  }
}

}  // namespace
}  // namespace chainfs
