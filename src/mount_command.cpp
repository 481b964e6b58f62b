// chainfs mount: parse, load the config, (daemonize,) open the graph, mount, serve, clean up.
//
// Daemon start-up: the parent forks before anything opens (no threads, rings or files exist
// yet) and waits on a pipe; the child opens the graph and mounts, logging to the inherited stderr,
// then reports "ok" or "error MESSAGE" through the pipe, and only then detaches (syslog, /dev/null,
// chdir /). So `chainfs mount` returns once the mount is ready, or fails with the reason and
// exit code 1, and nothing stays mounted after a failure.
//
// Shutdown: run() returns on unmount (fusermount3 -u, umount) or SIGINT/SIGTERM/SIGHUP; then
// the FuseMount drops its handles and the Graph is dropped, so every node flushes and closes.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "blockcore/graph/graph.h"
#include "config/config.h"
#include "config/image_option.h"
#include "fusefs/mount.h"
#include "src/cli.h"
#include "src/logging.h"

namespace chainfs::cli {

namespace {

namespace fs = std::filesystem;

struct MountSettings {
  std::string mountpoint;
  std::optional<Config> config;
  std::vector<ImageSpec> images;
  spdlog::level::level_enum log_level = spdlog::level::info;
  unsigned threads = 0;
  bool foreground = false;
  bool allow_other = false;
  bool read_only = false;
};

// The child's end of the start-up pipe.
class ReadyPipe {
 public:
  explicit ReadyPipe(int fd) : fd_(fd) {}
  ~ReadyPipe() { close_fd(); }
  void ready() { send("ok\n"); }
  void fail(const std::string& message) { send("error " + message); }

 private:
  void send(const std::string& text) {
    if (fd_ < 0) return;
    size_t done = 0;
    while (done < text.size()) {
      ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    close_fd();
  }
  void close_fd() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_;
};

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

void detach_std_fds() {
  int null_fd = ::open("/dev/null", O_RDWR);
  if (null_fd < 0) return;
  ::dup2(null_fd, STDIN_FILENO);
  ::dup2(null_fd, STDOUT_FILENO);
  ::dup2(null_fd, STDERR_FILENO);
  if (null_fd > STDERR_FILENO) ::close(null_fd);
}

// Every layer of every chain holds one host file open (and FUSE, io_uring and clone_fd take a few
// more), so a deep chain meets the default soft limit of 1024 descriptors: raise it to the hard
// limit, as servers of many files do.
void raise_open_file_limit() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
}

// Opens the graph, mounts and serves. `pipe` is null in the foreground.
int serve(const MountSettings& settings, ReadyPipe* pipe) {
  Logging logging = make_logging(settings.log_level);
  // A daemon's terminal sees only warnings and errors while it starts; everything else goes to
  // syslog once it is ready.
  if (pipe) logging.output->set_level(std::max(settings.log_level, spdlog::level::warn));
  auto refuse = [&](const std::string& message) {
    if (pipe)
      pipe->fail(message);
    else
      failure(message);
    return kExitFailed;
  };

  raise_open_file_limit();
  GraphOptions graph_options;
  graph_options.logger = logging.logger;
  graph_options.read_only = settings.read_only;
  auto graph = std::make_unique<Graph>(graph_options);
  if (settings.config)
    if (auto built = build_graph(*graph, *settings.config); !built)
      return refuse(built.error().message);
  for (const ImageSpec& image : settings.images)
    if (auto opened = graph->open_image(image); !opened)
      return refuse(fmt::format("--image '{}': {}", image.path, opened.error().message));

  fusefs::MountOptions mount_options;
  mount_options.mountpoint = settings.mountpoint;
  mount_options.threads = settings.threads;
  mount_options.allow_other = settings.allow_other;
  mount_options.log_ring = logging.ring;
  auto mounted = fusefs::FuseMount::mount(*graph, mount_options);
  if (!mounted) return refuse(mounted.error().message);
  std::unique_ptr<fusefs::FuseMount> mount = std::move(*mounted);

  if (pipe) {
    switch_to_syslog(logging);
    logging.output->set_level(settings.log_level);
    detach_std_fds();
    if (::chdir("/") != 0) logging.logger->warn("chdir /: {}", strerror(errno));
    pipe->ready();
  }
  logging.logger->info("serving {} nodes in {} chains on {}{}", graph->listed_nodes().size(),
                       graph->chains().size(), settings.mountpoint,
                       settings.read_only ? " (read-only)" : "");
  Result<void> served = mount->run();
  mount.reset();  // handles the kernel left open are dropped here
  graph.reset();  // every node flushes and closes
  if (!served) {
    logging.logger->error("{}", served.error().message);
    return kExitFailed;
  }
  logging.logger->info("stopped cleanly");
  return kExitOk;
}

int daemonize_and_serve(const MountSettings& settings) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return failure(fmt::format("pipe: {}", strerror(errno)));
  pid_t pid = ::fork();
  if (pid < 0) return failure(fmt::format("fork: {}", strerror(errno)));
  if (pid == 0) {
    ::close(fds[0]);
    ::setsid();
    ReadyPipe pipe(fds[1]);
    return serve(settings, &pipe);
  }
  ::close(fds[1]);
  std::string message;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    message.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (message.rfind("ok", 0) == 0) return kExitOk;
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (message.rfind("error ", 0) == 0) return failure(message.substr(6));
  return failure("the mount process ended before the mount was ready");
}

}  // namespace

