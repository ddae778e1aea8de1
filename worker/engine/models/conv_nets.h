// Small convolutional networks built in C++ as torch::jit::Modules (the way mlp.h explains), for the
// intrinsic-dimension experiments of Li et al. 2018 and for quick CPU jobs.
//
// lenet: LeNet-5 as in Li et al. 2018 ("Measuring the intrinsic dimension of objective landscapes"):
//   conv1 6@5x5 (no padding) -> relu -> pool1 max 2x2 -> conv2 16@5x5 -> relu -> pool2 max 2x2 -> flatten
//   -> fc1 120 -> relu -> fc2 84 -> relu -> fc3 num_classes.
//   On 1x28x28 (MNIST) it has D = 44,426 parameters and on 3x32x32 (CIFAR) 62,006, the paper's counts.
//   Read-out layers: conv1, pool1, conv2, pool2, fc1, fc2, fc3.
// small_cnn: conv1 16@3x3 (padding 1) -> relu -> pool1 max 2x2 -> conv2 32@3x3 -> relu -> pool2 -> conv3
//   64@3x3 -> relu -> avgpool (global) -> fc num_classes; about 24k parameters at any input size.
//   Read-out layers: conv1, pool1, conv2, pool2, conv3, avgpool, fc.
//
// A read-out at a conv or fc layer is that layer's own output (before its ReLU), as reading a torch.nn
// module's output; pool layers come after the ReLU. The network is built only up to the read-out layer
// and forward returns [N, features] (the layer's output flattened). Parameters are named
// <layer>.weight / <layer>.bias; the default SAID layer groups are one per parameterised layer up to the
// read-out layer. Initialisation is torch.nn's default for Conv2d and Linear, drawn layer by layer from a
// CPU generator seeded with `seed`.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

struct ConvNetOptions {
  ConvNetOptions& in_channels(int64_t v) { in_channels_ = v; return *this; }
  ConvNetOptions& image_size(int64_t height, int64_t width) { height_ = height; width_ = width; return *this; }
  ConvNetOptions& num_classes(int64_t v) { num_classes_ = v; return *this; }
  // One of the architecture's read-out layers (above); empty: its last layer (the logits).
  ConvNetOptions& layer(std::string v) { layer_ = std::move(v); return *this; }
  ConvNetOptions& seed(uint64_t v) { seed_ = v; return *this; }

  int64_t in_channels_ = 1;
  int64_t height_ = 28;
  int64_t width_ = 28;
  int64_t num_classes_ = 10;
  std::string layer_;
  uint64_t seed_ = 0;
};

const std::vector<std::string>& LeNetReadoutLayers();
const std::vector<std::string>& SmallCnnReadoutLayers();

// Float32 CPU networks in eval mode, built up to options.layer, parameters requiring grad.
// InvalidArgument for an unknown layer (listing the valid ones), a count < 1, or an image too small for
// the architecture (naming the size and the minimum).
StatusOr<torch::jit::Module> CreateLeNet(const ConvNetOptions& options);
StatusOr<torch::jit::Module> CreateSmallCnn(const ConvNetOptions& options);

// Default SAID layer groups ({{"conv1"}, {"conv2"}, ...} up to the read-out layer) for "lenet" or
// "small_cnn"; InvalidArgument for an unknown arch or layer.
StatusOr<std::vector<std::vector<std::string>>> ConvNetLayerGroups(const std::string& arch, const std::string& layer);

}  // namespace dwarp::engine
