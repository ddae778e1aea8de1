// CUDA kernels of the engine: the batched FWHT and the two Fastfood streaming steps (gather, fold).
// Standalone on purpose (CUDA runtime and the standard library only, no LibTorch), so that it can be
// compiled and checked on a GPU box without the rest of the engine (tests/engine/fwht_cuda_standalone_check.cu).
//
// FWHT design. The transform is one butterfly stage per bit of the index, and the stages commute, so they
// can be grouped freely:
//   - FwhtTileKernel: each block owns a tile of kTileSize contiguous floats and runs every stage with stride
//     < min(n, kTileSize) on it: strides 1..16 with warp shuffles, 256..2048 in registers, then one pass
//     through shared memory to bring strides 32..128 into registers. A tile may hold many short vectors
//     (n < kTileSize); since stages never cross a multiple of n, they are transformed independently.
//   - FwhtStridedPassKernel<R>: for n > kTileSize, the stages with stride >= kTileSize, R (<= 5) at a time:
//     each thread loads the 2^R elements i0 + k * h, runs R stages in registers and stores them back.
//     Adjacent threads take adjacent i0, so every load and store of a warp is one contiguous 128-byte run.
// A vector of 2^26 floats thus costs one tile pass and three strided passes through global memory.
#include "worker/engine/fwht_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace dwarp::engine::internal {
namespace {

constexpr int kLogTileSize = 12;
constexpr int kTileSize = 1 << kLogTileSize;  // floats per block of FwhtTileKernel: 16 KiB of shared memory
constexpr int kTileThreads = 256;
constexpr int kTileWarps = kTileThreads / 32;
constexpr int kTilePerThread = kTileSize / kTileThreads;  // 16
static_assert(kTileWarps == 8 && kTilePerThread == 16,
              "FwhtTileKernel's index mappings assume 8 warps of 16 elements per thread");

constexpr int kMaxStridedPassBits = 5;  // 32 floats per thread in registers

constexpr int kStreamThreads = 256;
// Grid-stride kernels never need more blocks than this to fill a GPU; it also keeps gridDim.x far from
// its 2^31 - 1 limit whatever the problem size.
constexpr int64_t kMaxStreamBlocks = int64_t{1} << 20;

// The fold's work split (FastfoodFoldBlocks, fastfood_batch_layout.h) assumes these launches.
static_assert(kStreamThreads == kFoldThreads && kMaxStreamBlocks == kMaxFoldBlocks,
              "the fold's block counts are computed for the streaming kernels' launch shape");

void CheckLaunch(const char* kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string(kernel) + " launch failed: " + cudaGetErrorString(status));
  }
}

void CheckCall(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + " failed: " + cudaGetErrorString(status));
}

bool IsPowerOfTwo(int64_t n) { return n >= 1 && (n & (n - 1)) == 0; }

int MultiprocessorCountImpl() {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> known[kMaxDevices] = {};
  int device = 0;
  CheckCall(cudaGetDevice(&device), "cudaGetDevice");
  if (device < 0 || device >= kMaxDevices) device = 0;
  int sms = known[device].load(std::memory_order_relaxed);
  if (sms == 0) {
    CheckCall(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
              "cudaDeviceGetAttribute(MultiProcessorCount)");
    known[device].store(sms, std::memory_order_relaxed);
  }
  return sms;
}

int Log2(int64_t power_of_two) {
  int log = 0;
  while ((int64_t{1} << log) < power_of_two) ++log;
  return log;
}

int StreamBlocks(int64_t items) {
  return static_cast<int>(std::min((items + kStreamThreads - 1) / kStreamThreads, kMaxStreamBlocks));
}

// Butterflies between x[k] and x[k + 2^j] for every k with bit j clear: stage j of an FWHT of x[0, N).
template <int N>
__device__ __forceinline__ void RegisterStage(float (&x)[N], int j) {
  const int s = 1 << j;
#pragma unroll
  for (int k = 0; k < N; ++k) {
    if ((k & s) == 0) {
      const float a = x[k];
      const float b = x[k + s];
      x[k] = a + b;
      x[k + s] = a - b;
    }
  }
}

