// Contract of subspace_model.h's ProjectionMode: each mode's map, materialised densely on small tensors,
// is the formula its comment gives; `reference` matches an independent Python implementation of the
// research code's definition; the prefit, warped head (linear_head.h) moves with theta_d and counts in D.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/function.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "worker/engine/datasets/synthetic_brain.h"
#include "worker/engine/models/linear_head.h"
#include "worker/engine/models/mlp.h"
#include "worker/engine/subspace_model.h"
#include "worker/engine/train/encoding_training.h"

namespace dwarp::engine {
namespace {

// fc1.weight 600, fc1.bias 30, fc2.weight 150, fc2.bias 5: with theta of 100 entries the biases are
// smaller than 2^ceil(log2 100) = 128 and the weights larger, so every branch of every mode is hit.
torch::jit::Module SmallMlp(uint64_t seed = 4) {
  auto mlp = CreateMlp(MlpOptions(20, 5).hidden({30}).seed(seed));
  EXPECT_TRUE(mlp.ok()) << mlp.status();
  return std::move(mlp).value();
}

SubspaceModel Wrap(const torch::jit::Module& net, int64_t d, ProjectionMode mode, uint64_t seed = 7) {
  auto model = SubspaceModel::Create(net, SubspaceOptions(d).seed(seed).projection(mode));
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(model).value();
}

// The dense map [D, d] of `net` wrapped in a d-dimensional subspace in `mode`: column j is WarpDelta() at
// theta_d = e_j.
at::Tensor DenseMap(const torch::jit::Module& net, int64_t d, ProjectionMode mode) {
  SubspaceModel model = Wrap(net, d, mode);
  std::vector<at::Tensor> columns;
  for (int64_t j = 0; j < d; ++j) {
    {
      at::NoGradGuard no_grad;
      model.theta_d().zero_();
      model.theta_d()[j] = 1.0;
    }
    columns.push_back(model.WarpDelta().to(at::kDouble));
  }
  return at::stack(columns, 1);
}

struct Block {
  std::string name;
  int64_t offset, size;
};

std::vector<Block> Blocks(const torch::jit::Module& net) {
  std::vector<Block> out;
  int64_t offset = 0;
  for (const auto& p : net.named_parameters()) {
    out.push_back({p.name, offset, p.value.numel()});
    offset += p.value.numel();
  }
  return out;
}

int64_t NextPowerOfTwo(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

TEST(ProjectionModesTest, ReferenceTruncatesThetaForTensorsSmallerThanD) {
  const torch::jit::Module net = SmallMlp();
  const int64_t d = 100;
  const at::Tensor ref = DenseMap(net, d, ProjectionMode::kReference);
  const at::Tensor per = DenseMap(net, d, ProjectionMode::kPerTensor);
  for (const Block& b : Blocks(net)) {
    const int64_t length = NextPowerOfTwo(b.size);
    const at::Tensor rows = ref.narrow(0, b.offset, b.size);
    if (length >= d) {
      // Same L, same draws: the per-tensor map exactly.
      EXPECT_TRUE(at::equal(rows, per.narrow(0, b.offset, b.size))) << b.name;
    } else {
      // Only theta_d's first L_t entries reach the tensor, through F(D_t, L_t).
      EXPECT_EQ(rows.narrow(1, length, d - length).abs().max().item<double>(), 0.0) << b.name;
      auto own = FastfoodProjection::Create(b.size, length, 7, b.name);
      ASSERT_TRUE(own.ok());
      for (int64_t j = 0; j < length; ++j) {
        const at::Tensor e = at::zeros({length}, at::kDouble).index_put_({j}, 1.0);
        EXPECT_TRUE(at::allclose(rows.select(1, j), own->Forward(e), 1e-6, 1e-7)) << b.name << " column " << j;
      }
      // Expected squared column norm 1 over the L_t live columns: the tensor moves by about
      // |theta_d| sqrt(L_t / n) for a theta_d spread over all n.
      const double mean_sq = rows.pow(2).sum().item<double>() / static_cast<double>(d);
      EXPECT_NEAR(mean_sq, static_cast<double>(length) / d, 0.5 * static_cast<double>(length) / d) << b.name;
    }
  }
}

TEST(ProjectionModesTest, SizeWeightedIsPerTensorScaledBySqrtOfEachTensorsShare) {
  const torch::jit::Module net = SmallMlp();
  const at::Tensor a = DenseMap(net, 60, ProjectionMode::kSizeWeighted);
  const at::Tensor b = DenseMap(net, 60, ProjectionMode::kPerTensor);
  const double total = static_cast<double>(a.size(0));
  double squared_norm = 0.0;
  for (const Block& block : Blocks(net)) {
    const double factor = std::sqrt(static_cast<double>(block.size) / total);
    EXPECT_TRUE(at::allclose(a.narrow(0, block.offset, block.size), b.narrow(0, block.offset, block.size) * factor,
                             1e-5, 1e-6))  // float32 maps: the factor applied inside or after the kernel
        << block.name;
    squared_norm += a.narrow(0, block.offset, block.size).pow(2).sum().item<double>();
  }
  // Columns of expected unit norm over the whole network, as the global map's.
  EXPECT_NEAR(squared_norm / 60.0, 1.0, 0.15);
}

TEST(ProjectionModesTest, GlobalSharesTheMovementByTensorSize) {
  const torch::jit::Module net = SmallMlp();
  const at::Tensor g = DenseMap(net, 60, ProjectionMode::kGlobal);
  const at::Tensor p = DenseMap(net, 60, ProjectionMode::kPerTensor);
  const double total = static_cast<double>(g.size(0));
  EXPECT_NEAR(g.pow(2).sum().item<double>() / 60.0, 1.0, 0.15);
  for (const Block& block : Blocks(net)) {
    const double share = g.narrow(0, block.offset, block.size).pow(2).sum().item<double>() / 60.0;
    EXPECT_NEAR(share, block.size / total, 0.5 * block.size / total + 0.01) << block.name;
    // per_tensor: every tensor, however small, gets about a whole unit.
    EXPECT_NEAR(p.narrow(0, block.offset, block.size).pow(2).sum().item<double>() / 60.0, 1.0, 0.5) << block.name;
  }
}

TEST(ProjectionModesTest, ModesAreNamedAsInJobFiles) {
  for (auto mode : {ProjectionMode::kPerTensor, ProjectionMode::kGlobal, ProjectionMode::kReference,
                    ProjectionMode::kSizeWeighted}) {
    auto named = ProjectionModeNamed(ProjectionModeName(mode));
    ASSERT_TRUE(named.ok());
    EXPECT_EQ(*named, mode);
  }
  auto unknown = ProjectionModeNamed("truncated");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("'truncated'"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("size_weighted"), std::string::npos);
}

TEST(ProjectionModesTest, EveryModeReproducesTheModuleAtThetaZeroAndTrains) {
  const torch::jit::Module net = SmallMlp();
  const at::Tensor x = at::randn({8, 20}, at::make_generator<at::CPUGeneratorImpl>(1));
  torch::jit::Module plain = net.deepcopy();
  const at::Tensor expected = plain.forward({x}).toTensor();
  for (auto mode : {ProjectionMode::kPerTensor, ProjectionMode::kGlobal, ProjectionMode::kReference,
                    ProjectionMode::kSizeWeighted}) {
    SubspaceModel model = Wrap(net, 100, mode);
    EXPECT_TRUE(at::equal(model.Forward(x), expected)) << ProjectionModeName(mode);
    model.train();
    model.Forward(x).pow(2).sum().backward();
    ASSERT_TRUE(model.theta_d().grad().defined()) << ProjectionModeName(mode);
    EXPECT_GT(model.theta_d().grad().abs().sum().item<double>(), 0.0) << ProjectionModeName(mode);
    if (mode == ProjectionMode::kReference) {
      // Every tensor reads theta_d's first 32 entries at least; entries past the largest L_t (1024) none.
      EXPECT_GT(model.theta_d().grad().narrow(0, 0, 8).abs().min().item<double>(), 0.0);
    }
  }
}

// The batched projection (one BatchedFastfood for every target) against one FastfoodProjection::Apply per
// target, with and without layer groups: the same draws give the same warped parameters (bit for bit),
// outputs and gradients (up to float reassociation of theta_d's sum over targets).
TEST(ProjectionModesTest, BatchedProjectionEqualsPerTensorInEveryPerTensorMode) {
  const torch::jit::Module net = SmallMlp();
  const at::Tensor x = at::randn({8, 20}, at::make_generator<at::CPUGeneratorImpl>(3));
  torch::jit::Module plain = net.deepcopy();
  const at::Tensor expected = plain.forward({x}).toTensor();
  const std::vector<std::vector<std::vector<std::string>>> groupings{{}, {{"fc1"}, {"fc2"}}};
  for (auto mode : {ProjectionMode::kPerTensor, ProjectionMode::kReference, ProjectionMode::kSizeWeighted}) {
    for (const auto& groups : groupings) {
      const std::string label = std::string(ProjectionModeName(mode)) + (groups.empty() ? "" : ", grouped");
      auto make = [&](std::optional<bool> batched) {
        SubspaceOptions options = SubspaceOptions(100).seed(7).projection(mode).layer_groups(groups);
        if (batched.has_value()) options.batched(*batched);
        auto model = SubspaceModel::Create(net, options);
        EXPECT_TRUE(model.ok()) << model.status();
        return std::move(model).value();
      };
      SubspaceModel batched = make(true);
      SubspaceModel per_tensor = make(false);
      EXPECT_TRUE(make(std::nullopt).uses_batched_projection()) << label << ": the CPU default";
      ASSERT_TRUE(batched.uses_batched_projection()) << label;
      ASSERT_FALSE(per_tensor.uses_batched_projection()) << label;
      EXPECT_TRUE(at::equal(batched.Forward(x), expected)) << label << ": theta_d = 0 is the module itself";

      const at::Tensor theta = at::randn({batched.theta_d().size(0)}, at::make_generator<at::CPUGeneratorImpl>(8));
      for (SubspaceModel* m : {&batched, &per_tensor}) {
        at::NoGradGuard no_grad;
        m->theta_d().copy_(theta);
        if (m->lambdas().defined()) m->lambdas().copy_(at::tensor({0.7f, 1.3f}));
      }
      EXPECT_TRUE(at::equal(batched.WarpDelta(), per_tensor.WarpDelta())) << label;
      batched.train();
      per_tensor.train();
      const at::Tensor out_b = batched.Forward(x);
      const at::Tensor out_p = per_tensor.Forward(x);
      EXPECT_TRUE(at::equal(out_b, out_p)) << label;
      out_b.pow(2).sum().backward();
      out_p.pow(2).sum().backward();
      const at::Tensor gb = batched.theta_d().grad();
      const at::Tensor gp = per_tensor.theta_d().grad();
      ASSERT_TRUE(gb.defined()) << label;
      EXPECT_GT(gb.abs().max().item<double>(), 0.0) << label;
      EXPECT_LE((gb - gp).abs().max().item<double>(), 1e-5 * gp.abs().max().item<double>()) << label;
      if (!groups.empty()) {
        EXPECT_TRUE(at::allclose(batched.lambdas().grad(), per_tensor.lambdas().grad(), 1e-5, 1e-7)) << label;
      }
    }
  }
  // kGlobal has one projection: nothing to batch.
  EXPECT_FALSE(Wrap(net, 100, ProjectionMode::kGlobal).uses_batched_projection());
}

// The autograd nodes reachable from the module's tensors' gradient functions (every tensor's, together).
std::set<const torch::autograd::Node*> InstallGraph(SubspaceModel& model) {
  std::set<const torch::autograd::Node*> seen;
  std::vector<std::shared_ptr<torch::autograd::Node>> stack;
  for (const auto& p : model.module().named_parameters()) {
    if (p.value.grad_fn() != nullptr) stack.push_back(p.value.grad_fn());
  }
  while (!stack.empty()) {
    const auto node = stack.back();
    stack.pop_back();
    if (!seen.insert(node.get()).second) continue;
    for (const auto& edge : node->next_edges()) {
      if (edge.function != nullptr) stack.push_back(edge.function);
    }
  }
  return seen;
}

// The fused install (theta_0 + lambda * P theta_d for every tensor at once, one autograd node) against one
// view, multiply and add per tensor, in every mode, without groups, with one group per layer and with a
// group of three tensors: the installed tensors, the outputs and theta_d's gradient bit for bit (the same
// operations on the same operands: the per-tensor path's lambda * delta and theta_0 + that, its gradient
// times lambda into the same transpose); the lambdas' gradients within 1e-6 relative, because the fused
// install sums each group's terms in float64 in target order, the per-tensor path in float32 in the order
// autograd meets the tensors.
TEST(ProjectionModesTest, FusedInstallEqualsThePerTensorInstallInEveryMode) {
  const torch::jit::Module net = SmallMlp();
  const at::Tensor x = at::randn({8, 20}, at::make_generator<at::CPUGeneratorImpl>(5));
  torch::jit::Module plain = net.deepcopy();
  const at::Tensor expected = plain.forward({x}).toTensor();
  const std::vector<std::vector<std::vector<std::string>>> groupings{
      {}, {{"fc1"}, {"fc2"}}, {{"fc1", "fc2.bias"}, {"fc2.weight"}}};
  for (auto mode : {ProjectionMode::kPerTensor, ProjectionMode::kGlobal, ProjectionMode::kReference,
                    ProjectionMode::kSizeWeighted}) {
    for (const auto& groups : groupings) {
      const std::string label =
          std::string(ProjectionModeName(mode)) + ", " + std::to_string(groups.size()) + " groups";
      auto make = [&](std::optional<bool> fused) {
        SubspaceOptions options = SubspaceOptions(100).seed(7).projection(mode).layer_groups(groups);
        if (fused.has_value()) options.fused_install(*fused);
        auto model = SubspaceModel::Create(net, options);
        EXPECT_TRUE(model.ok()) << model.status();
        return std::move(model).value();
      };
      SubspaceModel fused = make(true);
      SubspaceModel separate = make(false);
      EXPECT_TRUE(make(std::nullopt).uses_fused_install()) << label << ": the CPU default";
      ASSERT_TRUE(fused.uses_fused_install()) << label;
      ASSERT_FALSE(separate.uses_fused_install()) << label;
      EXPECT_EQ(fused.uses_batched_projection(), mode != ProjectionMode::kGlobal) << label;
      EXPECT_TRUE(at::equal(fused.Forward(x), expected)) << label << ": theta_d = 0 is the module itself";

      const at::Tensor theta = at::randn({fused.theta_d().size(0)}, at::make_generator<at::CPUGeneratorImpl>(9));
      for (SubspaceModel* m : {&fused, &separate}) {
        at::NoGradGuard no_grad;
        m->theta_d().copy_(theta);
        if (m->lambdas().defined()) m->lambdas().copy_(at::tensor({0.7f, 1.3f}));
      }
      EXPECT_TRUE(at::equal(fused.WarpDelta(), separate.WarpDelta())) << label;
      fused.train();
      separate.train();
      const at::Tensor out_f = fused.Forward(x);
      const at::Tensor out_s = separate.Forward(x);
      EXPECT_TRUE(at::equal(out_f, out_s)) << label;
      const auto params_f = fused.module().named_parameters();
      const auto params_s = separate.module().named_parameters();
      ASSERT_EQ(params_f.size(), params_s.size());
      for (auto f = params_f.begin(), s = params_s.begin(); f != params_f.end(); ++f, ++s) {
        EXPECT_EQ((*f).name, (*s).name);
        EXPECT_TRUE(at::equal((*f).value, (*s).value)) << label << ": " << (*f).name;
        EXPECT_FALSE(at::equal((*f).value, plain.attr((*f).name.substr(0, 3)).toModule().attr((*f).name.substr(4)).toTensor()))
            << label << ": " << (*f).name << " did not move";
      }
      out_f.pow(2).sum().backward();
      out_s.pow(2).sum().backward();
      ASSERT_TRUE(fused.theta_d().grad().defined()) << label;
      EXPECT_GT(fused.theta_d().grad().abs().max().item<double>(), 0.0) << label;
      EXPECT_TRUE(at::equal(fused.theta_d().grad(), separate.theta_d().grad())) << label;
      if (!groups.empty()) {
        const at::Tensor gf = fused.lambdas().grad();
        const at::Tensor gs = separate.lambdas().grad();
        ASSERT_TRUE(gf.defined()) << label;
        EXPECT_GT(gs.abs().min().item<double>(), 0.0) << label;
        EXPECT_LE(((gf - gs).abs() / gs.abs()).max().item<double>(), 1e-6) << label << ": " << gf << " vs " << gs;
      }

      // Eval mode reuses the installed tensors until theta_d or a lambda changes.
      fused.eval();
      fused.Materialize();
      const at::Tensor first = fused.module().attr("fc2").toModule().attr("weight").toTensor();
      EXPECT_FALSE(first.requires_grad()) << label;
      fused.Materialize();
      EXPECT_TRUE(fused.module().attr("fc2").toModule().attr("weight").toTensor().is_same(first)) << label;
      {
        at::NoGradGuard no_grad;
        if (fused.lambdas().defined()) fused.lambdas()[1] = 2.0;
        else fused.theta_d()[0] += 1.0;
      }
      fused.Materialize();
      EXPECT_FALSE(at::equal(fused.module().attr("fc2").toModule().attr("weight").toTensor(), first)) << label;
    }
  }
}

// The fused install is one autograd node for every tensor (plus theta_d's and the lambdas' accumulators),
// however many tensors are warped; the per-tensor install has several per tensor.
TEST(ProjectionModesTest, FusedInstallIsOneAutogradNodeWhateverTheNumberOfTensors) {
  for (const std::vector<int64_t>& hidden : {std::vector<int64_t>{30}, std::vector<int64_t>{30, 30, 30, 30, 30}}) {
    auto mlp = CreateMlp(MlpOptions(20, 5).hidden(hidden).seed(4));
    ASSERT_TRUE(mlp.ok()) << mlp.status();
    const int64_t tensors = 2 * (static_cast<int64_t>(hidden.size()) + 1);
    for (auto mode : {ProjectionMode::kSizeWeighted, ProjectionMode::kGlobal}) {
      for (const bool grouped : {false, true}) {
        const std::string label = std::string(ProjectionModeName(mode)) + ", " + std::to_string(tensors) +
                                  " tensors" + (grouped ? ", grouped" : "");
        const std::vector<std::vector<std::string>> groups =
            grouped ? std::vector<std::vector<std::string>>{{"fc1"}, {"fc2"}} : std::vector<std::vector<std::string>>{};
        auto make = [&](bool fused) {
          std::vector<std::string> warp{"fc1", "fc2"};
          SubspaceOptions options = SubspaceOptions(100).projection(mode).fused_install(fused);
          // Grouped: every warped tensor needs a group, so warp fc1 and fc2 only.
          if (grouped) options.warp_prefixes(warp).layer_groups(groups);
          auto model = SubspaceModel::Create(*mlp, options);
          EXPECT_TRUE(model.ok()) << model.status();
          return std::move(model).value();
        };
        SubspaceModel fused = make(true);
        SubspaceModel separate = make(false);
        fused.train();
        separate.train();
        fused.Materialize();
        separate.Materialize();
        const size_t leaves = grouped ? 2 : 1;
        // Unwarped tensors (grouped: fc3 and beyond) are constants with no graph at all.
        EXPECT_EQ(InstallGraph(fused).size(), 1 + leaves) << label;
        const int64_t warped = static_cast<int64_t>(fused.warped_parameter_names().size());
        EXPECT_GE(static_cast<int64_t>(InstallGraph(separate).size()), warped + 1 + static_cast<int64_t>(leaves))
            << label;
      }
    }
  }
}

TEST(ProjectionModesTest, FusedInstallOptionsAreChecked) {
  const torch::jit::Module net = SmallMlp();
  // A per-tensor mode fuses only over the batched projection's flat output.
  auto unbatched = SubspaceModel::Create(
      net, SubspaceOptions(50).projection(ProjectionMode::kPerTensor).batched(false).fused_install(true));
  ASSERT_FALSE(unbatched.ok());
  EXPECT_NE(unbatched.status().message().find("batched"), std::string::npos) << unbatched.status();
  // Unset, it follows the batched projection (off with it).
  auto follows = SubspaceModel::Create(net, SubspaceOptions(50).batched(false));
  ASSERT_TRUE(follows.ok()) << follows.status();
  EXPECT_FALSE(follows->uses_fused_install());

  ASSERT_EQ(setenv("DWARP_FUSED_INSTALL", "0", 1), 0);
  auto off = SubspaceModel::Create(net, SubspaceOptions(50));
  ASSERT_EQ(setenv("DWARP_FUSED_INSTALL", "yes", 1), 0);
  auto bad = SubspaceModel::Create(net, SubspaceOptions(50));
  auto explicit_on = SubspaceModel::Create(net, SubspaceOptions(50).fused_install(true));
  ASSERT_EQ(unsetenv("DWARP_FUSED_INSTALL"), 0);
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->uses_fused_install());
  EXPECT_TRUE(off->uses_batched_projection());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'yes'"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("DWARP_FUSED_INSTALL"), std::string::npos) << bad.status();
  ASSERT_TRUE(explicit_on.ok()) << explicit_on.status();  // the option wins over the environment
  EXPECT_TRUE(explicit_on->uses_fused_install());
}

TEST(ProjectionModesTest, TheBatchedCudaSwitchIsChecked) {
  const torch::jit::Module net = SmallMlp();
  ASSERT_EQ(setenv("DWARP_BATCHED_FASTFOOD_CUDA", "0", 1), 0);
  auto off = SubspaceModel::Create(net, SubspaceOptions(50));  // CUDA's switch; the CPU batches anyway
  ASSERT_EQ(setenv("DWARP_BATCHED_FASTFOOD_CUDA", "on", 1), 0);
  auto bad = SubspaceModel::Create(net, SubspaceOptions(50));
  auto explicit_off = SubspaceModel::Create(net, SubspaceOptions(50).batched(false).fused_install(false));
  ASSERT_EQ(unsetenv("DWARP_BATCHED_FASTFOOD_CUDA"), 0);
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_TRUE(off->uses_batched_projection());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'on'"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("DWARP_BATCHED_FASTFOOD_CUDA"), std::string::npos) << bad.status();
  ASSERT_TRUE(explicit_off.ok()) << explicit_off.status();  // set options never read the environment
  EXPECT_FALSE(explicit_off->uses_batched_projection());
}

// Relative difference of `got` (any device) from `expected` (CPU): the largest entry's, over the largest
// expected magnitude.
double RelativeToLargest(const at::Tensor& got, const at::Tensor& expected) {
  const double scale = std::max(expected.abs().max().item<double>(), 1e-30);
  return (got.detach().cpu().to(at::kDouble) - expected.to(at::kDouble)).abs().max().item<double>() / scale;
}

// SubspaceModel on `device` in each way it can run there (one projection per tensor; the batched projection;
// the batched projection and the fused install) against the CPU's default way: the output, every warped
// parameter, theta_d's and each lambda's gradient in training mode, WarpDelta and the eval-mode output, in
// every mode, without and with layer groups (a group of two tensors out of layer order among them). On a GPU
// this runs what jobs run there (BatchedFastfood's segment table, the kFlat install with its per-entry group
// index, float64 prefix sum and gathers), which the per-tensor tests above check only on the CPU.
void ExpectEveryWayOnDeviceMatchesTheCpu(const at::Device& device) {
  const torch::jit::Module net = SmallMlp();
  const at::Tensor x = at::randn({8, 20}, at::make_generator<at::CPUGeneratorImpl>(5));
  const at::Tensor weights = at::randn({8, 5}, at::make_generator<at::CPUGeneratorImpl>(6));
  const std::vector<std::vector<std::vector<std::string>>> groupings{
      {}, {{"fc1"}, {"fc2"}}, {{"fc1", "fc2.bias"}, {"fc2.weight"}}};
  struct Way {
    const char* name;
    bool batched;
    bool fused;
  };
  const Way ways[] = {{"per tensor", false, false}, {"batched", true, false}, {"batched, fused", true, true}};
  for (auto mode : {ProjectionMode::kPerTensor, ProjectionMode::kGlobal, ProjectionMode::kReference,
                    ProjectionMode::kSizeWeighted}) {
    for (const auto& groups : groupings) {
      auto make = [&](const torch::jit::Module& module, std::optional<Way> way) {
        SubspaceOptions options = SubspaceOptions(100).seed(7).projection(mode).layer_groups(groups);
        if (way.has_value()) options.batched(way->batched).fused_install(way->fused);
        auto model = SubspaceModel::Create(module, options);
        EXPECT_TRUE(model.ok()) << model.status();
        return std::move(model).value();
      };
      const at::Tensor theta = at::randn({100 - static_cast<int64_t>(groups.size())},
                                         at::make_generator<at::CPUGeneratorImpl>(9)) * 0.3;
      const at::Tensor lambdas = at::tensor({0.7f, 1.3f}).narrow(0, 0, static_cast<int64_t>(groups.size()));
      // One training step's forward and backward, then WarpDelta and the output in eval mode.
      struct Run {
        at::Tensor out, grad_theta, grad_lambdas, delta, eval_out;
        std::vector<at::Tensor> params;
      };
      auto run = [&](SubspaceModel& m) {
        {
          at::NoGradGuard no_grad;
          m.theta_d().copy_(theta);
          if (m.lambdas().defined()) m.lambdas().copy_(lambdas);
        }
        Run r;
        m.train();
        const at::Tensor out = m.Forward(x.to(m.theta_d().device()));
        (out * weights.to(out.device())).sum().backward();
        r.out = out.detach();
        for (const auto& p : m.module().named_parameters()) r.params.push_back(p.value.detach());
        r.grad_theta = m.theta_d().grad();
        if (m.lambdas().defined()) r.grad_lambdas = m.lambdas().grad();
        r.delta = m.WarpDelta();
        m.eval();
        r.eval_out = m.Forward(x.to(m.theta_d().device()));
        return r;
      };
      SubspaceModel cpu = make(net, std::nullopt);
      const Run expected = run(cpu);
      ASSERT_TRUE(expected.grad_theta.defined());
      torch::jit::Module on_device = net.deepcopy();
      on_device.to(device);
      for (const Way& way : ways) {
        // kGlobal has one projection: it is never batched, and its install may be fused either way.
        if (mode == ProjectionMode::kGlobal && way.batched && !way.fused) continue;
        const std::string label = std::string(ProjectionModeName(mode)) + ", " + std::to_string(groups.size()) +
                                  " groups, " + (mode == ProjectionMode::kGlobal && way.fused ? "fused" : way.name);
        SubspaceModel model = make(on_device, way);
        EXPECT_EQ(model.theta_d().device(), device) << label;
        EXPECT_EQ(model.uses_batched_projection(), way.batched && mode != ProjectionMode::kGlobal) << label;
        EXPECT_EQ(model.uses_fused_install(), way.fused) << label;
        const Run got = run(model);
        EXPECT_LE(RelativeToLargest(got.out, expected.out), 1e-5) << label;
        EXPECT_LE(RelativeToLargest(got.eval_out, expected.eval_out), 1e-5) << label;
        EXPECT_LE(RelativeToLargest(got.delta, expected.delta), 1e-5) << label;
        ASSERT_EQ(got.params.size(), expected.params.size()) << label;
        for (size_t p = 0; p < got.params.size(); ++p) {
          EXPECT_EQ(got.params[p].device(), device) << label << ": parameter " << p;
          EXPECT_LE(RelativeToLargest(got.params[p], expected.params[p]), 1e-5) << label << ": parameter " << p;
        }
        ASSERT_TRUE(got.grad_theta.defined()) << label;
        EXPECT_EQ(got.grad_theta.device(), device) << label;
        EXPECT_LE(RelativeToLargest(got.grad_theta, expected.grad_theta), 1e-4) << label;
        if (!groups.empty()) {
          ASSERT_TRUE(got.grad_lambdas.defined()) << label;
          EXPECT_EQ(got.grad_lambdas.device(), device) << label;
          // Each lambda on its own: a group's gradient must not leak into another's. (A lambda's gradient
          // sums terms of both signs: float32 alone moves these by up to 1.6e-5 against float64.)
          for (int64_t g = 0; g < static_cast<int64_t>(groups.size()); ++g) {
            EXPECT_LE(RelativeToLargest(got.grad_lambdas[g], expected.grad_lambdas[g]), 1e-3)
                << label << ": lambda " << g;
          }
        }
      }
    }
  }
}

// The same comparison on the CPU (its other ways against its default): keeps the GPU case's own checks
// exercised on machines without a GPU.
TEST(ProjectionModesTest, EveryWayOnTheCpuMatchesItsDefault) { ExpectEveryWayOnDeviceMatchesTheCpu(at::kCPU); }

TEST(ProjectionModesTest, EveryWayOnCudaMatchesTheCpu_CUDA) {
  ExpectEveryWayOnDeviceMatchesTheCpu(at::Device(at::kCUDA, 0));
}

void WriteDoubles(const std::filesystem::path& path, const at::Tensor& t) {
  const at::Tensor v = t.to(at::kDouble).contiguous();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(v.data_ptr<double>()), static_cast<std::streamsize>(v.numel() * sizeof(double)));
}

at::Tensor ReadDoubles(const std::filesystem::path& path, int64_t count) {
  at::Tensor v = at::empty({count}, at::kDouble);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data_ptr<double>()), static_cast<std::streamsize>(count * sizeof(double)));
  EXPECT_TRUE(in.good()) << path;
  return v;
}

