#include "worker/engine/models/mlp.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <memory>
#include <string>

namespace dwarp::engine {
namespace {

// Layer widths from input to output.
std::vector<int64_t> Widths(const MlpOptions& options) {
  std::vector<int64_t> widths{options.in_features_};
  widths.insert(widths.end(), options.hidden_.begin(), options.hidden_.end());
  widths.push_back(options.out_features_);
  return widths;
}

}  // namespace

int64_t MlpParameterCount(const MlpOptions& options) {
  const std::vector<int64_t> widths = Widths(options);
  int64_t count = 0;
  for (size_t i = 0; i + 1 < widths.size(); ++i) count += (widths[i] + 1) * widths[i + 1];
  return count;
}

StatusOr<torch::jit::Module> CreateMlp(const MlpOptions& options) {
  if (options.in_features_ < 1) {
    return InvalidArgumentError("MLP in_features = " + std::to_string(options.in_features_) + "; expected >= 1");
  }
  if (options.out_features_ < 1) {
    return InvalidArgumentError("MLP out_features = " + std::to_string(options.out_features_) + "; expected >= 1");
  }
  for (size_t i = 0; i < options.hidden_.size(); ++i) {
    if (options.hidden_[i] < 1) {
      return InvalidArgumentError("MLP hidden layer " + std::to_string(i + 1) + " has width " +
                                  std::to_string(options.hidden_[i]) + "; expected >= 1");
    }
  }

  at::NoGradGuard no_grad;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed_);
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module mlp("__torch__.dwarp.models.Mlp", unit, /*shouldMangle=*/true);

  const std::vector<int64_t> widths = Widths(options);
  const size_t layers = widths.size() - 1;
  std::string forward = "def forward(self, x):\n    x = torch.flatten(x, 1)\n";
  for (size_t i = 0; i < layers; ++i) {
    const int64_t in = widths[i];
    const int64_t out = widths[i + 1];
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    torch::jit::Module linear("__torch__.dwarp.models.Linear", unit, /*shouldMangle=*/true);
    linear.register_parameter("weight", at::empty({out, in}).uniform_(-bound, bound, generator), /*is_buffer=*/false);
    linear.register_parameter("bias", at::empty({out}).uniform_(-bound, bound, generator), /*is_buffer=*/false);
    linear.define("def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
    const std::string name = "fc" + std::to_string(i + 1);
    mlp.register_module(name, linear);
    forward += "    x = self." + name + ".forward(x)\n";
    if (i + 1 < layers) forward += "    x = torch.relu(x)\n";
  }
  forward += "    return x\n";
  mlp.define(forward);
  mlp.eval();
  // As torch.nn.Linear: parameters require grad (SubspaceModel turns that off on its copy).
  for (at::Tensor p : mlp.parameters()) p.set_requires_grad(true);
  return mlp;
}

}  // namespace dwarp::engine
