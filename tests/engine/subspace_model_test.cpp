// Contract of subspace_model.h: any TorchScript module trained through theta_0 + lambda_g * P theta_d.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/optim/adam.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <unistd.h>

#include "worker/engine/subspace_model.h"

namespace dwarp::engine {
namespace {

torch::jit::Module Linear(int64_t in, int64_t out, at::Generator& gen) {
  torch::jit::Module m("Linear");
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  // Trainable, as in a module loaded from a TorchScript file.
  m.register_parameter("weight", at::empty({out, in}).uniform_(-bound, bound, gen).set_requires_grad(true), false);
  m.register_parameter("bias", at::empty({out}).uniform_(-bound, bound, gen).set_requires_grad(true), false);
  m.define(R"(
def forward(self, x):
    return torch.linear(x, self.weight, self.bias)
)");
  return m;
}

// BatchNorm1d written in TorchScript: uses batch statistics (and updates the running ones) in training.
torch::jit::Module BatchNorm(int64_t features) {
  torch::jit::Module m("BatchNorm");
  // Modules built in C++ have no `training` flag unless registered; eval()/train() set it where present.
  m.register_attribute("training", c10::BoolType::get(), true);
  m.register_parameter("weight", at::ones({features}) * 1.5, false);
  m.register_parameter("bias", at::full({features}, 0.25), false);
  m.register_buffer("running_mean", at::full({features}, 0.1));
  m.register_buffer("running_var", at::full({features}, 2.0));
  m.define(R"(
def forward(self, x):
    return torch.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                            self.training, 0.1, 1e-5, False)
)");
  return m;
}

// features.0 (Linear) -> features.1 (BatchNorm) -> relu -> dropout -> head (Linear): nested names,
// frozen statistics and dropout all in one small network.
torch::jit::Module TestNet(int64_t in = 4, int64_t hidden = 16, int64_t out = 3, uint64_t seed = 0) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  torch::jit::Module features("Features");
  features.register_module("0", Linear(in, hidden, gen));
  features.register_module("1", BatchNorm(hidden));
  features.define(R"(
def forward(self, x):
    return getattr(self, "1").forward(getattr(self, "0").forward(x))
)");
  torch::jit::Module net("Net");
  net.register_attribute("training", c10::BoolType::get(), true);
  net.register_module("features", features);
  net.register_module("head", Linear(hidden, out, gen));
  net.define(R"(
def forward(self, x):
    h = torch.dropout(torch.relu(self.features.forward(x)), 0.5, self.training)
    return self.head.forward(h)
)");
  return net;
}

SubspaceModel Wrap(const torch::jit::Module& net, const SubspaceOptions& options) {
  auto model = SubspaceModel::Create(net, options);
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(model).value();
}

std::string CreateError(const torch::jit::Module& net, const SubspaceOptions& options) {
  auto model = SubspaceModel::Create(net, options);
  EXPECT_FALSE(model.ok()) << "expected Create to fail";
  return model.ok() ? "" : model.status().message();
}

TEST(SubspaceModelTest, ThetaZeroGivesBitIdenticalOutputs) {
  torch::jit::Module net = TestNet();
  net.eval();
  const at::Tensor x = at::randn({8, 4});
  const at::Tensor expected = net.forward({x}).toTensor();
  for (const auto scope : {ProjectionMode::kPerTensor, ProjectionMode::kGlobal}) {
    SubspaceModel plain = Wrap(net, SubspaceOptions(50).projection(scope));
    EXPECT_TRUE(at::equal(plain.Forward(x), expected));
    SubspaceModel grouped = Wrap(net, SubspaceOptions(50).projection(scope).layer_groups({{"features"}, {"head"}}));
    EXPECT_TRUE(at::equal(grouped.Forward(x), expected));
    grouped.eval();
    EXPECT_TRUE(at::equal(grouped.Forward(x), expected));
  }
}

TEST(SubspaceModelTest, ModuleStaysInEvalModeWhileTraining) {
  torch::jit::Module net = TestNet();
  SubspaceModel model = Wrap(net, SubspaceOptions(20));
  model.train();
  const at::Tensor x = at::randn({32, 4});
  const at::Tensor first = model.Forward(x);
  const at::Tensor second = model.Forward(x);
  // Dropout off: a training-mode forward is deterministic.
  EXPECT_TRUE(at::equal(first, second));
  // BatchNorm statistics frozen: the running buffers keep their initial values.
  const at::Tensor running_mean = model.module().attr("features").toModule().attr("1").toModule()
                                      .attr("running_mean").toTensor();
  EXPECT_TRUE(at::equal(running_mean, at::full({16}, 0.1)));
  EXPECT_FALSE(model.module().is_training());
}

