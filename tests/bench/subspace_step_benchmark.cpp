// One training step of an encoding job on ResNet-18, through a d-dimensional subspace against all
// parameters, timed side by side in one run: read out at avgpool, a linear head to `targets` neuroids, a
// batch of images, MSE, Adam (theta_d and the lambdas, or every parameter; the head in both). The
// subspace step runs in each projection mode asked for, with the seed's SAID layer groups, in up to three
// variants: "fused" (every tensor's projection batched into one BatchedFastfood and every tensor installed
// at once, SubspaceOptions::fused_install), "batched" (the batched projection, then one view, multiply and
// add per tensor) and "per tensor" (one FastfoodProjection and one install per tensor). --batched and
// --fused (both, the default; on or off) choose which.
// Prints seconds per step, the ratio subspace / all parameters (the GPU target: <= 1.3) and each variant's
// time over the fused variant's of the same mode.
//
// Not Google Benchmark: LibTorch alone, so it builds on a GPU box (tests/gpu/check.sh runs it there).
//
//   subspace_step_benchmark [--device cuda|cpu] [--batch 64] [--size 224] [--targets 168] [--d 1000]
//                           [--steps 20] [--modes per_tensor,size_weighted] [--batched both|on|off]
//                           [--fused both|on|off] [--threads N]
#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "worker/engine/device.h"
#include "worker/engine/models/model_registry.h"
#include "worker/engine/subspace_model.h"
#include "worker/engine/threading.h"

