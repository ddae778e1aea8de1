#include "worker/engine/models/linear_head.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <memory>
#include <sstream>
#include <string>

#include "worker/engine/models/jit_layers.h"

namespace dwarp::engine {

StatusOr<torch::jit::Module> AttachLinearHead(const torch::jit::Module& body, const at::Tensor& weight,
                                              const at::Tensor& bias) {
  if (!weight.defined() || !bias.defined() || weight.dim() != 2 || bias.dim() != 1 || bias.size(0) != weight.size(0)) {
    std::ostringstream os;
    os << "linear head: weight of shape " << (weight.defined() ? weight.sizes() : at::IntArrayRef{})
       << " and bias of shape " << (bias.defined() ? bias.sizes() : at::IntArrayRef{})
       << "; expected weight [T, F] and bias [T]";
    return InvalidArgumentError(os.str());
  }
  bool trainable = true;
  for (const auto& p : body.parameters()) {
    if (p.scalar_type() != weight.scalar_type() || p.device() != weight.device() ||
        bias.scalar_type() != weight.scalar_type() || bias.device() != weight.device()) {
      std::ostringstream os;
      os << "linear head: weight is " << weight.scalar_type() << " on " << weight.device() << ", bias "
         << bias.scalar_type() << " on " << bias.device() << ", the network's parameters " << p.scalar_type()
         << " on " << p.device() << "; expected one dtype and device";
      return InvalidArgumentError(os.str());
    }
    trainable = p.requires_grad();
    break;
  }
  at::NoGradGuard no_grad;
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module head = models_internal::NewModule(unit, "LinearHead");
  head.register_parameter("weight", weight.detach().clone().set_requires_grad(trainable), /*is_buffer=*/false);
  head.register_parameter("bias", bias.detach().clone().set_requires_grad(trainable), /*is_buffer=*/false);
  head.define("def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
  torch::jit::Module net = models_internal::NewModule(unit, "WithLinearHead");
  net.register_module(kAttachedBodyName, body.deepcopy());
  net.register_module(kAttachedHeadName, head);
  net.define(std::string("def forward(self, x):\n    return self.") + kAttachedHeadName + ".forward(torch.flatten(self." +
             kAttachedBodyName + ".forward(x), 1))\n");
  net.eval();
  return net;
}

}  // namespace dwarp::engine
