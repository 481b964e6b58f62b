// Reopening a qcow2 backing layer read-write and back (Graph::reopen over the qcow2 and file
// drivers): it allocates like any writable image, everything cached reaches the disk when it goes
// read-only again (qemu-img check and compare are the oracle), and an image that has a reason to
// stay read-only — found at open or set on disk since — is refused, leaving its file read-only.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "qcow2_test_util.h"

namespace chainfs {
namespace {

using namespace qcow2_test;

constexpr uint64_t kMiB = 1 << 20;

void poke(const std::string& path, uint64_t offset, std::vector<uint8_t> bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)),
            static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

// base.qcow2 (8 MiB, some data) under top.qcow2, opened from top's header like --image.
class Qcow2Reopen : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_QEMU_IMG();
    base_path_ = dir_.file("base.qcow2");
    must_run("cd '" + dir_.path() +
             "' && qemu-img create -q -f qcow2 -o cluster_size=65536 base.qcow2 8M && "
             "qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x12 5M 64k' base.qcow2 "
             ">/dev/null && qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 top.qcow2 8M");
  }
  void open() {
    auto opened = open_chain(dir_.file("top.qcow2"), false);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    chain_ = std::move(*opened);
    base_ = chain_->top->backing_ref();
    ASSERT_TRUE(base_);
    ASSERT_EQ(base_->name(), "base");
  }
  Graph& graph() { return *chain_->graph; }
  NodeRef base_file() {
    auto f = graph().find("base.file");
    EXPECT_TRUE(f.ok());
    return f.ok() ? *f : NodeRef();
  }

  TempDir dir_;
  std::string base_path_;
  std::unique_ptr<OpenedChain> chain_;
  NodeRef base_;
};

TEST_F(Qcow2Reopen, BackingLayer_ReopenedReadWrite_AllocatesThenReadOnlyAgain_ImageStaysClean) {
  must_run("qemu-img convert -O raw '" + base_path_ + "' '" + dir_.file("before.raw") + "'");
  std::vector<std::byte> reference = read_file(dir_.file("before.raw"));
  open();
  EXPECT_EQ(base_->read_only_cause(), ReadOnlyCause::Backing);
  EXPECT_FALSE(base_->capabilities().writable);

  ASSERT_TRUE(graph().reopen(*base_, false).ok());
  EXPECT_TRUE(base_->capabilities().writable);
  EXPECT_TRUE(base_file()->capabilities().writable) << "the protocol node was reopened first";
  // New clusters everywhere (new L2 tables, refcount updates), a partial cluster over old data,
  // and zeros over allocated data.
  std::mt19937_64 rng(7);
  for (uint64_t off = 512 * 1024; off < 8 * kMiB; off += 1536 * 1024) {
    std::vector<std::byte> data(300000);
    fill_random(rng, data.data(), data.size());
    ASSERT_TRUE(base_->write(off, data).ok());
    std::copy(data.begin(), data.end(), reference.begin() + off);
  }
  ASSERT_TRUE(base_->write_zeroes(5 * kMiB, 64 * 1024).ok());
  std::fill_n(reference.begin() + 5 * kMiB, 64 * 1024, std::byte{0});

  ASSERT_TRUE(graph().reopen(*base_, true).ok());
  EXPECT_FALSE(base_->capabilities().writable);
  EXPECT_FALSE(base_file()->capabilities().writable);
  EXPECT_EQ(base_->write(0, std::vector<std::byte>(512)).error().code, Errc::ReadOnly);
  // Before anything closes: what went read-only is on disk already, as qemu-img reads it.
  write_file(dir_.file("reference.raw"), reference);
  std::string out;
  EXPECT_EQ(run("qemu-img check -q '" + base_path_ + "'", &out), 0) << out;
  EXPECT_EQ(run("qemu-img compare -q -f qcow2 -F raw '" + base_path_ + "' '" +
                    dir_.file("reference.raw") + "'",
                &out),
            0)
      << out;
  EXPECT_EQ(first_difference(read_all(*base_), reference), -1);

  // And once more: read-write again after read-only, then closed read-only.
  ASSERT_TRUE(graph().reopen(*base_, false).ok());
  std::vector<std::byte> more(64 * 1024, std::byte{0x77});
  ASSERT_TRUE(base_->write(7 * kMiB, more).ok());
  std::copy(more.begin(), more.end(), reference.begin() + 7 * kMiB);
  ASSERT_TRUE(graph().reopen(*base_, true).ok());
  base_.reset();
  chain_->close();
  write_file(dir_.file("reference.raw"), reference);
  EXPECT_EQ(run("qemu-img check -q '" + base_path_ + "'", &out), 0) << out;
  EXPECT_EQ(run("qemu-img compare -q -f qcow2 -F raw '" + base_path_ + "' '" +
                    dir_.file("reference.raw") + "'",
                &out),
            0)
      << out;
}

TEST_F(Qcow2Reopen, CorruptBitSetOnDiskSinceOpen_RefusesReadWriteAndPutsTheFileBack) {
  open();
  poke(base_path_, 79, {0x02});  // incompatible_features: corrupt, written by someone else
  auto refused = graph().reopen(*base_, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::ReadOnly);
  EXPECT_NE(refused.error().message.find("corrupt"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(base_->capabilities().writable);
  EXPECT_FALSE(base_file()->capabilities().writable) << "the file node was reopened back";
  EXPECT_EQ(base_file()->read_only_cause(), ReadOnlyCause::Backing);
  EXPECT_EQ(base_->read_only_cause(), ReadOnlyCause::Backing);

  poke(base_path_, 79, {0x00});
  ASSERT_TRUE(graph().reopen(*base_, false).ok()) << "nothing forces it any more";
  EXPECT_TRUE(base_->capabilities().writable);
}

// Opened read-only as a backing layer, the image gave no reason yet; asked to write, it does.
TEST_F(Qcow2Reopen, BackingLayerWithAnInternalSnapshot_IsNotReopenedReadWrite) {
  must_run("qemu-img snapshot -c snap1 '" + base_path_ + "'");
  open();
  EXPECT_EQ(base_->read_only_cause(), ReadOnlyCause::Backing);
  auto refused = graph().reopen(*base_, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::ReadOnly);
  EXPECT_NE(refused.error().message.find("snapshot"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(base_->capabilities().writable);
  EXPECT_FALSE(base_file()->capabilities().writable) << "the file node went back to read-only";
}

// Opened as the active layer, the image forced read-only at once: never reopened.
TEST_F(Qcow2Reopen, ActiveLayerForcedReadOnlyByItsImage_IsNeverReopened) {
  must_run("qemu-img snapshot -c snap1 '" + dir_.file("top.qcow2") + "'");
  open();
  Node& top = *chain_->top;
  EXPECT_EQ(top.read_only_cause(), ReadOnlyCause::Image);
  auto refused = graph().reopen(top, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::ReadOnly);
  EXPECT_NE(refused.error().message.find("snapshot"), std::string::npos) << refused.error().message;
}

TEST_F(Qcow2Reopen, ChainOpenedReadOnlyByTheUser_IsNotReopened) {
  auto opened = open_chain(dir_.file("top.qcow2"), /*read_only=*/true);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  NodeRef base = (*opened)->top->backing_ref();
  EXPECT_EQ(base->read_only_cause(), ReadOnlyCause::User);
  EXPECT_EQ((*opened)->graph->reopen(*base, false).error().code, Errc::ReadOnly);
  EXPECT_EQ((*opened)->graph->reopen(*(*opened)->top, false).error().code, Errc::ReadOnly);
}

}  // namespace
}  // namespace chainfs
