// Problems found in a config file, collected so that one run reports them all, each as one line
// "FILE:LINE: problem". Internal to config/.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "blockcore/result.h"

namespace chainfs::config_detail {

class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}

  // `context` names the item ("node 'base'", "chain #2"); empty at the top level.
  void add(int line, std::string_view context, std::string text, Errc code = Errc::Invalid);
  bool empty() const { return problems_.empty(); }
  // All problems, ordered by line (ties keep the order they were found in), one per line. The
  // code is that of the first one.
  Error to_error() const;

 private:
  struct Problem {
    int line;
    std::string text;
    Errc code;
  };
  std::string file_;
  std::vector<Problem> problems_;
};

// Levenshtein distance, for "did you mean" hints.
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` if it is close enough to be a likely typo, else "".
std::string_view closest_match(std::string_view word,
                               const std::vector<std::string_view>& candidates);

// " (did you mean 'x'?)" or "".
std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates);

// "a, b, c".
std::string join(const std::vector<std::string_view>& words);

}  // namespace chainfs::config_detail
