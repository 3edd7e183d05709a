#include "proxy/lease/pause_deduplicator.h"

#include <gtest/gtest.h>

#include <barrier>
#include <cstdint>
#include <thread>
#include <vector>

namespace sluice {
namespace {

using Path = PauseDeduplicator::Path;
using Decision = PauseDeduplicator::Decision;

constexpr size_t kMax = PauseDeduplicator::kMaxRemembered;

void ExpectDecision(const Decision& d, bool first, bool ack) {
  EXPECT_EQ(d.first, first);
  EXPECT_EQ(d.ack, ack);
}

// The stream's copy first: applied and acked on the stream at once; the
// datagram's copy later does nothing; the owner's turn finds the ack sent,
// once.
TEST(PauseDeduplicatorTest, StreamFirstThenDatagram) {
  PauseDeduplicator d;
  ExpectDecision(d.OnCopy("api", "k", 7, Path::kStream), true, true);
  ExpectDecision(d.OnCopy("api", "k", 7, Path::kDatagram), false, false);
  EXPECT_TRUE(d.TakeStreamAck("api", "k", 7));
  EXPECT_FALSE(d.TakeStreamAck("api", "k", 7));  // taken
}

// The datagram's copy first: applied and acked as a datagram; a replay of
// it does nothing; the stream's copy applies nothing but is acked on the
// stream (the stream carries an ack of every pause it carried), and the
// owner's turn does not ack it again.
TEST(PauseDeduplicatorTest, DatagramFirstThenStream) {
  PauseDeduplicator d;
  ExpectDecision(d.OnCopy("api", "", 3, Path::kDatagram), true, true);
  ExpectDecision(d.OnCopy("api", "", 3, Path::kDatagram), false, false);
  ExpectDecision(d.OnCopy("api", "", 3, Path::kStream), false, true);
  EXPECT_TRUE(d.TakeStreamAck("api", "", 3));
}

// A stream copy seen again before the owner's turn is not acked twice; one
// seen again after it is acked again (the owner no longer knows of it).
TEST(PauseDeduplicatorTest, StreamAckedOncePerOwnersTurn) {
  PauseDeduplicator d;
  ExpectDecision(d.OnCopy("api", "", 1, Path::kStream), true, true);
  ExpectDecision(d.OnCopy("api", "", 1, Path::kStream), false, false);
  EXPECT_TRUE(d.TakeStreamAck("api", "", 1));
  ExpectDecision(d.OnCopy("api", "", 1, Path::kStream), false, true);
  EXPECT_TRUE(d.TakeStreamAck("api", "", 1));
}

// A pause no copy announced (a bucket without a throttle, say) is the
// owner's to ack.
TEST(PauseDeduplicatorTest, OwnerAcksWhatNoCopyAcked) {
  PauseDeduplicator d;
  EXPECT_FALSE(d.TakeStreamAck("api", "", 1));
  // A datagram's ack is not a stream ack.
  ExpectDecision(d.OnCopy("api", "", 2, Path::kDatagram), true, true);
  EXPECT_FALSE(d.TakeStreamAck("api", "", 2));
}

// A pause is its bucket and its id: the same id on another resource or
// another key, or another id on the same bucket, is another pause.
TEST(PauseDeduplicatorTest, PausesAreNamedByBucketAndId) {
  PauseDeduplicator d;
  ExpectDecision(d.OnCopy("api", "k1", 5, Path::kDatagram), true, true);
  ExpectDecision(d.OnCopy("api", "k2", 5, Path::kDatagram), true, true);
  ExpectDecision(d.OnCopy("api", "", 5, Path::kDatagram), true, true);
  ExpectDecision(d.OnCopy("web", "k1", 5, Path::kDatagram), true, true);
  ExpectDecision(d.OnCopy("api", "k1", 6, Path::kDatagram), true, true);
  ExpectDecision(d.OnCopy("api", "k1", 5, Path::kDatagram), false, false);
  // Taking one bucket's stream ack leaves the other's.
  ExpectDecision(d.OnCopy("api", "k1", 9, Path::kStream), true, true);
  ExpectDecision(d.OnCopy("api", "k2", 9, Path::kStream), true, true);
  EXPECT_TRUE(d.TakeStreamAck("api", "k1", 9));
  EXPECT_FALSE(d.TakeStreamAck("api", "k1", 9));
  EXPECT_TRUE(d.TakeStreamAck("api", "k2", 9));
}

// The applied memory keeps the newest kMaxRemembered pauses: with exactly
// that many the oldest is still known; one more forgets it (its late copy
// then counts as first, which the throttle ignores by pause_id) and only
// it.
TEST(PauseDeduplicatorTest, RemembersTheNewestAppliedPauses) {
  ASSERT_EQ(kMax, 1024u);
  PauseDeduplicator d;
  for (uint64_t id = 0; id < kMax; ++id) {
    ASSERT_TRUE(d.OnCopy("api", "", id, Path::kDatagram).first) << id;
  }
  EXPECT_FALSE(d.OnCopy("api", "", 0, Path::kDatagram).first);
  ASSERT_TRUE(d.OnCopy("api", "", kMax, Path::kDatagram).first);
  // 0 was the oldest: forgotten. 1 is now the oldest: still known.
  EXPECT_FALSE(d.OnCopy("api", "", 1, Path::kDatagram).first);
  ExpectDecision(d.OnCopy("api", "", 0, Path::kDatagram), true, true);
}

// Stream acks the owner never takes (its thread is not running) are
// bounded: a stream copy that finds kMaxRemembered waiting clears them
// first, so the owner acks those pauses again later. Applied pauses are
// kept apart.
TEST(PauseDeduplicatorTest, UntakenStreamAcksAreBounded) {
  PauseDeduplicator d;
  for (uint64_t id = 0; id < kMax; ++id) {
    ASSERT_TRUE(d.OnCopy("api", "", id, Path::kStream).ack) << id;
  }
  // The owner takes one: kMaxRemembered - 1 wait, so one more fits.
  EXPECT_TRUE(d.TakeStreamAck("api", "", 0));
  ExpectDecision(d.OnCopy("api", "", kMax, Path::kStream), true, true);
  EXPECT_TRUE(d.TakeStreamAck("api", "", 1));
  ExpectDecision(d.OnCopy("api", "", kMax + 1, Path::kStream), true, true);
  // Full again: the next copy clears them all before it is recorded.
  ExpectDecision(d.OnCopy("api", "", kMax + 2, Path::kStream), true, true);
  EXPECT_FALSE(d.TakeStreamAck("api", "", 2));
  EXPECT_FALSE(d.TakeStreamAck("api", "", kMax - 1));
  EXPECT_FALSE(d.TakeStreamAck("api", "", kMax + 1));
  EXPECT_TRUE(d.TakeStreamAck("api", "", kMax + 2));
  // The applied memory still has the newest kMaxRemembered.
  EXPECT_FALSE(d.OnCopy("api", "", kMax - 1, Path::kDatagram).first);
}

// The stream's reaction and the fast path's reader race on the same
// pauses, meeting at a barrier before each copy so that both copies of a
// pause arrive together: each pause is applied by exactly one of them, a
// datagram copy is acked exactly when it was first, and every stream copy
// is acked once. Built with ThreadSanitizer, this also reports a missing
// lock as a data race.
TEST(PauseDeduplicatorTest, ConcurrentCopiesApplyEachPauseOnce) {
  constexpr uint64_t kPauses = kMax;  // within the bound of both memories
  PauseDeduplicator d;
  struct Counts {
    int firsts = 0;
    int acks = 0;
  };
  Counts stream_counts;
  Counts datagram_counts;
  std::barrier meet(2);
  const auto run = [&](Path path, Counts* counts) {
    for (uint64_t id = 0; id < kPauses; ++id) {
      meet.arrive_and_wait();
      const Decision r = d.OnCopy("api", "k", id, path);
      counts->firsts += r.first ? 1 : 0;
      counts->acks += r.ack ? 1 : 0;
    }
  };
  std::thread stream(run, Path::kStream, &stream_counts);
  std::thread datagram(run, Path::kDatagram, &datagram_counts);
  stream.join();
  datagram.join();
  EXPECT_EQ(stream_counts.firsts + datagram_counts.firsts,
            static_cast<int>(kPauses));
  EXPECT_EQ(stream_counts.acks, static_cast<int>(kPauses));
  EXPECT_EQ(datagram_counts.acks, datagram_counts.firsts);
  for (uint64_t id = 0; id < kPauses; ++id) {
    EXPECT_TRUE(d.TakeStreamAck("api", "k", id)) << id;
  }
}

}  // namespace
}  // namespace sluice
