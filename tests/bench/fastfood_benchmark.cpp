// Fastfood forward + backward at d = 1000 for D = 2^16 .. 2^24, against (a) memcpy of the padded vector
// and (b) the per-stage torch-op implementation the Python research code uses. Prints the ratios
// measured side by side in this run, and the memory a projection holds and allocates.
//
//   fastfood_benchmark [--threads N] [--max_log2 24] [google benchmark flags]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

#include "tests/support/reference_fastfood.h"
#include "tests/bench/ratio_reporter.h"
#include "worker/engine/buffer_pool.h"
#include "worker/engine/fastfood_projection.h"
#include "worker/engine/fwht_cpu.h"

namespace {

using dwarp::engine::FastfoodProjection;

constexpr int64_t kSubspaceDim = 1000;

// c10::Allocator changed after LibTorch 1.13 (Debian 12's): allocate() lost its const, and copy_data()
// became a pure virtual (PyTorch 2.x, the wheels a GPU box has). Both are detected on the header in use,
// not guessed from a version: Debian's LibTorch ships no <torch/version.h> to compare against, and a
// detected member cannot be wrong about the header it was detected on. AllocatorInterface<Base> then
// declares allocate() with Base's constness and copy_data() only where Base has it, each `override`, so a
// future change of either fails to compile here rather than silently adding an unused overload.
template <typename A, typename = void>
struct HasConstAllocate : std::false_type {};
template <typename A>
struct HasConstAllocate<A, std::void_t<decltype(std::declval<const A&>().allocate(size_t{0}))>> : std::true_type {};

template <typename A, typename = void>
struct HasCopyData : std::false_type {};
template <typename A>
struct HasCopyData<A, std::void_t<decltype(&A::copy_data)>> : std::true_type {};

// Base's allocate() forwarded to DoAllocate(), with Base's constness.
template <typename Base, bool kConst = HasConstAllocate<Base>::value>
class AllocateInterface : public Base {
 public:
  c10::DataPtr allocate(size_t n) const override { return DoAllocate(n); }

 protected:
  virtual c10::DataPtr DoAllocate(size_t n) const = 0;
};
template <typename Base>
class AllocateInterface<Base, false> : public Base {
 public:
  c10::DataPtr allocate(size_t n) override { return DoAllocate(n); }

 protected:
  virtual c10::DataPtr DoAllocate(size_t n) const = 0;
};

// Adds copy_data() (a plain memcpy: what LibTorch's CPU allocator does) where Base declares it.
template <typename Base, bool kHasCopyData = HasCopyData<Base>::value>
class AllocatorInterface : public AllocateInterface<Base> {};
template <typename Base>
class AllocatorInterface<Base, true> : public AllocateInterface<Base> {
 public:
  void copy_data(void* dest, const void* src, size_t count) const override { std::memcpy(dest, src, count); }
};

// Wraps LibTorch's CPU allocator to record the peak of live bytes, so the benchmark can report what
// one projection call allocates (its temporaries and result) instead of asserting it from the code.
class CountingAllocator final : public AllocatorInterface<c10::Allocator> {
 public:
  explicit CountingAllocator(c10::Allocator* base) : base_(base) {}

  c10::DeleterFnPtr raw_deleter() const override { return nullptr; }

  int64_t live() const { return live_.load(); }
  void ResetPeak() { peak_.store(live_.load()); }
  int64_t peak() const { return peak_.load(); }

 private:
  struct Record {
    c10::DataPtr inner;
    size_t bytes;
    const CountingAllocator* owner;
  };

  c10::DataPtr DoAllocate(size_t n) const override {
    c10::DataPtr inner = base_->allocate(n);
    void* data = inner.get();
    const c10::Device device = inner.device();
    auto* record = new Record{std::move(inner), n, this};
    const int64_t now = live_.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return {data, record, &Free, device};
  }

  static void Free(void* ctx) {
    auto* record = static_cast<Record*>(ctx);
    record->owner->live_.fetch_sub(static_cast<int64_t>(record->bytes));
    delete record;
  }

