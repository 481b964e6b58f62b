// load_config: a good config parses into the exact structures; each validation rule reports one
// line "FILE:LINE: problem" at the right line with the right words.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "config/config.h"
#include "config_test_util.h"

namespace chainfs {
namespace {

using testing::TempDir;

class LoadConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* image : {"base.qcow2", "top.qcow2", "solo.img", "flat.qcow2", "other.qcow2"})
      dir.touch(image);
  }

  Result<Config> load(const std::string& text) { return load_config_string(text, file); }

  // The problems of a bad config, each line without the "FILE:" prefix (checked), so that tests
  // read "7: node 'top': ...".
  std::string problems(const std::string& text) {
    Result<Config> r = load(text);
    EXPECT_FALSE(r.ok()) << "config was accepted:\n" << text;
    if (r.ok()) return {};
    std::istringstream lines(r.error().message);
    std::string line, out;
    while (std::getline(lines, line)) {
      EXPECT_EQ(line.rfind(file + ":", 0), 0u) << line;
      if (!out.empty()) out += '\n';
      out += line.substr(std::min(line.size(), file.size() + 1));
    }
    return out;
  }

  TempDir dir;
  std::string file = dir / "vm.yaml";
};

const char* kGoodConfig = R"(log-level: debug
threads: 4
nodes:
  - name: base
    driver: qcow2
    file: base.qcow2          # relative to the config's folder
    read-only: true
  - name: base-flaky
    driver: fault
    child: base
    rules:
      - {op: read, offset: 512K, length: 512, errno: EIO, count: 1}
      - {op: write, delay-ms: 20}
      - errno: ENOSPC
  - name: top
    driver: qcow2
    file: TOP_PATH
    backing: base-flaky
  - name: solo
    driver: raw
    file: ./solo.img
  - name: flat
    driver: qcow2
    file: flat.qcow2
    backing: ~
chains:
  - name: vm
    node: top
images:
  - path: other.qcow2
    chain: other
    name: other-top
    read-only: yes
  - path: TOP_PATH
)";

TEST_F(LoadConfig, GoodConfig_ParsesIntoExactStructures) {
  std::string text = kGoodConfig;
  for (size_t at; (at = text.find("TOP_PATH")) != std::string::npos;)
    text.replace(at, 8, dir / "top.qcow2");
  Result<Config> r = load(text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const Config& c = *r;
  EXPECT_EQ(c.path, file);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.threads, 4u);

  ASSERT_EQ(c.nodes.size(), 5u);
  const NodeSpec& base = c.nodes[0].spec;
  EXPECT_EQ(c.nodes[0].line, 4);
  EXPECT_EQ(base.name, "base");
  EXPECT_EQ(base.driver, "qcow2");
  EXPECT_EQ(base.file, dir / "base.qcow2");
  EXPECT_TRUE(base.read_only);
  EXPECT_FALSE(base.backing.has_value());  // follow the header
  EXPECT_EQ(base.child, "");
  EXPECT_TRUE(base.rules.empty());

  const NodeSpec& flaky = c.nodes[1].spec;
  EXPECT_EQ(c.nodes[1].line, 8);
  EXPECT_EQ(flaky.name, "base-flaky");
  EXPECT_EQ(flaky.driver, "fault");
  EXPECT_EQ(flaky.child, "base");
  EXPECT_EQ(flaky.file, "");
  EXPECT_FALSE(flaky.read_only);
  ASSERT_EQ(flaky.rules.size(), 3u);
  EXPECT_EQ(flaky.rules[0].op, FaultRule::Op::Read);
  EXPECT_EQ(flaky.rules[0].offset, std::optional<uint64_t>(524288));
  EXPECT_EQ(flaky.rules[0].length, std::optional<uint64_t>(512));
  EXPECT_EQ(flaky.rules[0].error, std::optional<Errc>(Errc::Io));
  EXPECT_EQ(flaky.rules[0].delay_ms, 0u);
  EXPECT_EQ(flaky.rules[0].count, std::optional<uint32_t>(1));
  EXPECT_EQ(flaky.rules[1].op, FaultRule::Op::Write);
  EXPECT_FALSE(flaky.rules[1].offset.has_value());
  EXPECT_FALSE(flaky.rules[1].length.has_value());
  EXPECT_FALSE(flaky.rules[1].error.has_value());
  EXPECT_EQ(flaky.rules[1].delay_ms, 20u);
  EXPECT_FALSE(flaky.rules[1].count.has_value());
  EXPECT_EQ(flaky.rules[2].op, FaultRule::Op::Any);  // op defaults to any
  EXPECT_EQ(flaky.rules[2].error, std::optional<Errc>(Errc::NoSpace));

  const NodeSpec& top = c.nodes[2].spec;
  EXPECT_EQ(c.nodes[2].line, 15);
  EXPECT_EQ(top.file, dir / "top.qcow2");
  EXPECT_EQ(top.backing, std::optional<std::string>("base-flaky"));

  EXPECT_EQ(c.nodes[3].spec.driver, "raw");
  EXPECT_EQ(c.nodes[3].spec.file, dir / "solo.img");                   // "./" normalized away
  EXPECT_EQ(c.nodes[4].spec.backing, std::optional<std::string>(""));  // null = no backing

  ASSERT_EQ(c.chains.size(), 1u);
  EXPECT_EQ(c.chains[0].name, "vm");
  EXPECT_EQ(c.chains[0].node, "top");
  EXPECT_EQ(c.chains[0].line, 27);

  ASSERT_EQ(c.images.size(), 2u);
  EXPECT_EQ(c.images[0].line, 30);
  EXPECT_EQ(c.images[0].spec.path, dir / "other.qcow2");
  EXPECT_EQ(c.images[0].spec.chain, "other");
  EXPECT_EQ(c.images[0].spec.node_name, "other-top");
  EXPECT_TRUE(c.images[0].spec.read_only);
  EXPECT_EQ(c.images[1].spec.path, dir / "top.qcow2");
  EXPECT_EQ(c.images[1].spec.chain, "");
  EXPECT_FALSE(c.images[1].spec.read_only);
}

