#include "blockcore/io/io_hint.h"

namespace chainfs {

namespace {
thread_local bool t_background_io = false;
}  // namespace

ScopedBackgroundIo::ScopedBackgroundIo(bool background) : previous_(t_background_io) {
  t_background_io = background;
}

ScopedBackgroundIo::~ScopedBackgroundIo() {
  t_background_io = previous_;
}

bool background_io() {
  return t_background_io;
}

}  // namespace chainfs
