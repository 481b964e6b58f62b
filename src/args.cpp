// Command-line words -> options and positional words (see cli.h), and the usage/failure output.
#include <cstdio>

#include <fmt/format.h>

#include "src/cli.h"

namespace chainfs::cli {

Result<std::vector<Arg>> parse_args(const std::vector<std::string>& words,
                                    const std::vector<OptionSpec>& specs) {
  auto find_long = [&](std::string_view name) -> const OptionSpec* {
    for (const OptionSpec& s : specs)
      if (s.name == name) return &s;
    return nullptr;
  };
  auto find_short = [&](char c) -> const OptionSpec* {
    for (const OptionSpec& s : specs)
      if (s.short_name == c) return &s;
    return nullptr;
  };
  static const OptionSpec kHelp{"help", 'h', false};

  std::vector<Arg> out;
  bool options_done = false;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (options_done || w.size() < 2 || w[0] != '-') {
      out.push_back({false, {}, w});
      continue;
    }
    if (w == "--") {
      options_done = true;
      continue;
    }
    const OptionSpec* spec = nullptr;
    std::optional<std::string> inline_value;
    std::string shown = w;
    if (w.rfind("--", 0) == 0) {
      std::string name = w.substr(2);
      if (size_t eq = name.find('='); eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name.resize(eq);
        shown = "--" + name;
      }
      spec = name == "help" ? &kHelp : find_long(name);
    } else if (w.size() == 2) {
      spec = w[1] == 'h' ? &kHelp : find_short(w[1]);
    }
    if (!spec) return make_error(Errc::Invalid, "unknown option '{}'", shown);
    Arg arg{true, spec->name, {}};
    if (spec->takes_value) {
      if (inline_value) {
        arg.value = *inline_value;
      } else {
        if (i + 1 >= words.size())
          return make_error(Errc::Invalid, "option '{}' needs a value", shown);
        arg.value = words[++i];
      }
    } else if (inline_value) {
      return make_error(Errc::Invalid, "option '{}' takes no value", shown);
    }
    out.push_back(std::move(arg));
  }
  return out;
}

std::vector<std::string> positionals(const std::vector<Arg>& args) {
  std::vector<std::string> out;
  for (const Arg& a : args)
    if (!a.is_option) out.push_back(a.value);
  return out;
}

bool has_flag(const std::vector<Arg>& args, std::string_view name) {
  for (const Arg& a : args)
    if (a.is_option && a.name == name) return true;
  return false;
}

std::optional<std::string> last_value(const std::vector<Arg>& args, std::string_view name) {
  std::optional<std::string> out;
  for (const Arg& a : args)
    if (a.is_option && a.name == name) out = a.value;
  return out;
}

std::vector<std::string> all_values(const std::vector<Arg>& args, std::string_view name) {
  std::vector<std::string> out;
  for (const Arg& a : args)
    if (a.is_option && a.name == name) out.push_back(a.value);
  return out;
}

int usage_error(std::string_view command, std::string_view message) {
  fmt::print(stderr, "chainfs{}{}: {}\nTry 'chainfs {}--help' for more information.\n",
             command.empty() ? "" : " ", command, message,
             command.empty() ? "" : fmt::format("{} ", command));
  return kExitUsage;
}

int failure(std::string_view message) {
  std::string_view rest = message;
  while (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
  if (rest.empty()) rest = "failed";
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    fmt::print(stderr, "chainfs: {}\n", rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return kExitFailed;
}

}  // namespace chainfs::cli
