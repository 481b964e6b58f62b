#include "blockcore/driver.h"

namespace chainfs {

Result<uint64_t> Driver::allocated_bytes() {
  uint64_t total = 0;
  const uint64_t end = size();
  for (uint64_t off = 0; off < end;) {
    CHAINFS_ASSIGN_OR_RETURN(BlockStatus st, block_status(off, end - off));
    if (st.length == 0) break;
    if (st.kind == Alloc::Data) total += st.length;
    off += st.length;
  }
  return total;
}

Result<void> Driver::submit(std::span<IoOp> ops) {
  for (IoOp& op : ops) {
    if (op.kind == IoOp::Kind::Read) {
      CHAINFS_TRY(read(op.offset, {op.buf, op.length}));
    } else {
      CHAINFS_TRY(write(op.offset, {op.buf, op.length}));
    }
  }
  return {};
}

Result<void> Driver::set_backing_reference(const std::optional<BackingReference>&) {
  return make_error(Errc::Unsupported, "driver '{}' cannot record a backing reference",
                    driver_name());
}

Result<void> Driver::reopen_following_child(std::atomic<bool>& read_only, bool to_read_only,
                                            bool child_writable, std::string_view driver,
                                            std::string_view node, std::string_view child) {
  if (!to_read_only && !child_writable)
    return make_error(Errc::ReadOnly, "{} node '{}': its child '{}' does not take writes", driver,
                      node, child);
  read_only.store(to_read_only, std::memory_order_release);
  return {};
}

Result<void> Driver::reopen(bool read_only) {
  return make_error(Errc::Unsupported, "driver '{}' cannot be reopened {}", driver_name(),
                    read_only ? "read-only" : "read-write");
}

}  // namespace chainfs
