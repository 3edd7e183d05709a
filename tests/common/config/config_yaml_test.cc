#include "common/config/config_yaml.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice {
namespace config_yaml {
namespace {

using ::testing::ElementsAre;

TEST(ConfigYamlTest, FieldErrorNamesPathAndPosition) {
  YAML::Node root = YAML::Load("a:\n  b: 7\n");
  EXPECT_EQ(FieldError("a.b", root["a"]["b"], "bad").message(),
            "a.b: bad (line 2, column 6)");
  EXPECT_EQ(FieldError("", root, "bad").message(),
            "config: bad (line 1, column 1)");
  // An empty value has no useful position.
  YAML::Node empty = YAML::Load("a:\n");
  EXPECT_EQ(FieldError("a", empty["a"], "required").message(), "a: required");
}

TEST(ConfigYamlTest, GotDescribesNodes) {
  EXPECT_EQ(Got(YAML::Load("x\"y")), "\"x\\\"y\"");
  EXPECT_EQ(Got(YAML::Load("[1]")), "a list");
  EXPECT_EQ(Got(YAML::Load("{a: 1}")), "a map");
  EXPECT_EQ(Got(YAML::Node()), "nothing");
  EXPECT_EQ(Got(YAML::Load(std::string(70, 'z'))),
            "\"" + std::string(60, 'z') + "...\"");
}

TEST(ConfigYamlTest, JoinBuildsPaths) {
  EXPECT_EQ(Join("", "a"), "a");
  EXPECT_EQ(Join("a.b", "c"), "a.b.c");
}

TEST(ConfigYamlTest, ForEachFieldVisitsKnownKeysInOrder) {
  std::vector<std::string> seen;
  absl::Status status = ForEachField(
      YAML::Load("b: 1\na: 2\n"), "top", {"a", "b"},
      [&](absl::string_view key, const YAML::Node&, const std::string& path) {
        seen.push_back(std::string(key) + "=" + path);
        return absl::OkStatus();
      });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(seen, ElementsAre("b=top.b", "a=top.a"));
}

TEST(ConfigYamlTest, ForEachFieldRejectsUnknownDuplicateAndNonMaps) {
  auto run = [](const std::string& yaml) -> std::string {
    return std::string(
        ForEachField(YAML::Load(yaml), "top", {"a", "b"},
                     [](absl::string_view, const YAML::Node&,
                        const std::string&) { return absl::OkStatus(); })
            .message());
  };
  EXPECT_EQ(run("a: 1\nc: 2\n"),
            "top.c: unknown field (expected one of: a, b) (line 2, column 1)");
  EXPECT_EQ(run("a: 1\na: 2\n"), "top.a: duplicate field (line 2, column 1)");
  EXPECT_EQ(run("[1, 2]"),
            "top: must be a map (got a list) (line 1, column 1)");
  EXPECT_EQ(run("? [1]\n: 2\n"),
            "top: keys must be plain strings (line 1, column 3)");
  EXPECT_TRUE(ForEachField(
                  YAML::Node(), "top", {"a"},
                  [](absl::string_view, const YAML::Node&, const std::string&) {
                    return absl::InvalidArgumentError("called");
                  })
                  .ok());
}

TEST(ConfigYamlTest, ForEachFieldStopsAtTheFirstError) {
  int calls = 0;
  absl::Status status = ForEachField(
      YAML::Load("a: 1\nb: 2\n"), "", {"a", "b"},
      [&](absl::string_view, const YAML::Node&, const std::string& path) {
        ++calls;
        return absl::InvalidArgumentError(path);
      });
  EXPECT_EQ(status.message(), "a");
  EXPECT_EQ(calls, 1);
}

TEST(ConfigYamlTest, ForEachItemIndexesPaths) {
  std::vector<std::string> paths;
  absl::Status status =
      ForEachItem(YAML::Load("[x, y]"), "list",
                  [&](const YAML::Node&, const std::string& path) {
                    paths.push_back(path);
                    return absl::OkStatus();
                  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_THAT(paths, ElementsAre("list[0]", "list[1]"));
  EXPECT_EQ(ForEachItem(YAML::Load("{a: 1}"), "list",
                        [](const YAML::Node&, const std::string&) {
                          return absl::OkStatus();
                        })
                .message(),
            "list: must be a list (got a map) (line 1, column 1)");
}

TEST(ConfigYamlTest, ReadsScalars) {
  std::string s;
  ASSERT_TRUE(ReadString(YAML::Load("hello"), "s", &s).ok());
  EXPECT_EQ(s, "hello");
  EXPECT_EQ(ReadString(YAML::Load("[1]"), "s", &s).message(),
            "s: must be a string (got a list) (line 1, column 1)");

  bool b = false;
  ASSERT_TRUE(ReadBool(YAML::Load("yes"), "b", &b).ok());
  EXPECT_TRUE(b);
  EXPECT_EQ(ReadBool(YAML::Load("maybe"), "b", &b).message(),
            "b: must be true or false (got \"maybe\") (line 1, column 1)");

  int n = 0;
  ASSERT_TRUE(ReadInt(YAML::Load("42"), "n", 1, 100, &n).ok());
  EXPECT_EQ(n, 42);
  EXPECT_EQ(ReadInt(YAML::Load("0"), "n", 1, 100, &n).message(),
            "n: must be an integer in 1..100 (got \"0\") (line 1, column 1)");
  EXPECT_EQ(n, 42);
}

TEST(ConfigYamlTest, ValidNames) {
  EXPECT_TRUE(IsValidName("openai"));
  EXPECT_TRUE(IsValidName("a-b_c.9"));
  EXPECT_TRUE(IsValidName(std::string(64, 'a')));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName(std::string(65, 'a')));
  EXPECT_FALSE(IsValidName("bad name"));
  EXPECT_FALSE(IsValidName("a/b"));
}

}  // namespace
}  // namespace config_yaml
}  // namespace sluice
