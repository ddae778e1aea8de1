// Contract of torchscript_readout.h and of CreateModel("torchscript", ...), on TorchScript modules built
// and saved in C++ (no Python needed; torchvision_crosscheck_test.cpp checks files written by Python).
#include "worker/engine/models/torchscript_readout.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/serialization/import.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "worker/engine/models/model_registry.h"
#include "worker/engine/models/resnet18.h"
#include "worker/engine/subspace_model.h"

namespace dwarp::engine {
namespace {

at::Tensor Forward(torch::jit::Module m, const at::Tensor& x) {  // Module is a handle
  at::NoGradGuard no_grad;
  return m.forward({x}).toTensor();
}

class TorchScriptReadoutTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char dir[] = "/tmp/dwarp_torchscript_readout_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    auto net = CreateResNet18(ResNet18Options().layer("fc").num_classes(10).seed(11));
    ASSERT_TRUE(net.ok()) << net.status();
    net->save(dir_ + "/resnet18.pt");
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static ReadoutModel FromFile(const std::string& layer) {
    auto model = CreateModel("torchscript", ModelOptions().weights(dir_ + "/resnet18.pt").layer(layer).image_size(32, 32));
    EXPECT_TRUE(model.ok()) << model.status();
    return std::move(model).value();
  }
  static ReadoutModel Builtin(const std::string& layer) {
    auto model = CreateModel("resnet18", ModelOptions().layer(layer).num_classes(10).seed(11).image_size(32, 32));
    EXPECT_TRUE(model.ok()) << model.status();
    return std::move(model).value();
  }

