// Contract of buffer_pool.h: large buffers are reused after release, small ones are plain tensors, and
// the storage always has the requested capacity.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "worker/engine/buffer_pool.h"

namespace dwarp::engine {
namespace {

TEST(BufferPoolTest, LargeBufferIsReusedAfterRelease) {
  const int64_t capacity = 1 << 20;  // 4 MiB of float32
  void* first = nullptr;
  {
    at::Tensor t = PooledEmpty({1000}, capacity, at::kFloat);
    EXPECT_EQ(t.numel(), 1000);
    first = t.data_ptr();
    EXPECT_GE(PooledStats().live, capacity * 4);
  }
  EXPECT_GE(PooledStats().free, capacity * 4);
  at::Tensor again = PooledEmpty({capacity}, capacity, at::kFloat);
  EXPECT_EQ(again.data_ptr(), first);
  again.fill_(2.0f);  // the whole capacity is writable
  EXPECT_EQ(again.sum().item<float>(), 2.0f * capacity);
}

TEST(BufferPoolTest, PeakTracksLiveBytes) {
  ResetPooledPeak();
  const int64_t before = PooledStats().live;
  {
    at::Tensor a = PooledEmpty({1 << 19}, 1 << 19, at::kDouble);
    at::Tensor b = PooledEmpty({1 << 19}, 1 << 19, at::kDouble);
  }
  EXPECT_EQ(PooledStats().live, before);
  EXPECT_GE(PooledStats().peak_live - before, 2 * (1 << 19) * 8);
}

TEST(BufferPoolTest, SmallRequestHasCapacityButShowsItsShape) {
  at::Tensor t = PooledEmpty({3, 5}, 64, at::kFloat);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 5}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_GE(t.storage().nbytes(), 64u * 4u);
}

TEST(BufferPoolTest, RejectsCapacityBelowShape) {
  EXPECT_THROW(PooledEmpty({10, 10}, 50, at::kFloat), c10::Error);
}

}  // namespace
}  // namespace dwarp::engine
