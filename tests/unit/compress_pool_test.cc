#include "qcow2/compress_pool.h"
#include "qcow2/compress.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include <sched.h>

#include "qcow2/writer.h"
#include "test_util.h"

namespace qcow2 {
namespace {

// Clusters that compress (repeated text) and clusters that do not (noise).
std::vector<uint8_t> ClusterFor(uint64_t i, size_t size) {
  if (i % 3 == 0) {
    std::mt19937 random(static_cast<uint32_t>(i));
    std::vector<uint8_t> noise(size);
    for (uint8_t& b : noise)
      b = static_cast<uint8_t>(random());
    return noise;
  }
  std::vector<uint8_t> text(size);
  for (size_t j = 0; j < size; ++j)
    text[j] = static_cast<uint8_t>("inode table "[j % 12] + i % 7);
  return text;
}

// Every cluster comes back once, in submission order, and decompresses to its input.
void CheckRoundTrip(CompressionType type, unsigned threads) {
  constexpr size_t kCluster = 65536;
  constexpr uint64_t kCount = 100;  // several batches
  std::vector<uint64_t> order;
  uint64_t compressed = 0;
  auto sink = [&](const CompressedCluster& c) {
    order.push_back(c.cluster);
    const std::vector<uint8_t> expected = ClusterFor(c.cluster / 2, kCluster);
    if (c.compressed) {
      ++compressed;
      ASSERT_LT(c.data.size(), kCluster);
      std::vector<uint8_t> out(kCluster);
      ASSERT_TRUE(DecompressCluster(type, c.data, out));
      EXPECT_EQ(out, expected) << "cluster " << c.cluster;
    } else {
      EXPECT_EQ(std::vector<uint8_t>(c.data.begin(), c.data.end()), expected)
          << "cluster " << c.cluster;
    }
  };
  {
    CompressPool pool(type, -1, threads, kCluster);
    for (uint64_t i = 0; i < kCount; ++i)
      pool.Submit(2 * i, ClusterFor(i, kCluster), sink);
    pool.Drain(sink);
  }
  ASSERT_EQ(order.size(), kCount);
  for (uint64_t i = 0; i < kCount; ++i)
    EXPECT_EQ(order[i], 2 * i);
  EXPECT_EQ(compressed, kCount - (kCount + 2) / 3);  // the noisy third stays plain
}

// One thread is the caller's own: no worker is started, and each batch is
// compressed when the caller would otherwise wait for it.
TEST(CompressPool, ZstdInOrderWithOneThread) {
  CheckRoundTrip(CompressionType::kZstd, 1);
}
TEST(CompressPool, ZstdInOrderWithThreeThreads) {
  CheckRoundTrip(CompressionType::kZstd, 3);
}
TEST(CompressPool, ZlibInOrderWithTwoThreads) {
  CheckRoundTrip(CompressionType::kZlib, 2);
}

// Workers start when batches wait with none idle, not all at once: a caller
// that waits for each batch before the next needs one worker whatever the
// thread count (each started worker takes a codec of its own: 660 KiB for zstd).
TEST(CompressPool, StartsWorkersOnlyForBatchesThatWait) {
  constexpr size_t kCluster = 65536;
  constexpr uint64_t kBatchClusters = 16;  // the pool's 1 MiB batch
  uint64_t delivered = 0;
  auto sink = [&](const CompressedCluster&) { ++delivered; };
  CompressPool pool(CompressionType::kZstd, -1, 64, kCluster);
  EXPECT_EQ(pool.workers_started(), 0u);
  for (uint64_t batch = 0; batch < 8; ++batch) {
    for (uint64_t i = 0; i < kBatchClusters; ++i)
      pool.Submit(batch * kBatchClusters + i, ClusterFor(i, kCluster), sink);
    pool.Drain(sink);
    EXPECT_EQ(pool.workers_started(), 1u) << "after batch " << batch;
  }
  EXPECT_EQ(delivered, 8 * kBatchClusters);
}

// The default thread count is the CPUs this thread may run on (as nproc),
// not every CPU of the machine: `taskset -c 0` means one.
TEST(CompressPool, DefaultThreadsFollowsTheAffinityMask) {
  cpu_set_t before;
  ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
  EXPECT_EQ(CompressPool::DefaultThreads(), static_cast<unsigned>(CPU_COUNT(&before)));
  int first = 0;
  while (!CPU_ISSET(first, &before))
    ++first;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  const unsigned narrowed = CompressPool::DefaultThreads();
  ASSERT_EQ(sched_setaffinity(0, sizeof before, &before), 0);
  EXPECT_EQ(narrowed, 1u);
}

TEST(CompressPool, DestroyedWithWorkQueuedDoesNotHang) {
  CompressPool pool(CompressionType::kZstd, -1, 2, 65536);
  auto sink = [](const CompressedCluster&) {};
  for (uint64_t i = 0; i < 40; ++i)
    pool.Submit(i, ClusterFor(i, 65536), sink);
}

// Clusters filled in the queue come back like submitted ones; a dropped one
// leaves no trace, also when it was the first of a batch.
TEST(CompressPool, ClustersFilledInPlaceAndDropped) {
  constexpr size_t kCluster = 65536;
  std::vector<uint64_t> order;
  auto sink = [&](const CompressedCluster& c) {
    std::vector<uint8_t> out(kCluster);
    ASSERT_TRUE(c.compressed);
    ASSERT_TRUE(DecompressCluster(CompressionType::kZstd, c.data, out));
    EXPECT_EQ(out, ClusterFor(c.cluster, kCluster)) << "cluster " << c.cluster;
    order.push_back(c.cluster);
  };
  std::vector<uint64_t> expected;
  {
    CompressPool pool(CompressionType::kZstd, -1, 2, 65536);
    for (uint64_t i = 1; i < 100; ++i) {
      if (i % 3 == 0)
        continue;  // noise: compressed clusters only, to check them all
      std::span<uint8_t> room = pool.AddCluster(i, kCluster);
      ASSERT_EQ(room.size(), kCluster);
      EXPECT_TRUE(std::all_of(room.begin(), room.end(), [](uint8_t b) { return b == 0; }));
      if (i % 4 == 0 || i % 16 == 1) {
        room[7] = 1;
        pool.DropAdded();
        continue;
      }
      const std::vector<uint8_t> data = ClusterFor(i, kCluster);
      std::copy(data.begin(), data.end(), room.begin());
      pool.SubmitAdded(sink);
      expected.push_back(i);
    }
    pool.Drain(sink);
  }
  EXPECT_EQ(order, expected);
}

// Queued clusters must hold only their packed bytes, not the worst-case room
// the codec needs: 64 KiB clusters of metadata pack to a few hundred bytes,
// and a few MiB of them wait in the queue.
TEST(ClusterCompressor, ResultHoldsOnlyThePackedBytes) {
  for (CompressionType type : {CompressionType::kZstd, CompressionType::kZlib}) {
    ClusterCompressor codec(type, -1);
    std::vector<uint8_t> cluster(65536, 0);
    cluster[100] = 7;
    for (int i = 0; i < 3; ++i) {
      const auto packed = codec.Compress(cluster);
      ASSERT_TRUE(packed.has_value());
      EXPECT_LT(packed->size(), 1024u);
      EXPECT_LT(packed->capacity(), 2048u);
      std::vector<uint8_t> back(cluster.size());
      ASSERT_TRUE(DecompressCluster(type, *packed, back));
      EXPECT_EQ(back, cluster);
    }
  }
}

// A codec's memory is measured, not guessed: a zstd context grows with the
// level and the cluster size once it has packed a cluster.
TEST(ClusterCompressor, MemoryBytesFollowsTheLevelAndClusterSize) {
  auto measured = [](CompressionType type, int level, size_t cluster_size) {
    ClusterCompressor codec(type, level);
    codec.Pack(std::vector<uint8_t>(cluster_size));
    return codec.MemoryBytes();
  };
  const size_t zstd3 = measured(CompressionType::kZstd, 3, 65536);
  EXPECT_GT(zstd3, 256u << 10);
  EXPECT_LT(zstd3, 2u << 20);
  EXPECT_GT(measured(CompressionType::kZstd, 19, 65536), zstd3);
  EXPECT_GT(measured(CompressionType::kZstd, 19, 2u << 20), 16u << 20);
  const size_t zlib = measured(CompressionType::kZlib, 9, 65536);
  EXPECT_GT(zlib, 256u << 10);
  EXPECT_LT(zlib, 1u << 20);
}

constexpr size_t kMiB = 1u << 20;

// What fits: two threads at the default level keep the pool of before (four
// batches a thread); many threads stop where codecs and batches fill the
// budget; a codec larger than the budget leaves the caller's thread alone.
TEST(PoolLimits, FitsThreadsAndBatchesInTheBudget) {
  const size_t batch = CompressPool::BatchBytes(65536);
  EXPECT_EQ(batch, 2 * kMiB);
  PoolLimits two = PoolLimits::Fit(2, 700 << 10, batch, 48 * kMiB);
  EXPECT_EQ(two.threads, 2u);
  EXPECT_EQ(two.batches_in_flight, 8u);

  PoolLimits many = PoolLimits::Fit(64, 700 << 10, batch, 48 * kMiB);
  EXPECT_EQ(many.threads, 10u);  // 48 MiB / (0.68 + 2 * 2 MiB)
  EXPECT_EQ(many.batches_in_flight, 20u);
  EXPECT_LE(many.threads * (700u << 10) + many.batches_in_flight * batch, 48 * kMiB);

  PoolLimits huge_codec =
      PoolLimits::Fit(8, 34 * kMiB, CompressPool::BatchBytes(2 * kMiB), 48 * kMiB);
  EXPECT_EQ(huge_codec.threads, 1u);
  EXPECT_EQ(huge_codec.batches_in_flight, 3u);  // (48 - 34) / 4 MiB

  PoolLimits over = PoolLimits::Fit(8, 60 * kMiB, 4 * kMiB, 48 * kMiB);
  EXPECT_EQ(over.threads, 1u);
  EXPECT_EQ(over.batches_in_flight, 2u);

  EXPECT_EQ(PoolLimits::Fit(1, 0, batch, 48 * kMiB).threads, 1u);
  EXPECT_EQ(PoolLimits::Fit(0, 700 << 10, batch, 48 * kMiB).threads, 1u);
}

// Whatever is asked, a pool whose limits are not at their floor holds no
// more than the budget.
TEST(PoolLimits, NeverOverTheBudgetAboveTheFloor) {
  for (unsigned threads : {1u, 2u, 3u, 8u, 64u, 256u})
    for (size_t codec : {size_t{0}, size_t{300} << 10, size_t{1750} << 10, 34 * kMiB})
      for (size_t cluster : {size_t{512}, size_t{65536}, 2 * kMiB}) {
        const size_t batch = CompressPool::BatchBytes(cluster);
        const PoolLimits l = PoolLimits::Fit(threads, codec, batch, 48 * kMiB);
        EXPECT_GE(l.threads, 1u);
        EXPECT_LE(l.threads, std::max(1u, threads));
        EXPECT_GE(l.batches_in_flight, 2u);
        EXPECT_LE(l.batches_in_flight, 4u * l.threads);
        if (l.threads > 1 || l.batches_in_flight > 2) {
          EXPECT_LE(l.threads * codec + l.batches_in_flight * batch, 48 * kMiB)
              << threads << " threads, codec " << codec << ", cluster " << cluster;
        }
      }
}

// A pool given a smaller budget (the scrambler's queue takes the rest of
// the process's) fits its threads and batches to that one.
TEST(CompressPool, FitsTheBudgetItIsGiven) {
  CompressPool wide(CompressionType::kZstd, -1, 64, 65536);
  CompressPool narrow(CompressionType::kZstd, -1, 64, 65536, 32 * kMiB);
  EXPECT_EQ(wide.limits().budget_bytes, CompressPool::kMemoryBudget);
  EXPECT_EQ(narrow.limits().budget_bytes, 32 * kMiB);
  EXPECT_LT(narrow.limits().threads, wide.limits().threads);
  const PoolLimits& l = narrow.limits();
  EXPECT_LE(l.threads * l.codec_bytes + l.batches_in_flight * CompressPool::BatchBytes(65536),
            32 * kMiB);
}

// zstd level 19 with 2 MiB clusters: each codec takes 35 MiB, so eight
// threads asked become the caller's alone, and no worker is started while
// the clusters still come back whole and in order.
TEST(CompressPool, ACodecOverTheBudgetLeavesTheCallersThreadAlone) {
  constexpr size_t kCluster = 2u << 20;
  CompressPool pool(CompressionType::kZstd, 19, 8, kCluster);
  EXPECT_EQ(pool.limits().threads, 1u);
  std::vector<uint64_t> order;
  auto sink = [&](const CompressedCluster& c) {
    std::vector<uint8_t> out(kCluster);
    ASSERT_TRUE(c.compressed);
    ASSERT_TRUE(DecompressCluster(CompressionType::kZstd, c.data, out));
    EXPECT_EQ(out, ClusterFor(1, kCluster));
    order.push_back(c.cluster);
  };
  for (uint64_t i = 0; i < 6; ++i)
    pool.Submit(i, ClusterFor(1, kCluster), sink);
  pool.Drain(sink);
  EXPECT_EQ(pool.workers_started(), 0u);
  EXPECT_EQ(order, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5}));
}

TEST(SmallestClusterBits, DoublesPastTheEightTebibyteBoundary) {
  EXPECT_EQ(SmallestClusterBits(1ull << 30, 12), 12u);
  // 4 KiB clusters map 2 MiB per L1 entry: 8 TiB is the most 32 MiB of L1 covers.
  EXPECT_EQ(SmallestClusterBits(8ull << 40, 12), 12u);
  EXPECT_EQ(SmallestClusterBits((8ull << 40) + 4096, 12), 13u);
  EXPECT_EQ(SmallestClusterBits(15ull << 40, 12), 13u);
  // 1 KiB clusters: 128 KiB per entry, 512 GiB in all.
  EXPECT_EQ(SmallestClusterBits(1ull << 40, 10), 11u);
}

}  // namespace
}  // namespace qcow2