int mount_command(const std::vector<std::string>& words) {
  static const std::vector<OptionSpec> specs = {
      {"config", 0, true},     {"image", 0, true},     {"foreground", 'f', false},
      {"threads", 0, true},    {"log-level", 0, true}, {"allow-other", 0, false},
      {"read-only", 0, false},
  };
  auto args = parse_args(words, specs);
  if (!args) return usage_error("mount", args.error().message);
  if (has_flag(*args, "help")) {
    fmt::print("{}", help_text("mount"));
    return kExitOk;
  }
  std::vector<std::string> pos = positionals(*args);
  if (pos.size() != 1)
    return usage_error("mount", pos.empty() ? "missing MOUNTPOINT"
                                            : fmt::format("unexpected argument '{}'", pos[1]));

  MountSettings settings;
  settings.mountpoint = absolute_path(pos[0]);
  settings.foreground = has_flag(*args, "foreground");
  settings.allow_other = has_flag(*args, "allow-other");
  settings.read_only = has_flag(*args, "read-only");

  std::optional<spdlog::level::level_enum> cli_level;
  if (auto text = last_value(*args, "log-level")) {
    auto level = parse_log_level(*text);
    if (!level) return usage_error("mount", level.error().message);
    cli_level = *level;
  }
  std::optional<unsigned> cli_threads;
  if (auto text = last_value(*args, "threads")) {
    char* end = nullptr;
    unsigned long n = std::strtoul(text->c_str(), &end, 10);
    if (text->empty() || *end != '\0' || n == 0 || n > 1024 || (*text)[0] == '-')
      return usage_error("mount",
                         fmt::format("--threads '{}' is not a number from 1 to 1024", *text));
    cli_threads = static_cast<unsigned>(n);
  }
  for (const std::string& value : all_values(*args, "image")) {
    auto spec = parse_image_option(value);
    if (!spec) return usage_error("mount", spec.error().message);
    spec->path = absolute_path(spec->path);
    settings.images.push_back(std::move(*spec));
  }
  if (auto path = last_value(*args, "config")) {
    auto config = load_config(absolute_path(*path));
    if (!config) return failure(config.error().message);
    settings.config = std::move(*config);
  }

  settings.log_level = spdlog::level::info;
  if (cli_level) {
    settings.log_level = *cli_level;
  } else if (settings.config) {
    if (auto level = parse_log_level(settings.config->log_level)) settings.log_level = *level;
  }
  settings.threads = cli_threads ? *cli_threads : settings.config ? settings.config->threads : 0;

  return settings.foreground ? serve(settings, nullptr) : daemonize_and_serve(settings);
}

}  // namespace chainfs::cli
