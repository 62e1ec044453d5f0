#include "qcow2/l2_cache.h"

#include <gtest/gtest.h>

#include <map>
#include <stdexcept>

namespace qcow2 {
namespace {

// A fake backing store of tables keyed by host offset.
struct FakeStore {
  std::map<uint64_t, std::vector<uint64_t>> tables;
  L2Cache::LoadFn Loader() {
    return [this](uint64_t host, std::span<uint64_t> out) {
      auto& t = tables.at(host);
      std::copy(t.begin(), t.end(), out.begin());
    };
  }
  L2Cache::StoreFn Storer() {
    return [this](uint64_t host, std::span<const uint64_t> in) {
      tables[host].assign(in.begin(), in.end());
    };
  }
};

TEST(L2Cache, NeverHoldsMoreThanItsCapacity) {
  FakeStore store;
  L2Cache cache(4, 8, store.Loader(), store.Storer());
  for (uint64_t i = 0; i < 20; ++i) {
    cache.Get(i, 1000 * (i + 1), /*fresh=*/true, /*for_write=*/true)[0] = i + 1;
    EXPECT_LE(cache.size(), 4u);
  }
  EXPECT_EQ(cache.stores(), 16u);  // 20 tables, 4 still cached
}

TEST(L2Cache, EvictedDirtyTablesAreStoredAndReloaded) {
  FakeStore store;
  L2Cache cache(2, 4, store.Loader(), store.Storer());
  cache.Get(0, 100, true, true)[1] = 11;
  cache.Get(1, 200, true, true)[2] = 22;
  cache.Get(2, 300, true, true)[3] = 33;  // evicts table 0
  ASSERT_TRUE(store.tables.count(100));
  EXPECT_EQ(store.tables[100][1], 11u);
  auto t0 = cache.Get(0, 100, false, false);  // reloads
  EXPECT_EQ(t0[1], 11u);
  EXPECT_EQ(cache.loads(), 1u);
}

TEST(L2Cache, LeastRecentlyUsedIsEvictedFirst) {
  FakeStore store;
  L2Cache cache(2, 4, store.Loader(), store.Storer());
  cache.Get(0, 100, true, true);
  cache.Get(1, 200, true, true);
  cache.Get(0, 100, false, true);  // touch 0: 1 is now the oldest
  cache.Get(2, 300, true, true);
  EXPECT_TRUE(store.tables.count(200));
  EXPECT_FALSE(store.tables.count(100));
}

TEST(L2Cache, CleanTablesAreNotStored) {
  FakeStore store;
  store.tables[100] = {1, 2, 3, 4};
  store.tables[200] = {5, 6, 7, 8};
  L2Cache cache(1, 4, store.Loader(), store.Storer());
  EXPECT_EQ(cache.Get(0, 100, false, false)[3], 4u);
  EXPECT_EQ(cache.Get(1, 200, false, false)[0], 5u);
  cache.Flush();
  EXPECT_EQ(cache.stores(), 0u);
}

TEST(L2Cache, FlushStoresDirtyTablesOnce) {
  FakeStore store;
  L2Cache cache(8, 4, store.Loader(), store.Storer());
  cache.Get(3, 300, true, true)[0] = 7;
  cache.Get(1, 100, true, true)[0] = 9;
  cache.Flush();
  EXPECT_EQ(cache.stores(), 2u);
  cache.Flush();
  EXPECT_EQ(cache.stores(), 2u);
  EXPECT_EQ(store.tables[300][0], 7u);
  EXPECT_EQ(store.tables[100][0], 9u);
}

TEST(L2Cache, ALoadThatThrowsLeavesTheCacheAsItWas) {
  FakeStore store;
  store.tables[200] = {5, 6, 7, 8};
  L2Cache cache(1, 4, store.Loader(), store.Storer());
  cache.Get(0, 100, true, true)[1] = 11;
  // Table 1's host offset holds nothing: the load throws.
  EXPECT_THROW(cache.Get(1, 300, false, false), std::out_of_range);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.stores(), 0u);  // the dirty table was not evicted for nothing
  EXPECT_EQ(cache.loads(), 0u);
  EXPECT_EQ(cache.Get(0, 100, false, false)[1], 11u);  // still cached, not reloaded
  EXPECT_EQ(cache.loads(), 0u);
  // A later miss evicts and loads as usual, and the failed index is not cached.
  EXPECT_EQ(cache.Get(1, 200, false, false)[0], 5u);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(store.tables[100][1], 11u);
  EXPECT_THROW(cache.Get(2, 400, false, false), std::out_of_range);
  EXPECT_EQ(cache.Get(1, 200, false, false)[3], 8u);
  EXPECT_EQ(cache.loads(), 1u);
}

TEST(L2Cache, DefaultCapacityIsE2imagesFiveHundredTwelve) {
  EXPECT_EQ(kDefaultL2CacheTables, 512u);
}

}  // namespace
}  // namespace qcow2