TEST_F(LoadConfig, EmptyFile_GivesDefaults) {
  for (const char* text : {"", "# nothing yet\n", "nodes:\nchains:\nimages:\n"}) {
    Result<Config> r = load(text);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->log_level, "info");
    EXPECT_EQ(r->threads, 0u);
    EXPECT_TRUE(r->nodes.empty());
    EXPECT_TRUE(r->chains.empty());
    EXPECT_TRUE(r->images.empty());
  }
}

TEST_F(LoadConfig, FromFile_ReadsTheFileAndResolvesPathsAgainstItsFolder) {
  std::string path = dir.write("vm.yaml", "nodes:\n  - {name: b, driver: raw, file: solo.img}\n");
  Result<Config> r = load_config(path);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->path, path);
  ASSERT_EQ(r->nodes.size(), 1u);
  EXPECT_EQ(r->nodes[0].spec.file, dir / "solo.img");
  EXPECT_EQ(r->nodes[0].line, 2);
}

TEST_F(LoadConfig, MissingConfigFile_SaysSo) {
  std::string path = dir / "nope.yaml";
  Result<Config> r = load_config(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::NotFound);
  EXPECT_EQ(r.error().message, path + ": cannot open the config file: No such file or directory");
}

TEST_F(LoadConfig, ShippedExample_IsValid) {
  // examples/vm.yaml is documentation; it must stay a config that loads. Its images are made
  // (empty: only their existence is checked) beside a copy of it.
  std::ifstream in(std::string(CHAINFS_SOURCE_DIR) + "/examples/vm.yaml");
  ASSERT_TRUE(in) << "examples/vm.yaml not found";
  std::stringstream text;
  text << in.rdbuf();
  std::filesystem::create_directory(dir / "images");
  for (const char* image : {"base.qcow2", "top.qcow2", "test.qcow2", "other.qcow2"})
    dir.touch(std::string("images/") + image);
  Result<Config> r = load(text.str());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->nodes.size(), 4u);
  EXPECT_EQ(r->chains.size(), 2u);
  EXPECT_EQ(r->images.size(), 1u);
}

// ---- syntax and keys ----------------------------------------------------------------------------

TEST_F(LoadConfig, YamlSyntaxError_GivesItsLine) {
  EXPECT_EQ(problems("nodes:\n  - name: a\n    driver: [qcow2\n    file: x\n"),
            "4: YAML syntax error: end of sequence flow not found");
  EXPECT_EQ(problems("threads: 1\nlog-level: info: debug\n"),
            "2: YAML syntax error: illegal map value");
}

TEST_F(LoadConfig, SecondDocument_IsRefused) {
  EXPECT_EQ(problems("threads: 1\n---\nthreads: 2\n"),
            "3: a second YAML document ('---'): the config is one document");
}

