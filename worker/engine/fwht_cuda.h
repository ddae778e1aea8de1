// Raw CUDA launchers of the engine's kernels (fwht_cuda.cu). Compiled and linked only in CUDA builds
// (DWARP_WITH_CUDA). `stream` is a cudaStream_t passed as void* so that this header needs no CUDA
// headers. All pointers are device pointers; every call is asynchronous on `stream` and queues all its work
// there (the fold's zeroing included), never on the legacy default stream, so `stream` may be a
// non-blocking one (LibTorch's pool streams are): the caller orders its own fills, copies and reads of
// these buffers on `stream` too, or with events.
#pragma once

#include <cstdint>

#include "worker/engine/fastfood_batch_layout.h"

namespace dwarp::engine::internal {

// In-place unnormalised FWHT of `batch` contiguous vectors of length n (a power of two, n >= 1).
void FwhtCuda(float* data, int64_t batch, int64_t n, void* stream);

// Fastfood forward gather: out[i] = small[perm[i] & (small_n - 1)] * gauss[i] for i in [0, padded).
// small_n is a power of two <= padded.
void FastfoodGatherCuda(const float* small, int64_t small_n, const int32_t* perm, const float* gauss,
                        float* out, int64_t padded, void* stream);

// Fastfood backward fold: fold[j] = sum over i with (perm[i] & (small_n - 1)) == j of gauss[i] * u[i].
// Overwrites fold[0, small_n) (the callee zeroes it first).
void FastfoodFoldCuda(const float* u, const int32_t* perm, const float* gauss, int64_t padded, float* fold,
                      int64_t small_n, void* stream);

// ---- Batched Fastfood: many targets at once, driven by a segment table --------------------------------
// The table's segments (FastfoodSegment) and the launch plan come from LayOutFastfoodBatch
// (fastfood_batch_layout.h); target t reads theta[0, inputs).
// The segment table on the device, and the fold's work split (built once with FastfoodFoldBlocks).
struct FastfoodBatchTable {
  const FastfoodSegment* segments;       // device, [count]
  const FastfoodSegment* host_segments;  // the same on the host (launch ranges are computed from it)
  int count;
  int64_t padded_total;             // sum of padded
  int64_t small_total;              // sum of small_n
  int64_t max_small_n;
  int64_t theta_size;               // >= every inputs
  const int8_t* signs;              // device, [padded_total]: every target's B, concatenated
  const int32_t* permutation;       // device, [padded_total]
  const float* gaussians;           // device, [padded_total]
  const int64_t* fold_block_prefix; // device, [count + 1]: blocks of the fold kernel, segment by segment
  int fold_blocks;                  // fold_block_prefix[count]
  int fold_shared_floats;           // dynamic shared memory of the fold kernel, in floats
};

// The current device's multiprocessor count, queried once per device and remembered (a query per call
// would cost host time on the hot path).
int CurrentMultiprocessorCount();

// Forward, first step: small[small_offset + j] = theta[j] * B[j] * scale for j < inputs, 0 up to small_n.
void BatchedFastfoodScaleInCuda(const FastfoodBatchTable& table, const float* theta, float* small, void* stream);
// Forward gather: out[padded_offset + i] = small[small_offset + (perm[i] & (small_n - 1))] * G[i].
void BatchedFastfoodGatherCuda(const FastfoodBatchTable& table, const float* small, float* out, void* stream);

// Backward, first step: work[padded_offset + i] = grads[t][i] for i < target_size, 0 up to padded; a null
// grads[t] gives zeros. grads holds table.count pointers (host array of device pointers).
void BatchedFastfoodGradInCuda(const FastfoodBatchTable& table, const float* const* grads, float* work, void* stream);
// Backward fold into every target's small buffer (zeroed first), as FastfoodFoldCuda per target.
void BatchedFastfoodFoldCuda(const FastfoodBatchTable& table, const float* work, float* small, void* stream);
// Backward, last step: grad[j] = sum over targets t with j < inputs, in table order, of
// small[small_offset + j] * B[j] * scale, for j < theta_size (every entry written).
void BatchedFastfoodScaleOutCuda(const FastfoodBatchTable& table, const float* small, float* grad, void* stream);

}  // namespace dwarp::engine::internal
