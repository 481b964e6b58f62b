// Typed results for blockcore: a value or an Error (code + message). errno is produced once, at the
// FUSE edge, from Errc; nothing in blockcore throws across a public call.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace chainfs {

enum class Errc {
  Invalid,      // EINVAL: bad syntax or argument
  NotFound,     // ENOENT: unknown node, job or file
  Exists,       // EEXIST: name or file already taken
  Busy,         // EBUSY: node or job in use
  Access,       // EACCES: not permitted by the graph's permissions
  ReadOnly,     // EROFS: read-only node or mount
  Io,           // EIO: host I/O failed, or image metadata is corrupt for this range
  NoSpace,      // ENOSPC
  Unsupported,  // EOPNOTSUPP
  TooLarge,     // EFBIG
  NoData,       // ENXIO: SEEK_DATA/SEEK_HOLE past the end
  Cancelled,    // ECANCELED: a job was cancelled
  Again,        // EAGAIN
};

int to_errno(Errc code);
const char* errno_name(Errc code);  // "EINVAL", "ENOENT", ...
Errc errc_from_errno(int err);      // host errno -> Errc (unknown values map to Io)

struct Error {
  Errc code = Errc::Io;
  std::string message;
};

template <typename... Args>
Error make_error(Errc code, fmt::format_string<Args...> format, Args&&... args) {
  return Error{code, fmt::format(format, std::forward<Args>(args)...)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { assert(!ok()); return std::get<1>(v_); }
  Error&& take_error() { assert(!ok()); return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT

  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { assert(failed_); return error_; }
  Error&& take_error() { assert(failed_); return std::move(error_); }
  // Explicit, greppable way to drop an error on purpose (best-effort cleanup paths).
  void ignore_error() const {}

 private:
  Error error_;
  bool failed_ = false;
};

inline Result<void> ok_result() { return {}; }

}  // namespace chainfs

// Propagate an error from an expression returning Result<...>.
#define CHAINFS_TRY(expr)                              \
  do {                                                 \
    auto chainfs_try_result_ = (expr);                 \
    if (!chainfs_try_result_.ok())                     \
      return chainfs_try_result_.take_error();         \
  } while (0)

// Assign the value of a Result<T> or propagate its error.
#define CHAINFS_CONCAT_INNER_(a, b) a##b
#define CHAINFS_CONCAT_(a, b) CHAINFS_CONCAT_INNER_(a, b)
#define CHAINFS_ASSIGN_OR_RETURN(lhs, expr) \
  CHAINFS_ASSIGN_OR_RETURN_IMPL_(CHAINFS_CONCAT_(chainfs_res_, __LINE__), lhs, expr)
#define CHAINFS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.take_error();              \
  lhs = std::move(tmp).value()
