#include "worker/engine/models/model_registry.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "worker/engine/models/conv_nets.h"
#include "worker/engine/models/mlp.h"
#include "worker/engine/models/model_errors.h"
#include "worker/engine/models/resnet18.h"
#include "worker/engine/models/torchscript_readout.h"

namespace dwarp::engine {
namespace {

using models_internal::JoinNames;

std::string ShapeString(at::IntArrayRef shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

StatusOr<torch::jit::Module> LoadTorchScript(const std::string& path) {
  if (path.empty()) return InvalidArgumentError("no TorchScript file given (weights is empty)");
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return NotFoundError("TorchScript file '" + path + "' does not exist or is not a regular file");
  }
  try {
    return torch::jit::load(path, c10::Device(c10::kCPU));
  } catch (const c10::Error& e) {
    return InvalidArgumentError("cannot load '" + path + "' as a TorchScript model (torch.jit.save format): " +
                                e.what_without_backtrace());
  }
}

std::vector<std::string> MlpLayers(const ModelOptions& options) {
  std::vector<std::string> layers;
  for (size_t i = 0; i <= options.hidden_.size(); ++i) layers.push_back("fc" + std::to_string(i + 1));
  return layers;
}

// Builds a built-in arch up to `layer` (already validated) with fresh weights, and its default groups.
StatusOr<torch::jit::Module> BuildBuiltin(const std::string& arch, const std::string& layer, const ModelOptions& options,
                                          std::vector<std::vector<std::string>>& groups) {
  if (arch == "resnet18") {
    auto g = ResNet18LayerGroups(layer);
    if (!g.ok()) return g.status();
    groups = *g;
    return CreateResNet18(ResNet18Options()
                              .in_channels(options.in_channels_)
                              .num_classes(options.num_classes_)
                              .layer(layer)
                              .seed(options.seed_));
  }
  if (arch == "lenet" || arch == "small_cnn") {
    auto g = ConvNetLayerGroups(arch, layer);
    if (!g.ok()) return g.status();
    groups = *g;
    const auto conv_options = ConvNetOptions()
                                  .in_channels(options.in_channels_)
                                  .image_size(options.height_, options.width_)
                                  .num_classes(options.num_classes_)
                                  .layer(layer)
                                  .seed(options.seed_);
    return arch == "lenet" ? CreateLeNet(conv_options) : CreateSmallCnn(conv_options);
  }
  // mlp up to fcK: the first K layers of the full MLP (CreateMlp draws layer by layer, so the values are
  // the same as the full network's), the last one without its ReLU.
  const std::vector<std::string> layers = MlpLayers(options);
  const size_t k = std::find(layers.begin(), layers.end(), layer) - layers.begin() + 1;
  for (size_t i = 0; i < k; ++i) groups.push_back({layers[i]});
  const std::vector<int64_t> hidden(options.hidden_.begin(), options.hidden_.begin() + (k - 1));
  const int64_t out = k <= options.hidden_.size() ? options.hidden_[k - 1] : options.num_classes_;
  return CreateMlp(MlpOptions(options.in_channels_ * options.height_ * options.width_, out)
                       .hidden(hidden)
                       .seed(options.seed_));
}

}  // namespace

const std::vector<std::string>& ModelArchs() {
  static const auto* archs = new std::vector<std::string>{"mlp", "lenet", "small_cnn", "resnet18", "torchscript"};
  return *archs;
}

StatusOr<std::vector<std::string>> ReadoutLayers(const std::string& arch, const ModelOptions& options) {
  if (arch == "mlp") return MlpLayers(options);
  if (arch == "lenet") return LeNetReadoutLayers();
  if (arch == "small_cnn") return SmallCnnReadoutLayers();
  if (arch == "resnet18") return ResNet18ReadoutLayers();
  if (arch == "torchscript") {
    return InvalidArgumentError("the read-out layers of a torchscript model are its submodules; load it first");
  }
  return InvalidArgumentError("unknown model arch '" + arch + "'; valid archs: " + JoinNames(ModelArchs()));
}

Status CopyStateByName(const torch::jit::Module& from, torch::jit::Module& to) {
  std::map<std::string, at::Tensor> source;
  for (const auto& p : from.named_parameters()) source[p.name] = p.value;
  for (const auto& b : from.named_buffers()) source[b.name] = b.value;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (destination, source)
  auto plan = [&](const std::string& name, const at::Tensor& destination) -> Status {
    const auto it = source.find(name);
    if (it == source.end()) {
      return InvalidArgumentError("the weights have no entry '" + name + "' (the model needs it, shape " +
                                  ShapeString(destination.sizes()) + ")");
    }
    if (!it->second.sizes().equals(destination.sizes())) {
      return InvalidArgumentError("weights entry '" + name + "' has shape " + ShapeString(it->second.sizes()) +
                                  "; the model expects " + ShapeString(destination.sizes()));
    }
    copies.emplace_back(destination, it->second);
    return OkStatus();
  };
  for (const auto& p : to.named_parameters()) DWARP_RETURN_IF_ERROR(plan(p.name, p.value));
  for (const auto& b : to.named_buffers()) DWARP_RETURN_IF_ERROR(plan(b.name, b.value));
  at::NoGradGuard no_grad;
  for (auto& [destination, value] : copies) destination.copy_(value);
  return OkStatus();
}

StatusOr<ReadoutModel> CreateModel(const std::string& arch, const ModelOptions& options) {
  if (std::find(ModelArchs().begin(), ModelArchs().end(), arch) == ModelArchs().end()) {
    return InvalidArgumentError("unknown model arch '" + arch + "'; valid archs: " + JoinNames(ModelArchs()));
  }
  if (options.in_channels_ < 1 || options.height_ < 1 || options.width_ < 1) {
    return InvalidArgumentError("input shape [" + std::to_string(options.in_channels_) + ", " +
                                std::to_string(options.height_) + ", " + std::to_string(options.width_) +
                                "]; expected [channels, height, width] all >= 1");
  }
  ReadoutModel model;
  model.arch = arch;
  model.layer = options.layer_;
  try {
    if (arch == "torchscript") {
      auto loaded = LoadTorchScript(options.weights_);
      if (!loaded.ok()) return loaded.status();
      model.module = std::move(loaded).value();
      if (!model.layer.empty()) DWARP_RETURN_IF_ERROR(CutForwardAtLayer(model.module, model.layer));
      model.output_layer = model.layer.empty();
      model.module.eval();
      for (at::Tensor p : model.module.parameters()) p.set_requires_grad(true);
      model.warp_prefixes = ParametersReadByForward(model.module);
    } else {
      auto layers = ReadoutLayers(arch, options);
      if (!layers.ok()) return layers.status();
      if (model.layer.empty()) model.layer = arch == "resnet18" ? "avgpool" : layers->back();
      if (std::find(layers->begin(), layers->end(), model.layer) == layers->end()) {
        return models_internal::UnknownLayerError(arch, model.layer, *layers);
      }
      model.output_layer = model.layer == layers->back();
      auto built = BuildBuiltin(arch, model.layer, options, model.layer_groups);
      if (!built.ok()) return built.status();
      model.module = std::move(built).value();
      if (!options.weights_.empty()) {
        auto weights = LoadTorchScript(options.weights_);
        if (!weights.ok()) return weights.status();
        Status copied = CopyStateByName(*weights, model.module);
        if (!copied.ok()) return InvalidArgumentError("weights '" + options.weights_ + "' do not fit " + arch + ": " + copied.message());
      }
      for (const auto& group : model.layer_groups) {
        model.warp_prefixes.insert(model.warp_prefixes.end(), group.begin(), group.end());
      }
    }
  } catch (const c10::Error& e) {
    return InvalidArgumentError("building " + arch + " failed: " + e.what_without_backtrace());
  }

  // The representation size, from a dry forward on zeros.
  const std::vector<int64_t> shape{1, options.in_channels_, options.height_, options.width_};
  try {
    at::NoGradGuard no_grad;
    const at::Tensor out = model.module.forward({at::zeros(shape)}).toTensor();
    if (out.dim() != 2 || out.size(0) != 1) {
      return InvalidArgumentError(arch + " (layer '" + model.layer + "') returns shape " + ShapeString(out.sizes()) +
                                  " for input " + ShapeString(shape) + "; expected [1, features] (name a layer)");
    }
    model.feature_count = out.size(1);
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) what = c10_error->what_without_backtrace();
    return InvalidArgumentError(arch + " (layer '" + model.layer + "') cannot run on input of shape " +
                                ShapeString(shape) + ": " + what);
  }
  return model;
}

}  // namespace dwarp::engine
