#include "proxy/limit/limit_gate.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <memory>
#include <optional>

#include "common/rate/token_source_factory.h"
#include "common/time/clock.h"
#include "proxy/limit/rate_limiter.h"

namespace sluice {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A token source the test fills by hand, standing in for one that gains
// tokens asynchronously (a lease grant). It predicts admission `predict_in`
// from now whenever it is short, which may turn out to be wrong.
class ManualSource final : public TokenSource {
 public:
  explicit ManualSource(Duration predict_in) : predict_in_(predict_in) {}
  bool TryTake(double cost, TimePoint now) override {
    if (cost > tokens) return false;
    tokens -= cost;
    return true;
  }
  std::optional<TimePoint> AvailableAt(double cost,
                                       TimePoint now) const override {
    return cost <= tokens ? now : now + predict_in_;
  }
  void Refund(double cost, TimePoint now) override { tokens += cost; }
  double Capacity() const override { return 100; }

  double tokens = 0;

 private:
  Duration predict_in_;
};

class LimitGateTest : public ::testing::Test {
 protected:
  // A limiter over a ManualSource; source_ points at it.
  std::unique_ptr<RateLimiter> ManualLimiter(Duration predict_in) {
    auto source = std::make_unique<ManualSource>(predict_in);
    source_ = source.get();
    return std::make_unique<RateLimiter>(std::move(source),
                                         RateLimiterOptions{});
  }

  // Starts an Acquire on its own strand of `io`; the result lands in *out.
  void Spawn(asio::io_context& io, RateLimiter& limiter, Duration max_wait,
             std::optional<LimitGate::Result>* out) {
    asio::co_spawn(
        asio::make_strand(io),
        [this, &limiter, max_wait]() -> asio::awaitable<LimitGate::Result> {
          co_return co_await gate_.Acquire(limiter, 1, max_wait);
        },
        [out](std::exception_ptr e, LimitGate::Result r) {
          ASSERT_FALSE(e);
          *out = r;
        });
  }

  FakeClock clock_;
  LimitGate gate_{&clock_};
  ManualSource* source_ = nullptr;
};

TEST_F(LimitGateTest, AdmitsAtOnceWhenTokensAreThere) {
  RateLimiter limiter(
      MakeTokenSource(Algorithm::kGcra, RateSpec{10, seconds(1), 2},
                      clock_.Now()),
      RateLimiterOptions{});
  asio::io_context io;
  std::optional<LimitGate::Result> a, b;
  Spawn(io, limiter, seconds(1), &a);
  Spawn(io, limiter, seconds(1), &b);
  io.poll();
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(a->outcome, AcquireOutcome::kAdmitted);
  EXPECT_EQ(b->outcome, AcquireOutcome::kAdmitted);
  EXPECT_EQ(a->waited, Duration::zero());
  EXPECT_EQ(gate_.waiting(), 0u);
  EXPECT_EQ(limiter.queue_depth(), 0u);
}

TEST_F(LimitGateTest, RejectsAtOnceWithoutParking) {
  RateLimiter limiter(
      MakeTokenSource(Algorithm::kGcra, RateSpec{1, seconds(10), 1},
                      clock_.Now()),
      RateLimiterOptions{});
  asio::io_context io;
  std::optional<LimitGate::Result> first, second;
  Spawn(io, limiter, seconds(1), &first);
  Spawn(io, limiter, seconds(1), &second);  // next token in 10 s > 1 s
  io.poll();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(first->outcome, AcquireOutcome::kAdmitted);
  EXPECT_EQ(second->outcome, AcquireOutcome::kRejectedWait);
  EXPECT_GT(second->retry_after, seconds(8));
  EXPECT_EQ(gate_.waiting(), 0u);
}

TEST_F(LimitGateTest, QueuedRequestIsWokenByKickOnceTokensArrive) {
  auto limiter = ManualLimiter(seconds(5));
  asio::io_context io;
  std::optional<LimitGate::Result> first, second;
  Spawn(io, *limiter, seconds(30), &first);
  Spawn(io, *limiter, seconds(30), &second);
  io.poll();
  EXPECT_FALSE(first.has_value());
  EXPECT_FALSE(second.has_value());
  EXPECT_EQ(gate_.waiting(), 2u);
  EXPECT_EQ(limiter->queue_depth(), 2u);

  // A kick without new tokens changes nothing.
  gate_.Kick(*limiter);
  io.poll();
  EXPECT_FALSE(first.has_value());

  // One token arrives (well before the 5 s the source predicted): only the
  // head of the queue goes, without waiting for its timer.
  clock_.Advance(seconds(2));
  source_->tokens = 1;
  gate_.Kick(*limiter);
  io.poll();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->outcome, AcquireOutcome::kAdmitted);
  EXPECT_EQ(first->waited, seconds(2));
  EXPECT_FALSE(second.has_value());
  EXPECT_EQ(gate_.waiting(), 1u);

