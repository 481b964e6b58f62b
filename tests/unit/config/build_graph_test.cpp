// build_graph: a config builds the graph it declares (nodes, chains, layers, a fault node between
// base and top), in dependency order, and a failure names the config line and leaves the graph as
// it was. Images are made with qemu-img (the oracle for qcow2) in a temporary folder.
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <fstream>

#include "blockcore/graph/graph.h"
#include "blockcore/graph/node.h"
#include "config/config.h"
#include "config_test_util.h"

namespace chainfs {
namespace {

using testing::TempDir;

constexpr uint64_t kImageSize = 1 << 20;

class BuildGraph : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("qemu-img --version >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "qemu-img is not installed: it makes the qcow2 images of these tests";
  }

  // A raw image of kImageSize bytes whose every byte is `fill`.
  std::string raw_image(const std::string& name, char fill) {
    std::string path = dir / name;
    std::ofstream out(path, std::ios::binary);
    std::string block(4096, fill);
    for (uint64_t done = 0; done < kImageSize; done += block.size()) out << block;
    return path;
  }

  void qemu_img(const std::string& args) {
    std::string cmd = "qemu-img " + args + " >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }

  // A qcow2 overlay whose header names `backing` (relative to its folder) and its format.
  std::string overlay(const std::string& name, const std::string& backing,
                      const std::string& backing_format = "raw") {
    std::string path = dir / name;
    qemu_img("create -q -f qcow2 -b " + backing + " -F " + backing_format + " " + path);
    return path;
  }

  Config load(const std::string& text) {
    Result<Config> r = load_config_string(text, config_file);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return r.ok() ? std::move(r).value() : Config{};
  }

  static std::vector<std::string> names(const std::vector<NodeRef>& nodes) {
    std::vector<std::string> out;
    for (const NodeRef& n : nodes) out.push_back(n->name());
    return out;
  }

  std::vector<std::string> layers(const Graph& graph, const std::string& chain) {
    std::optional<ChainView> view = graph.chain(chain);
    EXPECT_TRUE(view.has_value()) << "no chain " << chain;
    return view ? names(view->layers) : std::vector<std::string>{};
  }

  // The first byte read through the node at `offset`, or the error's code.
  static Result<char> byte_at(Graph& graph, const std::string& node, uint64_t offset) {
    CHAINFS_ASSIGN_OR_RETURN(NodeRef ref, graph.find(node));
    BlockHandle handle(ref, false);
    std::array<std::byte, 512> buf{};
    CHAINFS_TRY(handle.read(offset, buf));
    return static_cast<char>(buf[0]);
  }

  TempDir dir;
  std::string config_file = dir / "vm.yaml";
};

TEST_F(BuildGraph, RawNodesAndChains_AreListedWithTheirLayers) {
  raw_image("a.img", 'a');
  raw_image("b.img", 'b');
  Config config = load(R"(nodes:
  - {name: disk-a, driver: raw, file: a.img}
  - {name: disk-b, driver: raw, file: b.img, read-only: true}
chains:
  - {name: vm-a, node: disk-a}
  - {name: vm-b, node: disk-b}
)");
  Graph graph;
  Result<void> built = build_graph(graph, config);
  ASSERT_TRUE(built.ok()) << built.error().message;

  EXPECT_EQ(names(graph.listed_nodes()),
            (std::vector<std::string>{"disk-a", "disk-a.file", "disk-b", "disk-b.file"}));
  EXPECT_EQ(layers(graph, "vm-a"), std::vector<std::string>{"disk-a"});
  EXPECT_EQ(layers(graph, "vm-b"), std::vector<std::string>{"disk-b"});
  EXPECT_EQ(graph.chains().size(), 2u);
  EXPECT_EQ(byte_at(graph, "disk-b", 4096).value(), 'b');
  EXPECT_TRUE(graph.check_writable(*graph.find("disk-a").value()).ok());
  EXPECT_FALSE(graph.check_writable(*graph.find("disk-b").value()).ok());  // read-only: true
}

TEST_F(BuildGraph, FaultNodeBetweenBaseAndTop_FiltersTheBackingReads) {
  raw_image("base.img", 'B');
  overlay("top.qcow2", "base.img");
  // Declared top first: build_graph must open base, then the filter, then top.
  Config config = load(R"(nodes:
  - name: top
    driver: qcow2
    file: top.qcow2
    backing: base-flaky
  - name: base-flaky
    driver: fault
    child: base
    rules:
      - {op: read, offset: 512K, length: 512, errno: EIO}
  - {name: base, driver: raw, file: base.img, read-only: true}
chains:
  - {name: vm, node: top}
)");
  Graph graph;
  Result<void> built = build_graph(graph, config);
  ASSERT_TRUE(built.ok()) << built.error().message;

  // The chain lists the data layers; the filter sits on the backing edge between them.
  EXPECT_EQ(layers(graph, "vm"), (std::vector<std::string>{"top", "base"}));
  NodeRef top = graph.find("top").value();
  ASSERT_NE(top->backing(), nullptr);
  EXPECT_EQ(top->backing()->name(), "base-flaky");
  ASSERT_NE(top->backing()->filtered(), nullptr);
  EXPECT_EQ(top->backing()->filtered()->name(), "base");
  EXPECT_EQ(names(graph.listed_nodes()),
            (std::vector<std::string>{"base", "base-flaky", "base.file", "top", "top.file"}));

  // Reads of top come from base through the filter, which fails exactly the ruled range.
  EXPECT_EQ(byte_at(graph, "top", 0).value(), 'B');
  Result<char> faulted = byte_at(graph, "top", 512 * 1024);
  ASSERT_FALSE(faulted.ok());
  EXPECT_EQ(faulted.error().code, Errc::Io);
  EXPECT_EQ(byte_at(graph, "top", 512 * 1024 + 512).value(), 'B');
}

TEST_F(BuildGraph, BackingOmitted_FollowsTheHeaderAndKeepsDeclaredNamesFree) {
  raw_image("base.img", 'H');
  raw_image("other.img", 'O');
  overlay("top.qcow2", "base.img");
  // `top` follows its header to base.img, whose stem is "base"; the declared node named "base"
  // (a different file) is opened first, so it keeps its name and the header's layer is "base-2".
  Config config = load(R"(nodes:
  - {name: top, driver: qcow2, file: top.qcow2}
  - {name: base, driver: raw, file: other.img}
chains:
  - {name: vm, node: top}
)");
  Graph graph;
  Result<void> built = build_graph(graph, config);
  ASSERT_TRUE(built.ok()) << built.error().message;
  EXPECT_EQ(layers(graph, "vm"), (std::vector<std::string>{"top", "base-2"}));
  EXPECT_EQ(byte_at(graph, "top", 0).value(), 'H');
  EXPECT_EQ(byte_at(graph, "base", 0).value(), 'O');
}

TEST_F(BuildGraph, BackingNull_IgnoresTheHeader) {
  raw_image("base.img", 'H');
  overlay("top.qcow2", "base.img");
  Config config = load(R"(nodes:
  - {name: top, driver: qcow2, file: top.qcow2, backing: ~}
chains:
  - {name: vm, node: top}
)");
  Graph graph;
  Result<void> built = build_graph(graph, config);
  ASSERT_TRUE(built.ok()) << built.error().message;
  EXPECT_EQ(layers(graph, "vm"), std::vector<std::string>{"top"});
  EXPECT_EQ(byte_at(graph, "top", 0).value(), '\0');  // nothing below: zeros
}

TEST_F(BuildGraph, Images_OpenTheirChainsFromTheHeaders) {
  raw_image("base.img", 'I');
  overlay("mid.qcow2", "base.img");
  overlay("top.qcow2", "mid.qcow2", "qcow2");
  overlay("other.qcow2", "mid.qcow2", "qcow2");
  Config config = load(R"(images:
  - {path: top.qcow2, chain: vm, name: disk}
  - path: other.qcow2
)");
  Graph graph;
  Result<void> built = build_graph(graph, config);
  ASSERT_TRUE(built.ok()) << built.error().message;
  EXPECT_EQ(layers(graph, "vm"), (std::vector<std::string>{"disk", "mid", "base"}));
  // The second image's chain is named after its stem and shares the layers both images name.
  EXPECT_EQ(layers(graph, "other"), (std::vector<std::string>{"other", "mid", "base"}));
  EXPECT_EQ(byte_at(graph, "disk", 0).value(), 'I');
  EXPECT_EQ(byte_at(graph, "other", 0).value(), 'I');
}

TEST_F(BuildGraph, ImageAlreadyOpenAsALayer_NamesTheConfigLineAndTheNode) {
  raw_image("base.img", 'I');
  overlay("mid.qcow2", "base.img");
  overlay("top.qcow2", "mid.qcow2", "qcow2");
  Config config = load(R"(images:
  - {path: top.qcow2, chain: vm}
  - path: mid.qcow2
    read-only: true
)");
  Graph graph;
  Result<void> built = build_graph(graph, config);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.error().message.rfind(config_file + ":3: ", 0), 0u) << built.error().message;
  EXPECT_NE(built.error().message.find("already open as node 'mid'"), std::string::npos)
      << built.error().message;
  EXPECT_TRUE(graph.chains().empty()) << "build_graph must undo what it opened";
}

TEST_F(BuildGraph, CorruptImage_NamesTheConfigLineAndLeavesTheGraphEmpty) {
  raw_image("base.img", 'x');
  std::string bad = dir.write("bad.qcow2", std::string("QFI\xfb", 4) + std::string(508, '\xff'));
  Config config = load(R"(nodes:
  - {name: base, driver: raw, file: base.img}
  - name: bad
    driver: qcow2
    file: bad.qcow2
    backing: base
chains:
  - {name: vm, node: base}
)");
  Graph graph;
  Result<void> built = build_graph(graph, config);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.error().message.rfind(config_file + ":3: node 'bad': ", 0), 0u)
      << built.error().message;
  EXPECT_EQ(built.error().message.find('\n'), std::string::npos);
  EXPECT_TRUE(graph.listed_nodes().empty()) << "build_graph must undo what it opened";
  EXPECT_TRUE(graph.chains().empty());
}

