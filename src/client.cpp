// Talking to a running mount: writing commands to its control files and reading the outcome back,
// and reading its generated files (graph.json, jobs/<id>).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "src/cli.h"

namespace chainfs::cli {

namespace {

// Reads what is left in fd, to its end.
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string strip_newlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

Result<std::string> run_control_command(const std::string& mountpoint, const std::string& file,
                                        const std::string& text) {
  std::string path = fmt::format("{}/control/{}", mountpoint, file);
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return make_error(errc_from_errno(err), "cannot open {}: {} (is {} a chainfs mount?)", path,
                      strerror(err), mountpoint);
  }
  // One write: its lines run in order (for snapshot: as one transaction).
  ssize_t written = ::write(fd, text.data(), text.size());
  int write_errno = written < 0 ? errno : 0;
  std::string outcome = strip_newlines(read_all(fd));
  ::close(fd);
  if (written < 0) {
    // "error ENAME: message" -> "refused (ENAME): message"
    std::string message = outcome;
    if (message.rfind("error ", 0) == 0) {
      message = message.substr(6);
      if (size_t colon = message.find(": "); colon != std::string::npos)
        message =
            fmt::format("refused ({}): {}", message.substr(0, colon), message.substr(colon + 2));
    }
    if (message.empty()) message = fmt::format("refused: {}", strerror(write_errno));
    return make_error(errc_from_errno(write_errno), "{}", message);
  }
  if (static_cast<size_t>(written) != text.size())
    return make_error(Errc::Io, "short write to {} ({} of {} bytes)", path, written, text.size());
  if (outcome.rfind("ok", 0) != 0)
    return make_error(Errc::Io, "unexpected answer from {}: '{}'", path, outcome);
  std::string job_id = outcome.size() > 3 ? outcome.substr(3) : "";
  return job_id;
}

Result<std::string> read_text_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return make_error(errc_from_errno(err), "cannot open {}: {}", path, strerror(err));
  }
  std::string text = read_all(fd);
  ::close(fd);
  return text;
}

}  // namespace chainfs::cli
