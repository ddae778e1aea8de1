// Fastfood forward + backward at d = 1000 for D = 2^16 .. 2^24 on one device (CUDA unless told otherwise),
// the sizes of fastfood_benchmark, against (a) a copy of the padded vector on the same device and (b) the
// per-stage torch-op implementation the Python research code uses; on CUDA also against the CPU kernels.
// Prints the ratios measured side by side in this run. Then the same call through BatchedFastfood (one
// target), and every per-tensor projection of ResNet-18 (size_weighted, as jobs use) forward + backward:
// one BatchedFastfood against one FastfoodProjection::Apply per tensor, side by side.
//
// Not Google Benchmark: a GPU box has LibTorch alone (tests/gpu/check.sh). CUDA calls return before their
// kernels finish, so every timing is a batch of calls closed by torch::cuda::synchronize, long enough that
// launch and synchronisation costs do not dominate, and the median over several batches.
//
//   fastfood_device_benchmark [--device cuda|cuda:N|cpu] [--threads N] [--max_log2 24] [--batches 5]
//                             [--min_batch_ms 50]
// --threads: LibTorch's CPU threads (default: every core), for the CPU runs.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/reference_fastfood.h"
#include "worker/engine/device.h"
#include "worker/engine/fastfood_projection.h"
#include "worker/engine/models/model_registry.h"
#include "worker/engine/subspace_model.h"
#include "worker/engine/threading.h"

