// The chainfs binary: subcommands, their arguments and the helpers they share.
//
// Exit codes (INTERFACE.md): 0 success, 1 operation refused or failed (stderr says why),
// 2 usage error.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "blockcore/result.h"

namespace chainfs::cli {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// ---- arguments ----------------------------------------------------------------------------------

struct OptionSpec {
  std::string name;     // long name without dashes: "threads"
  char short_name = 0;  // 'f' for -f, 0 for none
  bool takes_value = false;
};

// One command-line word after the subcommand, in order: a positional word or an option.
struct Arg {
  bool is_option = false;
  std::string name;   // option: its long name
  std::string value;  // option: its value ("" for flags); positional: the word
};

// Parses `--name VALUE`, `--name=VALUE`, `-x`, and positional words in any order; "--" ends the
// options. `--help`/`-h` are always known (as option "help"). Errors are usage errors (Invalid).
Result<std::vector<Arg>> parse_args(const std::vector<std::string>& words,
                                    const std::vector<OptionSpec>& specs);

// Helpers over parsed args.
std::vector<std::string> positionals(const std::vector<Arg>& args);
bool has_flag(const std::vector<Arg>& args, std::string_view name);
std::optional<std::string> last_value(const std::vector<Arg>& args, std::string_view name);
std::vector<std::string> all_values(const std::vector<Arg>& args, std::string_view name);

// A usage error: prints "chainfs CMD: MESSAGE" and a hint to --help, returns kExitUsage.
int usage_error(std::string_view command, std::string_view message);
// A failure: prints "chainfs: MESSAGE" (each line of a multi-line message prefixed), returns
// kExitFailed.
int failure(std::string_view message);

// ---- subcommands
// ----------------------------------------------------------------------------------

// Each takes the words after its name and returns the exit code.
int mount_command(const std::vector<std::string>& words);
int create_command(const std::vector<std::string>& words);
int status_command(const std::vector<std::string>& words);
int stream_command(const std::vector<std::string>& words);
int commit_command(const std::vector<std::string>& words);
int snapshot_command(const std::vector<std::string>& words);
int job_command(const std::vector<std::string>& words);

// Help text of a subcommand ("" for the overview); empty if unknown.
std::string help_text(std::string_view command);

// ---- talking to a mount
// ---------------------------------------------------------------------------

// Writes `text` (one or more lines) into MOUNT/control/FILE through one open file descriptor and
// reads the outcome back from it. Returns the job id the command started ("" for none), or the
// refusal: the errno of the write as Errc, with the daemon's message ("error ENAME: message").
Result<std::string> run_control_command(const std::string& mountpoint, const std::string& file,
                                        const std::string& text);

// Follows MOUNT/jobs/ID until the job concludes (exit 0, or 1 with its error) or, for an active
// commit, is ready (exit 0 with a hint to complete it), showing its progress on stdout.
int wait_for_job(const std::string& mountpoint, const std::string& id);

// Reads a whole file (generated files have st_size 0: read to the end).
Result<std::string> read_text_file(const std::string& path);

}  // namespace chainfs::cli
