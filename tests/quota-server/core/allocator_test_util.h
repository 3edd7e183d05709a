#ifndef SLUICE_TESTS_QUOTA_SERVER_CORE_ALLOCATOR_TEST_UTIL_H_
#define SLUICE_TESTS_QUOTA_SERVER_CORE_ALLOCATOR_TEST_UTIL_H_

// Helpers shared by the tests that drive a QuotaAllocator: message
// builders, outbox filters and a fixture with fake time.

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "quota-server/core/quota_allocator.h"
#include "tests/testing/lease_messages.h"

namespace sluice {
namespace allocator_test {

using sluice::v1::LeaseGrant;
using sluice::v1::LimitUpdate;
using sluice::v1::ServerMessage;
using sluice::v1::SidecarMessage;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::SizeIs;

using sluice::v1::LeaseGrant;
using sluice::v1::LimitUpdate;
using sluice::v1::ServerMessage;
using sluice::v1::SidecarMessage;
using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::DoubleNear;
using ::testing::HasSubstr;
using ::testing::SizeIs;

inline constexpr uint64_t kEpoch = 0xfeed;
inline const TimePoint kT0 = TimePoint(seconds(1000));

inline TimePoint At(int64_t ms) { return kT0 + milliseconds(ms); }

inline double ToSecondsForTest(Duration d) {
  return std::chrono::duration<double>(d).count();
}

inline ResourceConfig Resource(const std::string& name, double rate,
                               double burst) {
  ResourceConfig r;
  r.name = name;
  r.rate = rate;
  r.burst = burst;
  // The timings below are written for a 2 s ttl and 1 s grace.
  r.lease.ttl = seconds(2);
  r.lease.grace = seconds(1);
  return r;
}

inline ServerConfig Config(double rate, double burst, bool learning = false) {
  ServerConfig c;
  c.learning = learning;
  c.resources.push_back(Resource("api", rate, burst));
  return c;
}

inline SidecarMessage Hello(const std::string& id, double weight = 1) {
  return test::HelloMessage({.sidecar_id = id, .weight = weight});
}

using Rep = test::Demand;
inline SidecarMessage Report(const Rep& r) { return test::DemandMessage(r); }

inline std::vector<LeaseGrant> GrantsTo(const Outbox& out, StreamId s) {
  std::vector<LeaseGrant> grants;
  for (const auto& [id, msg] : out.messages) {
    if (id == s && msg.has_grant()) grants.push_back(msg.grant());
  }
  return grants;
}

inline std::vector<LimitUpdate> LimitsTo(const Outbox& out, StreamId s) {
  std::vector<LimitUpdate> limits;
  for (const auto& [id, msg] : out.messages) {
    if (id == s && msg.has_limit()) limits.push_back(msg.limit());
  }
  return limits;
}

class QuotaAllocatorTest : public ::testing::Test {
 protected:
  void Make(ServerConfig config) {
    alloc_ = std::make_unique<QuotaAllocator>(
        std::move(config), kEpoch, kT0,
        absl::FromUnixSeconds(FakeClock::kDefaultWallStartUnixSeconds));
  }
  Outbox Send(StreamId s, const SidecarMessage& m, TimePoint now) {
    Outbox out;
    alloc_->OnMessage(s, m, now, &out);
    for (const auto& [id, msg] : out.messages) {
      EXPECT_EQ(msg.server_epoch(), kEpoch);
      EXPECT_EQ(msg.protocol_version(), 1u);
    }
    return out;
  }
  void Connect(StreamId s, const std::string& id, TimePoint now,
               double weight = 1) {
    alloc_->Open(s, now);
    EXPECT_THAT(Send(s, Hello(id, weight), now).messages, SizeIs(0));
  }
  Outbox Tick(TimePoint now) {
    Outbox out;
    alloc_->Tick(now, &out);
    return out;
  }
  const QuotaAllocator::ResourceStatus Res(TimePoint now,
                                           const std::string& name = "api") {
    for (const auto& r : alloc_->Snapshot(now).resources) {
      if (r.name == name) return r;
    }
    ADD_FAILURE() << "no resource " << name;
    return {};
  }
  double Outstanding(TimePoint now) { return Res(now).outstanding; }

  std::unique_ptr<QuotaAllocator> alloc_;
};

}  // namespace allocator_test
}  // namespace sluice

#endif  // SLUICE_TESTS_QUOTA_SERVER_CORE_ALLOCATOR_TEST_UTIL_H_
