#include "blockcore/jobs/job_status.h"

#include <algorithm>
#include <array>
#include <cctype>

#include <fmt/format.h>

#include "blockcore/jobs/rate.h"
#include "blockcore/util/quote.h"

namespace chainfs {

namespace {

// Words a YAML 1.1 or 1.2 reader would take for null or a boolean.
bool is_reserved_word(std::string_view text) {
  static constexpr std::array<std::string_view, 11> kWords = {
      "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", "=",
  };
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::find(kWords.begin(), kWords.end(), lower) != kWords.end();
}

bool needs_quotes(std::string_view text) {
  if (text.empty() || is_reserved_word(text)) return true;
  // Indicators and anything a reader could take for a number (digits, signs, ".inf", ".5").
  static constexpr std::string_view kBadFirst = "-?:,[]{}#&*!|>'\"%@`+.0123456789 ";
  if (kBadFirst.find(text.front()) != std::string_view::npos) return true;
  if (text.back() == ' ' || text.back() == ':') return true;
  if (text.find(": ") != std::string_view::npos || text.find(" #") != std::string_view::npos)
    return true;
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

}  // namespace

std::string yaml_scalar(std::string_view text) {
  return needs_quotes(text) ? double_quoted(text) : std::string(text);
}

std::string render_job_status_yaml(const JobInfo& info) {
  std::string out;
  out += fmt::format("id: {}\n", yaml_scalar(info.id));
  out += fmt::format("type: {}\n", yaml_scalar(info.type));
  out += fmt::format("state: {}\n", job_state_name(info.state));
  out += fmt::format("node: {}\n", yaml_scalar(info.node));
  out += fmt::format("base: {}\n", info.base.empty() ? "~" : yaml_scalar(info.base));
  out += fmt::format("progress: {}\n", info.progress);
  out += fmt::format("total: {}\n", info.total);
  out += fmt::format("speed: {}\n", info.speed);
  out += fmt::format("rate: {}\n", format_rate(info.rate));
  out += fmt::format("io-status: {}\n", io_status_name(info.io_status));
  out += fmt::format("error: {}\n", info.error ? yaml_scalar(*info.error) : "~");
  return out;
}

}  // namespace chainfs
