// Standalone check of the CUDA launchers in fwht_cuda.h against plain CPU references: no LibTorch, no
// gtest, so it runs on any GPU box with only the CUDA toolkit. From the repository root, build and run:
//   nvcc -std=c++17 -O3 -arch=sm_90 -I. worker/engine/fwht_cuda.cu tests/engine/fwht_cuda_standalone_check.cu
//        -o /tmp/fwht_cuda_check && /tmp/fwht_cuda_check
// Prints one line per case ("ok" or "FAIL" with the first difference), a summary per family of cases with
// the failed cases' names, and last "N passed, M failed"; exits non-zero on any failure.
// `--max_elements N` skips the cases over N floats (the host emulation, tests/gpu/emulate_cuda.sh, runs the
// small ones on a CPU machine), `--only PREFIX` the cases whose name does not start with PREFIX (e.g.
// `--only batched`); without them every case runs.
//
// Stream ordering. Every case runs the launchers on a cudaStreamNonBlocking stream, as the engine does with
// the streams LibTorch hands it, and queues every fill, copy and read-back on that same stream with the
// async calls. A non-blocking stream does not wait for the legacy default stream, so a plain cudaMemcpy
// (a pageable host-to-device copy may return before its DMA lands) or cudaMemset (asynchronous) would race
// the kernels and fail cases at random. The order_* cases check the ordering itself: fills queued behind
// long-running work on the launchers' stream, the fold's own zeroing behind a pending write, and a
// producer and a consumer stream ordered by events.
//
// Most cases use small-integer data, for which every intermediate sum is exact in float, so the GPU must
// match the reference bit for bit whatever the order of its stages or atomics; random-float cases then
// check the same paths under a rounding tolerance.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "worker/engine/fwht_cuda.h"