namespace {

using namespace dwarp::engine;

struct Options {
  std::string device = "cuda";
  int64_t batch = 64;
  int64_t size = 224;
  int64_t targets = 168;
  int64_t d = 1000;
  int64_t steps = 20;
  std::vector<std::string> modes = {"per_tensor", "size_weighted"};
  std::vector<bool> batched = {true, false};
  std::vector<bool> fused = {true, false};
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
};

void Synchronize(const at::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

// Median seconds per step of each of `steps` over `count` rounds, after 3 warm-up rounds; a round runs
// every step once, in order.
std::vector<double> SecondsPerStep(const at::Device& device, int64_t count, const std::vector<std::function<void()>>& steps) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) {
    for (const auto& step : steps) step();
  }
  std::vector<std::vector<double>> times(steps.size());
  for (int64_t i = 0; i < count; ++i) {
    for (size_t s = 0; s < steps.size(); ++s) {
      Synchronize(device);
      const auto start = Clock::now();
      steps[s]();
      Synchronize(device);
      times[s].push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
  }
  std::vector<double> medians;
  for (auto& t : times) {
    std::sort(t.begin(), t.end());
    medians.push_back(t[t.size() / 2]);
  }
  return medians;
}

ProjectionMode ModeNamed(const std::string& name) {
  auto mode = ProjectionModeNamed(name);
  if (!mode.ok()) {
    std::fprintf(stderr, "--modes: %s\n", mode.status().ToString().c_str());
    std::exit(2);
  }
  return *mode;
}

int Run(const Options& options) {
  auto device = ResolveDevice(options.device, "--device");
  if (!device.ok()) {
    std::fprintf(stderr, "%s\n", device.status().ToString().c_str());
    return 2;
  }
  SetComputeThreads(options.threads);
  auto model = CreateModel("resnet18", ModelOptions().layer("avgpool").image_size(options.size, options.size).seed(0));
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  model->module.to(*device);
  const auto on = at::TensorOptions().device(*device);
  const at::Tensor images = at::randn({options.batch, 3, options.size, options.size}, on);
  const at::Tensor responses = at::randn({options.batch, options.targets}, on);
  auto make_head = [&]() {
    return std::vector<at::Tensor>{(at::randn({options.targets, model->feature_count}, on) * 0.01).set_requires_grad(true),
                                   at::zeros({options.targets}, on).set_requires_grad(true)};
  };

  std::printf("ResNet-18 encoding step on %s: batch %lld of %lldx%lld, avgpool (%lld features) -> %lld targets, "
              "d = %lld, %lld steps (median)\n",
              device->str().c_str(), static_cast<long long>(options.batch), static_cast<long long>(options.size),
              static_cast<long long>(options.size), static_cast<long long>(model->feature_count),
              static_cast<long long>(options.targets), static_cast<long long>(options.d),
              static_cast<long long>(options.steps));

  // All parameters: the module itself (its parameters are leaves that require grad) in train mode, every
  // parameter and the head in one Adam. The subspace models below wrap copies of its initial state.
  struct Variant {
    std::string mode;
    std::unique_ptr<SubspaceModel> model;
  };
  std::vector<Variant> variants;
  for (const std::string& name : options.modes) {
    const ProjectionMode mode = ModeNamed(name);
    for (const bool batched : options.batched) {
      // kGlobal has one projection whatever `batched` says: its variants differ in the install only.
      if (mode == ProjectionMode::kGlobal && !batched && options.batched.size() > 1) continue;
      for (const bool fused : options.fused) {
        // The fused install reads the batched projection's flat output.
        if (fused && !batched && mode != ProjectionMode::kGlobal) continue;
        auto wrapped = SubspaceModel::Create(model->module, SubspaceOptions(options.d)
                                                                .seed(0)
                                                                .projection(mode)
                                                                .warp_prefixes(model->warp_prefixes)
                                                                .layer_groups(model->layer_groups)
                                                                .batched(batched)
                                                                .fused_install(fused));
        if (!wrapped.ok()) {
          std::fprintf(stderr, "%s\n", wrapped.status().ToString().c_str());
          return 1;
        }
        variants.push_back({name, std::make_unique<SubspaceModel>(std::move(wrapped).value())});
      }
    }
  }
  // Every variant's step as a closure with its own head and Adam; the steps then run round-robin (all
  // parameters, then each subspace variant, step after step), so that a shared machine's changing load falls
  // on every variant alike.
  std::vector<std::function<void()>> steps;
  std::vector<std::unique_ptr<torch::optim::Adam>> optimizers;
  std::vector<std::vector<at::Tensor>> heads;
  torch::jit::Module& full = model->module;
  heads.push_back(make_head());
  std::vector<at::Tensor> trainable;
  for (const auto& p : full.parameters()) trainable.push_back(p);
  trainable.insert(trainable.end(), heads.back().begin(), heads.back().end());
  optimizers.push_back(std::make_unique<torch::optim::Adam>(trainable, torch::optim::AdamOptions(1e-4)));
  full.train();
  steps.push_back([&, adam = optimizers.back().get(), head = heads.back()] {
    adam->zero_grad();
    const at::Tensor features = full.forward({images}).toTensor().flatten(1);
    at::mse_loss(at::linear(features, head[0], head[1]), responses).backward();
    adam->step();
  });
  for (auto& variant : variants) {
    SubspaceModel* wrapped = variant.model.get();
    heads.push_back(make_head());
    std::vector<at::Tensor> sub_params = wrapped->parameters();
    sub_params.insert(sub_params.end(), heads.back().begin(), heads.back().end());
    optimizers.push_back(std::make_unique<torch::optim::Adam>(sub_params, torch::optim::AdamOptions(1e-3)));
    wrapped->train();
    steps.push_back([&, wrapped, adam = optimizers.back().get(), head = heads.back()] {
      adam->zero_grad();
      const at::Tensor features = wrapped->Forward(images).flatten(1);
      at::mse_loss(at::linear(features, head[0], head[1]), responses).backward();
      adam->step();
    });
  }
  const std::vector<double> seconds = SecondsPerStep(*device, options.steps, steps);
  const double full_seconds = seconds[0];
  std::printf("%-38s %9.2f ms\n", "all parameters", 1e3 * full_seconds);
  for (size_t v = 0; v < variants.size(); ++v) {
    const SubspaceModel* wrapped = variants[v].model.get();
    const std::string label = "subspace, " + variants[v].mode +
                              (wrapped->uses_fused_install()        ? ", fused"
                               : wrapped->uses_batched_projection() ? ", batched"
                                                                    : ", per tensor");
    std::printf("%-38s %9.2f ms   subspace / all parameters %.2f  (%zu projections, %zu tensors, D = %lld)",
                label.c_str(), 1e3 * seconds[v + 1], seconds[v + 1] / full_seconds, wrapped->projections().size(),
                wrapped->warped_parameter_names().size(), static_cast<long long>(wrapped->warped_parameter_count()));
    // Against the fused variant of the same mode, measured in the same rounds.
    for (size_t f = 0; f < variants.size(); ++f) {
      if (f != v && variants[f].mode == variants[v].mode && variants[f].model->uses_fused_install()) {
        std::printf("   / fused %.2f", seconds[v + 1] / seconds[f + 1]);
      }
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--device") options.device = value();
    else if (arg == "--batch") options.batch = std::atoll(value().c_str());
    else if (arg == "--size") options.size = std::atoll(value().c_str());
    else if (arg == "--targets") options.targets = std::atoll(value().c_str());
    else if (arg == "--d") options.d = std::atoll(value().c_str());
    else if (arg == "--steps") options.steps = std::atoll(value().c_str());
    else if (arg == "--threads") options.threads = std::atoi(value().c_str());
    else if (arg == "--batched" || arg == "--fused") {
      const std::string v = value();
      std::vector<bool>& choice = arg == "--batched" ? options.batched : options.fused;
      if (v == "both") choice = {true, false};
      else if (v == "on") choice = {true};
      else if (v == "off") choice = {false};
      else {
        std::fprintf(stderr, "%s '%s': expected both, on or off\n", arg.c_str(), v.c_str());
        return 2;
      }
    }
    else if (arg == "--modes") {
      options.modes.clear();
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');) options.modes.push_back(item);
    } else {
      std::fprintf(stderr,
                   "unknown argument '%s'; usage: subspace_step_benchmark [--device cuda|cpu] [--batch 64] [--size 224] "
                   "[--targets 168] [--d 1000] [--steps 20] [--modes per_tensor,size_weighted] [--batched both|on|off] "
                   "[--fused both|on|off] [--threads N]\n",
                   arg.c_str());
      return 2;
    }
  }
  if (options.batch < 1 || options.size < 32 || options.targets < 1 || options.d < 8 || options.steps < 1) {
    std::fprintf(stderr, "--batch, --targets, --steps >= 1, --size >= 32, --d >= 8 expected\n");
    return 2;
  }
  return Run(options);
}
