// fault: a filter for testing failure handling. It forwards every call to its Filtered child and,
// where one of its rules matches, delays the call and/or fails it instead of forwarding it.
//
// How a rule matches (INTERFACE.md, config `rules:`):
// - op: `Any` matches the data calls: read, write, flush, discard and write-zeroes. size,
//   capabilities, truncate, block_status and allocated_bytes are never faulted.
// - offset/length: the rule covers [offset, offset+length). An offset without a length covers the
//   one byte at offset, so "offset: X" means "requests that touch byte X" (as blkdebug's `sector`
//   does); a length without an offset starts at 0; neither covers everything. A request matches
//   when its range overlaps the covered one; flush has no range and matches only rules without
//   offset and length, and a zero-length request overlaps nothing.
// - Rules are looked at in order. Each matching rule with count left *fires*: its count goes down
//   by one (atomically: concurrent requests never fire it more often than count), its delay is
//   slept, and if it carries an error the request fails with it without reaching the child; later
//   rules are not looked at. No count = fires every time.
// - submit(): each op is a request of its own; the batch sleeps the longest delay of its ops, then
//   the ops without an injected error are forwarded (as one batch) and the first injected error
//   in op order is returned, as the IoEngine does for host errors.
//
// Rules are fixed at open(); the only mutable state is each rule's remaining count.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "blockcore/drivers/drivers.h"
#include "blockcore/graph/graph.h"
#include "blockcore/graph/node.h"

namespace chainfs {

namespace {

using Op = FaultRule::Op;

const char* op_name(Op op) {
  switch (op) {
    case Op::Any:
      return "any";
    case Op::Read:
      return "read";
    case Op::Write:
      return "write";
    case Op::Flush:
      return "flush";
    case Op::Discard:
      return "discard";
    case Op::WriteZeroes:
      return "write-zeroes";
  }
  return "?";
}

// One request as the rules see it. A flush has no range.
struct Request {
  Op op;
  std::optional<uint64_t> offset;
  uint64_t length = 0;
};

class FaultDriver final : public Driver {
 public:
  std::string_view driver_name() const override { return "fault"; }

  Result<void> open(Node& self, const OpenParams& params) override {
    if (!self.filtered())
      return make_error(Errc::Invalid, "fault node '{}' has no child to filter", self.name());
    self_ = &self;
    read_only_.store(params.read_only, std::memory_order_release);
    rules_ = std::make_unique<RuleState[]>(params.fault_rules.size());
    rule_count_ = params.fault_rules.size();
    for (size_t i = 0; i < rule_count_; ++i) {
      rules_[i].rule = params.fault_rules[i];
      rules_[i].remaining.store(params.fault_rules[i].count.value_or(0), std::memory_order_relaxed);
    }
    return {};
  }

  // A filter over its child's state (Driver::reopen_following_child).
  Result<void> reopen(bool read_only) override {
    if (!self_) return make_error(Errc::Invalid, "fault node is not open");
    return reopen_following_child(read_only_, read_only, child().capabilities().writable, "fault",
                                  self_->name(), child().name());
  }

  Capabilities capabilities() const override {
    if (!self_) return {};
    Capabilities caps = child().capabilities();
    if (read_only_) {
      caps.writable = caps.discard = caps.write_zeroes = false;
      caps.truncate_grow = caps.truncate_shrink = false;
    }
    caps.has_backing = false;
    caps.persists_backing = false;
    return caps;
  }
  uint64_t size() const override { return self_ ? child().size() : 0; }

  Result<void> read(uint64_t offset, std::span<std::byte> buf) override {
    CHAINFS_TRY(apply_rules({Op::Read, offset, buf.size()}));
    return child().read(offset, buf);
  }
  Result<void> write(uint64_t offset, std::span<const std::byte> buf) override {
    CHAINFS_TRY(refuse_if_read_only("write"));
    CHAINFS_TRY(apply_rules({Op::Write, offset, buf.size()}));
    return child().write(offset, buf);
  }
  Result<void> flush() override {
    CHAINFS_TRY(apply_rules({Op::Flush, std::nullopt, 0}));
    return child().flush();
  }
  Result<void> start_writeback() override { return child().start_writeback(); }  // not a request
  Result<void> discard(uint64_t offset, uint64_t length) override {
    CHAINFS_TRY(refuse_if_read_only("discard"));
    CHAINFS_TRY(apply_rules({Op::Discard, offset, length}));
    return child().discard(offset, length);
  }
  Result<void> write_zeroes(uint64_t offset, uint64_t length) override {
    CHAINFS_TRY(refuse_if_read_only("write-zeroes"));
    CHAINFS_TRY(apply_rules({Op::WriteZeroes, offset, length}));
    return child().write_zeroes(offset, length);
  }
  Result<void> truncate(uint64_t new_size) override {
    CHAINFS_TRY(refuse_if_read_only("truncate"));
    return child().truncate(new_size);
  }
  Result<BlockStatus> block_status(uint64_t offset, uint64_t length) override {
    return child().block_status(offset, length);
  }
  Result<uint64_t> allocated_bytes() override { return child().allocated_bytes(); }
  Result<void> submit(std::span<IoOp> ops) override;