TEST_F(BuildGraph, FileRemovedAfterLoading_NamesTheConfigLine) {
  std::string gone = raw_image("gone.img", 'g');
  raw_image("a.img", 'a');
  Config config = load(R"(nodes:
  - {name: a, driver: raw, file: a.img}
chains:
  - {name: vm, node: a}
images:
  - path: gone.img
)");
  std::filesystem::remove(gone);
  Graph graph;
  Result<void> built = build_graph(graph, config);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.error().message.rfind(config_file + ":6: image '" + gone + "': ", 0), 0u)
      << built.error().message;
  EXPECT_TRUE(graph.listed_nodes().empty());
  EXPECT_TRUE(graph.chains().empty());
}

TEST_F(BuildGraph, SameConfig_BuildsTwoIndependentGraphs) {
  raw_image("a.img", 'a');
  Config config = load(
      "nodes:\n  - {name: a, driver: raw, file: a.img, read-only: true}\n"
      "chains:\n  - {name: vm, node: a}\n");
  Graph first, second;
  ASSERT_TRUE(build_graph(first, config).ok());
  ASSERT_TRUE(build_graph(second, config).ok());
  EXPECT_EQ(names(first.listed_nodes()), names(second.listed_nodes()));
  // Building twice into one graph is refused (the names are taken), at the first node's line.
  Result<void> again = build_graph(first, config);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message.rfind(config_file + ":2: node 'a': ", 0), 0u)
      << again.error().message;
  EXPECT_EQ(again.error().code, Errc::Exists);
  EXPECT_EQ(layers(first, "vm"), std::vector<std::string>{"a"});  // the first build is intact
}

}  // namespace
}  // namespace chainfs
