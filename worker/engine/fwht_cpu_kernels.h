// Cache-blocked FWHT kernels, written so the compiler vectorises them. Included only by the per-ISA
// translation units (fwht_cpu_generic.cpp, fwht_cpu_avx2.cpp), each compiled with its own target flags.
// Everything here has internal linkage (unnamed namespace) so that the linker can never mix an AVX2
// instantiation into the generic kernels.
//
// The transform of a length-n vector runs in three kinds of sweep:
//   1. TransformL1: all stages of a 16 KiB sub-block, in L1.
//   2. TilePass: up to kMaxStagesPerPass stages of stride h0, 2 h0, ... at once. A tile is 2^r rows of
//      TileWidth contiguous elements, rows h0 apart, 16 KiB in all, so its r stages run in L1.
//   3. TransformBlock: 1 then 2 inside one 256 KiB block, so the first log2(block) stages cost one
//      trip to memory. The driver (fwht_cpu.cpp) then runs tile passes over the whole vector.
// For n = 2^24 floats that is 3 trips to memory in all.
#pragma once

#include <cstdint>

#include "worker/engine/fwht_cpu_kernel_table.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace dwarp::engine::internal {
namespace {

template <typename T>
inline void Butterfly(T* __restrict a, T* __restrict b, int64_t len) {
  for (int64_t i = 0; i < len; ++i) {
    const T x = a[i];
    const T y = b[i];
    a[i] = x + y;
    b[i] = x - y;
  }
}

// Stages h = 1, 2, 4 on every group of 8 consecutive elements (n >= 8).
template <typename T>
inline void Radix8(T* x, int64_t n) {
  for (int64_t i = 0; i < n; i += 8) {
    T* v = x + i;
    const T a0 = v[0] + v[1], a1 = v[0] - v[1], a2 = v[2] + v[3], a3 = v[2] - v[3];
    const T a4 = v[4] + v[5], a5 = v[4] - v[5], a6 = v[6] + v[7], a7 = v[6] - v[7];
    const T b0 = a0 + a2, b2 = a0 - a2, b1 = a1 + a3, b3 = a1 - a3;
    const T b4 = a4 + a6, b6 = a4 - a6, b5 = a5 + a7, b7 = a5 - a7;
    v[0] = b0 + b4; v[4] = b0 - b4;
    v[1] = b1 + b5; v[5] = b1 - b5;
    v[2] = b2 + b6; v[6] = b2 - b6;
    v[3] = b3 + b7; v[7] = b3 - b7;
  }
}

#if defined(__AVX2__)
// The same three stages in registers: each stage adds a lane to its partner (found by a permute) and
// keeps the sum in the lower lane of the pair and the difference in the upper one.
template <>
inline void Radix8<float>(float* x, int64_t n) {
  for (int64_t i = 0; i < n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256 s = _mm256_permute_ps(v, 0xB1);  // [1,0,3,2 | 5,4,7,6]
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xAA);
    s = _mm256_permute_ps(v, 0x4E);  // [2,3,0,1 | 6,7,4,5]
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xCC);
    s = _mm256_permute2f128_ps(v, v, 0x01);  // swap 128-bit halves
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xF0);
    _mm256_storeu_ps(x + i, v);
  }
}
#endif

// All stages of a vector that fits in L1 (n <= kTileBytes / sizeof(T)).
template <typename T>
void TransformL1(T* x, int64_t n) {
  int64_t h = 1;
  if (n >= 8) {
    Radix8(x, n);
    h = 8;
  }
  for (; h < n; h *= 2) {
    for (int64_t i = 0; i < n; i += 2 * h) Butterfly(x + i, x + i + h, h);
  }
}

// Stages with strides h0, 2 h0, ..., h0 2^(r-1) on tiles [tile_begin, tile_end) of one length-n vector.
template <typename T>
void TilePass(T* x, int64_t n, int64_t h0, int r, int64_t tile_begin, int64_t tile_end) {
  (void)n;
  const int64_t width = TileWidth(sizeof(T), h0, r);
  const int64_t rows = int64_t{1} << r;
  const int64_t tiles_per_span = h0 / width;  // a span (h0 * rows elements) holds this many tiles
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    T* base = x + (t / tiles_per_span) * h0 * rows + (t % tiles_per_span) * width;
    for (int s = 0; s < r; ++s) {
      const int64_t step = int64_t{1} << s;
      for (int64_t m = 0; m < rows; ++m) {
        if (m & step) continue;
        Butterfly(base + m * h0, base + (m + step) * h0, width);
      }
    }
  }
}

// All stages of one vector of length n <= kBlockBytes / sizeof(T).
template <typename T>
void TransformBlock(T* x, int64_t n) {
  const int64_t l1 = kTileBytes / static_cast<int64_t>(sizeof(T));
  if (n <= l1) {
    TransformL1(x, n);
    return;
  }
  for (int64_t i = 0; i < n; i += l1) TransformL1(x + i, l1);
  for (int64_t h = l1; h < n;) {
    const int r = StagesThisPass(Log2(n / h));
    const int64_t tiles = n / (TileWidth(sizeof(T), h, r) << r);
    TilePass(x, n, h, r, 0, tiles);
    h <<= r;
  }
}

template <typename T>
FwhtKernelTable<T> MakeKernelTable(const char* isa) {
  FwhtKernelTable<T> table;
  table.transform_block = &TransformBlock<T>;
  table.tile_pass = &TilePass<T>;
  table.isa = isa;
  return table;
}

}  // namespace
}  // namespace dwarp::engine::internal