 private:
  struct RuleState {
    FaultRule rule;
    std::atomic<uint32_t> remaining{0};  // meaningful only when rule.count is set
  };

  // What the rules decided for one request.
  struct Verdict {
    uint64_t delay_ms = 0;
    std::optional<Error> error;
  };

  Node& child() const { return *self_->filtered(); }
  Result<void> refuse_if_read_only(const char* op) const {
    if (read_only_)
      return make_error(Errc::ReadOnly, "fault node '{}' is read-only: no {}", self_->name(), op);
    return {};
  }

  static bool matches(const FaultRule& rule, const Request& request);
  static bool try_fire(RuleState& state);
  Verdict judge(const Request& request);
  static void sleep_ms(uint64_t ms) {
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
  // Delay, then the injected error if any: the whole story of a single (non-batched) request.
  Result<void> apply_rules(const Request& request) {
    if (rule_count_ == 0) return {};
    Verdict verdict = judge(request);
    sleep_ms(verdict.delay_ms);
    if (verdict.error) return std::move(*verdict.error);
    return {};
  }

  Node* self_ = nullptr;
  std::atomic<bool> read_only_{false};  // atomic: capabilities() may race with reopen()
  std::unique_ptr<RuleState[]> rules_;  // atomics cannot live in a growing vector
  size_t rule_count_ = 0;
};

bool FaultDriver::matches(const FaultRule& rule, const Request& request) {
  if (rule.op != Op::Any && rule.op != request.op) return false;
  if (!rule.offset && !rule.length) return true;
  if (!request.offset || request.length == 0) return false;  // flush, or an empty range
  const uint64_t begin = rule.offset.value_or(0);
  const uint64_t length = rule.length.value_or(1);
  const uint64_t end = length > UINT64_MAX - begin ? UINT64_MAX : begin + length;
  const uint64_t request_end = *request.offset + request.length;
  return *request.offset < end && begin < request_end;
}

bool FaultDriver::try_fire(RuleState& state) {
  if (!state.rule.count) return true;
  uint32_t left = state.remaining.load(std::memory_order_relaxed);
  while (left > 0)
    if (state.remaining.compare_exchange_weak(left, left - 1, std::memory_order_acq_rel))
      return true;
  return false;
}

FaultDriver::Verdict FaultDriver::judge(const Request& request) {
  Verdict verdict;
  for (size_t i = 0; i < rule_count_; ++i) {
    RuleState& state = rules_[i];
    if (!matches(state.rule, request) || !try_fire(state)) continue;
    verdict.delay_ms += state.rule.delay_ms;
    if (!state.rule.error) continue;
    const Errc code = *state.rule.error;
    std::string where =
        request.offset ? fmt::format(" at {}+{}", *request.offset, request.length) : "";
    self_->graph().log().debug("fault node '{}': rule {} injects {} into {}{}", self_->name(), i,
                               errno_name(code), op_name(request.op), where);
    verdict.error = make_error(code, "fault injected by node '{}' ({} on {}{})", self_->name(),
                               errno_name(code), op_name(request.op), where);
    break;
  }
  return verdict;
}

Result<void> FaultDriver::submit(std::span<IoOp> ops) {
  const bool writes = std::any_of(ops.begin(), ops.end(),
                                  [](const IoOp& op) { return op.kind == IoOp::Kind::Write; });
  if (writes) CHAINFS_TRY(refuse_if_read_only("write"));
  if (rule_count_ == 0) return child().submit(ops);

  uint64_t delay_ms = 0;
  std::optional<Error> first_error;
  std::vector<IoOp> survivors;  // built only once some op has failed
  for (size_t i = 0; i < ops.size(); ++i) {
    const IoOp& op = ops[i];
    Verdict verdict =
        judge({op.kind == IoOp::Kind::Read ? Op::Read : Op::Write, op.offset, op.length});
    delay_ms = std::max(delay_ms, verdict.delay_ms);  // the ops of a batch run side by side
    if (verdict.error) {
      if (!first_error) {
        first_error = std::move(verdict.error);
        survivors.assign(ops.begin(), ops.begin() + static_cast<std::ptrdiff_t>(i));
      }
    } else if (first_error) {
      survivors.push_back(op);
    }
  }
  sleep_ms(delay_ms);
  if (!first_error) return child().submit(ops);
  if (!survivors.empty()) child().submit(survivors).ignore_error();  // the injected error wins
  return std::move(*first_error);
}

}  // namespace

std::unique_ptr<Driver> make_fault_driver() {
  return std::make_unique<FaultDriver>();
}

}  // namespace chainfs