// Runs every stage with stride < 2^log_c on each tile of kTileSize floats of data[0, total). total is a
// multiple of 2^log_c (log_c <= kLogTileSize); a tile shorter than kTileSize (the last one, when the whole
// batch is shorter than a multiple of kTileSize) is padded with zeros that no stage mixes into real data.
__global__ void __launch_bounds__(kTileThreads) FwhtTileKernel(float* data, int64_t total, int log_c) {
  __shared__ float tile[kTileSize];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int64_t tiles = (total + kTileSize - 1) / kTileSize;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    float* base = data + t * kTileSize;
    const int valid = static_cast<int>(min(static_cast<int64_t>(kTileSize), total - t * kTileSize));
    float x[kTilePerThread];

    // Mapping A: element k of thread (warp, lane) is tile index lane + 32 * warp + 256 * k, so index bits
    // 0-4 are the lane, 5-7 the warp and 8-11 the register.
#pragma unroll
    for (int k = 0; k < kTilePerThread; ++k) {
      const int i = threadIdx.x + kTileThreads * k;
      x[k] = i < valid ? base[i] : 0.0f;
    }
#pragma unroll
    for (int b = 0; b < 5; ++b) {
      if (b < log_c) {
        const bool upper = (lane >> b) & 1;
#pragma unroll
        for (int k = 0; k < kTilePerThread; ++k) {
          const float other = __shfl_xor_sync(0xffffffffu, x[k], 1 << b);
          x[k] = upper ? other - x[k] : x[k] + other;
        }
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (8 + j < log_c) RegisterStage(x, j);
    }

    if (log_c <= 5) {
#pragma unroll
      for (int k = 0; k < kTilePerThread; ++k) {
        const int i = threadIdx.x + kTileThreads * k;
        if (i < valid) base[i] = x[k];
      }
      continue;  // uniform across the block; shared memory was not touched
    }

    // Mapping B: element k of thread (warp, lane) is tile index lane + 32 * k + 512 * warp, so index bits
    // 5-7 become register bits 0-2. Each warp access in either mapping is 32 consecutive floats: no bank
    // conflicts, and coalesced global stores.
#pragma unroll
    for (int k = 0; k < kTilePerThread; ++k) tile[threadIdx.x + kTileThreads * k] = x[k];
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTilePerThread; ++k) x[k] = tile[lane + 32 * k + 512 * warp];
#pragma unroll
    for (int j = 0; j < 3; ++j) {
      if (5 + j < log_c) RegisterStage(x, j);
    }
#pragma unroll
    for (int k = 0; k < kTilePerThread; ++k) {
      const int i = lane + 32 * k + 512 * warp;
      if (i < valid) base[i] = x[k];
    }
    __syncthreads();  // the next tile overwrites `tile`
  }
}

// Stages log_h .. log_h + R - 1 over data[0, total), total a multiple of 2^(log_h + R). Thread g owns the
// 2^R elements i0 + k * 2^log_h, where i0 = g's low log_h bits, with the rest of g shifted above the R
// transformed bits (vectors are contiguous and n a multiple of 2^(log_h + R), so the batch is one flat
// index space).
template <int R>
__global__ void __launch_bounds__(kStreamThreads)
    FwhtStridedPassKernel(float* data, int64_t total, int log_h) {
  constexpr int kCount = 1 << R;
  const int64_t groups = total >> R;
  const int64_t low_mask = (int64_t{1} << log_h) - 1;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
       g += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float* base = data + (((g >> log_h) << (log_h + R)) | (g & low_mask));
    float x[kCount];
#pragma unroll
    for (int k = 0; k < kCount; ++k) x[k] = base[static_cast<int64_t>(k) << log_h];
#pragma unroll
    for (int j = 0; j < R; ++j) RegisterStage(x, j);
#pragma unroll
    for (int k = 0; k < kCount; ++k) base[static_cast<int64_t>(k) << log_h] = x[k];
  }
}

