#include "worker/engine/models/mlp.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "worker/engine/subspace_model.h"

namespace dwarp::engine {
namespace {

torch::jit::Module Make(const MlpOptions& options) {
  auto mlp = CreateMlp(options);
  EXPECT_TRUE(mlp.ok()) << mlp.status();
  return std::move(mlp).value();
}

at::Tensor Forward(torch::jit::Module& m, const at::Tensor& x) {
  at::NoGradGuard no_grad;
  return m.forward({x}).toTensor();
}

std::vector<at::Tensor> Parameters(const torch::jit::Module& m) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : m.parameters()) out.push_back(p);
  return out;
}

TEST(MlpTest, NamesAndShapesFollowTorchNnLinear) {
  auto mlp = Make(MlpOptions(784, 10).hidden({200, 50}));
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  for (const auto& p : mlp.named_parameters()) {
    names.push_back(p.name);
    shapes.push_back(p.value.sizes().vec());
    EXPECT_EQ(p.value.scalar_type(), at::kFloat);
    EXPECT_TRUE(p.value.requires_grad()) << p.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight",
                                             "fc3.bias"}));
  EXPECT_EQ(shapes, (std::vector<std::vector<int64_t>>{{200, 784}, {200}, {50, 200}, {50}, {10, 50}, {10}}));
  EXPECT_EQ(MlpParameterCount(MlpOptions(784, 10).hidden({200, 50})), 785 * 200 + 201 * 50 + 51 * 10);
}

TEST(MlpTest, FlattensInputAndComputesReluMlp) {
  auto mlp = Make(MlpOptions(12, 3).hidden({5}).seed(7));
  const at::Tensor x = at::rand({4, 1, 3, 4});
  const at::Tensor y = Forward(mlp, x);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{4, 3}));

  auto fc1 = mlp.attr("fc1").toModule();
  auto fc2 = mlp.attr("fc2").toModule();
  at::NoGradGuard no_grad;
  const at::Tensor hidden = at::relu(at::linear(x.flatten(1), fc1.attr("weight").toTensor(), fc1.attr("bias").toTensor()));
  const at::Tensor expected = at::linear(hidden, fc2.attr("weight").toTensor(), fc2.attr("bias").toTensor());
  EXPECT_TRUE(at::allclose(y, expected, 1e-6, 1e-6));
  // Already-flat input gives the same result.
  EXPECT_TRUE(at::allclose(Forward(mlp, x.flatten(1)), y, 1e-6, 1e-6));
}

TEST(MlpTest, SameSeedSameModelOtherSeedOtherModel) {
  const auto options = MlpOptions(20, 4).hidden({16, 8}).seed(123);
  auto a = Make(options);
  auto b = Make(options);
  auto c = Make(MlpOptions(options).seed(124));
  const std::vector<at::Tensor> va = Parameters(a), vb = Parameters(b), vc = Parameters(c);
  ASSERT_EQ(va.size(), vb.size());
  for (size_t i = 0; i < va.size(); ++i) {
    EXPECT_TRUE(va[i].equal(vb[i])) << i;
    EXPECT_FALSE(va[i].equal(vc[i])) << i;
  }
  const at::Tensor x = at::rand({3, 20});
  EXPECT_TRUE(Forward(a, x).equal(Forward(b, x)));
}

TEST(MlpTest, InitialisationIsIndependentOfTheGlobalGenerator) {
  const auto options = MlpOptions(10, 3).hidden({6}).seed(5);
  at::manual_seed(1);
  auto a = Make(options);
  at::manual_seed(2);
  auto b = Make(options);
  EXPECT_TRUE(a.attr("fc1").toModule().attr("weight").toTensor().equal(b.attr("fc1").toModule().attr("weight").toTensor()));
}

TEST(MlpTest, InitialisationIsTorchLinearDefault) {
  auto mlp = Make(MlpOptions(400, 300).seed(3));
  auto fc1 = mlp.attr("fc1").toModule();
  const at::Tensor w = fc1.attr("weight").toTensor().detach();
  const at::Tensor b = fc1.attr("bias").toTensor().detach();
  const double bound = 1.0 / std::sqrt(400.0);
  EXPECT_LE(w.abs().max().item<double>(), bound);
  EXPECT_LE(b.abs().max().item<double>(), bound);
  // U(-bound, bound): mean 0, standard deviation bound / sqrt(3), and the range nearly filled.
  EXPECT_NEAR(w.mean().item<double>(), 0.0, 0.01 * bound);
  EXPECT_NEAR(w.std().item<double>(), bound / std::sqrt(3.0), 0.01 * bound);
  EXPECT_GT(w.abs().max().item<double>(), 0.99 * bound);
}

TEST(MlpTest, NoHiddenLayerIsLinear) {
  auto mlp = Make(MlpOptions(6, 2));
  size_t count = 0;
  for (const auto& p : mlp.named_parameters()) {
    (void)p;
    ++count;
  }
  EXPECT_EQ(count, 2u);
  EXPECT_EQ(Forward(mlp, at::rand({5, 6})).sizes(), (std::vector<int64_t>{5, 2}));
}

TEST(MlpTest, RejectsBadWidths) {
  auto bad_hidden = CreateMlp(MlpOptions(10, 2).hidden({8, 0}));
  ASSERT_FALSE(bad_hidden.ok());
  EXPECT_EQ(bad_hidden.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_hidden.status().message().find("hidden layer 2 has width 0"), std::string::npos) << bad_hidden.status();
  auto bad_in = CreateMlp(MlpOptions(-1, 2));
  ASSERT_FALSE(bad_in.ok());
  EXPECT_NE(bad_in.status().message().find("in_features = -1"), std::string::npos) << bad_in.status();
}

TEST(MlpTest, SubspaceModelWrapsIt) {
  auto mlp = Make(MlpOptions(16, 4).hidden({8}).seed(1));
  auto model = SubspaceModel::Create(mlp, SubspaceOptions(20).seed(9));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->warped_parameter_count(), MlpParameterCount(MlpOptions(16, 4).hidden({8})));
  EXPECT_EQ(model->warped_parameter_names(),
            (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  const at::Tensor x = at::rand({3, 16});
  at::NoGradGuard no_grad;
  model->eval();
  EXPECT_TRUE(at::allclose(model->Forward(x), Forward(mlp, x), 1e-6, 1e-6));
}

}  // namespace
}  // namespace dwarp::engine
