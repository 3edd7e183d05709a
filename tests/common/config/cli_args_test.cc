#include "common/config/cli_args.h"

#include <gtest/gtest.h>

#include <vector>

namespace sluice {
namespace {

constexpr char kUsage[] = "usage: prog [--config FILE]\n";

CliArgs Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return ParseCliArgs(static_cast<int>(args.size()), args.data(), "prog",
                      "1.2.3", kUsage);
}

TEST(CliArgsTest, NoArgumentsMeansDefaults) {
  CliArgs args = Parse({});
  EXPECT_FALSE(args.exit_code.has_value());
  EXPECT_EQ(args.config_path, "");
  EXPECT_FALSE(args.check_only);
}

TEST(CliArgsTest, ReadsConfigInBothForms) {
  CliArgs args = Parse({"--config", "a.yaml", "--check-config"});
  EXPECT_FALSE(args.exit_code.has_value());
  EXPECT_EQ(args.config_path, "a.yaml");
  EXPECT_TRUE(args.check_only);

  args = Parse({"--config=b.yaml"});
  EXPECT_FALSE(args.exit_code.has_value());
  EXPECT_EQ(args.config_path, "b.yaml");
  EXPECT_FALSE(args.check_only);

  // The last one wins.
  EXPECT_EQ(Parse({"--config=b.yaml", "--config", "c.yaml"}).config_path,
            "c.yaml");
}

TEST(CliArgsTest, HelpAndVersionStopWithZero) {
  for (const char* help : {"--help", "-h"}) {
    CliArgs args = Parse({"--check-config", help, "--bogus"});
    EXPECT_EQ(args.exit_code, 0) << help;
    EXPECT_EQ(args.output, kUsage) << help;
  }
  CliArgs args = Parse({"--version"});
  EXPECT_EQ(args.exit_code, 0);
  EXPECT_EQ(args.output, "prog 1.2.3\n");
}

TEST(CliArgsTest, UnknownArgumentStopsWithTwoAndTheUsage) {
  CliArgs args = Parse({"--verbose"});
  EXPECT_EQ(args.exit_code, 2);
  EXPECT_EQ(args.output,
            "prog: unknown argument '--verbose'\n\nusage: prog [--config "
            "FILE]\n");
  // --config with nothing after it is unknown too.
  args = Parse({"--config"});
  EXPECT_EQ(args.exit_code, 2);
  EXPECT_EQ(args.output,
            "prog: unknown argument '--config'\n\nusage: prog [--config "
            "FILE]\n");
}

}  // namespace
}  // namespace sluice
