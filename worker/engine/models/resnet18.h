// ResNet-18 built in C++ as a torch::jit::Module with exactly torchvision's parameter and buffer names
// (conv1.weight, bn1.{weight,bias,running_mean,running_var,num_batches_tracked}, layer1.0.conv1.weight,
// layer2.0.downsample.0.weight, layer2.0.downsample.1.*, ..., fc.weight, fc.bias), so a torchvision
// state (e.g. a model written by clients/export_torchvision.py) can be copied into it name by name.
//
// The network is built only up to the read-out layer, and forward returns that layer's output
// flattened to [N, features]:
//
//   maxpool  relu(bn1(conv1(x))) max-pooled 3x3/2      [N, 64 * ceil(H/4) * ceil(W/4)]
//   layer1 .. layer4   the BasicBlock stages            [N, 64|128|256|512 * h * w]
//   avgpool  global average pool of layer4              [N, 512]
//   fc       logits                                     [N, num_classes]
//
// (as torchvision's create_feature_extractor reads those nodes). BatchNorm is torch.batch_norm on
// running-stat buffers and the module's `training` flag (jit_layers.h), so in eval mode, which
// SubspaceModel keeps, the running statistics are used and never updated. Initialisation follows
// torchvision: convolutions kaiming-normal (fan_out, relu), BatchNorm weight 1 and bias 0, fc torch.nn.Linear's
// default, all drawn from a CPU generator seeded with `seed` (not the global generator). The values differ
// from torchvision's for the same seed; only names, shapes and the computation are the same.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

struct ResNet18Options {
  ResNet18Options& in_channels(int64_t v) { in_channels_ = v; return *this; }
  ResNet18Options& num_classes(int64_t v) { num_classes_ = v; return *this; }
  // One of ResNet18ReadoutLayers().
  ResNet18Options& layer(std::string v) { layer_ = std::move(v); return *this; }
  ResNet18Options& seed(uint64_t v) { seed_ = v; return *this; }

  int64_t in_channels_ = 3;
  int64_t num_classes_ = 1000;  // used only when layer is "fc"
  std::string layer_ = "avgpool";
  uint64_t seed_ = 0;
};

// maxpool, layer1, layer2, layer3, layer4, avgpool, fc: input to output.
const std::vector<std::string>& ResNet18ReadoutLayers();

// A float32 CPU ResNet-18 in eval mode, built up to options.layer, parameters requiring grad.
// InvalidArgument for an unknown layer (the message lists the valid ones) or a count < 1.
StatusOr<torch::jit::Module> CreateResNet18(const ResNet18Options& options);

// The default SAID layer groups, as the research code: [[conv1, bn1], layer1, layer2, layer3, layer4]
// cut after the read-out layer (maxpool: [[conv1, bn1]]; avgpool: all five; fc: all five plus [fc]).
// InvalidArgument for an unknown layer.
StatusOr<std::vector<std::vector<std::string>>> ResNet18LayerGroups(const std::string& layer);

// The parameter-name prefixes upstream of the read-out layer (the groups above, concatenated).
StatusOr<std::vector<std::string>> ResNet18WarpPrefixes(const std::string& layer);

}  // namespace dwarp::engine
