// Sizes as users write them: in the config (offset, length) and on the command line (SIZE, RATE).
#pragma once

#include <cstdint>
#include <string_view>

#include "blockcore/result.h"

namespace chainfs {

// Parses a byte count: a decimal integer with an optional suffix K, M, G or T (powers of 1024,
// either case, optionally followed by "B" or "iB": "4K", "4k", "4KiB", "1G"). With a suffix a
// decimal fraction is allowed ("1.5G"); the result is rounded down to a whole byte. No sign, no
// spaces, no hexadecimal. Errors (Errc::Invalid) say what is wrong: empty, not a number, unknown
// suffix, or too large for 64 bits.
Result<uint64_t> parse_size(std::string_view text);

}  // namespace chainfs
