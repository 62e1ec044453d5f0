#include "qcow2/guest_order.h"

#include <gtest/gtest.h>
namespace qcow2 {
namespace {

// Tables of 4 guest clusters each: L1 entries 0 and 2 mapped.
class GuestOrderTest : public ::testing::Test {
 protected:
  GuestOrder order_{4};
};

TEST_F(GuestOrderTest, NothingIsNextBeforeTheL1Table) {
  order_.Map(0, 2);
  EXPECT_FALSE(order_.IsNext(0));
  order_.L1Read();
  EXPECT_TRUE(order_.IsNext(0));
  EXPECT_FALSE(order_.IsNext(1));
}

TEST_F(GuestOrderTest, ATableStillToComeHoldsBackWhatLiesAbove) {
  order_.L1Read();
  order_.TableDue(0);
  order_.TableDue(2);
  order_.Map(9, 10);  // the table of entry 2, read first
  order_.TableRead(2);
  EXPECT_FALSE(order_.IsNext(9));  // entry 0's table may map clusters below
  order_.Map(1, 2);
  order_.TableRead(0);
  EXPECT_FALSE(order_.IsNext(9));
  EXPECT_TRUE(order_.IsNext(1));
  order_.Written(1);
  EXPECT_TRUE(order_.IsNext(9));
  order_.Written(9);
  EXPECT_TRUE(order_.Done());
}

TEST_F(GuestOrderTest, HeldClustersComeOutInGuestOrder) {
  order_.L1Read();
  order_.Map(0, 3);
  order_.Map(5, 7);
  // Clusters 6, 2, 5, 1 come first, then 0.
  for (uint64_t c : {6, 2, 5, 1}) {
    EXPECT_FALSE(order_.IsNext(c));
    order_.Hold({c, 1000 * c, 10, c % 2 == 0});
    EXPECT_FALSE(order_.NextHeld());
  }
  ASSERT_TRUE(order_.IsNext(0));
  order_.Written(0);
  std::vector<uint64_t> written;
  while (const std::optional<HeldCluster> held = order_.NextHeld()) {
    EXPECT_EQ(held->host(), 1000 * held->guest_cluster());
    EXPECT_EQ(held->compressed(), held->guest_cluster() % 2 == 0);
    written.push_back(held->guest_cluster());
    order_.Written(held->guest_cluster());
    order_.DropHeld();
  }
  EXPECT_EQ(written, (std::vector<uint64_t>{1, 2, 5, 6}));
  EXPECT_TRUE(order_.Done());
}

TEST(ClusterWordTest, HoldsEachFieldAtItsLimits) {
  // The largest guest cluster qemu's limits allow: an L1 table of 32 MiB of
  // entries, each mapping the 2^18 clusters of a 2 MiB-cluster L2 table.
  const uint64_t last_guest = ((kMaxL1Bytes / 8) << (kMaxClusterBits - 3)) - 1;
  EXPECT_EQ(last_guest, ClusterWord::kGuestLimit - 1);
  const uint64_t largest_frame = uint64_t{512} << (kMaxClusterBits - 8);  // 4 MiB
  for (uint64_t guest : {uint64_t{0}, uint64_t{1}, last_guest}) {
    for (uint64_t length : {uint64_t{1}, uint64_t{1} << kMaxClusterBits, largest_frame}) {
      for (unsigned tag = 0; tag < ClusterWord::kTags; ++tag) {
        const ClusterWord w(guest, length, tag);
        EXPECT_EQ(w.guest(), guest);
        EXPECT_EQ(w.length(), length);
        EXPECT_EQ(w.tag(), tag);
      }
    }
  }
}

TEST(ClusterWordTest, BeyondItsLimitsIsAnAssertedInvariant) {
  EXPECT_DEBUG_DEATH(ClusterWord(ClusterWord::kGuestLimit, 1, 0), "within qemu's limits");
  EXPECT_DEBUG_DEATH(ClusterWord(0, ClusterWord::kMaxLength + 1, 0), "within qemu's limits");
  EXPECT_DEBUG_DEATH(ClusterWord(0, 0, 0), "within qemu's limits");
  EXPECT_DEBUG_DEATH(ClusterWord(0, 1, ClusterWord::kTags), "within qemu's limits");
}

TEST(HeldClusterTest, KeepsTheLargestValues) {
  const HeldCluster held(ClusterWord::kGuestLimit - 1, UINT64_MAX - 4096, ClusterWord::kMaxLength,
                         true);
  EXPECT_EQ(held.guest_cluster(), ClusterWord::kGuestLimit - 1);
  EXPECT_EQ(held.host(), UINT64_MAX - 4096);
  EXPECT_EQ(held.length(), ClusterWord::kMaxLength);
  EXPECT_TRUE(held.compressed());
  const HeldCluster plain(7, 0, 1, false);
  EXPECT_EQ(plain.length(), 1u);
  EXPECT_FALSE(plain.compressed());
}

TEST_F(GuestOrderTest, WritingOutOfTurnIsAnAssertedInvariant) {
  order_.L1Read();
  order_.Map(3, 4);
  order_.Map(1, 2);
  EXPECT_DEBUG_DEATH(order_.Written(3), "written out of order");
}

}  // namespace
}  // namespace qcow2
