// Real qcow2 chains for the job tests: images made with qemu-img and filled with qemu-io in a
// temporary folder, opened in a Graph with a ControlPlane over it, checked through the graph while
// it is open and with qemu-img (compare, info --backing-chain, check) once it is closed.
#pragma once

#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "blockcore/graph/graph.h"
#include "blockcore/jobs/control_plane.h"

namespace chainfs::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * 1024;

inline bool have_qemu_tools() {
  static const bool have = std::system(
                               "qemu-img --version >/dev/null 2>&1 && "
                               "qemu-io --version >/dev/null 2>&1") == 0;
  return have;
}

#define SKIP_WITHOUT_QEMU()                                        \
  do {                                                             \
    if (!have_qemu_tools())                                        \
      GTEST_SKIP() << "qemu-img/qemu-io are not installed: these " \
                      "tests build real qcow2 chains with them";   \
  } while (0)

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("chainfs-jobs-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

  // Runs a shell command in the folder; returns its exit status.
  int sh(const std::string& command) const {
    const std::string full = "cd '" + path_.string() + "' && " + command;
    const int rc = std::system(full.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }
  // Its standard output.
  std::string sh_out(const std::string& command) const {
    const std::string full = "cd '" + path_.string() + "' && " + command;
    std::string out;
    if (FILE* p = ::popen(full.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
      ::pclose(p);
    }
    return out;
  }

  // qemu-img create -f qcow2 NAME.qcow2 SIZE [-b BACKING.qcow2 -F qcow2], 64 KiB clusters.
  void create(const std::string& name, uint64_t size, const std::string& backing = "") const {
    std::string cmd = "qemu-img create -q -f qcow2 -o cluster_size=65536 ";
    if (!backing.empty()) cmd += "-b " + backing + ".qcow2 -F qcow2 ";
    cmd += name + ".qcow2 " + std::to_string(size);
    ASSERT_EQ(sh(cmd), 0) << cmd;
  }
  // qemu-io commands on one image, in one run ("write -P 0x11 0 64k", "write -z 1M 64k").
  void io(const std::string& name, const std::vector<std::string>& commands) const {
    std::string cmd = "qemu-io -f qcow2";
    for (const std::string& c : commands) cmd += " -c '" + c + "'";
    cmd += " " + name + ".qcow2 >/dev/null";
    ASSERT_EQ(sh(cmd), 0) << cmd;
  }
  // The image's guest view as raw bytes (qemu-img convert, which follows the backing chain).
  std::vector<std::byte> raw_view(const std::string& name) const {
    const std::string out = name + ".view.raw";
    EXPECT_EQ(sh("qemu-img convert -O raw " + name + ".qcow2 " + out), 0);
    std::vector<std::byte> view(fs::file_size(path_ / out));
    std::ifstream in(path_ / out, std::ios::binary);
    in.read(reinterpret_cast<char*>(view.data()), static_cast<std::streamsize>(view.size()));
    fs::remove(path_ / out);
    return view;
  }
  // Writes `data` as a raw file (for qemu-img compare).
  void write_raw(const std::string& file_name, const std::vector<std::byte>& data) const {
    std::ofstream out(path_ / file_name, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
  }
  // The backing file name in NAME.qcow2's header ("" when none), as qemu-img reads it.
  std::string backing_file(const std::string& name) const {
    const std::string json = sh_out("qemu-img info --output=json " + name + ".qcow2");
    const std::string key = "\"backing-filename\": \"";
    const size_t at = json.find(key);
    if (at == std::string::npos) return "";
    const size_t start = at + key.size();
    return json.substr(start, json.find('"', start) - start);
  }
  // The image file names of NAME.qcow2's chain, top first, as qemu-img follows the headers.
  std::vector<std::string> chain_files(const std::string& name) const {
    const std::string json =
        sh_out("qemu-img info --backing-chain --output=json " + name + ".qcow2");
    std::vector<std::string> files;
    const std::string key = "\"filename\": \"";
    for (size_t at = json.find(key); at != std::string::npos; at = json.find(key, at + 1)) {
      const size_t start = at + key.size();
      files.push_back(fs::path(json.substr(start, json.find('"', start) - start)).filename());
    }
    return files;
  }

 private:
  fs::path path_;
};

// A graph with a log that tests can read, and the ControlPlane over it.
class JobsFixture : public ::testing::Test {
 protected:
  void SetUp() override { SKIP_WITHOUT_QEMU(); }
  void TearDown() override { close_graph(); }

  void open_graph() {
    ring_ = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256);
    GraphOptions options;
    options.logger = std::make_shared<spdlog::logger>("jobs-test", ring_);
    options.logger->set_level(spdlog::level::debug);
    graph_ = std::make_unique<Graph>(options);
    plane_ = std::make_unique<ControlPlane>(*graph_);
  }
  // Jobs first (they hold nodes), then the graph: every node flushes and closes.
  void close_graph() {
    plane_.reset();
    graph_.reset();
  }

  // Opens NAMES (bottom first) as writable qcow2 nodes named after them, linked as their headers
  // say, with a chain `chain` rooted at the last one. Like --image, the nodes are held only by
  // their parents and the chain, so a job that cuts one out closes it; unlike --image, every
  // layer is opened writable, as config `nodes:` layers are (with --image the backing layers are
  // read-only and a job reopens them: docs/jobs.md, "Read-only layers").
  void open_writable_chain(const std::vector<std::string>& names, const std::string& chain = "vm") {
    if (!graph_) open_graph();
    std::vector<NodeRef> nodes;
    for (const std::string& name : names) {
      NodeSpec spec;
      spec.name = name;
      spec.driver = "qcow2";
      spec.file = dir_.file(name + ".qcow2");
      spec.backing = std::string();  // linked below
      auto node = graph_->open_named_node(spec);
      ASSERT_TRUE(node.ok()) << node.error().message;
      ASSERT_TRUE(graph_->remove_node(name).ok());  // our reference keeps it until linked
      if (!nodes.empty()) {
        ASSERT_TRUE(graph_->attach_child(**node, nodes.back(), ChildRole::Backing).ok());
      }
      nodes.push_back(std::move(*node));
    }
    ASSERT_TRUE(graph_->add_chain(chain, nodes.back()).ok());
  }
  // Opens NAME.qcow2 and its chain from the headers, as `chainfs mount --image` does.
  void open_image(const std::string& name, const std::string& chain = "vm") {
    if (!graph_) open_graph();
    ImageSpec spec;
    spec.path = dir_.file(name + ".qcow2");
    spec.chain = chain;
    auto top = graph_->open_image(spec);
    ASSERT_TRUE(top.ok()) << top.error().message;
  }

  NodeRef node(const std::string& name) {
    auto n = graph_->find(name);
    EXPECT_TRUE(n.ok()) << n.error().message;
    return n.ok() ? *n : NodeRef();
  }
  bool listed(const std::string& name) { return graph_->find(name).ok(); }
  // Name of the node's backing node, "" without one.
  std::string backing_of(const std::string& name) {
    NodeRef n = node(name);
    if (!n) return "?";
    NodeRef b = n->backing_ref();
    return b ? b->name() : "";
  }
  std::vector<std::string> chain_layers(const std::string& chain = "vm") {
    std::vector<std::string> names;
    if (auto view = graph_->chain(chain))
      for (const NodeRef& n : view->layers) names.push_back(n->name());
    return names;
  }
  std::vector<std::byte> read_node(const std::string& name) {
    NodeRef n = node(name);
    if (!n) return {};
    BlockHandle handle(n, false);
    std::vector<std::byte> data(n->size());
    auto r = handle.read(0, data);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return data;
  }

  // Runs a control write that must succeed; returns its outcome line.
  std::string run(std::string_view file, std::string_view text) {
    auto r = plane_->execute(file, text);
    EXPECT_TRUE(r.ok()) << file << " '" << text << "': " << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : std::string();
  }
  // Starts a job with a control line; returns its id.
  std::string start(std::string_view file, std::string_view text) {
    std::string outcome = run(file, text);
    EXPECT_EQ(outcome.rfind("ok ", 0), 0u) << outcome;
    return outcome.size() > 3 ? outcome.substr(3) : std::string();
  }
  // Runs a control write that must be refused; returns the error.
  Error refused(std::string_view file, std::string_view text) {
    auto r = plane_->execute(file, text);
    EXPECT_FALSE(r.ok()) << file << " '" << text << "' was accepted: " << (r.ok() ? *r : "");
    return r.ok() ? Error{} : r.error();
  }

  JobInfo wait_state(const std::string& id, JobState state,
                     std::chrono::milliseconds timeout = 60s) {
    auto info = plane_->jobs().wait_until(
        id, [&](const JobInfo& j) { return j.state == state; }, timeout);
    EXPECT_TRUE(info.ok()) << "job " << id << " never reached " << job_state_name(state) << ": "
                           << (info.ok() ? "" : info.error().message);
    return info.ok() ? *info : JobInfo{};
  }
  JobInfo wait_concluded(const std::string& id) { return wait_state(id, JobState::Concluded); }
  // Waits for a successful end.
  void expect_completed(const std::string& id) {
    JobInfo info = wait_concluded(id);
    EXPECT_FALSE(info.error) << "job " << id << " failed: " << *info.error;
  }

  bool log_contains(const std::string& text) const {
    for (const std::string& line : ring_->last_formatted())
      if (line.find(text) != std::string::npos) return true;
    return false;
  }
  // Job events are logged by the observer, which may trail the state a waiter saw by a moment.
  bool wait_log(const std::string& text) const {
    for (int i = 0; i < 1000; ++i) {
      if (log_contains(text)) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
  std::string log_text() const {
    std::string out;
    for (const std::string& line : ring_->last_formatted()) out += line;
    return out;
  }

  TempDir dir_;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> ring_;
  std::unique_ptr<Graph> graph_;
  std::unique_ptr<ControlPlane> plane_;
};

// Guest writers on a node: each thread writes its own blocks (block % threads == thread), so the
// final content is known exactly; `expected` starts as the node's view and gets every write.
class GuestWriters {
 public:
  // `partial`: some writes cover only the first 4 KiB of their block.
  GuestWriters(NodeRef node, std::vector<std::byte> initial, int threads = 2,
               uint64_t block = 64 * KiB, bool partial = true)
      : expected_(std::move(initial)), block_(block) {
    const uint64_t blocks = expected_.size() / block_;
    history_.resize(blocks);
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, node, t, threads, blocks, partial] {
        BlockHandle handle(node, true);
        std::mt19937_64 rng(1234 + t);
        std::vector<std::byte> data(block_);
        while (!stop_.load()) {
          uint64_t b = rng() % blocks;
          b -= b % threads;
          b += t;
          if (b >= blocks) continue;
          // Sometimes a partial block: exercises copy-on-write of partial clusters.
          const uint64_t len = (partial && rng() % 4 == 0) ? std::min(4 * KiB, block_) : block_;
          const auto value = static_cast<std::byte>(1 + rng() % 250);
          std::fill(data.begin(), data.begin() + len, value);
          auto r = handle.write(b * block_, std::span(data).first(len));
          if (!r.ok()) {
            std::lock_guard lock(mutex_);
            errors_.push_back(r.error().message);
            continue;
          }
          {
            std::lock_guard lock(mutex_);
            std::fill_n(expected_.begin() + b * block_, len, value);
            ++writes_;
            history_[b].push_back({writes_, value});
          }
          // A guest that also thinks: without a pause two threads dirty ranges faster than
          // anything can mirror them under a sanitizer.
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
      });
    }
  }
  ~GuestWriters() { stop(); }

  void stop() {
    stop_.store(true);
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  uint64_t writes() {
    std::lock_guard lock(mutex_);
    return writes_;
  }
  // Waits until at least `n` writes landed.
  void wait_writes(uint64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (writes() < n && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
  }
  const std::vector<std::byte>& expected() const { return expected_; }
  bool written(uint64_t b) {
    std::lock_guard lock(mutex_);
    return !history_[b].empty();
  }
  // The values block `b` may hold if it saw every write numbered up to `seq` (writes are numbered
  // as they complete) and any number of the later ones: its value as of `seq` (`initial` when it
  // was not written by then) and every later value. Full-block writes only.
  std::vector<std::byte> values_since(uint64_t b, uint64_t seq, std::byte initial) {
    std::lock_guard lock(mutex_);
    std::vector<std::byte> out{initial};
    for (const auto& [n, value] : history_[b]) {
      if (n <= seq)
        out[0] = value;
      else
        out.push_back(value);
    }
    return out;
  }
  std::vector<std::string> errors() {
    std::lock_guard lock(mutex_);
    return errors_;
  }

 private:
  std::vector<std::byte> expected_;
  const uint64_t block_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  uint64_t writes_ = 0;
  std::vector<std::string> errors_;
  std::vector<std::vector<std::pair<uint64_t, std::byte>>> history_;  // per block: (seq, value)
  std::vector<std::thread> threads_;
};

// Compares two byte vectors and reports the first difference (gtest prints huge vectors badly).
inline ::testing::AssertionResult same_bytes(const std::vector<std::byte>& actual,
                                             const std::vector<std::byte>& expected) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << "sizes differ: " << actual.size() << " vs " << expected.size();
  if (std::memcmp(actual.data(), expected.data(), actual.size()) == 0)
    return ::testing::AssertionSuccess();
  for (size_t i = 0; i < actual.size(); ++i)
    if (actual[i] != expected[i])
      return ::testing::AssertionFailure()
             << "first difference at byte " << i << " (block " << i / (64 * KiB)
             << "): " << static_cast<int>(actual[i]) << " vs " << static_cast<int>(expected[i]);
  return ::testing::AssertionSuccess();
}

}  // namespace chainfs::testing