void LaunchStridedPass(float* data, int64_t total, int log_h, int bits, cudaStream_t stream) {
  const int blocks = StreamBlocks(total >> bits);
  switch (bits) {
    case 1: FwhtStridedPassKernel<1><<<blocks, kStreamThreads, 0, stream>>>(data, total, log_h); break;
    case 2: FwhtStridedPassKernel<2><<<blocks, kStreamThreads, 0, stream>>>(data, total, log_h); break;
    case 3: FwhtStridedPassKernel<3><<<blocks, kStreamThreads, 0, stream>>>(data, total, log_h); break;
    case 4: FwhtStridedPassKernel<4><<<blocks, kStreamThreads, 0, stream>>>(data, total, log_h); break;
    case 5: FwhtStridedPassKernel<5><<<blocks, kStreamThreads, 0, stream>>>(data, total, log_h); break;
    default: throw std::logic_error("FwhtStridedPassKernel: bits per pass must be in [1, 5], got " +
                                    std::to_string(bits));
  }
  CheckLaunch("FwhtStridedPassKernel");
}

__global__ void __launch_bounds__(kStreamThreads)
    FastfoodGatherKernel(const float* __restrict__ small, int64_t mask, const int32_t* __restrict__ perm,
                         const float* __restrict__ gauss, float* __restrict__ out, int64_t padded) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < padded;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = small[perm[i] & mask] * gauss[i];
  }
}

// Per-block partial sums in shared memory (small_n floats of dynamic shared memory), flushed to `fold`
// with one global atomic per non-zero entry.
__global__ void __launch_bounds__(kStreamThreads)
    FastfoodFoldSharedKernel(const float* __restrict__ u, const int32_t* __restrict__ perm,
                             const float* __restrict__ gauss, int64_t padded, float* __restrict__ fold,
                             int small_n) {
  extern __shared__ float partial[];
  for (int j = threadIdx.x; j < small_n; j += blockDim.x) partial[j] = 0.0f;
  __syncthreads();
  const int32_t mask = small_n - 1;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < padded;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    atomicAdd(&partial[perm[i] & mask], gauss[i] * u[i]);
  }
  __syncthreads();
  for (int j = threadIdx.x; j < small_n; j += blockDim.x) {
    const float v = partial[j];
    if (v != 0.0f) atomicAdd(&fold[j], v);
  }
}

__global__ void __launch_bounds__(kStreamThreads)
    FastfoodFoldGlobalKernel(const float* __restrict__ u, const int32_t* __restrict__ perm,
                             const float* __restrict__ gauss, int64_t padded, float* __restrict__ fold,
                             int64_t mask) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < padded;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    atomicAdd(&fold[perm[i] & mask], gauss[i] * u[i]);
  }
}

// ---- batched Fastfood ----------------------------------------------------------------------------------

// The segment whose [offset, offset + length) holds `i`, offsets ascending from 0 (binary search over the
// table, which is small and stays in cache).
__device__ __forceinline__ int SegmentOfPadded(const FastfoodSegment* __restrict__ segments, int count, int64_t i) {
  int lo = 0;
  int hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (segments[mid].padded_offset <= i) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

__device__ __forceinline__ int SegmentOfBlock(const int64_t* __restrict__ prefix, int count, int64_t block) {
  int lo = 0;
  int hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (prefix[mid] <= block) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// blockIdx.y: the segment; x covers its small buffer.
__global__ void __launch_bounds__(kStreamThreads)
    BatchedScaleInKernel(const FastfoodSegment* __restrict__ segments, const float* __restrict__ theta,
                         const int8_t* __restrict__ signs, float* __restrict__ small) {
  const FastfoodSegment seg = segments[blockIdx.y];
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < seg.small_n;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // The per-target path's order of operations: (theta * B) * scale, in float.
    small[seg.small_offset + j] =
        j < seg.inputs ? theta[j] * static_cast<float>(signs[seg.padded_offset + j]) * seg.scale : 0.0f;
  }
}

__global__ void __launch_bounds__(kStreamThreads)
    BatchedGatherKernel(const FastfoodSegment* __restrict__ segments, int count, int64_t total,
                        const float* __restrict__ small, const int32_t* __restrict__ perm,
                        const float* __restrict__ gauss, float* __restrict__ out) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const FastfoodSegment& seg = segments[SegmentOfPadded(segments, count, i)];
    out[i] = small[seg.small_offset + (perm[i] & (seg.small_n - 1))] * gauss[i];
  }
}

