#include "config/size.h"

#include <cctype>

namespace chainfs {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// The multiplier of a suffix (its letter and an optional "B" or "iB"), or 0 if not a suffix.
uint64_t suffix_multiplier(std::string_view suffix) {
  if (suffix.empty()) return 1;
  std::string_view rest = suffix.substr(1);
  if (!(rest.empty() || rest == "B" || rest == "iB")) return 0;
  switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
    case 'K':
      return uint64_t{1} << 10;
    case 'M':
      return uint64_t{1} << 20;
    case 'G':
      return uint64_t{1} << 30;
    case 'T':
      return uint64_t{1} << 40;
    default:
      return 0;
  }
}

}  // namespace

Result<uint64_t> parse_size(std::string_view text) {
  if (text.empty()) return make_error(Errc::Invalid, "empty size");
  size_t pos = 0;
  while (pos < text.size() && is_digit(text[pos])) ++pos;
  std::string_view whole = text.substr(0, pos);
  std::string_view fraction;
  if (pos < text.size() && text[pos] == '.') {
    size_t start = ++pos;
    while (pos < text.size() && is_digit(text[pos])) ++pos;
    fraction = text.substr(start, pos - start);
    if (fraction.empty())
      return make_error(Errc::Invalid, "invalid size '{}': no digits after the '.'", text);
  }
  if (whole.empty())
    return make_error(Errc::Invalid,
                      "invalid size '{}': expected a number such as 4096, 64K or 1.5G", text);
  std::string_view suffix = text.substr(pos);
  uint64_t multiplier = suffix_multiplier(suffix);
  if (multiplier == 0)
    return make_error(Errc::Invalid, "invalid size '{}': unknown suffix '{}' (use K, M, G or T)",
                      text, suffix);
  if (!fraction.empty() && multiplier == 1)
    return make_error(Errc::Invalid,
                      "invalid size '{}': a fraction needs a suffix K, M, G or T (bytes are whole)",
                      text);

  // Whole part: overflow-checked decimal accumulation, then the multiplier.
  constexpr uint64_t kMax = UINT64_MAX;
  uint64_t value = 0;
  for (char c : whole) {
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (kMax - digit) / 10)
      return make_error(Errc::Invalid, "size '{}' is too large (at most {} bytes)", text, kMax);
    value = value * 10 + digit;
  }
  if (value > kMax / multiplier)
    return make_error(Errc::Invalid, "size '{}' is too large (at most {} bytes)", text, kMax);
  value *= multiplier;

  // Fraction: floor(digits * multiplier / 10^n), exact: the multiplier is 2^k, so this is long
  // division by 10^n of digits shifted left k bits, one bit at a time (the remainder stays below
  // 10^18, so doubling it fits). More than 18 digits is refused: no byte count needs them.
  if (!fraction.empty()) {
    if (fraction.size() > 18)
      return make_error(Errc::Invalid, "invalid size '{}': too many digits after the '.'", text);
    uint64_t remainder = 0;
    uint64_t denominator = 1;
    for (char c : fraction) {
      remainder = remainder * 10 + static_cast<uint64_t>(c - '0');
      denominator *= 10;
    }
    uint64_t part = remainder / denominator;  // 0: the digits are a proper fraction
    remainder %= denominator;
    for (uint64_t bit = multiplier; bit > 1; bit >>= 1) {
      remainder *= 2;
      part = part * 2 + remainder / denominator;
      remainder %= denominator;
    }
    if (value > kMax - part)
      return make_error(Errc::Invalid, "size '{}' is too large (at most {} bytes)", text, kMax);
    value += part;
  }
  return value;
}

}  // namespace chainfs
