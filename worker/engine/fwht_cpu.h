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

// Hooks that fuse a caller's streaming work into the transform's first and last sweeps over memory, so
// that producing the input and consuming the output cost no round trip of their own (the Fastfood
// projection's gather, copy and fold ride along this way).
template <typename T>
struct FwhtFusion {
  // Writes data[begin, begin + len) right before that block is transformed (blocks fit in L2). Called
  // concurrently for disjoint blocks.
  void (*fill)(void* context, T* block, int64_t begin, int64_t len) = nullptr;
  // Reads final values right after they are computed: `rows` runs of `width` contiguous elements, run m
  // at data[first + m * stride]. The pieces are split into `consume_chunks` fixed chunks, each visited in
  // a fixed order by one thread; `chunk` names it, so per-chunk accumulators give results that do not
  // depend on the thread count.
  void (*consume)(void* context, int64_t chunk, const T* data, int64_t first, int64_t rows, int64_t stride,
                  int64_t width) = nullptr;
  void* context = nullptr;
  int64_t consume_chunks = 1;
};

// FWHT of one length-n vector (a power of two) with the hooks above; either hook may be null.
void FwhtCpuFused(float* data, int64_t n, const FwhtFusion<float>& fusion);
void FwhtCpuFused(double* data, int64_t n, const FwhtFusion<double>& fusion);

// Which kernels FwhtCpu runs on this CPU: "avx2" or "generic".
const char* FwhtCpuIsa();

}  // namespace dwarp::engine::internal