namespace {

using dwarp::engine::internal::FastfoodFoldCuda;
using dwarp::engine::internal::FastfoodGatherCuda;
using dwarp::engine::internal::FwhtCuda;
namespace internal = dwarp::engine::internal;

int g_passed = 0;
int g_failed = 0;
int g_skipped = 0;
// Cases over this many floats, or whose name does not start with g_only, are skipped (--max_elements, --only).
int64_t g_max_elements = INT64_MAX;
std::string g_only;
std::vector<std::string> g_failed_names;
// Per family (a case's name up to its '('): passed and failed counts, in the order families first ran.
std::vector<std::pair<std::string, std::pair<int, int>>> g_families;
// The stream every launcher, fill, copy and read-back of a case is queued on (non-blocking, see above).
cudaStream_t g_stream = nullptr;

void Check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

void CountInFamily(const std::string& name, bool passed) {
  const std::string family = name.substr(0, name.find('('));
  auto it = std::find_if(g_families.begin(), g_families.end(), [&](const auto& f) { return f.first == family; });
  if (it == g_families.end()) it = g_families.insert(g_families.end(), {family, {0, 0}});
  ++(passed ? it->second.first : it->second.second);
}

// Runs one named case of about `elements` floats and prints its line; a thrown exception (a CUDA error
// included) counts as a failure. Skipped, and counted as such, above --max_elements.
void Run(const std::string& name, const std::function<std::string()>& body, int64_t elements = 0) {
  if (name.compare(0, g_only.size(), g_only) != 0) return;
  if (elements > g_max_elements) {
    ++g_skipped;
    std::printf("skip %s (%lld floats, over --max_elements)\n", name.c_str(), static_cast<long long>(elements));
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  std::string error;
  try {
    error = body();
  } catch (const std::exception& e) {
    error = std::string("exception: ") + e.what();
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (error.empty()) {
    ++g_passed;
    std::printf("ok   %s (%.1f ms)\n", name.c_str(), ms);
  } else {
    ++g_failed;
    g_failed_names.push_back(name);
    std::printf("FAIL %s (%.1f ms): %s\n", name.c_str(), ms, error.c_str());
  }
  std::fflush(stdout);
  CountInFamily(name, error.empty());
}

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  explicit DeviceBuffer(size_t count) { Check(cudaMalloc(&ptr, std::max<size_t>(count, 1) * sizeof(T)), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Page-locked host memory, so that copies from and to it are truly asynchronous (the order_* cases).
template <typename T>
struct PinnedBuffer {
  T* ptr = nullptr;
  size_t count = 0;
  explicit PinnedBuffer(size_t n) : count(n) {
    Check(cudaMallocHost(&ptr, std::max<size_t>(n, 1) * sizeof(T)), "cudaMallocHost");
  }
  ~PinnedBuffer() { cudaFreeHost(ptr); }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
};

// Queues the copy on `stream` (never the legacy default stream); `src` must stay alive until the stream
// has been synchronised (every case synchronises before its host data goes out of scope).
template <typename T>
void ToDevice(T* dst, const std::vector<T>& src, cudaStream_t stream = g_stream) {
  Check(cudaMemcpyAsync(dst, src.data(), src.size() * sizeof(T), cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync H2D");
}

// Queues `count` bytes of `value` on `stream`.
void FillAsync(void* dst, int value, size_t bytes, cudaStream_t stream = g_stream) {
  Check(cudaMemsetAsync(dst, value, bytes, stream), "cudaMemsetAsync");
}

// Reads back after everything queued on `stream` so far.
template <typename T>
std::vector<T> ToHost(const T* src, size_t count, cudaStream_t stream = g_stream) {
  std::vector<T> dst(count);
  Check(cudaMemcpyAsync(dst.data(), src, count * sizeof(T), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync D2H");
  Check(cudaStreamSynchronize(stream), "cudaStreamSynchronize after D2H");
  return dst;
}

void Sync() {
  Check(cudaStreamSynchronize(g_stream), "cudaStreamSynchronize");
  Check(cudaGetLastError(), "kernel execution");
}

// Reference FWHT in double: stage by stage, as the definition reads.
void ReferenceFwht(std::vector<double>& x, int64_t batch, int64_t n) {
  for (int64_t v = 0; v < batch; ++v) {
    double* a = x.data() + v * n;
    for (int64_t h = 1; h < n; h <<= 1) {
      for (int64_t i = 0; i < n; i += 2 * h) {
        for (int64_t j = i; j < i + h; ++j) {
          const double p = a[j];
          const double q = a[j + h];
          a[j] = p + q;
          a[j + h] = p - q;
        }
      }
    }
  }
}

int Popcount(uint64_t v) {
  int c = 0;
  for (; v != 0; v &= v - 1) ++c;
  return c;
}

std::string Describe(const char* what, int64_t index, double got, double expected) {
  char buffer[256];
  std::snprintf(buffer, sizeof(buffer), "%s[%lld] = %.9g, expected %.9g", what, static_cast<long long>(index), got,
                expected);
  return buffer;
}

// Compares got with expected, exactly when tolerance == 0.
std::string Compare(const char* what, const std::vector<float>& got, const std::vector<double>& expected,
                    double tolerance) {
  if (got.size() != expected.size()) return std::string(what) + ": size mismatch";
  for (size_t i = 0; i < got.size(); ++i) {
    const double diff = std::fabs(static_cast<double>(got[i]) - expected[i]);
    if (!(diff <= tolerance)) return Describe(what, static_cast<int64_t>(i), got[i], expected[i]);
  }
  return "";
}

enum class Data { kSmallIntegers, kSparseSigns, kUniform };

std::vector<float> MakeData(int64_t count, Data kind, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> x(static_cast<size_t>(count));
  for (float& v : x) {
    switch (kind) {
      case Data::kSmallIntegers: v = static_cast<float>(static_cast<int>(rng() % 5) - 2); break;
      // About one entry in 64 non-zero: partial sums stay below 2^24 (exact) even for n = 2^26.
      case Data::kSparseSigns: v = rng() % 64 == 0 ? (rng() % 2 == 0 ? 1.0f : -1.0f) : 0.0f; break;
      case Data::kUniform: v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng); break;
    }
  }
  return x;
}

// Transforms `batch` vectors of length n that start `offset` floats into a buffer with guard floats on
// both sides, checks the result against the reference and that the guards are untouched.
std::string CheckFwht(int64_t batch, int64_t n, Data kind, int64_t offset = 0) {
  const int64_t total = batch * n;
  constexpr int64_t kGuard = 4096 + 7;
  constexpr float kSentinel = 12345.5f;
  const std::vector<float> x = MakeData(total, kind, static_cast<uint32_t>(n * 31 + batch));
  std::vector<float> host(static_cast<size_t>(offset + total + kGuard), kSentinel);
  std::copy(x.begin(), x.end(), host.begin() + offset);
  DeviceBuffer<float> buffer(host.size());
  ToDevice(buffer.ptr, host);
  FwhtCuda(buffer.ptr + offset, batch, n, g_stream);
  Sync();
  const std::vector<float> after = ToHost(buffer.ptr, host.size());

  for (int64_t i = 0; i < offset; ++i) {
    if (after[i] != kSentinel) return Describe("guard before data", i, after[i], kSentinel);
  }
  for (int64_t i = offset + total; i < static_cast<int64_t>(after.size()); ++i) {
    if (after[i] != kSentinel) return Describe("guard after data", i - offset - total, after[i], kSentinel);
  }
  std::vector<double> expected(x.begin(), x.end());
  ReferenceFwht(expected, batch, n);
  const std::vector<float> got(after.begin() + offset, after.begin() + offset + total);
  // Uniform inputs: outputs are sums of n terms of size <= 1; float rounding grows like eps * n at worst.
  const double tolerance = kind == Data::kUniform ? 4.0 * 1.2e-7 * static_cast<double>(n) : 0.0;
  return Compare("fwht", got, expected, tolerance);
}

// The reference itself against y = H x with H[i][j] = (-1)^popcount(i & j), then the GPU against it.
std::string CheckFwhtDense(int64_t batch, int64_t n) {
  const std::vector<float> x = MakeData(batch * n, Data::kSmallIntegers, static_cast<uint32_t>(n + 7));
  std::vector<double> dense(x.size(), 0.0);
  for (int64_t v = 0; v < batch; ++v) {
    for (int64_t i = 0; i < n; ++i) {
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const double sign = Popcount(static_cast<uint64_t>(i & j)) % 2 == 0 ? 1.0 : -1.0;
        sum += sign * x[static_cast<size_t>(v * n + j)];
      }
      dense[static_cast<size_t>(v * n + i)] = sum;
    }
  }
  std::vector<double> reference(x.begin(), x.end());
  ReferenceFwht(reference, batch, n);
  for (size_t i = 0; i < dense.size(); ++i) {
    if (reference[i] != dense[i]) return Describe("reference FWHT vs dense H", static_cast<int64_t>(i), reference[i], dense[i]);
  }
  DeviceBuffer<float> buffer(x.size());
  ToDevice(buffer.ptr, x);
  FwhtCuda(buffer.ptr, batch, n, g_stream);
  Sync();
  return Compare("fwht vs dense H", ToHost(buffer.ptr, x.size()), dense, 0.0);
}

std::vector<int32_t> RandomPermutation(int64_t n, uint32_t seed) {
  std::vector<int32_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
  return perm;
}

std::string CheckGather(int64_t small_n, int64_t padded) {
  const std::vector<float> small = MakeData(small_n, Data::kUniform, static_cast<uint32_t>(small_n));
  const std::vector<float> gauss = MakeData(padded, Data::kUniform, static_cast<uint32_t>(padded + 1));
  const std::vector<int32_t> perm = RandomPermutation(padded, static_cast<uint32_t>(padded + 2));
  DeviceBuffer<float> d_small(small.size()), d_gauss(gauss.size()), d_out(static_cast<size_t>(padded));
  DeviceBuffer<int32_t> d_perm(perm.size());
  ToDevice(d_small.ptr, small);
  ToDevice(d_gauss.ptr, gauss);
  ToDevice(d_perm.ptr, perm);
  FastfoodGatherCuda(d_small.ptr, small_n, d_perm.ptr, d_gauss.ptr, d_out.ptr, padded, g_stream);
  Sync();
  std::vector<double> expected(static_cast<size_t>(padded));
  for (int64_t i = 0; i < padded; ++i) {
    // One float multiply on both sides: bit-identical.
    expected[i] = static_cast<double>(small[perm[i] & (small_n - 1)] * gauss[i]);
  }
  return Compare("gather", ToHost(d_out.ptr, static_cast<size_t>(padded)), expected, 0.0);
}

std::string CheckFold(int64_t small_n, int64_t padded, Data kind) {
  const std::vector<float> u = MakeData(padded, kind, static_cast<uint32_t>(padded + small_n));
  const std::vector<float> gauss = MakeData(padded, kind, static_cast<uint32_t>(padded + 3));
  const std::vector<int32_t> perm = RandomPermutation(padded, static_cast<uint32_t>(padded + 4));
  DeviceBuffer<float> d_u(u.size()), d_gauss(gauss.size()), d_fold(static_cast<size_t>(small_n));
  DeviceBuffer<int32_t> d_perm(perm.size());
  ToDevice(d_u.ptr, u);
  ToDevice(d_gauss.ptr, gauss);
  ToDevice(d_perm.ptr, perm);
  // NaN garbage: the callee must overwrite every entry.
  FillAsync(d_fold.ptr, 0xff, static_cast<size_t>(small_n) * sizeof(float));
  FastfoodFoldCuda(d_u.ptr, d_perm.ptr, d_gauss.ptr, padded, d_fold.ptr, small_n, g_stream);
  Sync();
  std::vector<double> expected(static_cast<size_t>(small_n), 0.0);
  double largest_term_sum = 0.0;
  for (int64_t i = 0; i < padded; ++i) {
    expected[perm[i] & (small_n - 1)] += static_cast<double>(gauss[i]) * u[i];
    largest_term_sum += std::fabs(static_cast<double>(gauss[i]) * u[i]);
  }
  // Integer data: products and sums exact in float, any summation order. Uniform data: a loose bound on
  // float rounding of the per-entry sums.
  const double tolerance = kind == Data::kUniform ? 1e-6 * largest_term_sum / static_cast<double>(small_n) * 64.0 + 1e-6
                                                  : 0.0;
  return Compare("fold", ToHost(d_fold.ptr, static_cast<size_t>(small_n)), expected, tolerance);
}

// ---- Batched Fastfood: the segment-table launchers through a whole forward and backward ----------------

struct BatchTarget {
  int64_t size;    // D_t
  int64_t inputs;  // d_t
};

int64_t NextPow2(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// The floats of the targets' concatenated padded buffers (a case's size).
int64_t PaddedTotal(const std::vector<BatchTarget>& targets) {
  int64_t total = 0;
  for (const BatchTarget& t : targets) total += NextPow2(std::max(t.size, t.inputs));
  return total;
}

// Lays `targets` out in the given order with the engine's own LayOutFastfoodBatch (fastfood_batch_layout.h;
// BatchedFastfood sorts them longest first, here they may come in any order), runs the forward (scale in,
// small FWHTs, gather, FWHTs) and the backward (gradients in with one of them null, FWHTs, fold, small
// FWHTs, scale out) with the layout's FWHT runs, and compares each target's output and theta's gradient with
// a per-target double reference. Buffers the launchers must overwrite hold NaN first.
std::string CheckBatched(const std::vector<BatchTarget>& targets, int64_t theta_size, Data kind, uint32_t seed) {
  const int count = static_cast<int>(targets.size());
  int device = 0;
  int sms = 0;
  Check(cudaGetDevice(&device), "cudaGetDevice");
  Check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  std::mt19937 rng(seed);
  std::vector<internal::FastfoodTargetShape> shapes;
  for (const BatchTarget& t : targets) {
    const float scale = kind == Data::kUniform ? std::uniform_real_distribution<float>(0.5f, 1.5f)(rng) : 1.0f;
    shapes.push_back({NextPow2(std::max(t.size, t.inputs)), t.inputs, t.size, scale});
  }
  const internal::FastfoodBatchLayout layout = internal::LayOutFastfoodBatch(shapes, sms, /*longest_first=*/false);
  const std::vector<internal::FastfoodSegment>& segs = layout.segments;
  const std::vector<int64_t>& fold_prefix = layout.fold_block_prefix;
  const auto& padded_runs = layout.padded_runs;
  const auto& small_runs = layout.small_runs;
  const int64_t padded_total = layout.padded_total;
  const int64_t small_total = layout.small_total;
  std::vector<int8_t> signs(static_cast<size_t>(padded_total));
  for (int8_t& b : signs) b = rng() % 2 == 0 ? int8_t{1} : int8_t{-1};
  std::vector<int32_t> perm(static_cast<size_t>(padded_total));
  for (const auto& s : segs) {
    const std::vector<int32_t> p = RandomPermutation(s.padded, static_cast<uint32_t>(rng()));
    std::copy(p.begin(), p.end(), perm.begin() + s.padded_offset);
  }
  const std::vector<float> gauss = MakeData(padded_total, kind, static_cast<uint32_t>(rng()));
  const std::vector<float> theta = MakeData(theta_size, kind, static_cast<uint32_t>(rng()));
  std::vector<std::vector<float>> grads;
  for (const BatchTarget& t : targets) grads.push_back(MakeData(t.size, kind, static_cast<uint32_t>(rng())));
  const int null_grad = count > 1 ? 1 : -1;  // this target's gradient is a null pointer: zeros

  DeviceBuffer<internal::FastfoodSegment> d_segs(segs.size());
  DeviceBuffer<int64_t> d_prefix(fold_prefix.size());
  DeviceBuffer<int8_t> d_signs(signs.size());
  DeviceBuffer<int32_t> d_perm(perm.size());
  DeviceBuffer<float> d_gauss(gauss.size()), d_theta(theta.size()), d_small(static_cast<size_t>(small_total)),
      d_out(static_cast<size_t>(padded_total)), d_work(static_cast<size_t>(padded_total)),
      d_grad(static_cast<size_t>(theta_size));
  std::vector<std::unique_ptr<DeviceBuffer<float>>> d_grads;
  std::vector<const float*> grad_ptrs;
  ToDevice(d_segs.ptr, segs);
  ToDevice(d_prefix.ptr, fold_prefix);
  ToDevice(d_signs.ptr, signs);
  ToDevice(d_perm.ptr, perm);
  ToDevice(d_gauss.ptr, gauss);
  ToDevice(d_theta.ptr, theta);
  for (int t = 0; t < count; ++t) {
    d_grads.push_back(std::make_unique<DeviceBuffer<float>>(grads[t].size()));
    ToDevice(d_grads.back()->ptr, grads[t]);
    grad_ptrs.push_back(t == null_grad ? nullptr : d_grads.back()->ptr);
  }
  internal::FastfoodBatchTable table{};
  table.segments = d_segs.ptr;
  table.host_segments = segs.data();
  table.count = count;
  table.padded_total = padded_total;
  table.small_total = small_total;
  table.max_small_n = layout.max_small_n;
  table.theta_size = theta_size;
  table.signs = d_signs.ptr;
  table.permutation = d_perm.ptr;
  table.gaussians = d_gauss.ptr;
  table.fold_block_prefix = d_prefix.ptr;
  table.fold_blocks = static_cast<int>(fold_prefix.back());
  table.fold_shared_floats = static_cast<int>(layout.fold_shared_floats);

  for (float* buffer : {d_small.ptr, d_out.ptr}) {
    FillAsync(buffer, 0xff, static_cast<size_t>(buffer == d_small.ptr ? small_total : padded_total) * sizeof(float));
  }
  internal::BatchedFastfoodScaleInCuda(table, d_theta.ptr, d_small.ptr, g_stream);
  for (const auto& r : small_runs) FwhtCuda(d_small.ptr + r[0], r[1], r[2], g_stream);
  internal::BatchedFastfoodGatherCuda(table, d_small.ptr, d_out.ptr, g_stream);
  for (const auto& r : padded_runs) FwhtCuda(d_out.ptr + r[0], r[1], r[2], g_stream);
  const std::vector<float> out = ToHost(d_out.ptr, static_cast<size_t>(padded_total));

  FillAsync(d_work.ptr, 0xff, static_cast<size_t>(padded_total) * sizeof(float));
  FillAsync(d_small.ptr, 0xff, static_cast<size_t>(small_total) * sizeof(float));
  FillAsync(d_grad.ptr, 0xff, static_cast<size_t>(theta_size) * sizeof(float));
  internal::BatchedFastfoodGradInCuda(table, grad_ptrs.data(), d_work.ptr, g_stream);
  for (const auto& r : padded_runs) FwhtCuda(d_work.ptr + r[0], r[1], r[2], g_stream);
  internal::BatchedFastfoodFoldCuda(table, d_work.ptr, d_small.ptr, g_stream);
  for (const auto& r : small_runs) FwhtCuda(d_small.ptr + r[0], r[1], r[2], g_stream);
  internal::BatchedFastfoodScaleOutCuda(table, d_small.ptr, d_grad.ptr, g_stream);
  const std::vector<float> grad = ToHost(d_grad.ptr, static_cast<size_t>(theta_size));
  Sync();

  // The references, target by target, in double.
  std::vector<double> expected_grad(static_cast<size_t>(theta_size), 0.0);
  for (int t = 0; t < count; ++t) {
    const auto& s = segs[t];
    const int64_t mask = s.small_n - 1;
    std::vector<double> small(static_cast<size_t>(s.small_n), 0.0);
    for (int64_t j = 0; j < s.inputs; ++j) {
      small[j] = static_cast<double>(theta[j] * static_cast<float>(signs[s.padded_offset + j]) * s.scale);
    }
    ReferenceFwht(small, 1, s.small_n);
    std::vector<double> v(static_cast<size_t>(s.padded));
    for (int64_t i = 0; i < s.padded; ++i) {
      v[i] = small[perm[s.padded_offset + i] & mask] * gauss[s.padded_offset + i];
    }
    ReferenceFwht(v, 1, s.padded);
    double largest = 0.0;
    for (int64_t i = 0; i < s.target_size; ++i) largest = std::max(largest, std::fabs(v[i]));
    const double tolerance = kind == Data::kUniform ? 1e-4 * largest : 0.0;
    const std::vector<float> got(out.begin() + s.padded_offset, out.begin() + s.padded_offset + s.target_size);
    v.resize(static_cast<size_t>(s.target_size));
    const std::string error = Compare(("forward of target " + std::to_string(t)).c_str(), got, v, tolerance);
    if (!error.empty()) return error;

    if (t == null_grad) continue;
    std::vector<double> w(static_cast<size_t>(s.padded), 0.0);
    std::copy(grads[t].begin(), grads[t].end(), w.begin());
    ReferenceFwht(w, 1, s.padded);
    std::vector<double> fold(static_cast<size_t>(s.small_n), 0.0);
    for (int64_t i = 0; i < s.padded; ++i) fold[perm[s.padded_offset + i] & mask] += gauss[s.padded_offset + i] * w[i];
    ReferenceFwht(fold, 1, s.small_n);
    for (int64_t j = 0; j < s.inputs; ++j) expected_grad[j] += fold[j] * signs[s.padded_offset + j] * s.scale;
  }
  double largest = 0.0;
  for (const double g : expected_grad) largest = std::max(largest, std::fabs(g));
  return Compare("theta gradient", grad, expected_grad, kind == Data::kUniform ? 1e-4 * largest : 0.0);
}

// ---- Stream ordering ------------------------------------------------------------------------------------

// A non-blocking stream, destroyed once everything queued on it has finished.
struct OwnedStream {
  cudaStream_t stream = nullptr;
  OwnedStream() { Check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags"); }
  ~OwnedStream() {
    cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
  }
  OwnedStream(const OwnedStream&) = delete;
  OwnedStream& operator=(const OwnedStream&) = delete;
};

// An event without timing, for ordering streams.
struct OwnedEvent {
  cudaEvent_t event = nullptr;
  OwnedEvent() { Check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreateWithFlags"); }
  ~OwnedEvent() { cudaEventDestroy(event); }
  OwnedEvent(const OwnedEvent&) = delete;
  OwnedEvent& operator=(const OwnedEvent&) = delete;
};

// Long-running work for a stream (four FWHTs of 2^24 zeros, hundreds of microseconds on an H200, far longer
// than queueing the calls behind it takes): what is queued behind it on the same stream must wait for it,
// so a fill or copy that escaped to another stream lands out of order and shows.
class BusyWork {
 public:
  static constexpr int64_t kSize = int64_t{1} << 24;
  explicit BusyWork(cudaStream_t stream) : buffer_(kSize) { FillAsync(buffer_.ptr, 0, kSize * sizeof(float), stream); }
  void Queue(cudaStream_t stream) const {
    for (int i = 0; i < 4; ++i) FwhtCuda(buffer_.ptr, 1, kSize, stream);
  }

 private:
  DeviceBuffer<float> buffer_;
};

void SyncStream(cudaStream_t stream) {
  Check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  Check(cudaGetLastError(), "kernel execution");
}

// `rounds` rounds queued back to back on g_stream before one synchronisation, each behind busy work: NaN
// fill, copy of the input from page-locked memory, FWHT, copy back into the round's own page-locked output.
// Each round reuses the device buffer, so a fill, copy or kernel out of stream order leaves NaN, the
// previous round's transform or a half-copied input in some output.
std::string CheckFillsInStreamOrder(int64_t n, int rounds) {
  const std::vector<float> x = MakeData(n, Data::kSparseSigns, static_cast<uint32_t>(n + 11));
  std::vector<double> expected(x.begin(), x.end());
  ReferenceFwht(expected, 1, n);
  PinnedBuffer<float> input(static_cast<size_t>(n));
  std::copy(x.begin(), x.end(), input.ptr);
  std::vector<std::unique_ptr<PinnedBuffer<float>>> outputs;
  DeviceBuffer<float> data(static_cast<size_t>(n));
  const BusyWork busy(g_stream);
  const size_t bytes = static_cast<size_t>(n) * sizeof(float);
  for (int r = 0; r < rounds; ++r) {
    outputs.push_back(std::make_unique<PinnedBuffer<float>>(static_cast<size_t>(n)));
    busy.Queue(g_stream);
    FillAsync(data.ptr, 0xff, bytes);
    Check(cudaMemcpyAsync(data.ptr, input.ptr, bytes, cudaMemcpyHostToDevice, g_stream), "cudaMemcpyAsync H2D");
    FwhtCuda(data.ptr, 1, n, g_stream);
    Check(cudaMemcpyAsync(outputs.back()->ptr, data.ptr, bytes, cudaMemcpyDeviceToHost, g_stream),
          "cudaMemcpyAsync D2H");
  }
  SyncStream(g_stream);
  for (int r = 0; r < rounds; ++r) {
    const std::vector<float> got(outputs[r]->ptr, outputs[r]->ptr + n);
    const std::string error = Compare("fwht", got, expected, 0.0);
    if (!error.empty()) return "round " + std::to_string(r) + ": " + error;
  }
  return "";
}

// The fold zeroes its output itself; that zeroing must be queued on the fold's stream, behind a write to
// the same output that is still pending there (busy work, then a copy of garbage into it).
std::string CheckFoldZeroesInStreamOrder(int64_t small_n, int64_t padded) {
  const std::vector<float> u = MakeData(padded, Data::kSmallIntegers, static_cast<uint32_t>(padded + 5));
  const std::vector<float> gauss = MakeData(padded, Data::kSmallIntegers, static_cast<uint32_t>(padded + 6));
  const std::vector<int32_t> perm = RandomPermutation(padded, static_cast<uint32_t>(padded + 7));
  DeviceBuffer<float> d_u(u.size()), d_gauss(gauss.size()), d_fold(static_cast<size_t>(small_n));
  DeviceBuffer<int32_t> d_perm(perm.size());
  ToDevice(d_u.ptr, u);
  ToDevice(d_gauss.ptr, gauss);
  ToDevice(d_perm.ptr, perm);
  PinnedBuffer<float> garbage(static_cast<size_t>(small_n));
  std::fill(garbage.ptr, garbage.ptr + small_n, 1000.0f);
  const BusyWork busy(g_stream);
  busy.Queue(g_stream);
  Check(cudaMemcpyAsync(d_fold.ptr, garbage.ptr, static_cast<size_t>(small_n) * sizeof(float), cudaMemcpyHostToDevice,
                        g_stream),
        "cudaMemcpyAsync H2D");
  FastfoodFoldCuda(d_u.ptr, d_perm.ptr, d_gauss.ptr, padded, d_fold.ptr, small_n, g_stream);
  SyncStream(g_stream);
  std::vector<double> expected(static_cast<size_t>(small_n), 0.0);
  for (int64_t i = 0; i < padded; ++i) expected[perm[i] & (small_n - 1)] += static_cast<double>(gauss[i]) * u[i];
  return Compare("fold", ToHost(d_fold.ptr, static_cast<size_t>(small_n)), expected, 0.0);
}

// A producer stream (inputs copied in, the gather) and a consumer stream (FWHT, fold, FWHT of the fold,
// copy back) ordered only by events, over two rounds that reuse every device buffer: the consumer waits
// for the producer's gather, and the producer's second round waits until the consumer is done with the
// first. Both streams are non-blocking, so nothing but the events orders them.
std::string CheckTwoStreamsOrderedByEvents(int64_t small_n, int64_t padded) {
  constexpr int kRounds = 2;
  const std::vector<float> gauss = MakeData(padded, Data::kSmallIntegers, static_cast<uint32_t>(padded + 8));
  const std::vector<int32_t> perm = RandomPermutation(padded, static_cast<uint32_t>(padded + 9));
  std::vector<std::unique_ptr<PinnedBuffer<float>>> smalls, results;
  std::vector<std::vector<double>> expected;
  for (int r = 0; r < kRounds; ++r) {
    const std::vector<float> small = MakeData(small_n, Data::kSmallIntegers, static_cast<uint32_t>(small_n + 10 + r));
    smalls.push_back(std::make_unique<PinnedBuffer<float>>(static_cast<size_t>(small_n)));
    std::copy(small.begin(), small.end(), smalls.back()->ptr);
    results.push_back(std::make_unique<PinnedBuffer<float>>(static_cast<size_t>(small_n)));
    // gather, FWHT, fold, FWHT, in double
    std::vector<double> u(static_cast<size_t>(padded));
    for (int64_t i = 0; i < padded; ++i) u[i] = static_cast<double>(small[perm[i] & (small_n - 1)] * gauss[i]);
    ReferenceFwht(u, 1, padded);
    std::vector<double> fold(static_cast<size_t>(small_n), 0.0);
    for (int64_t i = 0; i < padded; ++i) fold[perm[i] & (small_n - 1)] += static_cast<double>(gauss[i]) * u[i];
    ReferenceFwht(fold, 1, small_n);
    expected.push_back(std::move(fold));
  }
  DeviceBuffer<float> d_small(static_cast<size_t>(small_n)), d_gauss(gauss.size()), d_out(static_cast<size_t>(padded)),
      d_fold(static_cast<size_t>(small_n));
  DeviceBuffer<int32_t> d_perm(perm.size());
  const OwnedStream producer, consumer;
  const OwnedEvent produced, consumed;
  const BusyWork busy(producer.stream);
  ToDevice(d_gauss.ptr, gauss, producer.stream);
  ToDevice(d_perm.ptr, perm, producer.stream);
  for (int r = 0; r < kRounds; ++r) {
    if (r > 0) Check(cudaStreamWaitEvent(producer.stream, consumed.event, 0), "cudaStreamWaitEvent(consumed)");
    busy.Queue(producer.stream);
    FillAsync(d_out.ptr, 0xff, static_cast<size_t>(padded) * sizeof(float), producer.stream);
    Check(cudaMemcpyAsync(d_small.ptr, smalls[r]->ptr, static_cast<size_t>(small_n) * sizeof(float),
                          cudaMemcpyHostToDevice, producer.stream),
          "cudaMemcpyAsync H2D");
    FastfoodGatherCuda(d_small.ptr, small_n, d_perm.ptr, d_gauss.ptr, d_out.ptr, padded, producer.stream);
    Check(cudaEventRecord(produced.event, producer.stream), "cudaEventRecord(produced)");

    Check(cudaStreamWaitEvent(consumer.stream, produced.event, 0), "cudaStreamWaitEvent(produced)");
    FwhtCuda(d_out.ptr, 1, padded, consumer.stream);
    FastfoodFoldCuda(d_out.ptr, d_perm.ptr, d_gauss.ptr, padded, d_fold.ptr, small_n, consumer.stream);
    FwhtCuda(d_fold.ptr, 1, small_n, consumer.stream);
    Check(cudaMemcpyAsync(results[r]->ptr, d_fold.ptr, static_cast<size_t>(small_n) * sizeof(float),
                          cudaMemcpyDeviceToHost, consumer.stream),
          "cudaMemcpyAsync D2H");
    Check(cudaEventRecord(consumed.event, consumer.stream), "cudaEventRecord(consumed)");
  }
  SyncStream(consumer.stream);
  SyncStream(producer.stream);
  for (int r = 0; r < kRounds; ++r) {
    double largest = 0.0;
    for (const double v : expected[r]) largest = std::max(largest, std::fabs(v));
    const std::vector<float> got(results[r]->ptr, results[r]->ptr + small_n);
    // Float rounding of sums whose order the atomics choose; a stream-ordering fault gives NaN or another
    // round's values, far outside this.
    const std::string error = Compare("fwht(fold(fwht(gather)))", got, expected[r], 1e-5 * largest);
    if (!error.empty()) return "round " + std::to_string(r) + ": " + error;
  }
  return "";
}

std::string ExpectInvalidArgument(const std::function<void()>& call) {
  try {
    call();
  } catch (const std::invalid_argument&) {
    return "";
  }
  return "no std::invalid_argument thrown";
}

std::string Label(const char* what, int64_t a, int64_t b, const char* extra = "") {
  return std::string(what) + "(" + std::to_string(a) + ", " + std::to_string(b) + ")" + extra;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--max_elements" && i + 1 < argc) {
      g_max_elements = std::atoll(argv[++i]);
    } else if (arg == "--only" && i + 1 < argc) {
      g_only = argv[++i];
    } else {
      std::printf("unknown argument '%s'; usage: fwht_cuda_standalone_check [--max_elements N] [--only PREFIX]\n"
                  "0 passed, 1 failed\n",
                  arg.c_str());
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device\n0 passed, 1 failed\n");
    return 1;
  }
  Check(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking), "cudaStreamCreate");

  // Dense Hadamard for small n, single and batched.
  for (int k = 0; k <= 9; ++k) {
    const int64_t n = int64_t{1} << k;
    for (const int64_t batch : {int64_t{1}, int64_t{3}}) {
      Run(Label("fwht_dense", batch, n), [&] { return CheckFwhtDense(batch, n); }, batch * n);
    }
  }
  // Every n = 2^0 .. 2^20, single and batched, exact and rounded.
  for (int k = 0; k <= 20; ++k) {
    const int64_t n = int64_t{1} << k;
    for (const int64_t batch : {int64_t{1}, int64_t{5}}) {
      Run(Label("fwht_exact", batch, n), [&] { return CheckFwht(batch, n, Data::kSmallIntegers); }, batch * n);
      Run(Label("fwht_uniform", batch, n), [&] { return CheckFwht(batch, n, Data::kUniform); }, batch * n);
    }
  }
  // Large batches of short vectors (many tiles, a partial last tile), and a misaligned start.
  for (const auto& [batch, n] : std::vector<std::pair<int64_t, int64_t>>{
           {100003, 1}, {50001, 2}, {30001, 4}, {4099, 8}, {1025, 32}, {333, 64}, {129, 1024}, {17, 4096}, {3, 8192}}) {
    Run(Label("fwht_large_batch", batch, n), [&, batch = batch, n = n] { return CheckFwht(batch, n, Data::kSmallIntegers); },
        batch * n);
    Run(Label("fwht_offset", batch, n, " +1 float"),
        [&, batch = batch, n = n] { return CheckFwht(batch, n, Data::kSmallIntegers, /*offset=*/1); }, batch * n);
  }
  // Beyond 2^20: 2, 3 and 3 strided passes.
  for (const int k : {22, 24, 26}) {
    const int64_t n = int64_t{1} << k;
    Run(Label("fwht_sparse", 1, n), [&] { return CheckFwht(1, n, Data::kSparseSigns); }, n);
  }
  Run("fwht_batch_0", [] {
    FwhtCuda(nullptr, 0, 1024, g_stream);
    Sync();
    return std::string();
  });
  Run("fwht_rejects_n_3", [] { return ExpectInvalidArgument([] { FwhtCuda(nullptr, 1, 3, g_stream); }); });
  Run("fwht_rejects_n_0", [] { return ExpectInvalidArgument([] { FwhtCuda(nullptr, 1, 0, g_stream); }); });

  for (const auto& [small_n, padded] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {1, 1024}, {16, 16}, {64, 12345}, {4096, 1 << 20}, {1 << 14, 1 << 20}, {1 << 20, 1 << 20}}) {
    Run(Label("gather", small_n, padded), [&, small_n = small_n, padded = padded] { return CheckGather(small_n, padded); },
        padded);
  }

  // Shared-memory path up to 8192, global atomics above.
  for (const auto& [small_n, padded] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {1, 1 << 16}, {2, 1000}, {64, 64}, {256, 1 << 20}, {8192, 8192}, {8192, 1 << 20},
           {16384, 1 << 20}, {1 << 18, 1 << 20}, {1 << 20, 1 << 20}}) {
    Run(Label("fold_exact", small_n, padded),
        [&, small_n = small_n, padded = padded] { return CheckFold(small_n, padded, Data::kSmallIntegers); }, padded);
    Run(Label("fold_uniform", small_n, padded),
        [&, small_n = small_n, padded = padded] { return CheckFold(small_n, padded, Data::kUniform); }, padded);
  }
  Run("fold_padded_0_zeroes_output", [] {
    DeviceBuffer<float> fold(16);
    FillAsync(fold.ptr, 0xff, 16 * sizeof(float));
    FastfoodFoldCuda(nullptr, nullptr, nullptr, 0, fold.ptr, 16, g_stream);
    Sync();
    return Compare("fold", ToHost(fold.ptr, 16), std::vector<double>(16, 0.0), 0.0);
  });

  // Batched Fastfood over a segment table: exact on small integers (short targets, every sum exact in
  // float), rounded on uniform data up to L_t = 2^22; longest first as the engine lays them out, and in
  // no order; reference-style truncated targets (other d'_t); one d'_t above the shared-memory fold's limit;
  // more targets than one launch carries gradient pointers for (64).
  // {5, 1} and {1, 1}: d'_t = 1 (no small transform, mask 0), and L_t = 1.
  const std::vector<BatchTarget> short_ones{{1, 16},    {7, 8}, {100, 16}, {64, 64}, {300, 16},
                                            {1000, 16}, {9, 4}, {5, 1},    {1, 1}};
  Run("batched_exact(short, in no order)", [&] { return CheckBatched(short_ones, 64, Data::kSmallIntegers, 1); },
      PaddedTotal(short_ones));
  const std::vector<BatchTarget> resnet_like{{2359296, 1000}, {589824, 1000}, {589824, 1000}, {147456, 1000},
                                             {36864, 1000},   {36864, 1000},  {9408, 1000},   {8192, 1000},
                                             {512, 512},      {64, 64},       {64, 1000},     {7, 8}};
  Run("batched_uniform(resnet-like, longest first)",
      [&] { return CheckBatched(resnet_like, 1000, Data::kUniform, 2); }, PaddedTotal(resnet_like));
  std::vector<BatchTarget> shuffled = resnet_like;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(3));
  Run("batched_uniform(resnet-like, in no order)", [&] { return CheckBatched(shuffled, 1000, Data::kUniform, 3); },
      PaddedTotal(shuffled));
  const std::vector<BatchTarget> global_fold{{130000, 20000}, {1 << 20, 1000}, {5, 20000}};
  Run("batched_uniform(global fold)", [&] { return CheckBatched(global_fold, 20000, Data::kUniform, 4); },
      PaddedTotal(global_fold));
  std::vector<BatchTarget> many;
  for (int t = 0; t < 150; ++t) many.push_back({1 + (t * 977) % 5000, t % 3 == 0 ? 256 : 100});
  Run("batched_exact(150 targets)", [&] { return CheckBatched(many, 256, Data::kSmallIntegers, 5); }, PaddedTotal(many));
  const std::vector<BatchTarget> one{{1 << 16, 1000}};
  Run("batched_uniform(one target)", [&] { return CheckBatched(one, 1000, Data::kUniform, 6); }, PaddedTotal(one));

  // Stream ordering: fills and copies behind long-running work on the launchers' stream, the fold's own
  // zeroing (shared-memory and global-atomics paths), and two streams ordered by events.
  // (Each behind BusyWork: 2^24 floats.)
  Run(Label("order_fills_then_fwht", 3, int64_t{1} << 22, " rounds x n"),
      [] { return CheckFillsInStreamOrder(int64_t{1} << 22, 3); }, BusyWork::kSize);
  for (const auto& [small_n, padded] : std::vector<std::pair<int64_t, int64_t>>{{64, 1 << 20}, {16384, 1 << 20}}) {
    Run(Label("order_fold_zeroing", small_n, padded),
        [&, small_n = small_n, padded = padded] { return CheckFoldZeroesInStreamOrder(small_n, padded); },
        BusyWork::kSize);
    Run(Label("order_two_streams_events", small_n, padded),
        [&, small_n = small_n, padded = padded] { return CheckTwoStreamsOrderedByEvents(small_n, padded); },
        BusyWork::kSize);
  }

  cudaStreamDestroy(g_stream);
  std::printf("\n== summary by family of cases (passed / failed)\n");
  for (const auto& [family, counts] : g_families) {
    std::printf("%-28s %4d / %d%s\n", family.c_str(), counts.first, counts.second, counts.second > 0 ? "  FAILED" : "");
  }
  if (!g_failed_names.empty()) {
    std::printf("failed cases:");
    for (const std::string& name : g_failed_names) std::printf(" %s;", name.c_str());
    std::printf("\n");
  }
  if (g_skipped > 0) {
    std::printf("%d passed, %d failed, %d skipped (over --max_elements %lld)\n", g_passed, g_failed, g_skipped,
                static_cast<long long>(g_max_elements));
  } else {
    std::printf("%d passed, %d failed\n", g_passed, g_failed);
  }
  return g_failed == 0 ? 0 : 1;
}
