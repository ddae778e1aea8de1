// Fast Walsh–Hadamard transform (unnormalised): x <- H_n x, with H_n[i][j] = (-1)^popcount(i & j).
// H_n is symmetric and H_n H_n = n I, so applying it twice multiplies by n.
#pragma once

#include <ATen/core/Tensor.h>

namespace dwarp::engine {

// Transforms `x` in place along its last dimension, every leading index being one vector of the batch.
// `x`: contiguous, last dimension a power of two (1 allowed); float32 or float64 on CPU, float32 on CUDA
// (CUDA builds only). Throws c10::Error naming the bad shape, dtype or device otherwise.
// Thread-safety: uses the intra-op thread pool (at::parallel_for); callers must not transform the same
// tensor concurrently.
void FwhtInPlace(const at::Tensor& x);

}  // namespace dwarp::engine
