// Image::flush and its locks: a flush after much guest data first syncs that data without the
// metadata lock, so requests that look up mappings go on while the disk writes it back; the
// ordered metadata write-back that follows still comes before flush() returns.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>

#include "blockcore/drivers/qcow2/create.h"
#include "blockcore/drivers/qcow2/image.h"
#include "qcow2_test_util.h"

namespace chainfs {
namespace {

using namespace qcow2_test;
using qcow2::Image;
using qcow2::MemoryHostFile;

// An in-memory file whose syncs can be held: a held sync() waits until release().
class HeldSyncFile final : public MemoryHostFile {
 public:
  using MemoryHostFile::MemoryHostFile;

  Result<void> sync() override {
    std::unique_lock lock(mutex_);
    ++syncs_;
    changed_.notify_all();
    changed_.wait(lock, [&] { return !held_; });
    return {};
  }
  void hold() {
    std::lock_guard lock(mutex_);
    held_ = true;
  }
  void release() {
    std::lock_guard lock(mutex_);
    held_ = false;
    changed_.notify_all();
  }
  // Waits (up to 10 s) until `n` syncs have started; false on timeout.
  bool wait_for_syncs(int n) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [&] { return syncs_ >= n; });
  }
  int syncs() {
    std::lock_guard lock(mutex_);
    return syncs_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool held_ = false;
  int syncs_ = 0;
};

std::vector<std::byte> new_image_bytes(uint64_t size) {
  TempDir dir;
  const std::string path = dir.file("img.qcow2");
  auto created = qcow2_create({.path = path, .size = size});
  EXPECT_TRUE(created.ok()) << created.error().message;
  return read_file(path);
}

struct Fixture {
  HeldSyncFile file{new_image_bytes(64 << 20)};
  qcow2::NoBackingReader backing;
  std::unique_ptr<Image> image;

  Fixture() {
    auto opened = Image::open(file, backing, {false, 0});
    EXPECT_TRUE(opened.ok()) << opened.error().message;
    if (opened.ok()) image = std::move(*opened);
  }
};

TEST(Qcow2Flush, AfterMuchData_SyncsItWithoutTheMetadataLock_ReadersGoOn) {
  Fixture f;
  ASSERT_TRUE(f.image);
  std::vector<std::byte> data(16 << 20, std::byte{0x5a});
  ASSERT_TRUE(f.image->write(0, data).ok());
  const int before = f.file.syncs();

  f.file.hold();
  auto flushed = std::async(std::launch::async, [&] { return f.image->flush(); });
  ASSERT_TRUE(f.file.wait_for_syncs(before + 1));
  // The flush is inside its first sync. A read needs the mapping (metadata lock): it finishes
  // while that sync is held.
  auto read = std::async(std::launch::async, [&] {
    std::vector<std::byte> got(4096);
    Result<void> r = f.image->read(8 << 20, got);
    return r.ok() && got[0] == std::byte{0x5a} && got[4095] == std::byte{0x5a};
  });
  const bool read_done = read.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
  f.file.release();
  EXPECT_TRUE(read_done) << "a read waited for the flush's data sync";
  EXPECT_TRUE(read.get());
  ASSERT_TRUE(flushed.get().ok());
  // The pre-sync, then the ordered write-back (refcounts, L2 tables, L1) with its own syncs.
  EXPECT_GE(f.file.syncs(), before + 3);
}

TEST(Qcow2Flush, AfterLittleData_OneOrderedWriteBack_NoExtraSync) {
  Fixture f;
  ASSERT_TRUE(f.image);
  std::vector<std::byte> data(64 << 10, std::byte{0x11});
  ASSERT_TRUE(f.image->write(0, data).ok());  // allocates: refcounts, an L2 table, an L1 entry
  ASSERT_TRUE(f.image->flush().ok());
  ASSERT_TRUE(f.image->write(0, data).ok());  // in place: nothing but data to sync
  const int before = f.file.syncs();
  ASSERT_TRUE(f.image->flush().ok());
  EXPECT_EQ(f.file.syncs(), before + 1);
}

}  // namespace
}  // namespace chainfs