// Incoming gradients by value in the kernel's parameters (a launch per kGradPointers targets).
constexpr int kGradPointers = 64;
struct GradPointers {
  const float* p[kGradPointers];
};

// Targets [first, first + n) of the table, whose padded ranges are contiguous from `begin` to `end`.
__global__ void __launch_bounds__(kStreamThreads)
    BatchedGradInKernel(const FastfoodSegment* __restrict__ segments, int first, int n, int64_t begin, int64_t end,
                        GradPointers grads, float* __restrict__ work) {
  for (int64_t i = begin + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < end;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int s = first + SegmentOfPadded(segments + first, n, i);
    const FastfoodSegment& seg = segments[s];
    const int64_t local = i - seg.padded_offset;
    const float* g = grads.p[s - first];
    work[i] = g != nullptr && local < seg.target_size ? g[local] : 0.0f;
  }
}

// Block b works on segment s (prefix[s] <= b < prefix[s + 1]) with the segment's other blocks. Segments
// whose small buffer fits accumulate in shared memory and flush one atomic per non-zero entry; the others
// add straight into `small`. Which branch is uniform across a block.
__global__ void __launch_bounds__(kStreamThreads)
    BatchedFoldKernel(const FastfoodSegment* __restrict__ segments, int count,
                      const int64_t* __restrict__ block_prefix, const float* __restrict__ u,
                      const int32_t* __restrict__ perm, const float* __restrict__ gauss, float* __restrict__ small) {
  extern __shared__ float partial[];
  const int s = SegmentOfBlock(block_prefix, count, blockIdx.x);
  const FastfoodSegment seg = segments[s];
  const int64_t blocks = block_prefix[s + 1] - block_prefix[s];
  const int64_t local_block = blockIdx.x - block_prefix[s];
  const int32_t mask = static_cast<int32_t>(seg.small_n - 1);
  const float* su = u + seg.padded_offset;
  const int32_t* sp = perm + seg.padded_offset;
  const float* sg = gauss + seg.padded_offset;
  float* fold = small + seg.small_offset;
  const int64_t stride = blocks * blockDim.x;
  if (seg.small_n <= kMaxSharedFold) {
    const int n = static_cast<int>(seg.small_n);
    for (int j = threadIdx.x; j < n; j += blockDim.x) partial[j] = 0.0f;
    __syncthreads();
    for (int64_t i = local_block * blockDim.x + threadIdx.x; i < seg.padded; i += stride) {
      atomicAdd(&partial[sp[i] & mask], sg[i] * su[i]);
    }
    __syncthreads();
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      const float v = partial[j];
      if (v != 0.0f) atomicAdd(&fold[j], v);
    }
  } else {
    for (int64_t i = local_block * blockDim.x + threadIdx.x; i < seg.padded; i += stride) {
      atomicAdd(&fold[sp[i] & mask], sg[i] * su[i]);
    }
  }
}

// One thread per entry of theta's gradient, summing the targets in table order (deterministic).
__global__ void __launch_bounds__(kStreamThreads)
    BatchedScaleOutKernel(const FastfoodSegment* __restrict__ segments, int count, int64_t theta_size,
                          const float* __restrict__ small, const int8_t* __restrict__ signs, float* __restrict__ grad) {
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < theta_size;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float sum = 0.0f;
    for (int s = 0; s < count; ++s) {
      const FastfoodSegment& seg = segments[s];
      if (j < seg.inputs) {
        sum += small[seg.small_offset + j] * static_cast<float>(signs[seg.padded_offset + j]) * seg.scale;
      }
    }
    grad[j] = sum;
  }
}

}  // namespace

