#include "worker/engine/models/resnet18.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "worker/engine/models/jit_layers.h"
#include "worker/engine/models/model_errors.h"

namespace dwarp::engine {
namespace {

using models_internal::BatchNorm2d;
using models_internal::UnknownLayerError;
using models_internal::NewModule;
using models_internal::Unit;

// torchvision's resnet init: kaiming_normal_(mode="fan_out", nonlinearity="relu"), i.e. N(0, 2 / fan_out).
torch::jit::Module Conv(const Unit& unit, int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                        at::Generator& generator) {
  torch::jit::Module conv = models_internal::Conv2d(unit, in, out, kernel, stride, padding, /*bias=*/false, generator);
  at::NoGradGuard no_grad;
  const double std = std::sqrt(2.0 / static_cast<double>(out * kernel * kernel));
  conv.attr("weight").toTensor().normal_(0.0, std, generator);
  return conv;
}

// torchvision.models.resnet.BasicBlock(in, out, stride), with downsample = Sequential(conv1x1, bn) when
// the shape changes.
torch::jit::Module BasicBlock(const Unit& unit, int64_t in, int64_t out, int64_t stride, at::Generator& generator) {
  torch::jit::Module block = NewModule(unit, "BasicBlock");
  block.register_module("conv1", Conv(unit, in, out, 3, stride, 1, generator));
  block.register_module("bn1", BatchNorm2d(unit, out));
  block.register_module("conv2", Conv(unit, out, out, 3, 1, 1, generator));
  block.register_module("bn2", BatchNorm2d(unit, out));
  std::string identity = "x";
  if (stride != 1 || in != out) {
    torch::jit::Module downsample = NewModule(unit, "Sequential");
    downsample.register_module("0", Conv(unit, in, out, 1, stride, 0, generator));
    downsample.register_module("1", BatchNorm2d(unit, out));
    downsample.define(
        "def forward(self, x):\n"
        "    x = getattr(self, \"0\").forward(x)\n"
        "    return getattr(self, \"1\").forward(x)\n");
    block.register_module("downsample", downsample);
    identity = "self.downsample.forward(x)";
  }
  block.define(
      "def forward(self, x):\n"
      "    out = torch.relu(self.bn1.forward(self.conv1.forward(x)))\n"
      "    out = self.bn2.forward(self.conv2.forward(out))\n"
      "    out = out + " + identity + "\n"
      "    return torch.relu(out)\n");
  return block;
}

torch::jit::Module Stage(const Unit& unit, int64_t in, int64_t out, int64_t stride, at::Generator& generator) {
  torch::jit::Module stage = NewModule(unit, "Sequential");
  stage.register_module("0", BasicBlock(unit, in, out, stride, generator));
  stage.register_module("1", BasicBlock(unit, out, out, 1, generator));
  stage.define(
      "def forward(self, x):\n"
      "    x = getattr(self, \"0\").forward(x)\n"
      "    return getattr(self, \"1\").forward(x)\n");
  return stage;
}

}  // namespace

const std::vector<std::string>& ResNet18ReadoutLayers() {
  static const auto* layers =
      new std::vector<std::string>{"maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"};
  return *layers;
}

StatusOr<std::vector<std::vector<std::string>>> ResNet18LayerGroups(const std::string& layer) {
  const auto& layers = ResNet18ReadoutLayers();
  const auto it = std::find(layers.begin(), layers.end(), layer);
  if (it == layers.end()) return UnknownLayerError("resnet18", layer, layers);
  const int64_t index = it - layers.begin();  // 0: maxpool, 1..4: layer1..4, 5: avgpool, 6: fc
  std::vector<std::vector<std::string>> groups{{"conv1", "bn1"}};
  for (int64_t stage = 1; stage <= std::min<int64_t>(index, 4); ++stage) groups.push_back({"layer" + std::to_string(stage)});
  if (layer == "fc") groups.push_back({"fc"});
  return groups;
}

StatusOr<std::vector<std::string>> ResNet18WarpPrefixes(const std::string& layer) {
  auto groups = ResNet18LayerGroups(layer);
  if (!groups.ok()) return groups.status();
  std::vector<std::string> prefixes;
  for (const auto& group : *groups) prefixes.insert(prefixes.end(), group.begin(), group.end());
  return prefixes;
}

StatusOr<torch::jit::Module> CreateResNet18(const ResNet18Options& options) {
  const auto& layers = ResNet18ReadoutLayers();
  const auto it = std::find(layers.begin(), layers.end(), options.layer_);
  if (it == layers.end()) return UnknownLayerError("resnet18", options.layer_, layers);
  const int64_t index = it - layers.begin();
  if (options.in_channels_ < 1) {
    return InvalidArgumentError("resnet18 in_channels = " + std::to_string(options.in_channels_) + "; expected >= 1");
  }
  if (options.num_classes_ < 1) {
    return InvalidArgumentError("resnet18 num_classes = " + std::to_string(options.num_classes_) + "; expected >= 1");
  }

  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed_);
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module net = NewModule(unit, "ResNet");
  // Modules are created in torchvision's order, so the draws follow the parameter order.
  net.register_module("conv1", Conv(unit, options.in_channels_, 64, 7, 2, 3, generator));
  net.register_module("bn1", BatchNorm2d(unit, 64));
  std::string forward =
      "def forward(self, x):\n"
      "    x = torch.relu(self.bn1.forward(self.conv1.forward(x)))\n"
      "    x = torch.max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], False)\n";
  const int64_t widths[] = {64, 64, 128, 256, 512};
  for (int64_t stage = 1; stage <= std::min<int64_t>(index, 4); ++stage) {
    const std::string name = "layer" + std::to_string(stage);
    net.register_module(name, Stage(unit, widths[stage - 1], widths[stage], stage == 1 ? 1 : 2, generator));
    forward += "    x = self." + name + ".forward(x)\n";
  }
  if (index >= 5) forward += "    x = torch.adaptive_avg_pool2d(x, [1, 1])\n";
  if (index >= 6) {
    net.register_module("fc", models_internal::Linear(unit, 512, options.num_classes_, generator));
    forward += "    x = self.fc.forward(torch.flatten(x, 1))\n";
  }
  forward += "    return torch.flatten(x, 1)\n";
  net.define(forward);
  net.eval();
  models_internal::RequireGrad(net);
  return net;
}

}  // namespace dwarp::engine
