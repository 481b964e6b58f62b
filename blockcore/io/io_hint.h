#pragma once

namespace chainfs {

// Writes made by background copies (a job's windows) should stay in the host page cache: a guest
// reads what a stream has just copied, and a commit's target is flushed once before the graph
// change anyway. Guests' large writes, on the other hand, go to the disk directly (the file
// driver's O_DIRECT twin, docs/io.md). The job's thread says which it is for the writes it makes
// while this object lives; the file driver asks background_io() when it picks a descriptor.
// Per thread: it describes who is writing on this thread, and nothing else reads it.
class ScopedBackgroundIo {
 public:
  ScopedBackgroundIo();
  ~ScopedBackgroundIo();
  ScopedBackgroundIo(const ScopedBackgroundIo&) = delete;
  ScopedBackgroundIo& operator=(const ScopedBackgroundIo&) = delete;

 private:
  bool previous_;
};

// Whether the current thread is inside a ScopedBackgroundIo.
bool background_io();

}  // namespace chainfs