int CurrentMultiprocessorCount() { return MultiprocessorCountImpl(); }

namespace {

void CheckTable(const FastfoodBatchTable& table, const char* who) {
  if (table.count < 1 || table.segments == nullptr || table.padded_total < 1 || table.small_total < 1 ||
      table.theta_size < 1 || table.max_small_n < 1) {
    throw std::invalid_argument(std::string(who) + ": expected a table of at least one segment with non-empty " +
                                "buffers, got " + std::to_string(table.count) + " segments, padded total " +
                                std::to_string(table.padded_total) + ", small total " +
                                std::to_string(table.small_total));
  }
}

}  // namespace

void BatchedFastfoodScaleInCuda(const FastfoodBatchTable& table, const float* theta, float* small, void* stream) {
  CheckTable(table, "BatchedFastfoodScaleInCuda");
  if (table.count > 65535) {
    throw std::invalid_argument("BatchedFastfoodScaleInCuda: at most 65535 segments, got " + std::to_string(table.count));
  }
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((table.max_small_n + kStreamThreads - 1) / kStreamThreads, 1024)),
                  static_cast<unsigned>(table.count));
  BatchedScaleInKernel<<<grid, kStreamThreads, 0, static_cast<cudaStream_t>(stream)>>>(table.segments, theta,
                                                                                       table.signs, small);
  CheckLaunch("BatchedScaleInKernel");
}

void BatchedFastfoodGatherCuda(const FastfoodBatchTable& table, const float* small, float* out, void* stream) {
  CheckTable(table, "BatchedFastfoodGatherCuda");
  BatchedGatherKernel<<<StreamBlocks(table.padded_total), kStreamThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      table.segments, table.count, table.padded_total, small, table.permutation, table.gaussians, out);
  CheckLaunch("BatchedGatherKernel");
}

void BatchedFastfoodGradInCuda(const FastfoodBatchTable& table, const float* const* grads, float* work,
                               void* stream) {
  CheckTable(table, "BatchedFastfoodGradInCuda");
  // The gradients' pointers travel in the kernel's parameters, kGradPointers targets per launch; each
  // launch covers its targets' padded ranges, which lie back to back.
  for (int first = 0; first < table.count; first += kGradPointers) {
    const int n = std::min(kGradPointers, table.count - first);
    GradPointers pointers{};
    for (int k = 0; k < n; ++k) pointers.p[k] = grads[first + k];
    const FastfoodSegment& last = table.host_segments[first + n - 1];
    const int64_t begin = table.host_segments[first].padded_offset;
    const int64_t end = last.padded_offset + last.padded;
    BatchedGradInKernel<<<StreamBlocks(end - begin), kStreamThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        table.segments, first, n, begin, end, pointers, work);
    CheckLaunch("BatchedGradInKernel");
  }
}

void BatchedFastfoodFoldCuda(const FastfoodBatchTable& table, const float* work, float* small, void* stream) {
  CheckTable(table, "BatchedFastfoodFoldCuda");
  const auto s = static_cast<cudaStream_t>(stream);
  CheckCall(cudaMemsetAsync(small, 0, static_cast<size_t>(table.small_total) * sizeof(float), s),
            "BatchedFastfoodFoldCuda: cudaMemsetAsync");
  BatchedFoldKernel<<<table.fold_blocks, kStreamThreads, static_cast<size_t>(table.fold_shared_floats) * sizeof(float),
                      s>>>(table.segments, table.count, table.fold_block_prefix, work, table.permutation,
                           table.gaussians, small);
  CheckLaunch("BatchedFoldKernel");
}