  static std::string dir_;
};
std::string TorchScriptReadoutTest::dir_;

TEST_F(TorchScriptReadoutTest, ReadoutAtATopLevelChildEqualsTheNetworkBuiltUpToIt) {
  const at::Tensor x = at::rand({2, 3, 32, 32});
  for (const std::string layer : {"layer1", "layer2", "layer4", "fc"}) {
    ReadoutModel file = FromFile(layer);
    ReadoutModel built = Builtin(layer);
    EXPECT_EQ(file.feature_count, built.feature_count) << layer;
    const at::Tensor a = Forward(file.module, x), b = Forward(built.module, x);
    EXPECT_TRUE(a.equal(b)) << layer << ": max |diff| " << (a - b).abs().max().item<double>();
    EXPECT_EQ(file.warp_prefixes, built.warp_prefixes) << layer;
  }
  // The file keeps every parameter; only what the layer reads is warped.
  ReadoutModel layer2 = FromFile("layer2");
  EXPECT_EQ(layer2.warp_prefixes, (std::vector<std::string>{"conv1", "bn1", "layer1", "layer2"}));
  EXPECT_TRUE(layer2.layer_groups.empty());
}

TEST_F(TorchScriptReadoutTest, SubspaceModelWarpsOnlyWhatTheReadoutReads) {
  ReadoutModel file = FromFile("layer1");
  auto model = SubspaceModel::Create(file.module, SubspaceOptions(30).seed(2).warp_prefixes(file.warp_prefixes));
  ASSERT_TRUE(model.ok()) << model.status();
  // conv1 (64*3*49) + bn1 (2*64) + layer1 (4 convs of 64*64*9 and 4 BatchNorms of 2*64).
  EXPECT_EQ(model->warped_parameter_count(), 64 * 3 * 49 + 128 + 4 * 64 * 64 * 9 + 4 * 128);
  const at::Tensor x = at::rand({2, 3, 32, 32});
  const at::Tensor expected = Forward(file.module, x);
  model->eval();
  {
    at::NoGradGuard no_grad;
    EXPECT_TRUE(model->Forward(x).equal(expected));
  }
  model->train();
  model->Forward(x).pow(2).mean().backward();
  ASSERT_TRUE(model->theta_d().grad().defined());
  EXPECT_GT(model->theta_d().grad().abs().sum().item<double>(), 0.0);
}

TEST_F(TorchScriptReadoutTest, NestedLayersAreReadOut) {
  const at::Tensor x = at::rand({2, 3, 32, 32});
  // layer1.1 is the last block of layer1: the same output as layer1.
  ReadoutModel nested = FromFile("layer1.1");
  EXPECT_TRUE(Forward(nested.module, x).equal(Forward(Builtin("layer1").module, x)));
  EXPECT_EQ(nested.warp_prefixes, (std::vector<std::string>{"conv1", "bn1", "layer1"}));

  // The shortcut of layer3's first block reads layer2's output; the block's main path is not computed.
  ReadoutModel shortcut = FromFile("layer3.0.downsample");
  EXPECT_EQ(shortcut.feature_count, 256 * 2 * 2);
  EXPECT_EQ(shortcut.warp_prefixes,
            (std::vector<std::string>{"conv1", "bn1", "layer1", "layer2", "layer3.0.downsample"}));
  torch::jit::Module full = torch::jit::load(dir_ + "/resnet18.pt");
  torch::jit::Module downsample = full.attr("layer3").toModule().attr("0").toModule().attr("downsample").toModule();
  const at::Tensor expected = Forward(downsample, Forward(Builtin("layer2").module, x).view({2, 128, 4, 4}));
  EXPECT_TRUE(at::allclose(Forward(shortcut.module, x), expected.flatten(1), 1e-5, 1e-6));

  // A leaf inside a block: layer2.0.bn1 (before the block's ReLU).
  EXPECT_EQ(FromFile("layer2.0.bn1").feature_count, 128 * 4 * 4);
}

TEST_F(TorchScriptReadoutTest, EmptyLayerIsTheModelOutput) {
  ReadoutModel out = FromFile("");
  EXPECT_EQ(out.feature_count, 10);
  EXPECT_TRUE(out.output_layer);
  // A named submodule is an inner read-out, even the last one: the file does not say what its output means.
  EXPECT_FALSE(FromFile("fc").output_layer);
  EXPECT_EQ(out.warp_prefixes, (std::vector<std::string>{"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}));
}

TEST_F(TorchScriptReadoutTest, UnknownLayerListsTheSubmodules) {
  auto model = CreateModel("torchscript", ModelOptions().weights(dir_ + "/resnet18.pt").layer("maxpool"));
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
  const std::string& message = model.status().message();
  EXPECT_NE(message.find("'maxpool'"), std::string::npos) << message;
  EXPECT_NE(message.find("conv1, bn1, layer1, layer1.0, layer1.0.conv1"), std::string::npos) << message;
  EXPECT_NE(message.find("layer3.0.downsample.0"), std::string::npos) << message;
}

TEST_F(TorchScriptReadoutTest, BadFilesFailWithTheirPath) {
  auto missing = CreateModel("torchscript", ModelOptions().weights(dir_ + "/nothing.pt").layer("layer1"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nothing.pt"), std::string::npos);

  const std::string garbage = dir_ + "/garbage.pt";
  ASSERT_EQ(std::system(("echo not a model > " + garbage).c_str()), 0);
  auto bad = CreateModel("torchscript", ModelOptions().weights(garbage).layer("layer1"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("garbage.pt"), std::string::npos) << bad.status();

  // Weights that do not fit a built-in arch name the entry.
  auto wrong = CreateModel("resnet18", ModelOptions().weights(dir_ + "/resnet18.pt").layer("fc").num_classes(1000));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("'fc.weight' has shape [10, 512]"), std::string::npos) << wrong.status();
  auto lenet = CreateModel("lenet", ModelOptions().weights(dir_ + "/resnet18.pt"));
  ASSERT_FALSE(lenet.ok());
  EXPECT_NE(lenet.status().message().find("'conv1.weight' has shape [64, 3, 7, 7]"), std::string::npos) << lenet.status();
}

// A module whose forward calls `child` twice, or only inside an if; `residual`: a bool attribute.
torch::jit::Module Unusual(const std::string& forward, bool residual = false) {
  auto unit = std::make_shared<torch::jit::CompilationUnit>();
  torch::jit::Module child("__torch__.test.Scale", unit, true);
  child.register_parameter("weight", at::ones({1}), false);
  child.define("def forward(self, x):\n    return x * self.weight\n");
  torch::jit::Module parent("__torch__.test.Parent", unit, true);
  parent.register_module("child", child);
  parent.register_module("other", child.deepcopy());
  parent.register_attribute("residual", c10::BoolType::get(), residual);
  parent.define(forward);
  return parent;
}

TEST(CutForwardAtLayerTest, LayerMustBeCalledOnceAtTheTopLevel) {
  torch::jit::Module twice = Unusual(
      "def forward(self, x):\n    return self.child.forward(self.child.forward(x))\n");
  Status status = CutForwardAtLayer(twice, "child");
  EXPECT_NE(status.message().find("called 2 times"), std::string::npos) << status;

  torch::jit::Module branch = Unusual(
      "def forward(self, x):\n"
      "    if bool(x.sum() > 0):\n"
      "        x = self.child.forward(x)\n"
      "    return self.other.forward(x)\n");
  status = CutForwardAtLayer(branch, "child");
  EXPECT_NE(status.message().find("inside an if or a loop"), std::string::npos) << status;
  // "other" is at the top level: fine, and the branch before it is kept.
  ASSERT_TRUE(CutForwardAtLayer(branch, "other").ok());
  EXPECT_TRUE(Forward(branch, at::full({1, 2}, 3.0)).equal(at::full({1, 2}, 3.0)));
  EXPECT_EQ(ParametersReadByForward(branch), (std::vector<std::string>{"child", "other"}));

  // An if on a module's bool attribute (as torchvision's MobileNetV2 blocks) is decided by its value.
  for (const bool residual : {true, false}) {
    torch::jit::Module block = Unusual(
        "def forward(self, x):\n"
        "    if self.residual:\n"
        "        return x + self.child.forward(x)\n"
        "    else:\n"
        "        return self.child.forward(x)\n",
        residual);
    {
      at::NoGradGuard no_grad;
      block.attr("child").toModule().attr("weight").toTensor().fill_(2.0);
    }
    status = CutForwardAtLayer(block, "child");
    ASSERT_TRUE(status.ok()) << status;
    // The read-out is the child's output in either case (the residual sum comes after it).
    EXPECT_TRUE(Forward(block, at::ones({1, 3})).equal(at::full({1, 3}, 2.0))) << residual;
  }

  torch::jit::Module unused = Unusual("def forward(self, x):\n    return self.other.forward(x)\n");
  status = CutForwardAtLayer(unused, "child");
  EXPECT_NE(status.message().find("called 0 times"), std::string::npos) << status;
}

}  // namespace
}  // namespace dwarp::engine
