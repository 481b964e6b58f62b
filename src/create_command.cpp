// chainfs create FILE SIZE [--backing FILE] [--cluster-size N]
#include <fmt/format.h>

#include "blockcore/drivers/qcow2/create.h"
#include "config/size.h"
#include "fusefs/render.h"
#include "src/cli.h"

namespace chainfs::cli {

int create_command(const std::vector<std::string>& words) {
  static const std::vector<OptionSpec> specs = {{"backing", 0, true}, {"cluster-size", 0, true}};
  auto args = parse_args(words, specs);
  if (!args) return usage_error("create", args.error().message);
  if (has_flag(*args, "help")) {
    fmt::print("{}", help_text("create"));
    return kExitOk;
  }
  std::vector<std::string> pos = positionals(*args);
  if (pos.size() != 2)
    return usage_error("create", pos.size() < 2 ? "expected FILE and SIZE"
                                                : fmt::format("unexpected argument '{}'", pos[2]));
  Qcow2CreateOptions options;
  options.path = pos[0];
  auto size = parse_size(pos[1]);
  if (!size)
    return usage_error("create", fmt::format("SIZE '{}': {}", pos[1], size.error().message));
  options.size = *size;
  if (auto backing = last_value(*args, "backing")) options.backing_file = *backing;
  if (auto cluster = last_value(*args, "cluster-size")) {
    auto n = parse_size(*cluster);
    if (!n)
      return usage_error("create",
                         fmt::format("--cluster-size '{}': {}", *cluster, n.error().message));
    if (*n < 512 || *n > (2u << 20) || (*n & (*n - 1)) != 0)
      return usage_error(
          "create",
          fmt::format("--cluster-size '{}' is not a power of two from 512 to 2M", *cluster));
    options.cluster_size = static_cast<uint32_t>(*n);
  }
  if (options.size == 0 && options.backing_file.empty())
    return usage_error("create", "SIZE 0 needs --backing (the backing file's size is used)");
  if (auto created = qcow2_create(options); !created) return failure(created.error().message);
  fmt::print("created {} (qcow2, {}{})\n", options.path,
             options.size ? fusefs::human_size(options.size) : "backing's size",
             options.backing_file.empty() ? "" : fmt::format(", backing {}", options.backing_file));
  return kExitOk;
}

}  // namespace chainfs::cli