// tests/engine/python/research_fastfood.py implements the research code's map from its definition, with
// none of dwarp's code; given the same B, Pi and G it must give the same P u per tensor (float64) and the
// same loss curve for a few Adam steps (float32).
TEST(ProjectionModesTest, ReferenceMatchesAPythonImplementationOfTheResearchCode) {
  if (std::system("/usr/bin/python3 -c 'import numpy, torch' > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 with numpy and torch (Debian's python3-torch) is not available";
  }
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("dwarp_projection_modes_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const torch::jit::Module net = SmallMlp();
  const int64_t d = 100;
  SubspaceModel model = Wrap(net, d, ProjectionMode::kReference, 11);

  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const at::Tensor u = at::randn({d}, gen, at::kDouble);
  WriteDoubles(dir / "u.bin", u);
  // The manifest is JSON, written by hand (the engine's tests link LibTorch alone).
  std::string targets;
  std::vector<at::Tensor> ours;
  const auto blocks = Blocks(net);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const FastfoodProjection& p = model.projections()[i];
    WriteDoubles(dir / ("signs_" + std::to_string(i) + ".bin"), p.signs());
    WriteDoubles(dir / ("permutation_" + std::to_string(i) + ".bin"), p.permutation());
    WriteDoubles(dir / ("gaussians_" + std::to_string(i) + ".bin"), p.gaussians());
    ours.push_back(p.Forward(u.narrow(0, 0, p.subspace_dim()).contiguous()));
    const at::Tensor theta0 = net.attr(blocks[i].name.substr(0, 3)).toModule().attr(blocks[i].name.substr(4)).toTensor();
    WriteDoubles(dir / ("theta0_" + std::to_string(i) + ".bin"), theta0);
    std::string shape;
    for (int64_t extent : theta0.sizes()) shape += (shape.empty() ? "" : ", ") + std::to_string(extent);
    targets += std::string(targets.empty() ? "" : ", ") + "{\"index\": " + std::to_string(i) + ", \"name\": \"" +
               blocks[i].name + "\", \"size\": " + std::to_string(blocks[i].size) + ", \"shape\": [" + shape + "]}";
  }
  const at::Tensor x = at::randn({64, 20}, gen);
  const at::Tensor y = at::randn({64, 5}, gen);
  WriteDoubles(dir / "x.bin", x);
  WriteDoubles(dir / "y.bin", y);
  const int64_t steps = 25;
  const double lr = 0.05;
  std::ofstream(dir / "manifest.json") << "{\"theta_size\": " << d << ", \"targets\": [" << targets
                                        << "], \"net\": {\"x_shape\": [64, 20], \"y_shape\": [64, 5], \"lr\": "
                                        << lr << ", \"steps\": " << steps << "}}";

  std::vector<double> losses;
  torch::optim::Adam adam(model.parameters(), torch::optim::AdamOptions(lr));
  model.train();
  for (int64_t s = 0; s < steps; ++s) {
    const at::Tensor loss = at::mse_loss(model.Forward(x), y);
    losses.push_back(loss.item<double>());
    adam.zero_grad();
    loss.backward();
    adam.step();
  }

  const std::string command = std::string("/usr/bin/python3 ") + DWARP_TESTS_DIR +
                              "/engine/python/research_fastfood.py " + dir.string();
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::string mismatched;
  std::getline(std::ifstream(dir / "mismatched.txt"), mismatched);
  EXPECT_EQ(mismatched, "") << "L_t differs from the research code's 2^ceil(log2 D_t) for these tensors";
  for (size_t i = 0; i < blocks.size(); ++i) {
    const at::Tensor theirs = ReadDoubles(dir / ("python_pu_" + std::to_string(i) + ".bin"), blocks[i].size);
    EXPECT_TRUE(at::allclose(ours[i], theirs, 1e-9, 1e-12))
        << blocks[i].name << ": max difference " << (ours[i] - theirs).abs().max().item<double>();
    // Same per-tensor norms of P u (the quantity the projection modes differ in).
    EXPECT_NEAR(ours[i].norm().item<double>(), theirs.norm().item<double>(), 1e-9) << blocks[i].name;
  }
  const at::Tensor theirs = ReadDoubles(dir / "python_losses.bin", steps);
  for (int64_t s = 0; s < steps; ++s) {
    EXPECT_NEAR(losses[s], theirs[s].item<double>(), 1e-4 * std::abs(losses[s]) + 1e-6) << "step " << s;
  }
  EXPECT_LT(losses.back(), 0.9 * losses.front()) << "the curve compared must actually move";
  std::filesystem::remove_all(dir);
}

TEST(ProjectionModesTest, AnAttachedHeadIsWarpedWithTheNetworkAndCountsInD) {
  const torch::jit::Module net = SmallMlp();
  const at::Tensor weight = at::randn({3, 5}, at::make_generator<at::CPUGeneratorImpl>(2));
  const at::Tensor bias = at::randn({3}, at::make_generator<at::CPUGeneratorImpl>(3));
  auto joined = AttachLinearHead(net, weight, bias);
  ASSERT_TRUE(joined.ok()) << joined.status();
  const at::Tensor x = at::randn({4, 20}, at::make_generator<at::CPUGeneratorImpl>(4));
  torch::jit::Module plain = net.deepcopy();
  EXPECT_TRUE(at::allclose(joined->forward({x}).toTensor(), at::linear(plain.forward({x}).toTensor(), weight, bias)));

  auto model = SubspaceModel::Create(*joined, SubspaceOptions(40).seed(1).warp_prefixes({"body", "head"}));
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->warped_parameter_count(), MlpParameterCount(MlpOptions(20, 5).hidden({30})) + 3 * 5 + 3);
  {
    at::NoGradGuard no_grad;
    model->theta_d().normal_(0.0, 1.0, at::make_generator<at::CPUGeneratorImpl>(5));
  }
  model->eval();
  model->Materialize();
  const at::Tensor moved = model->module().attr("head").toModule().attr("weight").toTensor();
  EXPECT_GT((moved - weight).abs().max().item<double>(), 1e-3) << "the head must move with theta_d";
  EXPECT_TRUE(at::equal(weight, weight.clone()));  // the caller's tensor is untouched
  EXPECT_FALSE(AttachLinearHead(net, weight, at::zeros({4})).ok());
}