namespace {

using dwarp::engine::BatchedFastfood;
using dwarp::engine::FastfoodProjection;

constexpr int64_t kSubspaceDim = 1000;

struct Options {
  std::string device = "cuda";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int max_log2 = 24;
  int batches = 5;
  double min_batch_seconds = 0.05;
};

// Blocks until the work queued on `device` has finished (no-op on the CPU, where calls are synchronous).
void Synchronize(const at::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

// Seconds per call of `call`: the median over options.batches batches of n calls, n grown until one batch
// lasts options.min_batch_seconds.
template <typename Call>
double SecondsPerCall(const at::Device& device, const Options& options, const Call& call) {
  using Clock = std::chrono::steady_clock;
  const auto time_batch = [&](int64_t n) {
    Synchronize(device);
    const auto start = Clock::now();
    for (int64_t i = 0; i < n; ++i) call();
    Synchronize(device);
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  time_batch(2);  // warm-up: first allocations, kernel loading
  int64_t n = 1;
  double seconds = time_batch(n);
  while (seconds < options.min_batch_seconds && n < (int64_t{1} << 20)) {
    const double wanted = static_cast<double>(n) * options.min_batch_seconds / std::max(seconds, 1e-9);
    n = std::clamp(static_cast<int64_t>(wanted * 1.2) + 1, 2 * n, 16 * n);
    seconds = time_batch(n);
  }
  std::vector<double> per_call{seconds / static_cast<double>(n)};
  for (int b = 1; b < options.batches; ++b) per_call.push_back(time_batch(n) / static_cast<double>(n));
  std::nth_element(per_call.begin(), per_call.begin() + per_call.size() / 2, per_call.end());
  return per_call[per_call.size() / 2];
}

// Seconds per call of `a` and of `b`, their batches alternating (a, b, a, b, ...) so that a shared machine's
// changing load falls on both alike; medians over options.batches batches each.
template <typename CallA, typename CallB>
std::pair<double, double> SideBySide(const at::Device& device, const Options& options, const CallA& a,
                                     const CallB& b) {
  using Clock = std::chrono::steady_clock;
  const auto time_batch = [&](const auto& call, int64_t n) {
    Synchronize(device);
    const auto start = Clock::now();
    for (int64_t i = 0; i < n; ++i) call();
    Synchronize(device);
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  const auto calls_per_batch = [&](const auto& call) {
    time_batch(call, 2);  // warm-up
    int64_t n = 1;
    double seconds = time_batch(call, n);
    while (seconds < options.min_batch_seconds && n < (int64_t{1} << 20)) {
      const double wanted = static_cast<double>(n) * options.min_batch_seconds / std::max(seconds, 1e-9);
      n = std::clamp(static_cast<int64_t>(wanted * 1.2) + 1, 2 * n, 16 * n);
      seconds = time_batch(call, n);
    }
    return n;
  };
  const int64_t na = calls_per_batch(a);
  const int64_t nb = calls_per_batch(b);
  std::vector<double> ta, tb;
  for (int r = 0; r < options.batches; ++r) {
    ta.push_back(time_batch(a, na) / static_cast<double>(na));
    tb.push_back(time_batch(b, nb) / static_cast<double>(nb));
  }
  std::sort(ta.begin(), ta.end());
  std::sort(tb.begin(), tb.end());
  return {ta[ta.size() / 2], tb[tb.size() / 2]};
}

// One autograd forward + backward of `project` (the projection's Apply, or the per-stage reference).
template <typename Project>
void ForwardBackward(const at::Tensor& theta, const at::Tensor& grad_out, const Project& project) {
  at::Tensor leaf = theta.detach().clone().set_requires_grad(true);
  project(leaf).backward(grad_out);
}

BatchedFastfood MakeBatched(const std::vector<FastfoodProjection>& projections, int64_t theta_size) {
  auto batched = BatchedFastfood::Create(projections, theta_size);
  if (!batched.ok()) {
    std::fprintf(stderr, "fastfood_device_benchmark: %s\n", batched.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(batched).value();
}

// ResNet-18's warped tensors (its registry warp prefixes) wrapped at d = 1000 in the size-weighted mode,
// forward + backward of every projection: batched against one Apply per tensor.
void ResnetProjections(const at::Device& device, const Options& options) {
  using namespace dwarp::engine;
  auto model = CreateModel("resnet18", ModelOptions().layer("avgpool").image_size(64, 64).seed(0));
  if (!model.ok()) {
    std::fprintf(stderr, "fastfood_device_benchmark: %s\n", model.status().ToString().c_str());
    std::exit(1);
  }
  model->module.to(device);
  auto wrapped = SubspaceModel::Create(model->module, SubspaceOptions(kSubspaceDim)
                                                          .projection(ProjectionMode::kSizeWeighted)
                                                          .warp_prefixes(model->warp_prefixes)
                                                          .batched(false));
  if (!wrapped.ok()) {
    std::fprintf(stderr, "fastfood_device_benchmark: %s\n", wrapped.status().ToString().c_str());
    std::exit(1);
  }
  const std::vector<FastfoodProjection>& projections = wrapped->projections();
  const BatchedFastfood batched = MakeBatched(projections, kSubspaceDim);
  const auto on_device = at::TensorOptions().dtype(at::kFloat).device(device);
  const at::Tensor theta = at::randn({kSubspaceDim}, on_device);
  std::vector<at::Tensor> grads;
  int64_t total = 0;
  for (const auto& p : projections) {
    grads.push_back(at::randn({p.target_size()}, on_device));
    total += p.target_size();
  }
  const auto backward = [&](const std::vector<at::Tensor>& outs) {
    std::vector<at::Tensor> used(outs.begin(), outs.end());
    torch::autograd::backward(used, grads);
  };
  const auto [per_tensor, together] = SideBySide(
      device, options,
      [&] {
        at::Tensor leaf = theta.detach().clone().set_requires_grad(true);
        std::vector<at::Tensor> outs;
        for (const auto& p : projections) outs.push_back(p.Apply(leaf));
        backward(outs);
      },
      [&] {
        at::Tensor leaf = theta.detach().clone().set_requires_grad(true);
        backward(batched.Apply(leaf));
      });
  // Without autograd: where the time goes.
  const auto [forward_per_tensor, forward_batched] = SideBySide(
      device, options, [&] { for (const auto& p : projections) p.Forward(theta); },
      [&] { batched.Forward(theta); });
  const auto [transpose_per_tensor, transpose_batched] = SideBySide(
      device, options,
      [&] {
        at::Tensor sum = at::zeros({kSubspaceDim}, on_device);
        for (size_t t = 0; t < projections.size(); ++t) sum += projections[t].Transpose(grads[t]);
      },
      [&] { batched.Transpose(grads); });
  std::printf("\nResNet-18, %zu per-tensor projections (D = %lld), forward + backward: per tensor %.3f ms, "
              "batched %.3f ms, per tensor / batched %.2f\n",
              projections.size(), static_cast<long long>(total), per_tensor * 1e3, together * 1e3,
              per_tensor / together);
  std::printf("ResNet-18, forward alone: per tensor %.3f ms, batched %.3f ms (%.2f); transpose alone: per tensor "
              "%.3f ms, batched %.3f ms (%.2f)\n",
              forward_per_tensor * 1e3, forward_batched * 1e3, forward_per_tensor / forward_batched,
              transpose_per_tensor * 1e3, transpose_batched * 1e3, transpose_per_tensor / transpose_batched);
}

FastfoodProjection MakeProjection(int64_t target, const at::Device& device) {
  auto projection = FastfoodProjection::Create(target, kSubspaceDim, 1, "bench", device);
  if (!projection.ok()) {
    std::fprintf(stderr, "fastfood_device_benchmark: %s\n", projection.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(projection).value();
}

bool ParseArgs(int argc, char** argv, Options& options) {
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    if (std::strcmp(argv[i], "--device") == 0 && has_value) {
      options.device = argv[++i];
    } else if (std::strcmp(argv[i], "--threads") == 0 && has_value) {
      options.threads = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--max_log2") == 0 && has_value) {
      options.max_log2 = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--batches") == 0 && has_value) {
      options.batches = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--min_batch_ms") == 0 && has_value) {
      options.min_batch_seconds = std::max(0.0, std::atof(argv[++i]) / 1e3);
    } else {
      std::fprintf(stderr,
                   "fastfood_device_benchmark: unknown or incomplete argument '%s'\n"
                   "usage: fastfood_device_benchmark [--device cuda|cuda:N|cpu] [--threads N] [--max_log2 24] "
                   "[--batches 5] [--min_batch_ms 50]\n",
                   argv[i]);
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!ParseArgs(argc, argv, options)) return 2;
  dwarp::engine::SetComputeThreads(options.threads);
  auto resolved = dwarp::engine::ResolveDevice(options.device, "--device");
  if (!resolved.ok()) {
    std::fprintf(stderr, "fastfood_device_benchmark: %s\n", resolved.status().ToString().c_str());
    return 1;
  }
  const at::Device device = *resolved;
  const bool on_cuda = device.is_cuda();

  std::printf("device: %s, CPU threads: %d, d = %lld, median of %d batches of >= %.0f ms\n",
              device.str().c_str(), at::get_num_threads(), static_cast<long long>(kSubspaceDim), options.batches,
              options.min_batch_seconds * 1e3);
  std::printf("\n%-6s %12s %10s %14s %14s %18s %11s %15s", "D", "fastfood ms", "copy ms", "per-stage ms",
              "fastfood/4xcopy", "per-stage/fastfood", "batched ms", "batched/4xcopy");
  if (on_cuda) std::printf(" %12s %10s", "CPU ff ms", "CPU/CUDA");
  std::printf("\n");
  std::fflush(stdout);

  for (int k : {16, 20, 22, 24}) {
    if (k > options.max_log2) continue;
    const int64_t target = int64_t{1} << k;
    const FastfoodProjection projection = MakeProjection(target, device);
    const auto on_device = at::TensorOptions().dtype(at::kFloat).device(device);
    const at::Tensor theta = at::randn({kSubspaceDim}, on_device);
    const at::Tensor grad_out = at::randn({target}, on_device);
    const at::Tensor padded_src = at::randn({projection.padded_size()}, on_device);
    at::Tensor padded_dst = at::empty_like(padded_src);

    // The same projection as a batch of one target (BatchedFastfood's kernels and host path), side by side.
    const BatchedFastfood batched = MakeBatched({projection}, kSubspaceDim);
    const auto [fastfood, batched_seconds] = SideBySide(
        device, options,
        [&] { ForwardBackward(theta, grad_out, [&](const at::Tensor& t) { return projection.Apply(t); }); },
        [&] { ForwardBackward(theta, grad_out, [&](const at::Tensor& t) { return batched.Apply(t)[0]; }); });
    const double copy = SecondsPerCall(device, options, [&] { padded_dst.copy_(padded_src); });
    const double per_stage = SecondsPerCall(device, options, [&] {
      ForwardBackward(theta, grad_out, [&](const at::Tensor& t) { return dwarp::testing::PerStageFastfood(projection, t); });
    });
    std::printf("2^%-4d %12.3f %10.3f %14.3f %14.2f %18.1f %11.3f %15.2f", k, fastfood * 1e3, copy * 1e3,
                per_stage * 1e3, fastfood / (4 * copy), per_stage / fastfood, batched_seconds * 1e3,
                batched_seconds / (4 * copy));
    if (on_cuda) {
      const FastfoodProjection cpu_projection = MakeProjection(target, at::kCPU);
      const at::Tensor cpu_theta = theta.cpu();
      const at::Tensor cpu_grad_out = grad_out.cpu();
      const double cpu = SecondsPerCall(at::kCPU, options, [&] {
        ForwardBackward(cpu_theta, cpu_grad_out, [&](const at::Tensor& t) { return cpu_projection.Apply(t); });
      });
      std::printf(" %12.3f %10.1f", cpu * 1e3, cpu / fastfood);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  ResnetProjections(device, options);
  return 0;
}
