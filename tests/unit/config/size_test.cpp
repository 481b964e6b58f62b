#include <gtest/gtest.h>

#include "config/size.h"

namespace chainfs {
namespace {

uint64_t size_of(std::string_view text) {
  Result<uint64_t> r = parse_size(text);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : ~uint64_t{0};
}

std::string error_of(std::string_view text) {
  Result<uint64_t> r = parse_size(text);
  EXPECT_FALSE(r.ok()) << text << " parsed as " << (r.ok() ? *r : 0);
  if (r.ok()) return {};
  EXPECT_EQ(r.error().code, Errc::Invalid);
  return r.error().message;
}

TEST(ParseSize, PlainIntegers_AreBytes) {
  EXPECT_EQ(size_of("0"), 0u);
  EXPECT_EQ(size_of("512"), 512u);
  EXPECT_EQ(size_of("18446744073709551615"), UINT64_MAX);
}

TEST(ParseSize, Suffixes_ArePowersOf1024InEitherCase) {
  EXPECT_EQ(size_of("4K"), 4096u);
  EXPECT_EQ(size_of("4k"), 4096u);
  EXPECT_EQ(size_of("64M"), 64ull << 20);
  EXPECT_EQ(size_of("2G"), 2ull << 30);
  EXPECT_EQ(size_of("3t"), 3ull << 40);
  EXPECT_EQ(size_of("1KB"), 1024u);
  EXPECT_EQ(size_of("1KiB"), 1024u);
  EXPECT_EQ(size_of("0G"), 0u);
}

TEST(ParseSize, FractionWithSuffix_RoundsDownToWholeBytes) {
  EXPECT_EQ(size_of("1.5G"), 3ull << 29);
  EXPECT_EQ(size_of("0.5K"), 512u);
  EXPECT_EQ(size_of("412.3M"), 432327884u);   // 432327884.8 rounded down
  EXPECT_EQ(size_of("0.1K"), 102u);           // 102.4 rounded down
  EXPECT_EQ(size_of("0.000000000001T"), 1u);  // 1.0995... bytes
  EXPECT_EQ(size_of("1.999999999999999999K"), 2047u);
}

TEST(ParseSize, Garbage_IsRefusedWithTheReason) {
  EXPECT_EQ(error_of(""), "empty size");
  EXPECT_EQ(error_of("abc"), "invalid size 'abc': expected a number such as 4096, 64K or 1.5G");
  EXPECT_EQ(error_of("-1"), "invalid size '-1': expected a number such as 4096, 64K or 1.5G");
  EXPECT_EQ(error_of(" 1"), "invalid size ' 1': expected a number such as 4096, 64K or 1.5G");
  EXPECT_EQ(error_of("0x10"), "invalid size '0x10': unknown suffix 'x10' (use K, M, G or T)");
  EXPECT_EQ(error_of("12Q"), "invalid size '12Q': unknown suffix 'Q' (use K, M, G or T)");
  EXPECT_EQ(error_of("1 K"), "invalid size '1 K': unknown suffix ' K' (use K, M, G or T)");
  EXPECT_EQ(error_of("1KK"), "invalid size '1KK': unknown suffix 'KK' (use K, M, G or T)");
  EXPECT_EQ(error_of("1.5"),
            "invalid size '1.5': a fraction needs a suffix K, M, G or T (bytes are whole)");
  EXPECT_EQ(error_of("1.K"), "invalid size '1.K': no digits after the '.'");
  EXPECT_EQ(error_of(".5K"), "invalid size '.5K': expected a number such as 4096, 64K or 1.5G");
  EXPECT_EQ(error_of("1.1234567890123456789K"),
            "invalid size '1.1234567890123456789K': too many digits after the '.'");
}

TEST(ParseSize, Overflow_IsRefused) {
  const std::string too_large = "size '{}' is too large (at most 18446744073709551615 bytes)";
  EXPECT_EQ(error_of("18446744073709551616"),
            fmt::format(fmt::runtime(too_large), "18446744073709551616"));
  EXPECT_EQ(error_of("99999999999999999999999"),
            fmt::format(fmt::runtime(too_large), "99999999999999999999999"));
  EXPECT_EQ(error_of("16777216T"), fmt::format(fmt::runtime(too_large), "16777216T"));
  EXPECT_EQ(size_of("16777215T"), 16777215ull << 40);
  // The largest fraction of a whole part that fits still fits: a fraction adds less than a unit.
  EXPECT_EQ(size_of("16777215.5T"), (16777215ull << 40) + (1ull << 39));
}

}  // namespace
}  // namespace chainfs