TEST(SubspaceModelTest, OnlyThetaAndLambdasAreTrainable) {
  SubspaceModel model = Wrap(TestNet(), SubspaceOptions(30).layer_groups({{"features"}, {"head"}}));
  ASSERT_EQ(model.parameters().size(), 2u);
  EXPECT_EQ(model.theta_d().numel(), 28);  // d counts the two lambdas
  EXPECT_EQ(model.lambdas().numel(), 2);
  EXPECT_TRUE(model.theta_d().requires_grad());
  EXPECT_TRUE(model.lambdas().requires_grad());
  // 4*16+16 + 16+16 + 16*3+3
  EXPECT_EQ(model.warped_parameter_count(), 80 + 32 + 51);
  for (const auto& p : model.module().named_parameters()) {
    EXPECT_FALSE(p.value.is_leaf() && p.value.requires_grad()) << p.name << " is trainable";
  }
}

TEST(SubspaceModelTest, GradientsReachThetaAndEveryLambda) {
  for (const auto scope : {ProjectionMode::kPerTensor, ProjectionMode::kGlobal}) {
    SubspaceModel model = Wrap(TestNet(), SubspaceOptions(40).projection(scope).layer_groups({{"features.0"}, {"features.1"}, {"head"}}));
    {
      at::NoGradGuard no_grad;
      model.theta_d().normal_(0.0, 0.1);  // at theta_d = 0 the lambdas' gradients vanish
    }
    model.Forward(at::randn({16, 4})).pow(2).mean().backward();
    ASSERT_TRUE(model.theta_d().grad().defined());
    EXPECT_GT(model.theta_d().grad().abs().sum().item<float>(), 0.0f);
    ASSERT_TRUE(model.lambdas().grad().defined());
    EXPECT_TRUE((model.lambdas().grad().abs() > 0).all().item<bool>()) << model.lambdas().grad();
  }
}

TEST(SubspaceModelTest, AdamInASmallSubspaceLowersARegressionLoss) {
  // Targets come from a differently initialised teacher of the same shape: reachable only by warping.
  torch::jit::Module teacher = TestNet(4, 32, 2, /*seed=*/99);
  teacher.eval();
  const at::Tensor x = at::randn({256, 4});
  const at::Tensor y = teacher.forward({x}).toTensor().detach();
  SubspaceModel model = Wrap(TestNet(4, 32, 2, /*seed=*/1), SubspaceOptions(24).seed(5).layer_groups({{"features"}, {"head"}}));
  ASSERT_LT(model.subspace_dim() * 10, model.warped_parameter_count());
  torch::optim::Adam adam(model.parameters(), torch::optim::AdamOptions(0.05));
  const double initial = (model.Forward(x) - y).pow(2).mean().item<double>();
  for (int step = 0; step < 150; ++step) {
    adam.zero_grad();
    at::Tensor loss = (model.Forward(x) - y).pow(2).mean();
    loss.backward();
    adam.step();
  }
  model.eval();
  const double final_loss = (model.Forward(x) - y).pow(2).mean().item<double>();
  EXPECT_LT(final_loss, 0.5 * initial) << "initial " << initial << ", final " << final_loss;
}

TEST(SubspaceModelTest, EvalModeReusesMaterialisedParametersUntilThetaChanges) {
  SubspaceModel model = Wrap(TestNet(), SubspaceOptions(10));
  model.eval();
  auto head_weight = [&] { return model.module().attr("head").toModule().attr("weight").toTensor(); };
  model.Materialize();
  const at::Tensor first = head_weight();
  model.Materialize();
  EXPECT_TRUE(head_weight().is_same(first)) << "eval mode rebuilt unchanged parameters";
  {
    at::NoGradGuard no_grad;
    model.theta_d().fill_(0.5);
  }
  model.Materialize();
  EXPECT_FALSE(head_weight().is_same(first));
  EXPECT_FALSE(at::equal(head_weight(), first));
  model.train();
  model.Materialize();
  EXPECT_TRUE(head_weight().requires_grad());
}

TEST(SubspaceModelTest, WarpPrefixesLimitWhatMoves) {
  torch::jit::Module net = TestNet();
  SubspaceModel model = Wrap(net, SubspaceOptions(10).warp_prefixes({"features.0"}));
  EXPECT_EQ(model.warped_parameter_names(), (std::vector<std::string>{"features.0.weight", "features.0.bias"}));
  {
    at::NoGradGuard no_grad;
    model.theta_d().fill_(1.0);
  }
  model.Materialize();
  const auto head = model.module().attr("head").toModule();
  EXPECT_TRUE(at::equal(head.attr("weight").toTensor(), net.attr("head").toModule().attr("weight").toTensor()));
  EXPECT_FALSE(at::equal(model.module().attr("features").toModule().attr("0").toModule().attr("weight").toTensor(),
                         net.attr("features").toModule().attr("0").toModule().attr("weight").toTensor()));
}

