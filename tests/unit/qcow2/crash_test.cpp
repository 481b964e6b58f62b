// Crash consistency: a child process writes through the driver and flushes; the parent kills it
// with SIGKILL at a random moment. Afterwards `qemu-img check` must find no corruption (leaks are
// allowed: exit code 3), and everything written before the last flush that returned must be there.
// Also: concurrent writers and readers on one node.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fcntl.h>

#include <atomic>
#include <sstream>
#include <thread>

#include "blockcore/drivers/qcow2/create.h"
#include "qcow2_test_util.h"

namespace chainfs {
namespace {

using namespace qcow2_test;

constexpr uint64_t kImageSize = 8 << 20;

struct Op {
  uint64_t offset, length;
  int kind;  // 0 write, 1 discard, 2 zeroes
  uint64_t seed;
};

Op op_at(uint64_t seed, int index) {
  std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(index));
  Op op;
  op.length = 1 + rng() % (rng() % 5 == 0 ? (1u << 20) : 40000u);
  op.offset = rng() % (kImageSize - op.length);
  const unsigned k = rng() % 10;
  op.kind = k < 7 ? 0 : k < 8 ? 1 : 2;
  op.seed = rng();
  return op;
}

void apply_to_reference(const Op& op, std::vector<std::byte>& ref) {
  if (op.kind == 0) {
    std::mt19937_64 data_rng(op.seed);
    fill_random(data_rng, ref.data() + op.offset, op.length);
  } else {
    std::fill_n(ref.begin() + op.offset, op.length, std::byte{0});
  }
}

// The child: performs operations forever, reporting "s<i>" before operation i and "f<i>" after a
// flush that followed operation i returned. Never returns.
[[noreturn]] void child_main(const std::string& image, uint64_t seed, int report_fd) {
  auto opened = open_chain(image, false, 128 << 10);
  if (!opened.ok()) _exit(2);
  Node& node = *(*opened)->top;
  std::vector<std::byte> buf;
  for (int i = 0;; ++i) {
    const Op op = op_at(seed, i);
    std::string line = "s" + std::to_string(i) + "\n";
    if (::write(report_fd, line.data(), line.size()) < 0) _exit(3);
    Result<void> r;
    if (op.kind == 0) {
      buf.resize(op.length);
      std::mt19937_64 data_rng(op.seed);
      fill_random(data_rng, buf.data(), op.length);
      r = node.write(op.offset, buf);
    } else if (op.kind == 1) {
      r = node.discard(op.offset, op.length);
    } else {
      r = node.write_zeroes(op.offset, op.length);
    }
    if (!r.ok()) _exit(4);
    if (i % 3 == 2) {
      if (!node.flush().ok()) _exit(5);
      line = "f" + std::to_string(i) + "\n";
      if (::write(report_fd, line.data(), line.size()) < 0) _exit(3);
    }
  }
}

TEST(Qcow2Crash, KillAtRandomMoments_QemuImgCheckConsistent_FlushedDataIntact) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  const std::string image = dir.file("crash.qcow2");
  Qcow2CreateOptions create;
  create.path = image;
  create.size = kImageSize;
  create.cluster_size = 4096;  // many clusters, many metadata updates
  ASSERT_TRUE(qcow2_create(create).ok());
  std::mt19937_64 rng(77);
  const std::string report = dir.file("report.txt");
  std::vector<std::byte> state(kImageSize);  // contents as of the last round's verified flush
  int flushes_seen = 0, rounds_with_unflushed_ops = 0;
  for (int round = 0; round < 8; ++round) {
    const uint64_t seed = 1000 + static_cast<uint64_t>(round);
    int fd = ::open(report.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0644);
    ASSERT_GE(fd, 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) child_main(image, seed, fd);
    ::close(fd);
    ::usleep(static_cast<useconds_t>(150000 + rng() % 400000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);

    std::string out;
    const int rc = run("qemu-img check '" + image + "'", &out);
    ASSERT_TRUE(rc == 0 || rc == 3) << "round " << round << ": qemu-img check exit " << rc << "\n"
                                    << out;
    // Parse the report: last flushed op and last started op.
    std::string text;
    run("cat '" + report + "'", &text);
    int last_flushed = -1, last_started = -1;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      if (line.size() < 2) continue;
      const int n = std::stoi(line.substr(1));
      if (line[0] == 'f') last_flushed = n;
      if (line[0] == 's') last_started = n;
    }
    flushes_seen += last_flushed + 1;
    rounds_with_unflushed_ops += last_started > last_flushed;
    std::vector<std::byte> expected = state;
    for (int i = 0; i <= last_flushed; ++i) apply_to_reference(op_at(seed, i), expected);
    std::vector<uint8_t> uncertain(kImageSize, 0);
    for (int i = last_flushed + 1; i <= last_started; ++i) {
      const Op op = op_at(seed, i);
      std::fill_n(uncertain.begin() + op.offset, op.length, 1);
    }
    must_run("qemu-img convert -O raw '" + image + "' '" + dir.file("now.raw") + "'");
    auto now = read_file(dir.file("now.raw"));
    ASSERT_EQ(now.size(), kImageSize);
    for (size_t i = 0; i < kImageSize;) {
      size_t j = i;
      while (j < kImageSize && uncertain[j] == uncertain[i]) ++j;
      if (!uncertain[i] && std::memcmp(now.data() + i, expected.data() + i, j - i) != 0) {
        for (size_t k = i; k < j; ++k)
          ASSERT_EQ(now[k], expected[k]) << "round " << round << " byte " << k
                                         << " (flushed through op " << last_flushed << ")";
      }
      i = j;
    }
    // The next round starts from what is on disk now (uncertain bytes included).
    state = now;
    if (rc == 3) must_run("qemu-img check -r leaks '" + image + "' > /dev/null");
  }
  // The test only means something if the children got far enough to flush and were killed with
  // work in flight.
  EXPECT_GT(flushes_seen, 8);
  EXPECT_GT(rounds_with_unflushed_ops, 0);
}

