// fault driver: forwards to its child, injecting errors and delays where its rules match.
#include <spdlog/sinks/ringbuffer_sink.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/unit/drivers/driver_test_util.h"

namespace chainfs {
namespace {

using namespace testing_util;
using Op = FaultRule::Op;
using Clock = std::chrono::steady_clock;

class FaultDriverTest : public testing::Test {
 protected:
  FaultDriverTest() : graph_(options()) {
    path_ = dir_.file("base.raw");
    write_pattern_file(path_, 1 << 20);
    base_ = must(graph_.open_named_node(raw_spec("base", path_)));
  }
  GraphOptions options() {
    GraphOptions o;
    o.logger = std::make_shared<spdlog::logger>("fault-test", log_);
    o.logger->set_level(spdlog::level::debug);
    return o;
  }
  NodeRef flaky(std::vector<FaultRule> rules) {
    return must(graph_.open_named_node(fault_spec("flaky", "base", std::move(rules))));
  }
  static Result<void> read(Node& node, uint64_t offset, size_t length) {
    std::vector<std::byte> buf(length);
    CHAINFS_TRY(node.read(offset, buf));
    if (buf != pattern(offset, length)) return make_error(Errc::Io, "wrong data");
    return {};
  }
  static Result<void> write(Node& node, uint64_t offset, size_t length) {
    std::vector<std::byte> buf(length, std::byte{0x42});
    return node.write(offset, buf);
  }
  int logged(const std::string& needle) const {
    int n = 0;
    for (const auto& line : log_->last_formatted())
      if (line.find(needle) != std::string::npos) ++n;
    return n;
  }

  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> log_ =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
  TempDir dir_;
  Graph graph_;
  std::string path_;
  NodeRef base_;
};

TEST_F(FaultDriverTest, NoRules_ForwardsEverything) {
  NodeRef node = flaky({});
  EXPECT_EQ(node->size(), 1u << 20);
  EXPECT_TRUE(node->capabilities().writable);
  EXPECT_FALSE(node->capabilities().has_backing);
  EXPECT_OK(read(*node, 1000, 5000));
  ASSERT_OK(write(*node, 7, 100));
  EXPECT_EQ(host_bytes(path_, 7, 100), std::vector<std::byte>(100, std::byte{0x42}));
  EXPECT_OK(node->flush());
  EXPECT_OK(node->discard(512 << 10, 4096));
  EXPECT_EQ(must(node->block_status(512 << 10, 4096)).kind, Alloc::Zero);
}

TEST_F(FaultDriverTest, CountOne_FailsOnceThenSucceeds) {
  NodeRef node = flaky({FaultRule{.op = Op::Read, .error = Errc::Io, .count = 1}});
  auto first = read(*node, 0, 4096);
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code, Errc::Io);
  EXPECT_NE(first.error().message.find("flaky"), std::string::npos) << first.error().message;
  EXPECT_OK(read(*node, 0, 4096));
  EXPECT_OK(read(*node, 0, 4096));
}

TEST_F(FaultDriverTest, OpMatching_ReadRuleLeavesWritesAloneAndAnyHitsEveryDataCall) {
  NodeRef reads_fail = flaky({FaultRule{.op = Op::Read, .error = Errc::Io}});
  EXPECT_FALSE(read(*reads_fail, 0, 512).ok());
  EXPECT_OK(write(*reads_fail, 0, 512));
  EXPECT_OK(reads_fail->flush());
  EXPECT_OK(reads_fail->discard(0, 4096));
  reads_fail.reset();
  ASSERT_OK(graph_.remove_node("flaky"));

  NodeRef all_fail = flaky({FaultRule{.op = Op::Any, .error = Errc::NoSpace}});
  EXPECT_EQ(read(*all_fail, 0, 512).error().code, Errc::NoSpace);
  EXPECT_EQ(write(*all_fail, 0, 512).error().code, Errc::NoSpace);
  EXPECT_EQ(all_fail->flush().error().code, Errc::NoSpace);
  EXPECT_EQ(all_fail->discard(0, 4096).error().code, Errc::NoSpace);
  EXPECT_EQ(all_fail->write_zeroes(0, 4096).error().code, Errc::NoSpace);
  EXPECT_TRUE(all_fail->block_status(0, 4096).ok());  // queries are never faulted
  EXPECT_EQ(all_fail->size(), 1u << 20);
}

TEST_F(FaultDriverTest, OffsetMatching_OnlyRequestsOverlappingTheRangeFail) {
  NodeRef node =
      flaky({FaultRule{.op = Op::Read, .offset = 524288, .length = 512, .error = Errc::Io},
             FaultRule{.op = Op::Write, .offset = 1000, .error = Errc::Io}});
  EXPECT_OK(read(*node, 0, 4096));
  EXPECT_OK(read(*node, 524288 - 4096, 4096));          // ends where the range starts
  EXPECT_FALSE(read(*node, 524288 - 4096, 4097).ok());  // one byte into it
  EXPECT_FALSE(read(*node, 524288 + 511, 1).ok());      // its last byte
  EXPECT_OK(read(*node, 524288 + 512, 4096));           // just after it
  EXPECT_FALSE(read(*node, 0, 1 << 20).ok());           // covering it

  // An offset without a length is the one byte at that offset.
  EXPECT_OK(write(*node, 999, 1));
  EXPECT_FALSE(write(*node, 1000, 1).ok());
  EXPECT_FALSE(write(*node, 0, 4096).ok());
  EXPECT_OK(write(*node, 1001, 4096));
}

TEST_F(FaultDriverTest, Delay_SlowsMatchingRequestsByAtLeastTheDelay) {
  constexpr auto kDelay = std::chrono::milliseconds(60);
  NodeRef node = flaky({FaultRule{.op = Op::Write, .delay_ms = 60}});
  auto start = Clock::now();
  ASSERT_OK(write(*node, 0, 4096));
  EXPECT_GE(Clock::now() - start, kDelay);
  EXPECT_EQ(host_bytes(path_, 0, 4096), std::vector<std::byte>(4096, std::byte{0x42}));
}

TEST_F(FaultDriverTest, DelayThenError_FailsOnlyAfterTheDelay) {
  NodeRef node = flaky({FaultRule{.op = Op::Flush, .error = Errc::Io, .delay_ms = 40, .count = 1}});
  auto start = Clock::now();
  EXPECT_FALSE(node->flush().ok());
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(40));
  EXPECT_OK(node->flush());
}

