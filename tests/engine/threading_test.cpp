#include "worker/engine/threading.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

namespace dwarp::engine {
namespace {

TEST(ThreadingTest, SetsLibTorchIntraOpThreads) {
  SetComputeThreads(1);
  EXPECT_EQ(at::get_num_threads(), 1);
  SetComputeThreads(2);
  EXPECT_EQ(at::get_num_threads(), 2);
}

TEST(ThreadingTest, RejectsNonPositiveCounts) { EXPECT_THROW(SetComputeThreads(0), c10::Error); }

}  // namespace
}  // namespace dwarp::engine
