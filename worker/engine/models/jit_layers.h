// Internal to worker/engine/models: the layers the built-in architectures are made of, each a
// torch::jit::Module built in C++ the way mlp.h explains (one shared CompilationUnit per network, mangled
// class names, methods from TorchScript source via define(), submodules called as `self.x.forward(...)`).
//
// Every layer registers the `training` attribute, so Module::train()/eval() reach it, and draws its
// initial values from the caller's seeded CPU generator (never LibTorch's global one), in the order the
// matching torch.nn constructor would.
#pragma once

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <memory>
#include <string>

namespace dwarp::engine::models_internal {

using Unit = std::shared_ptr<torch::jit::CompilationUnit>;

// An empty module of class __torch__.dwarp.models.<class_name> (mangled) with the `training` attribute.
torch::jit::Module NewModule(const Unit& unit, const std::string& class_name);

// torch.nn.Conv2d(in, out, kernel, stride, padding, bias): weight [out, in, k, k], bias [out].
// Initialisation as torch.nn.Conv2d's default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// fan_in = in * k * k.
torch::jit::Module Conv2d(const Unit& unit, int64_t in, int64_t out, int64_t kernel, int64_t stride,
                          int64_t padding, bool bias, at::Generator& generator);

// torch.nn.Linear(in, out) with its default initialisation (as mlp.h).
torch::jit::Module Linear(const Unit& unit, int64_t in, int64_t out, at::Generator& generator);

// torch.nn.BatchNorm2d(channels) (eps 1e-5, momentum 0.1, affine, tracking running stats): parameters
// weight = 1, bias = 0; buffers running_mean = 0, running_var = 1, num_batches_tracked = 0 (int64).
// forward is torch.batch_norm with the module's `training` flag: batch statistics and a running-stat
// update in training mode (and num_batches_tracked += 1, as torch.nn), running statistics in eval mode.
torch::jit::Module BatchNorm2d(const Unit& unit, int64_t channels);

// Sets a module's parameters to require grad (as torch.nn's), after building under NoGradGuard.
void RequireGrad(torch::jit::Module& module);

}  // namespace dwarp::engine::models_internal