  c10::Allocator* base_;
  mutable std::atomic<int64_t> live_{0};
  mutable std::atomic<int64_t> peak_{0};
};
static_assert(!std::is_abstract_v<CountingAllocator>,
              "CountingAllocator leaves a pure virtual of this LibTorch's c10::Allocator unimplemented");

CountingAllocator* g_allocator = nullptr;

struct Case {
  FastfoodProjection projection;
  at::Tensor theta;
  at::Tensor grad_out;
};

std::map<int, Case>& Cases() {
  static std::map<int, Case> cases;
  return cases;
}

const Case& GetCase(int log2_target) {
  auto it = Cases().find(log2_target);
  if (it == Cases().end()) {
    const int64_t target = int64_t{1} << log2_target;
    auto p = FastfoodProjection::Create(target, kSubspaceDim, 1, "bench");
    if (!p.ok()) {
      std::fprintf(stderr, "%s\n", p.status().ToString().c_str());
      std::exit(1);
    }
    Case c{std::move(p).value(), at::randn({kSubspaceDim}), at::randn({target})};
    it = Cases().emplace(log2_target, std::move(c)).first;
  }
  return it->second;
}

void BM_Fastfood(benchmark::State& state) {
  const Case& c = GetCase(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    at::Tensor theta = c.theta.detach().clone().set_requires_grad(true);
    at::Tensor out = c.projection.Apply(theta);
    out.backward(c.grad_out);
    benchmark::DoNotOptimize(theta.grad().data_ptr());
  }
}

void BM_PerStageTorchOps(benchmark::State& state) {
  const Case& c = GetCase(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    at::Tensor theta = c.theta.detach().clone().set_requires_grad(true);
    at::Tensor out = dwarp::testing::PerStageFastfood(c.projection, theta);
    out.backward(c.grad_out);
    benchmark::DoNotOptimize(theta.grad().data_ptr());
  }
}

void BM_MemcpyPadded(benchmark::State& state) {
  const Case& c = GetCase(static_cast<int>(state.range(0)));
  const int64_t padded = c.projection.padded_size();
  std::vector<float> src(padded, 1.0f), dst(padded);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), padded * sizeof(float));
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * padded * static_cast<int64_t>(sizeof(float)));
}


}  // namespace

int main(int argc, char** argv) {
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  int max_log2 = 24;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--max_log2") == 0 && i + 1 < argc) {
      max_log2 = std::atoi(argv[++i]);
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  at::set_num_threads(threads);
  static CountingAllocator counting(c10::GetCPUAllocator());
  g_allocator = &counting;
  c10::SetCPUAllocator(&counting, /*priority=*/100);

  std::vector<int> sizes;
  for (int k : {16, 20, 22, 24}) {
    if (k <= max_log2) sizes.push_back(k);
  }
  for (int k : sizes) {
    benchmark::RegisterBenchmark("memcpy_padded", BM_MemcpyPadded)->Arg(k)->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark("fastfood_fwd_bwd", BM_Fastfood)->Arg(k)->Unit(benchmark::kMillisecond)->UseRealTime();
    auto* slow = benchmark::RegisterBenchmark("per_stage_torch_fwd_bwd", BM_PerStageTorchOps)->Arg(k)
                     ->Unit(benchmark::kMillisecond)->UseRealTime();
    if (k >= 22) slow->Iterations(2);
  }
  benchmark::Initialize(&rest_argc, rest.data());
  std::printf("threads: %d, FWHT kernels: %s, d = %lld\n", threads, dwarp::engine::internal::FwhtCpuIsa(),
              static_cast<long long>(kSubspaceDim));
  dwarp::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  std::printf("\n%-6s %12s %12s %14s %16s %18s %14s\n", "D", "fastfood ms", "memcpy ms", "per-stage ms",
              "fastfood/4xmemcpy", "per-stage/fastfood", "B+Pi+G B/elem");
  for (int k : sizes) {
    const std::string arg = "/" + std::to_string(k) + "/";
    const auto get = [&](const std::string& name) { return reporter.SecondsOf(name + arg); };
    const double ours = get("fastfood_fwd_bwd");
    const double copy = get("memcpy_padded");
    const double slow = get("per_stage_torch_fwd_bwd");
    const Case& c = GetCase(k);
    std::printf("2^%-4d %12.3f %12.3f %14.1f %16.2f %18.1f %14.1f\n", k, ours * 1e3, copy * 1e3, slow * 1e3,
                copy > 0 ? ours / (4 * copy) : 0.0, ours > 0 ? slow / ours : 0.0,
                c.projection.bytes_per_padded_element());
  }

  // Memory one call allocates beyond its inputs, in units of one float buffer of the padded length.
  std::printf("\n%-6s %22s %22s\n", "D", "forward peak/buffer", "transpose peak/buffer");
  for (int k : sizes) {
    const Case& c = GetCase(k);
    const double buffer = static_cast<double>(c.projection.padded_size()) * sizeof(float);
    // Both LibTorch's allocator and the engine's buffer pool count; the sum of their peaks bounds the
    // combined peak from above.
    const auto peak_of = [&](const auto& call) {
      g_allocator->ResetPeak();
      dwarp::engine::ResetPooledPeak();
      const int64_t torch_base = g_allocator->live();
      const int64_t pool_base = dwarp::engine::PooledStats().live;
      call();
      const int64_t peak = (g_allocator->peak() - torch_base) + (dwarp::engine::PooledStats().peak_live - pool_base);
      return static_cast<double>(peak) / buffer;
    };
    at::Tensor out;
    const double forward_peak = peak_of([&] { out = c.projection.Forward(c.theta); });
    out.reset();
    const double transpose_peak = peak_of([&] { c.projection.Transpose(c.grad_out); });
    std::printf("2^%-4d %22.3f %22.3f\n", k, forward_peak, transpose_peak);
  }
  return 0;
}
