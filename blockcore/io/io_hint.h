#pragma once

namespace chainfs {

// Writes made by background copies (a job's windows) while guests use the graph should stay in
// the host page cache: a guest reads what a stream has just copied. Guests' large writes, and a
// job's windows while no guest is busy, go to the disk directly (the file driver's O_DIRECT twin,
// docs/io.md): the job's data must reach the disk before its graph change anyway, and the host's
// writeback of page-cache data is the slower road there (docs/performance.md). The job's thread
// says which it is for the writes it makes while this object lives (`background` false: a scope
// inside a background one that writes directly again); the file driver asks background_io() when
// it picks a descriptor. Per thread: it describes who is writing on this thread, and nothing else
// reads it.
class ScopedBackgroundIo {
 public:
  explicit ScopedBackgroundIo(bool background = true);
  ~ScopedBackgroundIo();
  ScopedBackgroundIo(const ScopedBackgroundIo&) = delete;
  ScopedBackgroundIo& operator=(const ScopedBackgroundIo&) = delete;

 private:
  bool previous_;
};

// Whether the current thread is inside a ScopedBackgroundIo.
bool background_io();

}  // namespace chainfs
