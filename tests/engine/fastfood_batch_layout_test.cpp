// Contract of fastfood_batch_layout.h: the segment table and launch plan BatchedFastfood builds on the host
// for its CUDA kernels (and fwht_cuda_standalone_check drives them with), checked here on any machine.
#include "worker/engine/fastfood_batch_layout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace dwarp::engine::internal {
namespace {

int64_t NextPowerOfTwo(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// A target of D_t = size reading d_t = inputs entries, with its own scale.
FastfoodTargetShape Target(int64_t size, int64_t inputs, float scale = 1.0f) {
  return {NextPowerOfTwo(std::max(size, inputs)), inputs, size, scale};
}

// Every property the kernels rely on: segments back to back in both buffers in layout order, each
// target's offset where its segment starts, runs that cover the segments exactly once with one length each
// (and differ from their neighbours'), the fold's blocks per segment, the totals.
void ExpectConsistent(const std::vector<FastfoodTargetShape>& targets, const FastfoodBatchLayout& layout, int sms,
                      const std::string& label) {
  const size_t count = targets.size();
  ASSERT_EQ(layout.order.size(), count) << label;
  ASSERT_EQ(layout.segments.size(), count) << label;
  ASSERT_EQ(layout.offsets.size(), count) << label;
  ASSERT_EQ(layout.fold_block_prefix.size(), count + 1) << label;
  std::vector<int> seen(count, 0);
  int64_t padded = 0, small = 0, max_small = 1, shared = 1;
  EXPECT_EQ(layout.fold_block_prefix[0], 0) << label;
  for (size_t k = 0; k < count; ++k) {
    const int64_t t = layout.order[k];
    ASSERT_GE(t, 0) << label;
    ASSERT_LT(t, static_cast<int64_t>(count)) << label;
    ++seen[static_cast<size_t>(t)];
    const FastfoodSegment& seg = layout.segments[k];
    const FastfoodTargetShape& target = targets[static_cast<size_t>(t)];
    EXPECT_EQ(seg.padded_offset, padded) << label << ": position " << k;
    EXPECT_EQ(seg.small_offset, small) << label << ": position " << k;
    EXPECT_EQ(layout.offsets[static_cast<size_t>(t)], seg.padded_offset) << label << ": target " << t;
    EXPECT_EQ(seg.padded, target.padded) << label;
    EXPECT_EQ(seg.inputs, target.inputs) << label;
    EXPECT_EQ(seg.target_size, target.target_size) << label;
    EXPECT_EQ(seg.scale, target.scale) << label;
    EXPECT_EQ(seg.small_n, NextPowerOfTwo(target.inputs)) << label;
    EXPECT_LE(seg.small_n, seg.padded) << label;
    EXPECT_EQ(layout.fold_block_prefix[k + 1] - layout.fold_block_prefix[k],
              FastfoodFoldBlocks(seg.padded, seg.small_n, sms))
        << label << ": position " << k;
    padded += seg.padded;
    small += seg.small_n;
    max_small = std::max(max_small, seg.small_n);
    if (FastfoodFoldUsesShared(seg.small_n)) shared = std::max(shared, seg.small_n);
  }
  for (size_t t = 0; t < count; ++t) EXPECT_EQ(seen[t], 1) << label << ": target " << t << " in the layout";
  EXPECT_EQ(layout.padded_total, padded) << label;
  EXPECT_EQ(layout.small_total, small) << label;
  EXPECT_EQ(layout.max_small_n, max_small) << label;
  EXPECT_EQ(layout.fold_shared_floats, shared) << label;
  EXPECT_LE(layout.fold_shared_floats, kMaxSharedFold) << label;

  // Runs: {offset, count, length}, consecutive, covering the segments in order.
  for (const bool padded_runs : {true, false}) {
    const auto& runs = padded_runs ? layout.padded_runs : layout.small_runs;
    const std::string which = label + (padded_runs ? ": padded runs" : ": small runs");
    size_t k = 0;
    for (size_t r = 0; r < runs.size(); ++r) {
      const auto& [offset, run_count, length] = runs[r];
      ASSERT_GE(run_count, 1) << which;
      if (r > 0) EXPECT_NE(runs[r - 1][2], length) << which << ": neighbouring runs of one length";
      for (int64_t i = 0; i < run_count; ++i, ++k) {
        ASSERT_LT(k, count) << which;
        const FastfoodSegment& seg = layout.segments[k];
        EXPECT_EQ(padded_runs ? seg.padded : seg.small_n, length) << which << ": position " << k;
        EXPECT_EQ(padded_runs ? seg.padded_offset : seg.small_offset, offset + i * length) << which;
      }
    }
    EXPECT_EQ(k, count) << which << ": runs cover every segment";
  }
}

// ResNet-18-like targets (conv weights, batch-norm pairs, a head) in model order, d = 1000, and
// reference-mode ones reading a prefix (other d'_t), with the smallest cases d_t = 1 and L_t = 1.
std::vector<FastfoodTargetShape> ResnetLike() {
  std::vector<FastfoodTargetShape> targets{Target(9408, 1000), Target(64, 1000), Target(64, 1000)};
  for (int block = 0; block < 4; ++block) {
    targets.push_back(Target(36864, 1000, 0.5f));
    targets.push_back(Target(64, 64));
    targets.push_back(Target(64, 64, 2.0f));
  }
  for (const int64_t size : {73728, 147456, 294912, 589824, 1179648, 2359296}) {
    targets.push_back(Target(size, 1000));
    targets.push_back(Target(size / 576, 512));
  }
  targets.push_back(Target(168 * 512, 1000));
  targets.push_back(Target(168, 256));
  targets.push_back(Target(5, 1));
  targets.push_back(Target(1, 1));
  targets.push_back(Target(130000, 20000));  // d'_t above the shared-memory fold
  return targets;
}

TEST(FastfoodBatchLayoutTest, LongestFirstIsAStableSortWithOneRunPerLength) {
  const auto targets = ResnetLike();
  for (const int sms : {1, 132}) {
    const FastfoodBatchLayout layout = LayOutFastfoodBatch(targets, sms, /*longest_first=*/true);
    const std::string label = std::to_string(sms) + " SMs";
    ExpectConsistent(targets, layout, sms, label);
    for (size_t k = 1; k < layout.order.size(); ++k) {
      const int64_t a = layout.order[k - 1], b = layout.order[k];
      EXPECT_GE(targets[a].padded, targets[b].padded) << label << ": longest first";
      if (targets[a].padded == targets[b].padded) EXPECT_LT(a, b) << label << ": equal lengths keep their order";
    }
    // One batched FWHT per distinct L_t.
    std::vector<int64_t> lengths;
    for (const auto& t : targets) {
      if (std::find(lengths.begin(), lengths.end(), t.padded) == lengths.end()) lengths.push_back(t.padded);
    }
    EXPECT_EQ(layout.padded_runs.size(), lengths.size()) << label;
  }
}

TEST(FastfoodBatchLayoutTest, GivenOrderIsKept) {
  const auto targets = ResnetLike();
  const FastfoodBatchLayout layout = LayOutFastfoodBatch(targets, 132, /*longest_first=*/false);
  ExpectConsistent(targets, layout, 132, "given order");
  for (size_t k = 0; k < layout.order.size(); ++k) EXPECT_EQ(layout.order[k], static_cast<int64_t>(k));
}

TEST(FastfoodBatchLayoutTest, OneTargetAndTheSmallest) {
  for (const auto& target : {Target(1, 1), Target(5, 1), Target(7, 8), Target(1 << 24, 1000)}) {
    const FastfoodBatchLayout layout = LayOutFastfoodBatch({target}, 132, true);
    ExpectConsistent({target}, layout, 132, "one target of L_t = " + std::to_string(target.padded));
    EXPECT_EQ(layout.padded_runs.size(), 1u);
    EXPECT_EQ(layout.small_runs.size(), 1u);
  }
}

// The fold's work split: at least one block per target; with shared memory at most 4 blocks per SM and
// each block (but a lone one) given at least 4 * small_n terms; without, enough blocks to cover the
// target one element per thread, at most 2^20.
TEST(FastfoodBatchLayoutTest, FoldBlocksStayWithinTheirBounds) {
  for (const int sms : {1, 132}) {
    for (int log_padded = 0; log_padded <= 26; log_padded += 2) {
      const int64_t padded = int64_t{1} << log_padded;
      for (int64_t small_n = 1; small_n <= padded; small_n <<= 3) {
        const int64_t blocks = FastfoodFoldBlocks(padded, small_n, sms);
        const std::string label = "L " + std::to_string(padded) + ", d' " + std::to_string(small_n);
        EXPECT_GE(blocks, 1) << label;
        EXPECT_LE(blocks, (padded + kFoldThreads - 1) / kFoldThreads) << label;
        if (FastfoodFoldUsesShared(small_n)) {
          EXPECT_LE(blocks, 4 * sms) << label;
          if (blocks > 1) EXPECT_GE(padded / blocks, 4 * small_n) << label;
        } else {
          EXPECT_LE(blocks, kMaxFoldBlocks) << label;
          EXPECT_EQ(blocks, std::min((padded + kFoldThreads - 1) / kFoldThreads, kMaxFoldBlocks)) << label;
        }
      }
    }
  }
}

}  // namespace
}  // namespace dwarp::engine::internal