class Qcow2Concurrency : public ::testing::TestWithParam<int> {};

// 64 KiB clusters: writers share clusters and one L2 table. 512 B clusters with a tiny cache:
// 128 L2 tables through a cache of a dozen, so lookups miss, evict and prefetch all the time.
INSTANTIATE_TEST_SUITE_P(ClusterSizes, Qcow2Concurrency, ::testing::Values(65536, 512));

TEST_P(Qcow2Concurrency, ParallelWritersAndReaders_SeeConsistentData) {
  REQUIRE_QEMU_IMG();
  TempDir dir;
  write_file(dir.file("base.raw"), mixed_content(4 << 20, 5));
  must_run("cd '" + dir.path() + "' && qemu-img create -f qcow2 -o cluster_size=" +
           std::to_string(GetParam()) + " -b base.raw -F raw top.qcow2 4M");
  auto opened = open_chain(dir.file("top.qcow2"), false, GetParam() == 512 ? 8 << 10 : 64 << 10);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Node& node = *(*opened)->top;
  auto base = read_file(dir.file("base.raw"));
  // Each thread owns interleaved 8 KiB stripes, so writers share clusters and L2 tables (64 KiB
  // clusters) but never bytes; readers check stripes that nobody writes.
  constexpr int kThreads = 4;
  constexpr uint64_t kStripe = 8192;
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<uint64_t>(t));
      std::vector<std::byte> buf(kStripe), got(kStripe);
      for (int i = 0; i < 300 && !failed; ++i) {
        const uint64_t stripe = (rng() % (node.size() / kStripe / (kThreads + 1))) * (kThreads + 1);
        const uint64_t mine = (stripe + static_cast<uint64_t>(t)) * kStripe;
        const uint64_t untouched = (stripe + kThreads) * kStripe;
        std::fill(buf.begin(), buf.end(), static_cast<std::byte>(i + t));
        if (!node.write(mine, buf).ok() || !node.read(mine, got).ok() || got != buf) failed = true;
        if (!node.read(untouched, got).ok() ||
            !std::equal(got.begin(), got.end(), base.begin() + untouched))
          failed = true;
        if (i % 50 == 0 && !node.flush().ok()) failed = true;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(failed);
  ASSERT_TRUE(node.flush().ok());
  (*opened)->close();
  std::string out;
  EXPECT_EQ(run("qemu-img check '" + dir.file("top.qcow2") + "'", &out), 0) << out;
}

}  // namespace
}  // namespace chainfs
