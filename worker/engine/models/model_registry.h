// CreateModel: every network a job can name, built or loaded as a torch::jit::Module whose forward maps
// images [N, C, H, W] to the representation at the job's read-out layer, flattened to [N, features].
// That module is what SubspaceModel wraps and what a readout head is fitted on.
//
//   arch         read-out layers, input to output (default: avgpool for resnet18, the last otherwise)
//   mlp          fc1 .. fc<n+1> (n = hidden layers; linear outputs before the ReLU)     mlp.h
//   lenet        conv1 pool1 conv2 pool2 fc1 fc2 fc3                                    conv_nets.h
//   small_cnn    conv1 pool1 conv2 pool2 conv3 avgpool fc                               conv_nets.h
//   resnet18     maxpool layer1 layer2 layer3 layer4 avgpool fc                         resnet18.h
//   torchscript  any submodule path of the file's model ("layer3", "features.7");
//                empty: the model's own output                                          torchscript_readout.h
//
// Built-in archs are built only up to the layer, with weights drawn from `seed`, or copied by name from
// a TorchScript file (`weights`, e.g. a model written by clients/export_torchvision.py; every parameter
// and buffer the built network has must be in the file with the same shape; extra entries are ignored).
// For arch "torchscript", `weights` is the model file itself, loaded with torch::jit::load and read out
// as torchscript_readout.h describes.
//
// Thread-safety: CreateModel may run concurrently on different threads (each call builds its own module).
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

struct ModelOptions {
  // The read-out layer; empty: the arch's default (table above).
  ModelOptions& layer(std::string v) { layer_ = std::move(v); return *this; }
  // Input images [in_channels, height, width]; the representation size is found by a forward on zeros of
  // this shape, so it must be an input the network accepts.
  ModelOptions& in_channels(int64_t v) { in_channels_ = v; return *this; }
  ModelOptions& image_size(int64_t height, int64_t width) { height_ = height; width_ = width; return *this; }
  // Output size of the built-in archs' last layer.
  ModelOptions& num_classes(int64_t v) { num_classes_ = v; return *this; }
  // mlp hidden widths.
  ModelOptions& hidden(std::vector<int64_t> v) { hidden_ = std::move(v); return *this; }
  ModelOptions& seed(uint64_t v) { seed_ = v; return *this; }
  // A TorchScript file: the weights of a built-in arch, or the model of arch "torchscript".
  ModelOptions& weights(std::string v) { weights_ = std::move(v); return *this; }

  std::string layer_;
  int64_t in_channels_ = 3;
  int64_t height_ = 224;
  int64_t width_ = 224;
  int64_t num_classes_ = 1000;
  std::vector<int64_t> hidden_;
  uint64_t seed_ = 0;
  std::string weights_;
};

struct ReadoutModel {
  // Float32 CPU, eval mode, parameters requiring grad; forward: [N, C, H, W] -> [N, feature_count].
  torch::jit::Module module;
  std::string arch;
  std::string layer;              // the read-out layer used (the default filled in)
  int64_t feature_count = 0;      // representation size
  // The read-out layer is the network's output layer, so forward gives the whole network's output: a
  // built-in arch read out at its last layer (the logits, num_classes wide), or a torchscript model read
  // out with an empty layer (its own forward). A named torchscript submodule counts as inner even when
  // nothing follows it: the registry cannot tell from the file whether that output means logits.
  bool output_layer = false;
  // Parameter-name prefixes upstream of the layer: SubspaceOptions::warp_prefixes.
  std::vector<std::string> warp_prefixes;
  // Default SAID layer groups (SubspaceOptions::layer_groups); empty for "torchscript" (no groups unless
  // the job gives them).
  std::vector<std::vector<std::string>> layer_groups;
};

// mlp, lenet, small_cnn, resnet18, torchscript.
const std::vector<std::string>& ModelArchs();

// The read-out layers of a built-in arch, input to output.
// InvalidArgument for an unknown arch (listing the valid ones) or for "torchscript" (its layers depend
// on the file: SubmoduleNames in torchscript_readout.h).
StatusOr<std::vector<std::string>> ReadoutLayers(const std::string& arch, const ModelOptions& options);

// InvalidArgument for an unknown arch or layer (the message lists the valid ones), bad sizes, weights
// that do not fit, or a forward that fails on the input shape; NotFound for a missing weights file.
StatusOr<ReadoutModel> CreateModel(const std::string& arch, const ModelOptions& options);

// Copies every parameter and buffer of `to` from the entry of the same name in `from`. InvalidArgument
// naming the first entry missing from `from` or of another shape; `to` is unchanged on error.
Status CopyStateByName(const torch::jit::Module& from, torch::jit::Module& to);

}  // namespace dwarp::engine