TEST(SubspaceModelTest, CallersModuleIsLeftUntouched) {
  torch::jit::Module net = TestNet();
  const at::Tensor before = net.attr("head").toModule().attr("weight").toTensor().clone();
  SubspaceModel model = Wrap(net, SubspaceOptions(10));
  {
    at::NoGradGuard no_grad;
    model.theta_d().fill_(2.0);
  }
  model.Materialize();
  EXPECT_TRUE(at::equal(net.attr("head").toModule().attr("weight").toTensor(), before));
  EXPECT_TRUE(net.attr("head").toModule().attr("weight").toTensor().requires_grad());
}

TEST(SubspaceModelTest, PrefixMatchesWholeNameComponents) {
  EXPECT_TRUE(NameHasPrefix("layer1.0.conv1.weight", "layer1"));
  EXPECT_TRUE(NameHasPrefix("layer1", "layer1"));
  EXPECT_FALSE(NameHasPrefix("layer10.weight", "layer1"));
  EXPECT_FALSE(NameHasPrefix("layer", "layer1"));
}

TEST(SubspaceModelTest, RejectsBadOptionsNamingTheValue) {
  const torch::jit::Module net = TestNet();
  EXPECT_NE(CreateError(net, SubspaceOptions(0)).find("d must be >= 1, got 0"), std::string::npos);
  EXPECT_NE(CreateError(net, SubspaceOptions(-3)).find("got -3"), std::string::npos);
  EXPECT_NE(CreateError(net, SubspaceOptions(2).layer_groups({{"features"}, {"head"}})).find("d = 2 must exceed"),
            std::string::npos);
  EXPECT_NE(CreateError(net, SubspaceOptions(10).warp_prefixes({"layer4"})).find("'layer4' matches no parameter"),
            std::string::npos);
  const std::string two_groups = CreateError(net, SubspaceOptions(10).layer_groups({{"features"}, {"features.0"}, {"head"}}));
  EXPECT_NE(two_groups.find("'features.0.weight' is in layer groups 0"), std::string::npos) << two_groups;
  const std::string no_group = CreateError(net, SubspaceOptions(10).layer_groups({{"features"}}));
  EXPECT_NE(no_group.find("'head.weight' belongs to no layer group"), std::string::npos) << no_group;
  const std::string unknown_group = CreateError(net, SubspaceOptions(10).layer_groups({{"features", "tail"}, {"head"}}));
  EXPECT_NE(unknown_group.find("'tail' matches no warped parameter"), std::string::npos) << unknown_group;
}

TEST(SubspaceModelTest, RejectsNonFloatingParameters) {
  torch::jit::Module net = TestNet();
  net.register_parameter("step_count", at::zeros({1}, at::kLong), false);
  const std::string error = CreateError(net, SubspaceOptions(10));
  EXPECT_NE(error.find("'step_count' has dtype Long"), std::string::npos) << error;
  // Excluding it by prefix works.
  EXPECT_TRUE(SubspaceModel::Create(net, SubspaceOptions(10).warp_prefixes({"features", "head"})).ok());
}

// Writes the materialised parameters of a fixed wrapper to the file named by DWARP_PROJECTION_DUMP; used
// by SameSeedReproducesTheProjectionInAnotherProcess through a second process. Skipped otherwise.
void DumpProjection(const std::string& path) {
  SubspaceModel model = Wrap(TestNet(), SubspaceOptions(12).seed(123).layer_groups({{"features"}, {"head"}}));
  {
    at::NoGradGuard no_grad;
    model.theta_d().copy_(at::linspace(-1.0, 1.0, model.theta_d().numel()));
  }
  model.eval();
  model.Materialize();
  std::ofstream out(path);
  out.precision(9);
  for (const auto& p : model.module().named_parameters()) {
    const at::Tensor flat = p.value.reshape({-1});
    for (int64_t i = 0; i < flat.numel(); ++i) out << flat[i].item<float>() << "\n";
  }
}

TEST(SubspaceModelTest, ChildProcessDump) {
  const char* path = std::getenv("DWARP_PROJECTION_DUMP");
  if (path == nullptr) GTEST_SKIP() << "only run as the child of SameSeedReproducesTheProjectionInAnotherProcess";
  DumpProjection(path);
}

TEST(SubspaceModelTest, SameSeedReproducesTheProjectionInAnotherProcess) {
  const std::string here = ::testing::TempDir() + "dwarp_projection_parent.txt";
  const std::string child = ::testing::TempDir() + "dwarp_projection_child.txt";
  DumpProjection(here);
  std::remove(child.c_str());
  char self[4096] = {0};
  ASSERT_GT(readlink("/proc/self/exe", self, sizeof(self) - 1), 0);
  const std::string command = "DWARP_PROJECTION_DUMP='" + child + "' '" + self +
                              "' --gtest_filter=SubspaceModelTest.ChildProcessDump > /dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  auto read = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  };
  const std::string mine = read(here);
  EXPECT_GT(mine.size(), 100u);
  EXPECT_EQ(mine, read(child));
}

}  // namespace
}  // namespace dwarp::engine
