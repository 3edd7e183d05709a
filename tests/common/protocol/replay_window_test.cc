#include "common/protocol/replay_window.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(ReplayWindowTest, TakesEachIdOnce) {
  ReplayWindow w;
  EXPECT_TRUE(w.Accept(1));
  EXPECT_FALSE(w.Accept(1));
  EXPECT_TRUE(w.Accept(2));
  EXPECT_FALSE(w.Accept(2));
  EXPECT_FALSE(w.Accept(1));
  EXPECT_EQ(w.highest(), 2u);
}

TEST(ReplayWindowTest, ZeroIsNeverAnId) {
  ReplayWindow w;
  EXPECT_FALSE(w.Accept(0));
  EXPECT_TRUE(w.Accept(5));
  EXPECT_FALSE(w.Accept(0));
}

TEST(ReplayWindowTest, AcceptsReorderedIdsWithinTheWindow) {
  ReplayWindow w;
  EXPECT_TRUE(w.Accept(10));
  EXPECT_TRUE(w.Accept(7));  // arrived late over the other path
  EXPECT_TRUE(w.Accept(9));
  EXPECT_FALSE(w.Accept(7));
  EXPECT_FALSE(w.Accept(9));
  EXPECT_TRUE(w.Accept(8));
  EXPECT_TRUE(w.Accept(11));
  EXPECT_FALSE(w.Accept(8));
}

TEST(ReplayWindowTest, RejectsIdsOlderThanTheWindow) {
  ReplayWindow w;
  ASSERT_TRUE(w.Accept(100));
  EXPECT_TRUE(w.Accept(100 - ReplayWindow::kWidth + 1));  // oldest kept
  EXPECT_FALSE(w.Accept(100 - ReplayWindow::kWidth));
  EXPECT_FALSE(w.Accept(1));
}

TEST(ReplayWindowTest, AJumpBeyondTheWindowForgetsTheOldBits) {
  ReplayWindow w;
  ASSERT_TRUE(w.Accept(1));
  ASSERT_TRUE(w.Accept(2));
  ASSERT_TRUE(w.Accept(1000));
  // 999 was never seen; 1000 - 64 + 1 is the oldest id still tracked.
  EXPECT_TRUE(w.Accept(999));
  EXPECT_TRUE(w.Accept(1000 - ReplayWindow::kWidth + 1));
  EXPECT_FALSE(w.Accept(2));
}

TEST(ReplayWindowTest, ShiftByExactlyTheWidth) {
  ReplayWindow w;
  ASSERT_TRUE(w.Accept(1));
  ASSERT_TRUE(w.Accept(1 + ReplayWindow::kWidth));
  EXPECT_FALSE(w.Accept(1));  // now too old
  EXPECT_TRUE(w.Accept(2));   // the oldest tracked, never seen
  EXPECT_FALSE(w.Accept(2));
}

}  // namespace
}  // namespace sluice