void BatchedFastfoodScaleOutCuda(const FastfoodBatchTable& table, const float* small, float* grad, void* stream) {
  CheckTable(table, "BatchedFastfoodScaleOutCuda");
  BatchedScaleOutKernel<<<StreamBlocks(table.theta_size), kStreamThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      table.segments, table.count, table.theta_size, small, table.signs, grad);
  CheckLaunch("BatchedScaleOutKernel");
}

void FwhtCuda(float* data, int64_t batch, int64_t n, void* stream) {
  if (batch < 0 || !IsPowerOfTwo(n)) {
    throw std::invalid_argument("FwhtCuda: expected batch >= 0 and n a power of two >= 1, got batch " +
                                std::to_string(batch) + ", n " + std::to_string(n));
  }
  if (batch == 0 || n == 1) return;  // H_1 is the identity
  const auto s = static_cast<cudaStream_t>(stream);
  const int64_t total = batch * n;
  const int log_n = Log2(n);

  const int log_c = std::min(log_n, kLogTileSize);
  const int64_t tiles = (total + kTileSize - 1) / kTileSize;
  FwhtTileKernel<<<static_cast<int>(std::min(tiles, kMaxStreamBlocks)), kTileThreads, 0, s>>>(data, total, log_c);
  CheckLaunch("FwhtTileKernel");

  // The remaining bits in as few passes as possible, split evenly (14 bits: 5 + 5 + 4).
  int log_h = log_c;
  int bits_left = log_n - log_c;
  int passes_left = (bits_left + kMaxStridedPassBits - 1) / kMaxStridedPassBits;
  while (bits_left > 0) {
    const int bits = (bits_left + passes_left - 1) / passes_left;
    LaunchStridedPass(data, total, log_h, bits, s);
    log_h += bits;
    bits_left -= bits;
    --passes_left;
  }
}

void FastfoodGatherCuda(const float* small, int64_t small_n, const int32_t* perm, const float* gauss, float* out,
                        int64_t padded, void* stream) {
  if (!IsPowerOfTwo(small_n) || padded < 0) {
    throw std::invalid_argument("FastfoodGatherCuda: expected small_n a power of two >= 1 and padded >= 0, got " +
                                std::to_string(small_n) + " and " + std::to_string(padded));
  }
  if (padded == 0) return;
  FastfoodGatherKernel<<<StreamBlocks(padded), kStreamThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      small, small_n - 1, perm, gauss, out, padded);
  CheckLaunch("FastfoodGatherKernel");
}

void FastfoodFoldCuda(const float* u, const int32_t* perm, const float* gauss, int64_t padded, float* fold,
                      int64_t small_n, void* stream) {
  if (!IsPowerOfTwo(small_n) || padded < 0) {
    throw std::invalid_argument("FastfoodFoldCuda: expected small_n a power of two >= 1 and padded >= 0, got " +
                                std::to_string(small_n) + " and " + std::to_string(padded));
  }
  const auto s = static_cast<cudaStream_t>(stream);
  CheckCall(cudaMemsetAsync(fold, 0, static_cast<size_t>(small_n) * sizeof(float), s), "FastfoodFoldCuda: cudaMemsetAsync");
  if (padded == 0) return;

  if (small_n > kMaxSharedFold) {
    FastfoodFoldGlobalKernel<<<StreamBlocks(padded), kStreamThreads, 0, s>>>(u, perm, gauss, padded, fold,
                                                                             small_n - 1);
    CheckLaunch("FastfoodFoldGlobalKernel");
    return;
  }
  // The device is the current one: the caller must make the stream's device current.
  const int64_t blocks = FastfoodFoldBlocks(padded, small_n, MultiprocessorCountImpl());
  FastfoodFoldSharedKernel<<<static_cast<int>(blocks), kStreamThreads, static_cast<size_t>(small_n) * sizeof(float),
                             s>>>(u, perm, gauss, padded, fold, static_cast<int>(small_n));
  CheckLaunch("FastfoodFoldSharedKernel");
}

}  // namespace dwarp::engine::internal