TEST_F(LoadConfig, TopLevelNotAMapping_IsRefused) {
  EXPECT_EQ(problems("- a\n- b\n"),
            "1: the config must be a mapping of keys (log-level, threads, nodes, chains, images), "
            "not a list");
}

TEST_F(LoadConfig, UnknownKey_SaysWhichAndSuggestsTheClosest) {
  EXPECT_EQ(problems("log_level: info\n"),
            "1: unknown top-level key 'log_level' (did you mean 'log-level'?)");
  EXPECT_EQ(problems("threads: 2\ncolour: blue\n"),
            "2: unknown top-level key 'colour' (known keys: log-level, threads, nodes, chains, "
            "images)");
  EXPECT_EQ(problems(R"(nodes:
  - name: base
    driver: qcow2
    file: base.qcow2
    readonly: true
)"),
            "5: node 'base': unknown key 'readonly' (did you mean 'read-only'?)");
  EXPECT_EQ(problems("nodes:\n  - {name: x, driver: raw, file: solo.img}\n"
                     "chains:\n  - name: vm\n    node: x\n    root: y\n"),
            "6: chain 'vm': unknown key 'root' (known keys: name, node)");
  EXPECT_EQ(problems("images:\n  - path: other.qcow2\n    chian: c\n"),
            "3: image 'other.qcow2': unknown key 'chian' (did you mean 'chain'?)");
}

TEST_F(LoadConfig, KeyGivenTwice_IsRefused) {
  EXPECT_EQ(problems("nodes:\n  - name: a\n    driver: raw\n    file: solo.img\n    name: b\n"),
            "5: node 'a': key 'name' is given twice (first at line 2)");
}

// ---- types and values ---------------------------------------------------------------------------

TEST_F(LoadConfig, WrongTypes_NameTheKeyAndWhatWasGiven) {
  EXPECT_EQ(problems("threads: many\n"),
            "1: 'threads' must be a whole number from 0 to 1024, not 'many'");
  EXPECT_EQ(problems("threads: -1\n"),
            "1: 'threads' must be a whole number from 0 to 1024, not '-1'");
  EXPECT_EQ(problems("threads: 5000\n"),
            "1: 'threads' must be a whole number from 0 to 1024, not '5000'");
  EXPECT_EQ(problems("log-level: [info]\n"), "1: 'log-level' must be a string, not a list");
  EXPECT_EQ(problems("log-level: verbose\n"),
            "1: 'log-level' is 'verbose', which is not one of trace, debug, info, warn, error");
  EXPECT_EQ(problems("log-level: warning\n"),
            "1: 'log-level' is 'warning', which is not one of trace, debug, info, warn, error "
            "(did you mean 'warn'?)");
  EXPECT_EQ(problems("nodes:\n  name: a\n"),
            "1: 'nodes' must be a list (items starting with '- '), not a mapping");
  EXPECT_EQ(problems("nodes:\n  - base\n"),
            "2: node #1: must be a mapping (name: ..., driver: ...), not a scalar");
  EXPECT_EQ(problems(R"(nodes:
  - name: base
    driver: qcow2
    file: base.qcow2
    read-only: maybe
)"),
            "5: node 'base': 'read-only' must be true or false, not 'maybe'");
  EXPECT_EQ(problems("nodes:\n  - name: [a]\n    driver: raw\n    file: solo.img\n"),
            "2: node #1: 'name' must be a string, not a list");
  EXPECT_EQ(problems("nodes:\n  - name: a\n    driver:\n    file: solo.img\n"),
            "3: node 'a': 'driver' must be a string, not null");
}

TEST_F(LoadConfig, InvalidNames_AreRefused) {
  EXPECT_EQ(problems("nodes:\n  - {name: a/b, driver: raw, file: solo.img}\n"),
            "2: node 'a/b': 'name': name 'a/b' contains '/' (names are file names and "
            "control-file words)");
  EXPECT_EQ(problems("chains:\n  - name: my vm\n    node: x\nnodes:\n  - {name: x, driver: raw, "
                     "file: solo.img}\n"),
            "2: chain 'my vm': 'name': name 'my vm' contains whitespace or a control character");
}

TEST_F(LoadConfig, EmptyBacking_PointsToNull) {
  EXPECT_EQ(problems(R"(nodes:
  - name: top
    driver: qcow2
    file: top.qcow2
    backing: ""
)"),
            "5: node 'top': 'backing' is empty: write 'backing: null' for no backing, or omit the "
            "key to follow the image header");
}

