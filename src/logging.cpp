#include "src/logging.h"

#include <syslog.h>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/syslog_sink.h>

namespace chainfs::cli {

Result<spdlog::level::level_enum> parse_log_level(std::string_view text) {
  if (text == "trace") return spdlog::level::trace;
  if (text == "debug") return spdlog::level::debug;
  if (text == "info") return spdlog::level::info;
  if (text == "warn") return spdlog::level::warn;
  if (text == "error") return spdlog::level::err;
  return make_error(Errc::Invalid, "log level '{}' is not one of trace, debug, info, warn, error",
                    text);
}

Logging make_logging(spdlog::level::level_enum level) {
  Logging out;
  auto stderr_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  stderr_sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  out.output = std::make_shared<spdlog::sinks::dist_sink_mt>();
  out.output->add_sink(stderr_sink);
  out.output->set_level(level);
  out.ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(kLogRingLines);
  out.ring->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  out.ring->set_level(spdlog::level::info);
  out.logger =
      std::make_shared<spdlog::logger>("chainfs", spdlog::sinks_init_list{out.output, out.ring});
  out.logger->set_level(std::min(level, spdlog::level::info));
  out.logger->flush_on(spdlog::level::trace);
  return out;
}

void switch_to_syslog(Logging& logging) {
  auto syslog =
      std::make_shared<spdlog::sinks::syslog_sink_mt>("chainfs", LOG_PID, LOG_DAEMON, true);
  syslog->set_pattern("%v");
  logging.output->set_sinks({syslog});
}

}  // namespace chainfs::cli
