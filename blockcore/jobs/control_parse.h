// The words of control lines (INTERFACE.md "Control files"): one command per line,
// whitespace-separated words, options as key=value. The job engine's own parser, so that blockcore
// depends on nothing above it (the FUSE layer hands over the raw text of a write).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "blockcore/result.h"

namespace chainfs {

struct CommandLine {
  std::string text;                            // the line, trimmed (for messages and the log)
  std::vector<std::string> words;              // the words that are not options, in order
  std::map<std::string, std::string> options;  // key=value words
};

// `key=value` where key is a letter followed by letters, digits, '-' or '_' (so a path with a '='
// after a '/' stays a plain word).
bool is_option_word(std::string_view word);

// Splits the text of one write into command lines. Blank lines and lines starting with '#' are
// skipped. Refused (Invalid): a NUL byte, an option given twice or without a value, no command.
Result<std::vector<CommandLine>> parse_command_lines(std::string_view text);

// A rate or size: a decimal number with an optional suffix K, M, G or T (powers of 1024, either
// case, optionally followed by "B" or "iB"); with a suffix a fraction is allowed ("1.5M"), rounded
// down to a whole byte. 0 = unlimited for a rate. Refused (Invalid) with the reason.
Result<uint64_t> parse_rate(std::string_view text);

// on|off (also true|false, yes|no, 1|0) for option `key`.
Result<bool> parse_switch(std::string_view key, std::string_view value);

}  // namespace chainfs