TEST_F(LoadConfig, BackingNullSpellings_AllMeanNone) {
  for (const char* value : {"~", "null", "", "Null"}) {
    Result<Config> r =
        load(fmt::format("nodes:\n  - name: top\n    driver: qcow2\n    file: top.qcow2\n"
                         "    backing: {}\n",
                         value));
    ASSERT_TRUE(r.ok()) << value << ": " << r.error().message;
    EXPECT_EQ(r->nodes[0].spec.backing, std::optional<std::string>("")) << value;
  }
}

// ---- required keys and drivers ------------------------------------------------------------------

TEST_F(LoadConfig, MissingRequiredKeys_AreNamedAtTheItem) {
  EXPECT_EQ(problems("nodes:\n  - driver: raw\n    file: solo.img\n"),
            "2: node #1: missing required key 'name'");
  EXPECT_EQ(problems("nodes:\n  - name: a\n    file: solo.img\n"),
            "2: node 'a': missing required key 'driver' (qcow2, raw, fault)");
  EXPECT_EQ(problems("nodes:\n  - name: a\n    driver: qcow2\n"),
            "2: node 'a': missing required key 'file' (the image a qcow2 node reads)");
  EXPECT_EQ(problems("nodes:\n  - name: a\n    driver: raw\n"),
            "2: node 'a': missing required key 'file' (the image a raw node reads)");
  EXPECT_EQ(problems("nodes:\n  - name: f\n    driver: fault\n"),
            "2: node 'f': missing required key 'child' (the node the fault filter forwards to)");
  EXPECT_EQ(problems("nodes:\n  - {name: a, driver: raw, file: solo.img}\nchains:\n  - name: vm\n"),
            "4: chain 'vm': missing required key 'node'");
  EXPECT_EQ(problems("images:\n  - chain: c\n"), "2: image #1: missing required key 'path'");
}

TEST_F(LoadConfig, UnknownDriver_IsRefusedWithHint) {
  EXPECT_EQ(problems("nodes:\n  - name: a\n    driver: qcow\n    file: base.qcow2\n"),
            "3: node 'a': unknown driver 'qcow' (did you mean 'qcow2'?) (known drivers: qcow2, "
            "raw, fault)");
  EXPECT_EQ(problems("nodes:\n  - name: a\n    driver: vmdk\n    file: base.qcow2\n"),
            "3: node 'a': unknown driver 'vmdk' (known drivers: qcow2, raw, fault)");
}

TEST_F(LoadConfig, KeyOfAnotherDriver_IsRefused) {
  EXPECT_EQ(problems(R"(nodes:
  - name: a
    driver: qcow2
    file: base.qcow2
    child: b
)"),
            "5: node 'a': key 'child' does not apply to driver qcow2 (only to fault)");
  EXPECT_EQ(problems("nodes:\n  - {name: a, driver: raw, file: solo.img, backing: ~}\n"),
            "2: node 'a': key 'backing' does not apply to driver raw (only to qcow2)");
  EXPECT_EQ(problems(R"(nodes:
  - {name: a, driver: raw, file: solo.img}
  - name: f
    driver: fault
    child: a
    file: solo.img
)"),
            "6: node 'f': key 'file' does not apply to driver fault (only to qcow2, raw)");
}

// ---- files --------------------------------------------------------------------------------------

