// The device layout of a batch of Fastfood targets (internal to the engine): BatchedFastfood's segment table
// on CUDA, and the launch plan its calls follow (fastfood_projection.cpp), built on the host once. Header
// only and free of CUDA, so that the engine's tests check it on any machine and the CUDA launchers' own
// check (tests/engine/fwht_cuda_standalone_check.cu) drives the kernels with this very layout.
//
// Target t owns [padded_offset, padded_offset + L_t) of the concatenated padded buffers (its B, Pi, G and
// its length-L_t transform) and [small_offset, small_offset + d'_t) of the concatenated small buffers (its
// length-d'_t transforms, d'_t = 2^ceil(log2 d_t)); segments lie back to back in both, in layout order.
// Thread-safety: plain functions and values.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <vector>

namespace dwarp::engine::internal {

struct FastfoodSegment {
  int64_t padded_offset;
  int64_t padded;        // L_t, a power of two
  int64_t small_offset;
  int64_t small_n;       // d'_t = 2^ceil(log2 inputs), <= padded
  int64_t inputs;        // d_t >= 1
  int64_t target_size;   // D_t <= padded
  float scale;
};
// The host compiler and nvcc must agree on the layout: the table is copied to the device byte for byte.
static_assert(sizeof(FastfoodSegment) == 56, "FastfoodSegment: six int64_t and a float, padded to 8 bytes");

// Folds whose output fits in this many floats (32 KiB, under the 48 KiB default dynamic shared memory
// limit) accumulate per block in shared memory, so global atomics drop from `padded` to blocks * small_n.
constexpr int64_t kMaxSharedFold = 8192;
// Threads per block of the streaming kernels (the fold among them).
constexpr int64_t kFoldThreads = 256;
// Grid-stride kernels never need more blocks than this to fill a GPU.
constexpr int64_t kMaxFoldBlocks = int64_t{1} << 20;

// Whether a fold into small_n floats accumulates per block in shared memory (else in global memory).
inline bool FastfoodFoldUsesShared(int64_t small_n) { return small_n <= kMaxSharedFold; }

// Blocks the fold of one target takes (FastfoodFoldCuda and the batched fold alike): enough to fill `sms`
// multiprocessors, each with at least 4 * small_n terms when the fold accumulates in shared memory (so that
// its flush of small_n atomics stays a small fraction of its work); at least one.
inline int64_t FastfoodFoldBlocks(int64_t padded, int64_t small_n, int sms) {
  const int64_t covering = (padded + kFoldThreads - 1) / kFoldThreads;
  if (!FastfoodFoldUsesShared(small_n)) return std::max<int64_t>(1, std::min<int64_t>(covering, kMaxFoldBlocks));
  return std::max<int64_t>(1, std::min({int64_t{4} * sms, padded / (4 * small_n), covering}));
}

// One target as the layout needs it.
struct FastfoodTargetShape {
  int64_t padded;       // L_t, a power of two
  int64_t inputs;       // d_t >= 1, <= padded
  int64_t target_size;  // D_t >= 1, <= padded
  float scale;
};

struct FastfoodBatchLayout {
  std::vector<int64_t> order;              // order[k]: the target (input index) at layout position k
  std::vector<int64_t> offsets;            // per target, in input order: its padded_offset
  std::vector<FastfoodSegment> segments;   // in layout order
  // Runs of consecutive segments of one length, each transformed by one batched FWHT: {offset, count, length}.
  std::vector<std::array<int64_t, 3>> padded_runs;
  std::vector<std::array<int64_t, 3>> small_runs;
  std::vector<int64_t> fold_block_prefix;  // [count + 1]: the fold kernel's blocks, segment by segment
  int64_t padded_total = 0;
  int64_t small_total = 0;
  int64_t max_small_n = 1;
  int64_t fold_shared_floats = 1;          // dynamic shared memory of the fold kernel, in floats
};

// The layout of `targets` for a GPU of `sms` multiprocessors: longest L_t first (stable) when
// `longest_first`, so that each distinct L_t is one run (BatchedFastfood's layout); in the given order
// otherwise (the launchers' check also lays targets out in no order).
inline FastfoodBatchLayout LayOutFastfoodBatch(const std::vector<FastfoodTargetShape>& targets, int sms,
                                               bool longest_first) {
  FastfoodBatchLayout layout;
  layout.order.resize(targets.size());
  std::iota(layout.order.begin(), layout.order.end(), int64_t{0});
  if (longest_first) {
    std::stable_sort(layout.order.begin(), layout.order.end(),
                     [&](int64_t a, int64_t b) { return targets[a].padded > targets[b].padded; });
  }
  layout.offsets.assign(targets.size(), 0);
  layout.fold_block_prefix.assign(1, 0);
  auto extend = [](std::vector<std::array<int64_t, 3>>& runs, int64_t offset, int64_t length) {
    if (!runs.empty() && runs.back()[2] == length) ++runs.back()[1];
    else runs.push_back({offset, 1, length});
  };
  for (const int64_t t : layout.order) {
    const FastfoodTargetShape& target = targets[t];
    FastfoodSegment seg{};
    seg.padded_offset = layout.padded_total;
    seg.padded = target.padded;
    seg.small_offset = layout.small_total;
    seg.small_n = 1;
    while (seg.small_n < target.inputs) seg.small_n <<= 1;
    seg.inputs = target.inputs;
    seg.target_size = target.target_size;
    seg.scale = target.scale;
    layout.offsets[t] = seg.padded_offset;
    layout.padded_total += seg.padded;
    layout.small_total += seg.small_n;
    layout.max_small_n = std::max(layout.max_small_n, seg.small_n);
    if (FastfoodFoldUsesShared(seg.small_n)) layout.fold_shared_floats = std::max(layout.fold_shared_floats, seg.small_n);
    layout.fold_block_prefix.push_back(layout.fold_block_prefix.back() + FastfoodFoldBlocks(seg.padded, seg.small_n, sms));
    extend(layout.padded_runs, seg.padded_offset, seg.padded);
    extend(layout.small_runs, seg.small_offset, seg.small_n);
    layout.segments.push_back(seg);
  }
  return layout;
}

}  // namespace dwarp::engine::internal
