#include "worker/engine/models/conv_nets.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <memory>

#include "worker/engine/models/jit_layers.h"
#include "worker/engine/models/model_errors.h"

namespace dwarp::engine {
namespace {

struct Stage {
  enum Kind { kConv, kMaxPool, kGlobalAvgPool, kLinear } kind;
  std::string name;
  int64_t out = 0;      // channels (conv) or features (linear); 0 for the last linear: num_classes
  int64_t kernel = 0;   // conv
  int64_t padding = 0;  // conv
};

const std::vector<Stage>& LeNetStages() {
  static const auto* stages = new std::vector<Stage>{
      {Stage::kConv, "conv1", 6, 5, 0},   {Stage::kMaxPool, "pool1"}, {Stage::kConv, "conv2", 16, 5, 0},
      {Stage::kMaxPool, "pool2"},         {Stage::kLinear, "fc1", 120}, {Stage::kLinear, "fc2", 84},
      {Stage::kLinear, "fc3", 0}};
  return *stages;
}

const std::vector<Stage>& SmallCnnStages() {
  static const auto* stages = new std::vector<Stage>{
      {Stage::kConv, "conv1", 16, 3, 1}, {Stage::kMaxPool, "pool1"},       {Stage::kConv, "conv2", 32, 3, 1},
      {Stage::kMaxPool, "pool2"},        {Stage::kConv, "conv3", 64, 3, 1}, {Stage::kGlobalAvgPool, "avgpool"},
      {Stage::kLinear, "fc", 0}};
  return *stages;
}

std::vector<std::string> Names(const std::vector<Stage>& stages) {
  std::vector<std::string> names;
  for (const auto& s : stages) names.push_back(s.name);
  return names;
}

// Index of the read-out stage (the last one for an empty layer), or an error listing the valid layers.
StatusOr<size_t> StageIndex(const std::string& arch, const std::vector<Stage>& stages, const std::string& layer) {
  if (layer.empty()) return stages.size() - 1;
  for (size_t i = 0; i < stages.size(); ++i) {
    if (stages[i].name == layer) return i;
  }
  return models_internal::UnknownLayerError(arch, layer, Names(stages));
}

StatusOr<torch::jit::Module> Build(const std::string& arch, const std::vector<Stage>& stages,
                                   const ConvNetOptions& options) {
  auto last = StageIndex(arch, stages, options.layer_);
  if (!last.ok()) return last.status();
  if (options.in_channels_ < 1 || options.num_classes_ < 1) {
    return InvalidArgumentError(arch + " in_channels = " + std::to_string(options.in_channels_) +
                                ", num_classes = " + std::to_string(options.num_classes_) + "; expected both >= 1");
  }
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed_);
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module net = models_internal::NewModule(unit, arch == "lenet" ? "LeNet" : "SmallCnn");

  int64_t channels = options.in_channels_, height = options.height_, width = options.width_;
  int64_t features = -1;  // >= 0 once flattened
  bool pending_relu = false;
  std::string forward = "def forward(self, x):\n";
  auto relu_if_pending = [&] {
    if (pending_relu) forward += "    x = torch.relu(x)\n";
    pending_relu = false;
  };
  for (size_t i = 0; i <= *last; ++i) {
    const Stage& s = stages[i];
    switch (s.kind) {
      case Stage::kConv:
        relu_if_pending();
        net.register_module(s.name, models_internal::Conv2d(unit, channels, s.out, s.kernel, 1, s.padding,
                                                            /*bias=*/true, generator));
        forward += "    x = self." + s.name + ".forward(x)\n";
        channels = s.out;
        height += 2 * s.padding - s.kernel + 1;
        width += 2 * s.padding - s.kernel + 1;
        pending_relu = true;
        break;
      case Stage::kMaxPool:
        relu_if_pending();
        forward += "    x = torch.max_pool2d(x, [2, 2], [2, 2])\n";
        height /= 2;
        width /= 2;
        break;
      case Stage::kGlobalAvgPool:
        relu_if_pending();
        forward += "    x = torch.adaptive_avg_pool2d(x, [1, 1])\n";
        height = width = 1;
        break;
      case Stage::kLinear: {
        if (features < 0) {
          forward += "    x = torch.flatten(x, 1)\n";
          features = channels * height * width;
        }
        relu_if_pending();
        const int64_t out = s.out > 0 ? s.out : options.num_classes_;
        net.register_module(s.name, models_internal::Linear(unit, features, out, generator));
        forward += "    x = self." + s.name + ".forward(x)\n";
        features = out;
        pending_relu = true;
        break;
      }
    }
    if (height < 1 || width < 1) {
      return InvalidArgumentError(arch + " cannot take " + std::to_string(options.height_) + "x" +
                                  std::to_string(options.width_) + " images: the feature map vanishes at layer '" +
                                  s.name + "'; expected larger images (lenet: at least 16x16)");
    }
  }
  forward += "    return torch.flatten(x, 1)\n";
  net.define(forward);
  net.eval();
  models_internal::RequireGrad(net);
  return net;
}

}  // namespace

const std::vector<std::string>& LeNetReadoutLayers() {
  static const auto* names = new std::vector<std::string>(Names(LeNetStages()));
  return *names;
}

const std::vector<std::string>& SmallCnnReadoutLayers() {
  static const auto* names = new std::vector<std::string>(Names(SmallCnnStages()));
  return *names;
}

StatusOr<torch::jit::Module> CreateLeNet(const ConvNetOptions& options) { return Build("lenet", LeNetStages(), options); }

StatusOr<torch::jit::Module> CreateSmallCnn(const ConvNetOptions& options) {
  return Build("small_cnn", SmallCnnStages(), options);
}

StatusOr<std::vector<std::vector<std::string>>> ConvNetLayerGroups(const std::string& arch, const std::string& layer) {
  if (arch != "lenet" && arch != "small_cnn") {
    return InvalidArgumentError("unknown conv net '" + arch + "'; expected lenet or small_cnn");
  }
  const auto& stages = arch == "lenet" ? LeNetStages() : SmallCnnStages();
  auto last = StageIndex(arch, stages, layer);
  if (!last.ok()) return last.status();
  std::vector<std::vector<std::string>> groups;
  for (size_t i = 0; i <= *last; ++i) {
    if (stages[i].kind == Stage::kConv || stages[i].kind == Stage::kLinear) groups.push_back({stages[i].name});
  }
  return groups;
}

}  // namespace dwarp::engine
