// The daemon's logger: one spdlog logger (not registered globally) with two destinations.
//   output  stderr in the foreground and until the daemon is ready, syslog afterwards; filtered
//           at --log-level.
//   ring    the most recent events at info and above, shown in the mount's `log` file whatever
//           --log-level says (refusals must always be there).
#pragma once

#include <memory>
#include <string_view>

#include <spdlog/logger.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include "blockcore/result.h"

namespace chainfs::cli {

constexpr size_t kLogRingLines = 1000;

struct Logging {
  std::shared_ptr<spdlog::logger> logger;
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> ring;
  std::shared_ptr<spdlog::sinks::dist_sink_mt> output;
};

// trace | debug | info | warn | error (Invalid otherwise).
Result<spdlog::level::level_enum> parse_log_level(std::string_view text);

Logging make_logging(spdlog::level::level_enum level);
// Moves `output` from stderr to syslog (ident "chainfs", facility daemon).
void switch_to_syslog(Logging& logging);

}  // namespace chainfs::cli
