// The per-ISA FWHT kernels as a table of function pointers, and the blocking constants they share
// with the driver in fwht_cpu.cpp. Internal to worker/engine.
#pragma once

#include <cstdint>

namespace dwarp::engine::internal {

// Working set of one L1 sub-block or tile, and of one L2 block.
constexpr int64_t kTileBytes = 16 * 1024;
constexpr int64_t kBlockBytes = 256 * 1024;
// Stages fused into one tile pass (2^5 rows per tile).
constexpr int kMaxStagesPerPass = 5;

// Contiguous elements per tile row for a pass with first stride h0 and r stages.
inline int64_t TileWidth(int64_t elem_bytes, int64_t h0, int r) {
  const int64_t width = (kTileBytes / elem_bytes) >> r;
  return width < h0 ? width : h0;
}

// Number of stages a tile pass takes when `remaining` stages are left: as even a split as
// kMaxStagesPerPass allows, so that no pass is left with a single stage.
inline int StagesThisPass(int remaining) {
  const int passes = (remaining + kMaxStagesPerPass - 1) / kMaxStagesPerPass;
  return (remaining + passes - 1) / passes;
}

inline int Log2(int64_t n) {
  int k = 0;
  while ((int64_t{1} << k) < n) ++k;
  return k;
}

template <typename T>
struct FwhtKernelTable {
  // All stages of a vector of n <= kBlockBytes / sizeof(T) elements, in place, single-threaded.
  void (*transform_block)(T* x, int64_t n) = nullptr;
  // Stages h0 .. h0 * 2^(r-1) on tiles [tile_begin, tile_end) of a length-n vector (n / (TileWidth << r) tiles).
  void (*tile_pass)(T* x, int64_t n, int64_t h0, int r, int64_t tile_begin, int64_t tile_end) = nullptr;
  const char* isa = "";
};

const FwhtKernelTable<float>& GenericFloatKernels();
const FwhtKernelTable<double>& GenericDoubleKernels();
// Defined only when the build can compile AVX2 code (x86-64 with GCC or Clang).
const FwhtKernelTable<float>& Avx2FloatKernels();
const FwhtKernelTable<double>& Avx2DoubleKernels();

}  // namespace dwarp::engine::internal