TEST_F(FaultDriverTest, Submit_FailsTheMatchingOpAndStillDoesTheOthers) {
  NodeRef node =
      flaky({FaultRule{.op = Op::Write, .offset = 8192, .length = 4096, .error = Errc::Io}});
  std::vector<std::byte> ok_data(4096, std::byte{0x61}), bad_data(4096, std::byte{0x62});
  IoOp ops[] = {{IoOp::Kind::Write, 0, ok_data.data(), 4096},
                {IoOp::Kind::Write, 8192, bad_data.data(), 4096}};
  auto result = node->submit(ops);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, Errc::Io);
  EXPECT_EQ(host_bytes(path_, 0, 4096), ok_data);                 // forwarded
  EXPECT_EQ(host_bytes(path_, 8192, 4096), pattern(8192, 4096));  // never reached the file
}

TEST_F(FaultDriverTest, CountUnderConcurrency_FiresExactlyCountTimes) {
  NodeRef node = flaky({FaultRule{.op = Op::Read, .error = Errc::Io, .count = 5}});
  std::atomic<int> failures{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto r = read(*node, 4096 * static_cast<uint64_t>(i), 4096);
        if (!r.ok()) (r.error().message == "wrong data" ? wrong : failures).fetch_add(1);
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 5);
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(FaultDriverTest, InjectedError_IsLoggedAtDebugLevel) {
  NodeRef node = flaky({FaultRule{.op = Op::Read, .offset = 0, .error = Errc::Io, .count = 2}});
  for (int i = 0; i < 3; ++i) read(*node, 0, 512).ignore_error();
  EXPECT_EQ(logged("injects EIO into read at 0+512"), 2);
}

TEST_F(FaultDriverTest, ReadOnlyFilter_RefusesWrites) {
  NodeSpec spec = fault_spec("flaky", "base", {});
  spec.read_only = true;
  NodeRef node = must(graph_.open_named_node(spec));
  EXPECT_FALSE(node->capabilities().writable);
  EXPECT_EQ(write(*node, 0, 16).error().code, Errc::ReadOnly);
  EXPECT_OK(read(*node, 0, 16));
}

}  // namespace
}  // namespace chainfs
