#include <gtest/gtest.h>

#include "config/image_option.h"

namespace chainfs {
namespace {

ImageSpec parsed(std::string_view text) {
  Result<ImageSpec> r = parse_image_option(text);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : ImageSpec{};
}

std::string error_of(std::string_view text) {
  Result<ImageSpec> r = parse_image_option(text);
  EXPECT_FALSE(r.ok()) << text;
  if (r.ok()) return {};
  EXPECT_EQ(r.error().code, Errc::Invalid);
  return r.error().message;
}

TEST(ParseImageOption, PathAlone_LeavesDefaults) {
  ImageSpec spec = parsed("/images/top.qcow2");
  EXPECT_EQ(spec.path, "/images/top.qcow2");
  EXPECT_EQ(spec.chain, "");
  EXPECT_EQ(spec.node_name, "");
  EXPECT_FALSE(spec.read_only);
}

TEST(ParseImageOption, AllOptionsInAnyOrder_AreTaken) {
  ImageSpec spec = parsed("rel/top.qcow2,read-only,name=disk0,chain=vm");
  EXPECT_EQ(spec.path, "rel/top.qcow2");
  EXPECT_EQ(spec.chain, "vm");
  EXPECT_EQ(spec.node_name, "disk0");
  EXPECT_TRUE(spec.read_only);

  EXPECT_TRUE(parsed("a.qcow2,read-only=on").read_only);
  EXPECT_FALSE(parsed("a.qcow2,read-only=off").read_only);
}

TEST(ParseImageOption, DoubledComma_IsACommaInThePath) {
  ImageSpec spec = parsed("/images/a,,b.qcow2,chain=vm");
  EXPECT_EQ(spec.path, "/images/a,b.qcow2");
  EXPECT_EQ(spec.chain, "vm");
}

TEST(ParseImageOption, Mistakes_AreRefusedWithTheReason) {
  EXPECT_EQ(error_of(""), "--image '': the image path comes first and is missing");
  EXPECT_EQ(error_of(",chain=vm"),
            "--image ',chain=vm': the image path comes first and is missing");
  EXPECT_EQ(error_of("a.qcow2,chian=vm"),
            "--image 'a.qcow2,chian=vm': unknown option 'chian' (did you mean 'chain'?)");
  EXPECT_EQ(
      error_of("a.qcow2,format=raw"),
      "--image 'a.qcow2,format=raw': unknown option 'format' (known: chain, name, read-only)");
  EXPECT_EQ(error_of("a.qcow2,chain=x,chain=y"),
            "--image 'a.qcow2,chain=x,chain=y': option 'chain' is given twice");
  EXPECT_EQ(error_of("a.qcow2,chain"),
            "--image 'a.qcow2,chain': option 'chain' needs a value (chain=NAME)");
  EXPECT_EQ(error_of("a.qcow2,name="),
            "--image 'a.qcow2,name=': option 'name' needs a value (name=NAME)");
  EXPECT_EQ(error_of("a.qcow2,"), "--image 'a.qcow2,': empty option (a stray ',')");
  EXPECT_EQ(error_of("a.qcow2,read-only=yes"),
            "--image 'a.qcow2,read-only=yes': read-only takes no value, or on|off, not 'yes'");
  EXPECT_EQ(error_of("a.qcow2,name=a/b"),
            "--image 'a.qcow2,name=a/b': name: name 'a/b' contains '/' (names are file names and "
            "control-file words)");
  EXPECT_EQ(error_of("a.qcow2,chain=.."),
            "--image 'a.qcow2,chain=..': chain: '..' cannot be used as a name");
  EXPECT_EQ(
      error_of("a.qcow2,chain=a b"),
      "--image 'a.qcow2,chain=a b': chain: name 'a b' contains whitespace or a control character");
}

}  // namespace
}  // namespace chainfs
