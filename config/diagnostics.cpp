#include "config/diagnostics.h"

#include <algorithm>
#include <cctype>

namespace chainfs::config_detail {

void Problems::add(int line, std::string_view context, std::string text, Errc code) {
  if (!context.empty()) text = fmt::format("{}: {}", context, text);
  problems_.push_back({line, std::move(text), code});
}

Error Problems::to_error() const {
  std::vector<const Problem*> sorted;
  for (const Problem& p : problems_) sorted.push_back(&p);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Problem* a, const Problem* b) { return a->line < b->line; });
  std::string message;
  for (const Problem* p : sorted) {
    if (!message.empty()) message += '\n';
    message += p->line > 0 ? fmt::format("{}:{}: {}", file_, p->line, p->text)
                           : fmt::format("{}: {}", file_, p->text);
  }
  return Error{sorted.empty() ? Errc::Invalid : sorted.front()->code, std::move(message)};
}

size_t edit_distance(std::string_view a, std::string_view b) {
  // Optimal string alignment: insertions, deletions, substitutions and swaps of two neighbours
  // ("raed" -> "read") each cost 1. Letters compare case-insensitively.
  auto same = [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  };
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (same(a[i - 1], b[j - 1]) ? 0 : 1)});
      if (i > 1 && j > 1 && same(a[i - 1], b[j - 2]) && same(a[i - 2], b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string_view closest_match(std::string_view word,
                               const std::vector<std::string_view>& candidates) {
  // A typo is a couple of edits, fewer for short words ("fiel" -> "file", not "x" -> "raw");
  // failing that, a word that merely adds to or cuts a candidate ("warning" -> "warn").
  size_t limit = std::min<size_t>(3, std::max<size_t>(1, word.size() / 3));
  std::string_view best;
  size_t best_distance = limit + 1;
  for (std::string_view candidate : candidates) {
    size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  if (!best.empty()) return best;
  for (std::string_view candidate : candidates) {
    size_t shorter = std::min(word.size(), candidate.size());
    if (shorter >= 3 && (word.starts_with(candidate) || candidate.starts_with(word)))
      return candidate;
  }
  return {};
}

std::string did_you_mean(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string_view match = closest_match(word, candidates);
  return match.empty() ? std::string() : fmt::format(" (did you mean '{}'?)", match);
}

std::string join(const std::vector<std::string_view>& words) {
  std::string out;
  for (std::string_view w : words) {
    if (!out.empty()) out += ", ";
    out += w;
  }
  return out;
}

}  // namespace chainfs::config_detail
