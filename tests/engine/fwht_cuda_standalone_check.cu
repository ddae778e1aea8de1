// Standalone check of the CUDA launchers in fwht_cuda.h against plain CPU references: no LibTorch, no
// gtest, so it runs on any GPU box with only the CUDA toolkit. From the repository root, build and run:
//   nvcc -std=c++17 -O3 -arch=sm_90 -I. worker/engine/fwht_cuda.cu tests/engine/fwht_cuda_standalone_check.cu
//        -o /tmp/fwht_cuda_check && /tmp/fwht_cuda_check
// Prints one line per failure and "N passed, M failed"; exits non-zero on any failure.
//
// Most cases use small-integer data, for which every intermediate sum is exact in float, so the GPU must
// match the reference bit for bit whatever the order of its stages or atomics; random-float cases then
// check the same paths under a rounding tolerance.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
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

int g_passed = 0;
int g_failed = 0;
cudaStream_t g_stream = nullptr;

void Check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

// Runs one named case; a thrown exception (a CUDA error included) counts as a failure.
void Run(const std::string& name, const std::function<std::string()>& body) {
  std::string error;
  try {
    error = body();
  } catch (const std::exception& e) {
    error = std::string("exception: ") + e.what();
  }
  if (error.empty()) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("FAIL %s: %s\n", name.c_str(), error.c_str());
  }
}

template <typename T>
struct DeviceBuffer {
  T* ptr = nullptr;
  explicit DeviceBuffer(size_t count) { Check(cudaMalloc(&ptr, std::max<size_t>(count, 1) * sizeof(T)), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

template <typename T>
void ToDevice(T* dst, const std::vector<T>& src) {
  Check(cudaMemcpy(dst, src.data(), src.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
}

template <typename T>
std::vector<T> ToHost(const T* src, size_t count) {
  std::vector<T> dst(count);
  Check(cudaMemcpy(dst.data(), src, count * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
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
  Check(cudaMemset(d_fold.ptr, 0xff, static_cast<size_t>(small_n) * sizeof(float)), "cudaMemset");
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

int main() {
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
      Run(Label("fwht_dense", batch, n), [&] { return CheckFwhtDense(batch, n); });
    }
  }
  // Every n = 2^0 .. 2^20, single and batched, exact and rounded.
  for (int k = 0; k <= 20; ++k) {
    const int64_t n = int64_t{1} << k;
    for (const int64_t batch : {int64_t{1}, int64_t{5}}) {
      Run(Label("fwht_exact", batch, n), [&] { return CheckFwht(batch, n, Data::kSmallIntegers); });
      Run(Label("fwht_uniform", batch, n), [&] { return CheckFwht(batch, n, Data::kUniform); });
    }
  }
  // Large batches of short vectors (many tiles, a partial last tile), and a misaligned start.
  for (const auto& [batch, n] : std::vector<std::pair<int64_t, int64_t>>{
           {100003, 1}, {50001, 2}, {30001, 4}, {4099, 8}, {1025, 32}, {333, 64}, {129, 1024}, {17, 4096}, {3, 8192}}) {
    Run(Label("fwht_large_batch", batch, n), [&, batch = batch, n = n] { return CheckFwht(batch, n, Data::kSmallIntegers); });
    Run(Label("fwht_offset", batch, n, " +1 float"),
        [&, batch = batch, n = n] { return CheckFwht(batch, n, Data::kSmallIntegers, /*offset=*/1); });
  }
  // Beyond 2^20: 2, 3 and 3 strided passes.
  for (const int k : {22, 24, 26}) {
    const int64_t n = int64_t{1} << k;
    Run(Label("fwht_sparse", 1, n), [&] { return CheckFwht(1, n, Data::kSparseSigns); });
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
    Run(Label("gather", small_n, padded), [&, small_n = small_n, padded = padded] { return CheckGather(small_n, padded); });
  }

  // Shared-memory path up to 8192, global atomics above.
  for (const auto& [small_n, padded] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {1, 1 << 16}, {2, 1000}, {64, 64}, {256, 1 << 20}, {8192, 8192}, {8192, 1 << 20},
           {16384, 1 << 20}, {1 << 18, 1 << 20}, {1 << 20, 1 << 20}}) {
    Run(Label("fold_exact", small_n, padded),
        [&, small_n = small_n, padded = padded] { return CheckFold(small_n, padded, Data::kSmallIntegers); });
    Run(Label("fold_uniform", small_n, padded),
        [&, small_n = small_n, padded = padded] { return CheckFold(small_n, padded, Data::kUniform); });
  }
  Run("fold_padded_0_zeroes_output", [] {
    DeviceBuffer<float> fold(16);
    Check(cudaMemset(fold.ptr, 0xff, 16 * sizeof(float)), "cudaMemset");
    FastfoodFoldCuda(nullptr, nullptr, nullptr, 0, fold.ptr, 16, g_stream);
    Sync();
    return Compare("fold", ToHost(fold.ptr, 16), std::vector<double>(16, 0.0), 0.0);
  });

  cudaStreamDestroy(g_stream);
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