  clock_.Advance(seconds(1));
  source_->tokens = 1;
  gate_.Kick(*limiter);
  io.poll();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->outcome, AcquireOutcome::kAdmitted);
  EXPECT_EQ(second->waited, seconds(3));
  EXPECT_EQ(gate_.waiting(), 0u);
  EXPECT_EQ(limiter->queue_depth(), 0u);
}

TEST_F(LimitGateTest, KickExpiresARequestPastItsDeadline) {
  // The source predicts tokens in 1 s but never delivers.
  auto limiter = ManualLimiter(seconds(1));
  asio::io_context io;
  std::optional<LimitGate::Result> r;
  Spawn(io, *limiter, seconds(2), &r);
  io.poll();
  ASSERT_FALSE(r.has_value());
  clock_.Advance(seconds(3));
  gate_.Kick(*limiter);
  io.poll();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, AcquireOutcome::kRejectedWait);
  EXPECT_EQ(r->waited, seconds(3));
  EXPECT_EQ(gate_.waiting(), 0u);
  EXPECT_EQ(limiter->queue_depth(), 0u);
}

TEST_F(LimitGateTest, OwnTimerExpiresARequestWithoutAKick) {
  // Predicted admission 1 ms ahead: the waiter's timer fires after about
  // 1 ms of real time and polls the limiter at the (fake) current time.
  auto limiter = ManualLimiter(milliseconds(1));
  asio::io_context io;
  std::optional<LimitGate::Result> r;
  Spawn(io, *limiter, milliseconds(2), &r);
  io.poll();
  ASSERT_FALSE(r.has_value());
  clock_.Advance(seconds(1));
  io.run_for(seconds(10));  // returns as soon as the request is done
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, AcquireOutcome::kRejectedWait);
  EXPECT_EQ(gate_.waiting(), 0u);
  EXPECT_EQ(limiter->queue_depth(), 0u);
}

TEST_F(LimitGateTest, DestroyedWaiterCancelsItsTicket) {
  auto limiter = ManualLimiter(seconds(5));
  auto io = std::make_unique<asio::io_context>();
  std::optional<LimitGate::Result> r;
  Spawn(*io, *limiter, seconds(30), &r);
  io->poll();
  ASSERT_EQ(limiter->queue_depth(), 1u);
  ASSERT_EQ(gate_.waiting(), 1u);

  io.reset();  // destroys the suspended coroutine
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(limiter->queue_depth(), 0u);
  EXPECT_EQ(gate_.waiting(), 0u);

  // Nothing is left ahead in the queue: a new request with a token available
  // goes at once instead of queueing behind a dead ticket.
  source_->tokens = 1;
  asio::io_context io2;
  Spawn(io2, *limiter, seconds(30), &r);
  io2.poll();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, AcquireOutcome::kAdmitted);
}

}  // namespace
}  // namespace sluice
