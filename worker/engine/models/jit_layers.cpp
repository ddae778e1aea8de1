#include "worker/engine/models/jit_layers.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

namespace dwarp::engine::models_internal {

torch::jit::Module NewModule(const Unit& unit, const std::string& class_name) {
  torch::jit::Module module("__torch__.dwarp.models." + class_name, unit, /*shouldMangle=*/true);
  module.register_attribute("training", c10::BoolType::get(), true);
  return module;
}

torch::jit::Module Conv2d(const Unit& unit, int64_t in, int64_t out, int64_t kernel, int64_t stride,
                          int64_t padding, bool bias, at::Generator& generator) {
  at::NoGradGuard no_grad;
  torch::jit::Module conv = NewModule(unit, "Conv2d");
  const double bound = 1.0 / std::sqrt(static_cast<double>(in * kernel * kernel));
  conv.register_parameter("weight", at::empty({out, in, kernel, kernel}).uniform_(-bound, bound, generator),
                          /*is_buffer=*/false);
  if (bias) conv.register_parameter("bias", at::empty({out}).uniform_(-bound, bound, generator), false);
  const std::string s = std::to_string(stride);
  const std::string p = std::to_string(padding);
  conv.define("def forward(self, x):\n    return torch.conv2d(x, self.weight, " +
              std::string(bias ? "self.bias" : "None") + ", [" + s + ", " + s + "], [" + p + ", " + p +
              "], [1, 1], 1)\n");
  return conv;
}

torch::jit::Module Linear(const Unit& unit, int64_t in, int64_t out, at::Generator& generator) {
  at::NoGradGuard no_grad;
  torch::jit::Module linear = NewModule(unit, "Linear");
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  linear.register_parameter("weight", at::empty({out, in}).uniform_(-bound, bound, generator), false);
  linear.register_parameter("bias", at::empty({out}).uniform_(-bound, bound, generator), false);
  linear.define("def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
  return linear;
}

torch::jit::Module BatchNorm2d(const Unit& unit, int64_t channels) {
  at::NoGradGuard no_grad;
  torch::jit::Module bn = NewModule(unit, "BatchNorm2d");
  bn.register_parameter("weight", at::ones({channels}), false);
  bn.register_parameter("bias", at::zeros({channels}), false);
  bn.register_buffer("running_mean", at::zeros({channels}));
  bn.register_buffer("running_var", at::ones({channels}));
  bn.register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
  bn.define(
      "def forward(self, x):\n"
      "    if self.training:\n"
      "        self.num_batches_tracked.add_(1)\n"
      "    return torch.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,\n"
      "                            self.training, 0.1, 1e-05, False)\n");
  return bn;
}

void RequireGrad(torch::jit::Module& module) {
  for (at::Tensor p : module.parameters()) p.set_requires_grad(true);
}

}  // namespace dwarp::engine::models_internal
