// Raw CUDA launchers of the engine's kernels (fwht_cuda.cu). Compiled and linked only in CUDA builds
// (DWARP_WITH_CUDA). `stream` is a cudaStream_t passed as void* so that this header needs no CUDA
// headers. All pointers are device pointers; every call is asynchronous on `stream` and queues all its work
// there (the fold's zeroing included), never on the legacy default stream, so `stream` may be a
// non-blocking one (LibTorch's pool streams are): the caller orders its own fills, copies and reads of
// these buffers on `stream` too, or with events.
#pragma once

#include <cstdint>

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

}  // namespace dwarp::engine::internal
