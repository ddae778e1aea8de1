// Raw-pointer entry points of the CPU FWHT, for the engine's own kernels (fastfood_projection.cpp).
// Internal: code outside worker/engine uses fwht.h.
#pragma once

#include <cstdint>

namespace dwarp::engine::internal {

// In-place unnormalised FWHT of `batch` contiguous vectors of length `n` (a power of two) starting at
// `data`. Parallel over the intra-op thread pool; picks the AVX2 kernels at run time when the CPU has them.
enum class FwhtIsa { kBest, kGeneric };
// kGeneric forces the portable kernels (tests compare them with the dispatched ones).
void FwhtCpu(float* data, int64_t batch, int64_t n, FwhtIsa isa = FwhtIsa::kBest);
void FwhtCpu(double* data, int64_t batch, int64_t n, FwhtIsa isa = FwhtIsa::kBest);

// Which kernels FwhtCpu runs on this CPU: "avx2" or "generic".
const char* FwhtCpuIsa();

}  // namespace dwarp::engine::internal
