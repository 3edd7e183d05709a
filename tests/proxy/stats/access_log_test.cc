#include "proxy/stats/access_log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace sluice {
namespace {

namespace json = boost::json;
using ::testing::HasSubstr;

// A fresh path under the test temp dir, removed at the end of the test.
class TempPath {
 public:
  TempPath() {
    static std::atomic<int> counter{0};
    path_ = testing::TempDir() + "sluice_access_log_test_" +
            std::to_string(::getpid()) + "_" + std::to_string(counter++) +
            ".log";
    std::filesystem::remove(path_);
  }
  ~TempPath() { std::filesystem::remove(path_); }
  const std::string& str() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

json::object ParseLine(const std::string& line) {
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  EXPECT_FALSE(ec) << ec.message() << " in: " << line;
  EXPECT_TRUE(v.is_object()) << line;
  return v.is_object() ? v.as_object() : json::object();
}

std::string Str(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  EXPECT_TRUE(v && v->is_string()) << key;
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

AccessRecord SampleRecord() {
  AccessRecord r;
  r.method = "GET";
  r.host = "api.example.com";
  r.path = "/v1/models";
  r.route = "api.example.com/v1";
  r.limit = "openai";
  r.status = 200;
  r.outcome = "forwarded";
  r.wait = std::chrono::microseconds(1500);
  r.upstream_duration = std::chrono::nanoseconds(12'345'678);
  r.total_duration = std::chrono::milliseconds(14);
  r.bytes_in = 321;
  r.bytes_out = 65'536;
  r.client = "127.0.0.1:50123";
  r.limited_by_sluice = false;
  return r;
}

// Lines are dated by this clock's wall time: 2026-01-01T00:00:00Z.
const FakeClock kClock;

TEST(AccessLogTest, WritesOneJsonObjectPerLine) {
  TempPath path;
  auto log = AccessLog::Open(true, path.str(), &kClock);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_TRUE((*log)->enabled());
  AccessRecord r = SampleRecord();
  (*log)->Write(r);
  r.status = 429;
  r.outcome = "limited_queue_full";
  r.limited_by_sluice = true;
  (*log)->Write(r);
  (*log)->Flush();

  const auto lines = ReadLines(path.str());
  ASSERT_EQ(lines.size(), 2u);
  json::object o = ParseLine(lines[0]);
  EXPECT_EQ(Str(o, "ts"), "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(Str(o, "method"), "GET");
  EXPECT_EQ(Str(o, "host"), "api.example.com");
  EXPECT_EQ(Str(o, "path"), "/v1/models");
  EXPECT_EQ(Str(o, "route"), "api.example.com/v1");
  EXPECT_EQ(Str(o, "limit"), "openai");
  EXPECT_EQ(o.at("status").to_number<int>(), 200);
  EXPECT_EQ(Str(o, "outcome"), "forwarded");
  EXPECT_DOUBLE_EQ(o.at("wait_ms").to_number<double>(), 1.5);
  EXPECT_DOUBLE_EQ(o.at("upstream_ms").to_number<double>(), 12.345);
  EXPECT_DOUBLE_EQ(o.at("duration_ms").to_number<double>(), 14);
  EXPECT_EQ(o.at("bytes_in").to_number<uint64_t>(), 321u);
  EXPECT_EQ(o.at("bytes_out").to_number<uint64_t>(), 65'536u);
  EXPECT_EQ(Str(o, "client"), "127.0.0.1:50123");
  EXPECT_EQ(o.at("limited_by_sluice"), json::value(false));
  EXPECT_EQ(o.size(), 15u);

  json::object o2 = ParseLine(lines[1]);
  EXPECT_EQ(o2.at("status").to_number<int>(), 429);
  EXPECT_EQ(Str(o2, "outcome"), "limited_queue_full");
  EXPECT_EQ(o2.at("limited_by_sluice"), json::value(true));
}

TEST(AccessLogTest, FormatsTimestampAsRfc3339MillisUtc) {
  // 2024-05-01T12:00:00Z plus 123.9 ms (truncated to .123).
  const absl::Time ts =
      absl::FromUnixSeconds(1714564800) + absl::Microseconds(123'900);
  json::object o = ParseLine(AccessLog::Format(SampleRecord(), ts));
  EXPECT_EQ(Str(o, "ts"), "2024-05-01T12:00:00.123Z");
  const absl::Time epoch = absl::UnixEpoch();
  EXPECT_EQ(Str(ParseLine(AccessLog::Format(SampleRecord(), epoch)), "ts"),
            "1970-01-01T00:00:00.000Z");
}

TEST(AccessLogTest, NeverLogsQueryOrFragment) {
  AccessRecord r = SampleRecord();
  r.path = "/v1/search?api_key=SECRET&q=1";
  const std::string line = AccessLog::Format(r, {});
  EXPECT_THAT(line, ::testing::Not(HasSubstr("SECRET")));
  EXPECT_EQ(Str(ParseLine(line), "path"), "/v1/search");
  r.path = "/a#frag";
  EXPECT_EQ(Str(ParseLine(AccessLog::Format(r, {})), "path"), "/a");
}

TEST(AccessLogTest, EscapesHostileStrings) {
  AccessRecord r = SampleRecord();
  const std::string host = "evil\"host\\\n{\"status\":1}\r\t\x01";
  const std::string path = "/caf\xC3\xA9/\xF0\x9F\x93\x9C";  // valid UTF-8
  r.host = host;
  r.path = path;
  const std::string line = AccessLog::Format(r, {});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  json::object o = ParseLine(line);
  EXPECT_EQ(Str(o, "host"), host);
  EXPECT_EQ(Str(o, "path"), path);
  EXPECT_EQ(o.at("status").to_number<int>(), 200);
}

TEST(AccessLogTest, ReplacesInvalidUtf8) {
  AccessRecord r = SampleRecord();
  // A stray continuation byte, an overlong '/', a surrogate, a truncated
  // sequence at the end.
  const std::string path =
      std::string("/a\x80z/\xC0\xAF/\xED\xA0\x80/\xE2\x82");
  r.path = path;
  json::object o = ParseLine(AccessLog::Format(r, {}));
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(Str(o, "path"), "/a" + fffd + "z/" + fffd + fffd + "/" + fffd +
                                fffd + fffd + "/" + fffd + fffd);
}

TEST(AccessLogTest, EmptyFieldsStayStrings) {
  AccessRecord r;  // all defaults
  json::object o = ParseLine(AccessLog::Format(r, {}));
  EXPECT_EQ(Str(o, "limit"), "");
  EXPECT_EQ(Str(o, "route"), "");
  EXPECT_EQ(o.at("status").to_number<int>(), 0);
  EXPECT_DOUBLE_EQ(o.at("wait_ms").to_number<double>(), 0);
  // Negative durations never show up as negative.
  r.total_duration = std::chrono::milliseconds(-5);
  EXPECT_DOUBLE_EQ(
      ParseLine(AccessLog::Format(r, {})).at("duration_ms").to_number<double>(),
      0);
}

TEST(AccessLogTest, DisabledLogIsANoOp) {
  TempPath path;
  auto log = AccessLog::Open(false, path.str(), &kClock);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_FALSE((*log)->enabled());
  (*log)->Write(SampleRecord());
  (*log)->Flush();
  EXPECT_FALSE(std::filesystem::exists(path.str()));
  // Even an impossible path is fine when disabled.
  EXPECT_TRUE(AccessLog::Open(false, "/nonexistent-dir/x/y.log", &kClock).ok());
}

TEST(AccessLogTest, UnopenablePathIsAnErrorNamingIt) {
  TempPath missing_dir;
  const std::string in_missing = missing_dir.str() + "/x/access.log";
  auto log = AccessLog::Open(true, in_missing, &kClock);
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(std::string(log.status().message()), HasSubstr(in_missing));
  // Directories are never created on the way.
  EXPECT_FALSE(std::filesystem::exists(missing_dir.str()));

  TempPath file;
  std::ofstream(file.str()) << "x";
  const std::string under_file = file.str() + "/access.log";
  log = AccessLog::Open(true, under_file, &kClock);
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(std::string(log.status().message()), HasSubstr(under_file));

  EXPECT_FALSE(AccessLog::Open(true, "", &kClock).ok());
}

TEST(AccessLogTest, DashMeansStdout) {
  testing::internal::CaptureStdout();
  {
    auto log = AccessLog::Open(true, "-", &kClock);
    ASSERT_TRUE(log.ok()) << log.status();
    (*log)->Write(SampleRecord());
    (*log)->Flush();
  }
  const std::string out = testing::internal::GetCapturedStdout();
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(Str(ParseLine(out.substr(0, out.size() - 1)), "outcome"),
            "forwarded");
}

TEST(AccessLogTest, AppendsToAnExistingFile) {
  TempPath path;
  {
    std::ofstream out(path.str());
    out << "{\"earlier\":true}\n";
  }
  {
    auto log = AccessLog::Open(true, path.str(), &kClock);
    ASSERT_TRUE(log.ok()) << log.status();
    (*log)->Write(SampleRecord());
  }  // destruction flushes
  const auto lines = ReadLines(path.str());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "{\"earlier\":true}");
  EXPECT_EQ(Str(ParseLine(lines[1]), "method"), "GET");
}

TEST(AccessLogTest, ConcurrentWritersNeverInterleaveLines) {
  TempPath path;
  auto log = AccessLog::Open(true, path.str(), &kClock);
  ASSERT_TRUE(log.ok()) << log.status();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&log, t] {
      const std::string client = "10.0.0." + std::to_string(t) + ":1";
      AccessRecord r = SampleRecord();
      r.client = client;
      for (int i = 0; i < kPerThread; ++i) {
        r.bytes_in = static_cast<uint64_t>(i);
        (*log)->Write(r);
      }
    });
  }
  for (auto& th : threads) th.join();
  (*log)->Flush();
  const auto lines = ReadLines(path.str());
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kPerThread));
  std::vector<uint64_t> sums(kThreads, 0);
  for (const auto& line : lines) {
    json::object o = ParseLine(line);
    const std::string client = Str(o, "client");
    ASSERT_EQ(client.size(), 10u) << client;
    sums[client[7] - '0'] += o.at("bytes_in").to_number<uint64_t>();
  }
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(sums[t],
              static_cast<uint64_t>(kPerThread * (kPerThread - 1) / 2));
  }
}

}  // namespace
}  // namespace sluice
