#include "common/config/config_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

// A fresh path under the test's temporary directory, removed afterwards.
class ConfigFileTest : public ::testing::Test {
 protected:
  ConfigFileTest()
      : dir_(std::filesystem::path(::testing::TempDir()) /
             ("config_file_test_" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir_);
  }
  ~ConfigFileTest() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(ConfigFileTest, ReadsTheWholeFileByteForByte) {
  const std::string text = std::string("a: 1\n\0b: \xff\n", 11);
  auto got = ReadConfigFile(Write("c.yaml", text));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, text);
}

TEST_F(ConfigFileTest, AMissingFileIsNotFoundAndNamed) {
  const std::string path = (dir_ / "missing.yaml").string();
  auto got = ReadConfigFile(path);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(got.status().message(), HasSubstr(path));
  // A file where a directory should be is as missing.
  const std::string under = Write("plain", "x") + "/c.yaml";
  EXPECT_EQ(ReadConfigFile(under).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ConfigFileTest, ADirectoryOrAFifoIsNotAConfig) {
  auto dir = ReadConfigFile(dir_.string());
  EXPECT_EQ(dir.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dir.status().message(), HasSubstr("regular file"));
  // A FIFO with no writer would block a plain open: it must not.
  const std::string fifo = (dir_ / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto got = ReadConfigFile(fifo);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(got.status().message(), HasSubstr(fifo));
}

TEST_F(ConfigFileTest, AnOversizedFileIsRefusedBeforeItIsRead) {
  const std::string path = Write("big.yaml", "");
  std::filesystem::resize_file(path, kMaxConfigFileBytes + 1);
  auto got = ReadConfigFile(path);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(got.status().message(), HasSubstr("larger than 4 MiB"));
  std::filesystem::resize_file(path, kMaxConfigFileBytes);
  EXPECT_TRUE(ReadConfigFile(path).ok());
}

TEST_F(ConfigFileTest, LoadPutsThePathInFrontOfAParseError) {
  const std::string path = Write("c.yaml", "rate: x");
  auto parsed = LoadConfigFile<int>(path, [](std::string_view text) {
    EXPECT_EQ(text, "rate: x");
    return absl::StatusOr<int>(
        absl::InvalidArgumentError("rate: not a number"));
  });
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(parsed.status().message(), path + ": rate: not a number");
  auto ok = LoadConfigFile<int>(
      path, [](std::string_view) { return absl::StatusOr<int>(7); });
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 7);
}

}  // namespace
}  // namespace sluice