TEST_F(LoadConfig, MissingImageFile_IsReportedWithWhereItLooked) {
  Result<Config> r = load("nodes:\n  - name: a\n    driver: qcow2\n    file: gone.qcow2\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::NotFound);
  EXPECT_EQ(r.error().message, file +
                                   ":4: node 'a': file 'gone.qcow2' does not exist (looked for " +
                                   (dir / "gone.qcow2") + ")");
  std::string absolute = dir / "gone.qcow2";
  EXPECT_EQ(problems("nodes:\n  - name: a\n    driver: qcow2\n    file: " + absolute + "\n"),
            "4: node 'a': file '" + absolute + "' does not exist");
  EXPECT_EQ(problems("images:\n  - path: gone.qcow2\n"),
            "2: image 'gone.qcow2': path 'gone.qcow2' does not exist (looked for " +
                (dir / "gone.qcow2") + ")");
  std::filesystem::create_directory(dir / "folder");
  EXPECT_EQ(problems("images:\n  - path: folder\n"),
            "2: image 'folder': path 'folder' is a directory, not an image (looked for " +
                (dir / "folder") + ")");
}

// ---- names and references -----------------------------------------------------------------------

TEST_F(LoadConfig, DuplicateNodeName_IsRefused) {
  EXPECT_EQ(problems(R"(nodes:
  - {name: a, driver: raw, file: solo.img}
  - {name: b, driver: raw, file: solo.img}
  - {name: a, driver: qcow2, file: base.qcow2}
)"),
            "4: node 'a': name 'a' is already taken by node 'a' (line 2)");
}

TEST_F(LoadConfig, NameClashingWithProtocolNode_IsRefused) {
  EXPECT_EQ(problems(R"(nodes:
  - {name: base, driver: qcow2, file: base.qcow2}
  - name: base.file
    driver: fault
    child: base
)"),
            "3: node 'base.file': name 'base.file' is already taken by the protocol node of node "
            "'base' (line 2)");
  EXPECT_EQ(problems(R"(nodes:
  - name: base.file
    driver: raw
    file: solo.img
  - {name: base, driver: qcow2, file: base.qcow2}
)"),
            "5: node 'base': its protocol node name 'base.file' is already taken by node "
            "'base.file' (line 2)");
  EXPECT_EQ(problems("nodes:\n  - {name: base, driver: raw, file: solo.img}\nimages:\n"
                     "  - path: other.qcow2\n    name: base.file\n"),
            "5: image 'other.qcow2': node name 'base.file' is already taken by the protocol node "
            "of node 'base' (line 2)");
}

TEST_F(LoadConfig, DuplicateChainName_IsRefusedAlsoAgainstImageStems) {
  EXPECT_EQ(problems(R"(nodes:
  - {name: a, driver: raw, file: solo.img}
chains:
  - {name: vm, node: a}
  - {name: vm, node: a}
)"),
            "5: chain 'vm': chain name 'vm' is already taken by chain 'vm' (line 4)");
  EXPECT_EQ(problems(R"(nodes:
  - {name: a, driver: raw, file: solo.img}
chains:
  - {name: other, node: a}
images:
  - path: other.qcow2
)"),
            "6: image 'other.qcow2': chain name 'other' (the image's file stem; set 'chain' to "
            "choose another) is already taken by chain 'other' (line 4)");
}

TEST_F(LoadConfig, DanglingReferences_AreRefusedWithHint) {
  EXPECT_EQ(problems(R"(nodes:
  - {name: base, driver: qcow2, file: base.qcow2}
  - name: top
    driver: qcow2
    file: top.qcow2
    backing: bsae
)"),
            "6: node 'top': backing 'bsae' is not a node declared in 'nodes:' (did you mean "
            "'base'?)");
  EXPECT_EQ(problems("nodes:\n  - {name: f, driver: fault, child: disk}\n"),
            "2: node 'f': child 'disk' is not a node declared in 'nodes:'");
  EXPECT_EQ(problems("nodes:\n  - {name: base, driver: qcow2, file: base.qcow2}\n"
                     "  - {name: f, driver: fault, child: base.file}\n"),
            "3: node 'f': child 'base.file' is not a node declared in 'nodes:' (protocol nodes "
            "cannot be referenced in the config)");
  EXPECT_EQ(problems("chains:\n  - name: vm\n    node: top\n"),
            "3: chain 'vm': node 'top' is not a node declared in 'nodes:'");
}

TEST_F(LoadConfig, BackingCycles_AreRefusedOnceWithTheirPath) {
  EXPECT_EQ(problems(R"(nodes:
  - {name: a, driver: qcow2, file: top.qcow2, backing: b}
  - {name: b, driver: qcow2, file: base.qcow2, backing: a}
)"),
            "2: node 'a': backing cycle: a -> b -> a");
  EXPECT_EQ(problems("nodes:\n  - {name: a, driver: qcow2, file: top.qcow2, backing: a}\n"),
            "2: node 'a': backing cycle: a -> a");
  // Through a fault filter's child; reported at the node of the cycle declared first.
  EXPECT_EQ(problems(R"(nodes:
  - {name: solo, driver: raw, file: solo.img}
  - {name: flaky, driver: fault, child: top}
  - {name: top, driver: qcow2, file: top.qcow2, backing: flaky}
)"),
            "3: node 'flaky': backing cycle: flaky -> top -> flaky");
}

// ---- fault rules --------------------------------------------------------------------------------

std::string rule_config(const std::string& rule) {
  return "nodes:\n  - {name: a, driver: raw, file: solo.img}\n  - name: f\n    driver: fault\n"
         "    child: a\n    rules:\n      - " +
         rule + "\n";
}

TEST_F(LoadConfig, InvalidRuleFields_AreRefused) {
  EXPECT_EQ(problems(rule_config("{op: raed, errno: EIO}")),
            "7: node 'f' rule #1: 'op' is 'raed', which is not one of read, write, flush, "
            "discard, write-zeroes, any (did you mean 'read'?)");
  EXPECT_EQ(problems(rule_config("{op: read, errno: EFOO}")),
            "7: node 'f' rule #1: 'errno' is 'EFOO', which is not one of EIO, ENOSPC, EINVAL, "
            "EACCES, EPERM, EROFS, ENOENT, EBUSY, EEXIST, EOPNOTSUPP, EFBIG, ENXIO, ECANCELED, "
            "EAGAIN");
  EXPECT_EQ(problems(rule_config("{op: read, errno: EIO, offset: 1Q}")),
            "7: node 'f' rule #1: 'offset': invalid size '1Q': unknown suffix 'Q' (use K, M, G "
            "or T)");
  EXPECT_EQ(problems(rule_config("{op: read, errno: EIO, length: 0}")),
            "7: node 'f' rule #1: 'length' must be greater than 0");
  EXPECT_EQ(problems(rule_config("{op: read, errno: EIO, count: 0}")),
            "7: node 'f' rule #1: 'count' must be a whole number from 1 to 4294967295, not '0'");
  EXPECT_EQ(problems(rule_config("{op: read, delay-ms: 1.5}")),
            "7: node 'f' rule #1: 'delay-ms' must be a whole number from 0 to 4294967295, not "
            "'1.5'");
  EXPECT_EQ(problems(rule_config("{op: read}")),
            "7: node 'f' rule #1: the rule does nothing: give 'errno', 'delay-ms' or both");
  EXPECT_EQ(
      problems(rule_config("{op: read, errno: EIO, offset: 18446744073709551615, length: 2}")),
      "7: node 'f' rule #1: 'offset' + 'length' is past the largest possible offset");
  EXPECT_EQ(problems(rule_config("{op: read, errno: EIO, when: now}")),
            "7: node 'f' rule #1: unknown key 'when' (known keys: op, offset, length, errno, "
            "delay-ms, count)");
  EXPECT_EQ(problems(rule_config("read")),
            "7: node 'f' rule #1: must be a mapping ({op: read, errno: EIO}), not a scalar");
}

TEST_F(LoadConfig, RuleOpsAndErrnos_MapToTheirCodes) {
  Result<Config> r = load(
      "nodes:\n  - {name: a, driver: raw, file: solo.img}\n  - name: f\n    driver: fault\n"
      "    child: a\n    rules:\n"
      "      - {op: flush, errno: EPERM}\n"
      "      - {op: discard, errno: EROFS}\n"
      "      - {op: write-zeroes, errno: ENOSPC, delay-ms: 5}\n"
      "      - {op: any, errno: EBUSY, offset: 1M}\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& rules = r->nodes[1].spec.rules;
  ASSERT_EQ(rules.size(), 4u);
  EXPECT_EQ(rules[0].op, FaultRule::Op::Flush);
  EXPECT_EQ(rules[0].error, std::optional<Errc>(Errc::Access));  // EPERM is carried as EACCES
  EXPECT_EQ(rules[1].op, FaultRule::Op::Discard);
  EXPECT_EQ(rules[1].error, std::optional<Errc>(Errc::ReadOnly));
  EXPECT_EQ(rules[2].op, FaultRule::Op::WriteZeroes);
  EXPECT_EQ(rules[2].delay_ms, 5u);
  EXPECT_EQ(rules[3].op, FaultRule::Op::Any);
  EXPECT_EQ(rules[3].offset, std::optional<uint64_t>(1 << 20));
  EXPECT_FALSE(rules[3].length.has_value());
}

// ---- several problems ---------------------------------------------------------------------------

TEST_F(LoadConfig, SeveralProblems_AreAllReportedInLineOrder) {
  EXPECT_EQ(problems(R"(threads: lots
nodes:
  - name: top
    driver: qcow2
    file: top.qcow2
    backing: nothere
  - name: x
    driver: floppy
chains:
  - {name: vm, node: top, extra: 1}
)"),
            "1: 'threads' must be a whole number from 0 to 1024, not 'lots'\n"
            "6: node 'top': backing 'nothere' is not a node declared in 'nodes:'\n"
            "8: node 'x': unknown driver 'floppy' (known drivers: qcow2, raw, fault)\n"
            "10: chain 'vm': unknown key 'extra' (known keys: name, node)");
}

}  // namespace
}  // namespace chainfs
