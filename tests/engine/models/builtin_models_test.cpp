// Contract of resnet18.h, conv_nets.h and model_registry.h for the built-in architectures.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "worker/engine/models/conv_nets.h"
#include "worker/engine/models/model_registry.h"
#include "worker/engine/models/resnet18.h"
#include "worker/engine/subspace_model.h"

namespace dwarp::engine {
namespace {

ReadoutModel Make(const std::string& arch, const ModelOptions& options) {
  auto model = CreateModel(arch, options);
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(model).value();
}

at::Tensor Forward(torch::jit::Module& m, const at::Tensor& x) {
  at::NoGradGuard no_grad;
  return m.forward({x}).toTensor();
}

int64_t ParameterCount(const torch::jit::Module& m) {
  int64_t n = 0;
  for (const at::Tensor& p : m.parameters()) n += p.numel();
  return n;
}

std::set<std::string> ParameterNames(const torch::jit::Module& m) {
  std::set<std::string> names;
  for (const auto& p : m.named_parameters()) names.insert(p.name);
  return names;
}

TEST(ResNet18Test, EveryReadoutLayerHasTheTorchvisionShape) {
  // 32x32 input: conv1 /2 -> 16, maxpool /2 -> 8, layer2..4 halve -> 4, 2, 1.
  const std::map<std::string, int64_t> expected{{"maxpool", 64 * 8 * 8}, {"layer1", 64 * 8 * 8},
                                                {"layer2", 128 * 4 * 4}, {"layer3", 256 * 2 * 2},
                                                {"layer4", 512 * 1 * 1}, {"avgpool", 512},
                                                {"fc", 7}};
  const at::Tensor x = at::rand({2, 3, 32, 32});
  for (const auto& [layer, features] : expected) {
    ReadoutModel model = Make("resnet18", ModelOptions().layer(layer).image_size(32, 32).num_classes(7));
    EXPECT_EQ(model.layer, layer);
    EXPECT_EQ(model.feature_count, features) << layer;
    EXPECT_EQ(Forward(model.module, x).sizes(), (std::vector<int64_t>{2, features})) << layer;
  }
  // Odd sizes follow torchvision's rounding: 50 -> 25 -> 13 (maxpool) -> 7 -> 4 -> 2.
  EXPECT_EQ(Make("resnet18", ModelOptions().layer("maxpool").image_size(50, 50)).feature_count, 64 * 13 * 13);
  EXPECT_EQ(Make("resnet18", ModelOptions().layer("layer4").image_size(50, 50)).feature_count, 512 * 2 * 2);
}

TEST(ResNet18Test, NamesAndCountsAreTorchvisions) {
  auto full = CreateResNet18(ResNet18Options().layer("fc"));
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(ParameterCount(*full), 11689512);  // torchvision.models.resnet18(): 11,689,512
  const std::set<std::string> names = ParameterNames(*full);
  EXPECT_EQ(names.size(), 62u);
  for (const char* name : {"conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
                           "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer4.1.conv2.weight",
                           "fc.weight", "fc.bias"}) {
    EXPECT_EQ(names.count(name), 1u) << name;
  }
  EXPECT_EQ(names.count("layer1.0.downsample.0.weight"), 0u);  // layer1 keeps the shape: no downsample
  std::set<std::string> buffers;
  for (const auto& b : full->named_buffers()) buffers.insert(b.name);
  EXPECT_EQ(buffers.size(), 3u * 20);  // 20 BatchNorms: running_mean, running_var, num_batches_tracked
  EXPECT_EQ(buffers.count("layer3.0.downsample.1.num_batches_tracked"), 1u);
  EXPECT_EQ(full->attr("conv1").toModule().attr("weight").toTensor().sizes(), (std::vector<int64_t>{64, 3, 7, 7}));

  // Built only up to the read-out layer.
  auto to_layer2 = CreateResNet18(ResNet18Options().layer("layer2"));
  ASSERT_TRUE(to_layer2.ok());
  for (const auto& name : ParameterNames(*to_layer2)) {
    EXPECT_TRUE(name.rfind("layer3", 0) != 0 && name.rfind("layer4", 0) != 0 && name.rfind("fc", 0) != 0) << name;
  }
}

TEST(ResNet18Test, SameSeedSameWeightsAndPrefixOfTheFullNetwork) {
  auto a = CreateResNet18(ResNet18Options().layer("layer2").seed(3));
  auto b = CreateResNet18(ResNet18Options().layer("fc").seed(3));
  auto c = CreateResNet18(ResNet18Options().layer("layer2").seed(4));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  std::map<std::string, at::Tensor> full;
  for (const auto& p : b->named_parameters()) full[p.name] = p.value;
  std::map<std::string, at::Tensor> other;
  for (const auto& p : c->named_parameters()) other[p.name] = p.value;
  for (const auto& p : a->named_parameters()) {
    EXPECT_TRUE(p.value.equal(full.at(p.name))) << p.name;
    if (p.name.find("bn") == std::string::npos && p.name.find("downsample.1") == std::string::npos) {
      EXPECT_FALSE(p.value.equal(other.at(p.name))) << p.name;  // BatchNorm starts at 1 and 0 for any seed
    }
  }
  // Kaiming normal (fan_out, relu) for conv1: std sqrt(2 / (64 * 49)).
  const at::Tensor w = full.at("conv1.weight");
  EXPECT_NEAR(w.std().item<double>(), std::sqrt(2.0 / (64 * 49)), 0.01);
}

TEST(ResNet18Test, DefaultLayerGroupsAreCutAtTheReadoutLayer) {
  using Groups = std::vector<std::vector<std::string>>;
  EXPECT_EQ(*ResNet18LayerGroups("maxpool"), (Groups{{"conv1", "bn1"}}));
  EXPECT_EQ(*ResNet18LayerGroups("layer2"), (Groups{{"conv1", "bn1"}, {"layer1"}, {"layer2"}}));
  EXPECT_EQ(*ResNet18LayerGroups("avgpool"),
            (Groups{{"conv1", "bn1"}, {"layer1"}, {"layer2"}, {"layer3"}, {"layer4"}}));
  EXPECT_EQ(*ResNet18WarpPrefixes("layer3"), (std::vector<std::string>{"conv1", "bn1", "layer1", "layer2", "layer3"}));
  ReadoutModel model = Make("resnet18", ModelOptions().layer("layer1").image_size(32, 32));
  EXPECT_EQ(model.layer_groups, (Groups{{"conv1", "bn1"}, {"layer1"}}));
  EXPECT_EQ(model.warp_prefixes, (std::vector<std::string>{"conv1", "bn1", "layer1"}));
}

TEST(ResNet18Test, SubspaceModelWithDefaultGroupsReproducesTheReadoutAtZero) {
  ReadoutModel net = Make("resnet18", ModelOptions().layer("layer2").image_size(32, 32).seed(1));
  auto model = SubspaceModel::Create(
      net.module, SubspaceOptions(64).seed(5).warp_prefixes(net.warp_prefixes).layer_groups(net.layer_groups));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->group_count(), 3);
  EXPECT_EQ(model->warped_parameter_count(), ParameterCount(net.module));
  const at::Tensor x = at::rand({2, 3, 32, 32});
  const at::Tensor expected = Forward(net.module, x);
  model->eval();
  at::Tensor out;
  {
    at::NoGradGuard no_grad;
    out = model->Forward(x);
  }
  EXPECT_TRUE(out.equal(expected)) << "max |diff| " << (out - expected).abs().max().item<double>();
}

TEST(ResNet18Test, GradientsReachThetaDThroughBatchNormInEval) {
  ReadoutModel net = Make("resnet18", ModelOptions().layer("layer1").image_size(32, 32).seed(2));
  auto model = SubspaceModel::Create(
      net.module, SubspaceOptions(40).seed(1).warp_prefixes(net.warp_prefixes).layer_groups(net.layer_groups));
  ASSERT_TRUE(model.ok()) << model.status();
  torch::jit::Module bn1 = model->module().attr("bn1").toModule();
  const at::Tensor mean_before = bn1.attr("running_mean").toTensor().clone();
  {
    // Away from theta_d = 0, where d loss / d lambda = (P theta_d) . d loss / d theta is exactly 0.
    at::NoGradGuard no_grad;
    model->theta_d().normal_(0.0, 0.01);
  }
  model->train();
  const at::Tensor x = at::rand({4, 3, 32, 32});
  model->Forward(x).pow(2).mean().backward();
  ASSERT_TRUE(model->theta_d().grad().defined());
  ASSERT_TRUE(model->lambdas().grad().defined());
  EXPECT_GT(model->theta_d().grad().abs().sum().item<double>(), 0.0);
  EXPECT_GT(model->lambdas().grad().abs().min().item<double>(), 0.0);  // both groups receive gradient
  // Eval mode: running statistics are neither used from the batch nor updated.
  EXPECT_FALSE(model->module().is_training());
  EXPECT_TRUE(bn1.attr("running_mean").toTensor().equal(mean_before));
  EXPECT_EQ(bn1.attr("num_batches_tracked").toTensor().item<int64_t>(), 0);
}

TEST(ResNet18Test, BatchNormInTrainingModeUsesAndUpdatesBatchStatistics) {
  auto net = CreateResNet18(ResNet18Options().layer("maxpool").seed(0));
  ASSERT_TRUE(net.ok());
  net->train();
  const at::Tensor x = at::rand({3, 3, 16, 16}) * 4 + 1;
  at::Tensor out = Forward(*net, x);
  torch::jit::Module bn1 = net->attr("bn1").toModule();
  const at::Tensor conv = at::conv2d(x, net->attr("conv1").toModule().attr("weight").toTensor().detach(), {}, 2, 3);
  const at::Tensor batch_mean = conv.mean({0, 2, 3});
  EXPECT_TRUE(at::allclose(bn1.attr("running_mean").toTensor(), 0.1 * batch_mean, 1e-4, 1e-5));
  EXPECT_EQ(bn1.attr("num_batches_tracked").toTensor().item<int64_t>(), 1);
  const at::Tensor expected = at::max_pool2d(at::relu(at::batch_norm(conv, {}, {}, {}, {}, true, 0.1, 1e-5, false)),
                                             3, 2, 1).flatten(1);
  EXPECT_TRUE(at::allclose(out, expected, 1e-4, 1e-5));
}

TEST(ConvNetsTest, LeNetHasThePapersParameterCounts) {
  // Li et al. 2018, Table 1: LeNet D = 44,426 on MNIST and 62,006 on CIFAR-10.
  ReadoutModel mnist = Make("lenet", ModelOptions().in_channels(1).image_size(28, 28).num_classes(10));
  EXPECT_EQ(mnist.layer, "fc3");
  EXPECT_EQ(ParameterCount(mnist.module), 44426);
  EXPECT_EQ(mnist.feature_count, 10);
  ReadoutModel cifar = Make("lenet", ModelOptions().in_channels(3).image_size(32, 32).num_classes(10));
  EXPECT_EQ(ParameterCount(cifar.module), 62006);
  EXPECT_EQ(cifar.layer_groups, (std::vector<std::vector<std::string>>{{"conv1"}, {"conv2"}, {"fc1"}, {"fc2"}, {"fc3"}}));
}

TEST(ConvNetsTest, EveryReadoutLayerHasItsShape) {
  const at::Tensor x = at::rand({2, 1, 28, 28});
  const std::map<std::string, int64_t> lenet{{"conv1", 6 * 24 * 24}, {"pool1", 6 * 12 * 12}, {"conv2", 16 * 8 * 8},
                                             {"pool2", 16 * 4 * 4},  {"fc1", 120},            {"fc2", 84},
                                             {"fc3", 10}};
  for (const auto& [layer, features] : lenet) {
    ReadoutModel m = Make("lenet", ModelOptions().in_channels(1).image_size(28, 28).num_classes(10).layer(layer));
    EXPECT_EQ(m.feature_count, features) << layer;
    EXPECT_EQ(Forward(m.module, x).sizes(), (std::vector<int64_t>{2, features})) << layer;
  }
  const std::map<std::string, int64_t> small{{"conv1", 16 * 28 * 28}, {"pool1", 16 * 14 * 14}, {"conv2", 32 * 14 * 14},
                                             {"pool2", 32 * 7 * 7},    {"conv3", 64 * 7 * 7},   {"avgpool", 64},
                                             {"fc", 5}};
  for (const auto& [layer, features] : small) {
    ReadoutModel m = Make("small_cnn", ModelOptions().in_channels(1).image_size(28, 28).num_classes(5).layer(layer));
    EXPECT_EQ(m.feature_count, features) << layer;
    EXPECT_EQ(Forward(m.module, x).sizes(), (std::vector<int64_t>{2, features})) << layer;
  }
}

TEST(ConvNetsTest, LeNetComputesConvReluPool) {
  ReadoutModel conv1 = Make("lenet", ModelOptions().in_channels(1).image_size(28, 28).layer("conv1").seed(4));
  ReadoutModel pool2 = Make("lenet", ModelOptions().in_channels(1).image_size(28, 28).layer("pool2").seed(4));
  ReadoutModel fc1 = Make("lenet", ModelOptions().in_channels(1).image_size(28, 28).layer("fc1").seed(4));
  const at::Tensor x = at::rand({3, 1, 28, 28});
  auto param = [](torch::jit::Module& m, const char* layer, const char* name) {
    return m.attr(layer).toModule().attr(name).toTensor().detach();
  };
  at::Tensor h = at::conv2d(x, param(fc1.module, "conv1", "weight"), param(fc1.module, "conv1", "bias"));
  EXPECT_TRUE(at::allclose(Forward(conv1.module, x), h.flatten(1), 1e-5, 1e-6));
  h = at::max_pool2d(at::relu(h), 2, 2);
  h = at::max_pool2d(at::relu(at::conv2d(h, param(fc1.module, "conv2", "weight"), param(fc1.module, "conv2", "bias"))), 2, 2);
  EXPECT_TRUE(at::allclose(Forward(pool2.module, x), h.flatten(1), 1e-5, 1e-6));
  h = at::linear(h.flatten(1), param(fc1.module, "fc1", "weight"), param(fc1.module, "fc1", "bias"));
  EXPECT_TRUE(at::allclose(Forward(fc1.module, x), h, 1e-5, 1e-6));
}

TEST(ConvNetsTest, LeNetRejectsImagesTooSmall) {
  auto tiny = CreateModel("lenet", ModelOptions().in_channels(1).image_size(12, 12));
  ASSERT_FALSE(tiny.ok());
  EXPECT_NE(tiny.status().message().find("12x12"), std::string::npos) << tiny.status();
}

TEST(MlpRegistryTest, ReadsOutLinearLayersOfTheSameNetwork) {
  const auto options = ModelOptions().in_channels(1).image_size(4, 4).hidden({8, 6}).num_classes(3).seed(9);
  ReadoutModel full = Make("mlp", options);
  EXPECT_EQ(full.layer, "fc3");
  EXPECT_EQ(full.feature_count, 3);
  ReadoutModel fc2 = Make("mlp", ModelOptions(options).layer("fc2"));
  EXPECT_EQ(fc2.feature_count, 6);
  EXPECT_EQ(fc2.layer_groups, (std::vector<std::vector<std::string>>{{"fc1"}, {"fc2"}}));
  // The last layer is the output layer (the logits a classification job can read), fc2 an inner one.
  EXPECT_TRUE(full.output_layer);
  EXPECT_FALSE(fc2.output_layer);
  // fc2's read-out is the full network's second linear layer output.
  const at::Tensor x = at::rand({5, 1, 4, 4});
  auto w = [&](const char* layer, const char* name) { return full.module.attr(layer).toModule().attr(name).toTensor().detach(); };
  const at::Tensor expected = at::linear(at::relu(at::linear(x.flatten(1), w("fc1", "weight"), w("fc1", "bias"))),
                                         w("fc2", "weight"), w("fc2", "bias"));
  EXPECT_TRUE(at::allclose(Forward(fc2.module, x), expected, 1e-5, 1e-6));
}

TEST(ModelRegistryTest, OnlyTheLastLayerIsTheOutputLayer) {
  const auto small = ModelOptions().image_size(32, 32).num_classes(10);
  for (const std::string arch : {"lenet", "small_cnn"}) {
    auto layers = ReadoutLayers(arch, small);
    ASSERT_TRUE(layers.ok()) << layers.status();
    for (const std::string& layer : *layers) {
      ReadoutModel model = Make(arch, ModelOptions(small).layer(layer));
      EXPECT_EQ(model.output_layer, layer == layers->back()) << arch << " at " << layer;
      if (model.output_layer) EXPECT_EQ(model.feature_count, 10) << arch;
    }
  }
  // resnet18's default read-out, avgpool, is inner; fc gives the logits.
  EXPECT_FALSE(Make("resnet18", small).output_layer);
  ReadoutModel logits = Make("resnet18", ModelOptions(small).layer("fc"));
  EXPECT_TRUE(logits.output_layer);
  EXPECT_EQ(logits.feature_count, 10);
}

TEST(ModelRegistryTest, UnknownArchOrLayerListsTheValidOnes) {
  auto arch = CreateModel("resnet19", ModelOptions());
  ASSERT_FALSE(arch.ok());
  EXPECT_EQ(arch.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(arch.status().message().find("'resnet19'"), std::string::npos) << arch.status();
  EXPECT_NE(arch.status().message().find("mlp, lenet, small_cnn, resnet18, torchscript"), std::string::npos)
      << arch.status();

  auto layer = CreateModel("resnet18", ModelOptions().layer("layer5"));
  ASSERT_FALSE(layer.ok());
  EXPECT_NE(layer.status().message().find("'layer5'"), std::string::npos) << layer.status();
  EXPECT_NE(layer.status().message().find("maxpool, layer1, layer2, layer3, layer4, avgpool, fc"), std::string::npos)
      << layer.status();

  auto lenet = CreateModel("lenet", ModelOptions().layer("pool3"));
  ASSERT_FALSE(lenet.ok());
  EXPECT_NE(lenet.status().message().find("conv1, pool1, conv2, pool2, fc1, fc2, fc3"), std::string::npos)
      << lenet.status();

  auto missing = CreateModel("resnet18", ModelOptions().weights("/nonexistent/resnet18.pt"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/resnet18.pt"), std::string::npos) << missing.status();
}

}  // namespace
}  // namespace dwarp::engine
