#include "util/range_set.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace util {
namespace {

using Ranges = std::vector<ByteRange>;

TEST(RangeSetTest, AddsMergeWhatTheyTouchAndSayWhatIsNew) {
  RangeSet set;
  EXPECT_EQ(set.Add({10, 5}), (Ranges{{10, 5}}));
  EXPECT_EQ(set.Add({20, 5}), (Ranges{{20, 5}}));
  EXPECT_EQ(set.Add({0, 0}), Ranges{});
  // Over both and the gap between: only the gap and the tails are new.
  EXPECT_EQ(set.Add({8, 20}), (Ranges{{8, 2}, {15, 5}, {25, 3}}));
  EXPECT_EQ(set.ranges(), (std::map<uint64_t, uint64_t>{{8, 28}}));
  EXPECT_EQ(set.Add({12, 4}), Ranges{});  // inside: nothing new
  // Touching at either end merges into one range.
  EXPECT_EQ(set.Add({28, 2}), (Ranges{{28, 2}}));
  EXPECT_EQ(set.Add({5, 3}), (Ranges{{5, 3}}));
  EXPECT_EQ(set.ranges(), (std::map<uint64_t, uint64_t>{{5, 30}}));
}

TEST(RangeSetTest, ContainsTheValuesOfItsRangesOnly) {
  RangeSet set;
  EXPECT_TRUE(set.empty());
  EXPECT_FALSE(set.Contains(0));
  set.Add({100, 10});
  set.Add({200, 1});
  EXPECT_FALSE(set.empty());
  for (uint64_t v : {100, 109, 200})
    EXPECT_TRUE(set.Contains(v)) << v;
  for (uint64_t v : {0, 99, 110, 199, 201})
    EXPECT_FALSE(set.Contains(v)) << v;
}

TEST(RangeSetTest, WithinGivesThePartsInsideARange) {
  RangeSet set;
  EXPECT_EQ(set.Within({0, 100}), Ranges{});
  set.Add({10, 10});
  set.Add({30, 10});
  set.Add({50, 10});
  EXPECT_EQ(set.Within({0, 100}), (Ranges{{10, 10}, {30, 10}, {50, 10}}));
  EXPECT_EQ(set.Within({15, 20}), (Ranges{{15, 5}, {30, 5}}));  // cut at both ends
  EXPECT_EQ(set.Within({20, 10}), Ranges{});                    // the gap between, ends touching
  EXPECT_EQ(set.Within({39, 12}), (Ranges{{39, 1}, {50, 1}}));
  EXPECT_EQ(set.Within({60, 5}), Ranges{});
}

}  // namespace
}  // namespace util
