#include "proxy/app/ca_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/time/clock.h"
#include "proxy/tls/cert_authority.h"
#include "tests/proxy/tls/tls_test_util.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;

int RunCa(std::vector<const char*> args, std::string* out, std::string* err,
          const Clock* clock) {
  return RunCaCommand(static_cast<int>(args.size()), args.data(), clock, out,
                      err);
}

TEST(CaCommandTest, InitWritesACaItsKeyAndABundle) {
  test::TempDir dir;
  FakeClock clock;
  std::string out, err;
  ASSERT_EQ(RunCa({"init", "--out", dir.path().c_str()}, &out, &err, &clock), 0)
      << err;
  EXPECT_THAT(out, HasSubstr("ca-key.pem (0600)"));
  EXPECT_EQ(test::FileMode(dir.File("ca-key.pem")) & 0777, 0600u);
  // The proxy loads what init wrote.
  auto ca =
      CertAuthority::Load(dir.File("ca.pem"), dir.File("ca-key.pem"), &clock);
  ASSERT_TRUE(ca.ok()) << ca.status();
  // The bundle ends with the CA, after the system roots.
  const std::string bundle = test::ReadFileText(dir.File("bundle.pem"));
  const std::string ca_pem = test::ReadFileText(dir.File("ca.pem"));
  ASSERT_GT(bundle.size(), ca_pem.size());
  EXPECT_EQ(bundle.substr(bundle.size() - ca_pem.size()), ca_pem);
}

TEST(CaCommandTest, InitMakesAPrivateDirectoryThatIsNotThereYet) {
  test::TempDir parent;
  FakeClock clock;
  std::string out, err;
  const std::string dir = parent.File("ca");
  ASSERT_EQ(RunCa({"init", "--out", dir.c_str()}, &out, &err, &clock), 0)
      << err;
  EXPECT_EQ(test::FileMode(dir) & 0777, 0700u);
  EXPECT_EQ(test::FileMode(dir + "/ca-key.pem") & 0777, 0600u);
  // Only the last component is made: a missing parent is named.
  const std::string deep = parent.File("no/such/dir");
  EXPECT_EQ(RunCa({"init", "--out", deep.c_str()}, &out, &err, &clock), 1);
  EXPECT_THAT(err, HasSubstr("cannot create directory " + deep));
}

TEST(CaCommandTest, InitNeverOverwritesAKey) {
  test::TempDir dir;
  FakeClock clock;
  std::string out, err;
  ASSERT_EQ(RunCa({"init", "--out", dir.path().c_str()}, &out, &err, &clock),
            0);
  const std::string key = test::ReadFileText(dir.File("ca-key.pem"));
  EXPECT_EQ(RunCa({"init", "--out", dir.path().c_str()}, &out, &err, &clock),
            1);
  EXPECT_THAT(err, HasSubstr("ca-key.pem"));
  EXPECT_EQ(test::ReadFileText(dir.File("ca-key.pem")), key);
}

TEST(CaCommandTest, BundleRewritesTheBundleFromTheCa) {
  test::TempDir dir;
  FakeClock clock;
  std::string out, err;
  ASSERT_EQ(RunCa({"init", "--out", dir.path().c_str()}, &out, &err, &clock),
            0);
  const std::string before = test::ReadFileText(dir.File("bundle.pem"));
  std::filesystem::remove(dir.File("bundle.pem"));
  ASSERT_EQ(RunCa({"bundle", "--dir", dir.path().c_str()}, &out, &err, &clock),
            0)
      << err;
  EXPECT_EQ(test::ReadFileText(dir.File("bundle.pem")), before);
  // Without a CA there is nothing to bundle.
  test::TempDir empty;
  EXPECT_EQ(
      RunCa({"bundle", "--dir", empty.path().c_str()}, &out, &err, &clock), 1);
}

TEST(CaCommandTest, BadArgumentsShowTheUsage) {
  FakeClock clock;
  for (const std::vector<const char*>& args :
       std::vector<std::vector<const char*>>{{},
                                             {"init"},
                                             {"init", "--dir", "/tmp"},
                                             {"init", "--out", ""},
                                             {"bundle", "--out", "/tmp"},
                                             {"sign", "x"}}) {
    std::string out, err;
    EXPECT_EQ(RunCa(args, &out, &err, &clock), 2);
    EXPECT_THAT(err, HasSubstr("usage: sluice-proxy ca init --out DIR"));
  }
}

}  // namespace
}  // namespace sluice