TEST(ProjectionModesTest, PrefitWarpedTrainingStartsAtTheRidgeFitAndMovesTheHead) {
  auto teacher = CreateMlp(MlpOptions(16, 24).hidden({48}).seed(3));
  ASSERT_TRUE(teacher.ok());
  const at::Tensor stimuli = at::randn({600, 16}, at::make_generator<at::CPUGeneratorImpl>(5));
  auto data = MakeSyntheticBrain(*teacher, stimuli, {},
                                 SyntheticBrainOptions().targets(10).warp_dim(12).warp_scale(1.5).noise(0.1).seed(8));
  ASSERT_TRUE(data.ok()) << data.status();
  const auto options =
      EncodingTrainingOptions().epochs(15).batch_size(32).learning_rate(2e-2).patience(0).seed(1);
  auto result = TrainPrefitWarpedEncoder(*teacher, SubspaceOptions(200).seed(21), *data, options);
  ASSERT_TRUE(result.ok()) << result.status();
  // D counts the head: the MLP's parameters plus 24 x 10 + 10.
  EXPECT_EQ(result->parameters_warped, MlpParameterCount(MlpOptions(16, 24).hidden({48})) + 24 * 10 + 10);
  EXPECT_EQ(result->numbers_trained, 200);
  // Never below the ridge start on validation, and here clearly above it.
  EXPECT_GE(result->validation.r2, result->head_init_validation_r2 - 1e-9);
  EXPECT_GT(result->validation.r2, result->head_init_validation_r2 + 0.02)
      << "start " << result->head_init_validation_r2 << ", end " << result->validation.r2;
  EXPECT_GT(result->best_epoch, 0);
  ASSERT_TRUE(result->head_weight.defined());
  EXPECT_EQ(result->head_weight.sizes(), (std::vector<int64_t>{10, 24}));
}

}  // namespace
}  // namespace dwarp::engine
