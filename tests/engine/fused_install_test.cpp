// Contract of fused_install.h: every target's theta_0 + lambda * P_t theta as one autograd node, the same
// numbers by both ways of running it (kPerTarget, the CPU's; kFlat, the GPU's, run here on the CPU) and by
// one autograd graph per target built from FastfoodProjection::Apply.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "worker/engine/fastfood_projection.h"
#include "worker/engine/fused_install.h"

namespace dwarp::engine::internal {
namespace {

using Ops = FusedInstall::Ops;

struct Case {
  std::vector<std::vector<int64_t>> shapes;
  std::vector<int64_t> groups;  // per target; empty: no groups
  int64_t group_count = 0;
  bool global = false;
};

struct Built {
  std::shared_ptr<const FusedInstall> install;
  std::vector<FastfoodProjection> projections;  // per target, or one (global)
  at::Tensor theta0;
};

Built Build(const Case& c, int64_t n, at::ScalarType dtype, Ops ops, at::Device device = at::kCPU) {
  Built b;
  std::vector<FusedInstall::Target> targets;
  int64_t offset = 0;
  for (size_t t = 0; t < c.shapes.size(); ++t) {
    const int64_t size = c.shapes[t].empty() ? 1 : at::prod(at::tensor(c.shapes[t])).item<int64_t>();
    targets.push_back({offset, c.shapes[t], c.groups.empty() ? -1 : c.groups[t]});
    if (!c.global) {
      auto p = FastfoodProjection::Create(size, n, 11, "t" + std::to_string(t), device);
      EXPECT_TRUE(p.ok()) << p.status();
      b.projections.push_back(*p);
    }
    offset += size;
  }
  b.theta0 = at::randn({offset}, at::make_generator<at::CPUGeneratorImpl>(3)).to(device, dtype);
  std::optional<BatchedFastfood> batched;
  std::optional<FastfoodProjection> global;
  if (c.global) {
    auto p = FastfoodProjection::Create(offset, n, 11, "<global>", device);
    EXPECT_TRUE(p.ok()) << p.status();
    b.projections.push_back(*p);
    global = *p;
  } else {
    auto made = BatchedFastfood::Create(b.projections, n);
    EXPECT_TRUE(made.ok()) << made.status();
    batched = *made;
  }
  b.install = std::make_shared<const FusedInstall>(b.theta0, targets, c.group_count, batched, global, ops);
  return b;
}

// The per-target graph: theta_0,t + lambda_g * P_t theta with P_t from Apply (global: a narrow of one Apply).
std::vector<at::Tensor> Reference(const Built& b, const Case& c, const at::Tensor& theta, const at::Tensor& lambdas) {
  std::vector<at::Tensor> out;
  const at::Tensor flat = c.global ? b.projections.front().Apply(theta) : at::Tensor();
  int64_t offset = 0;
  for (size_t t = 0; t < c.shapes.size(); ++t) {
    at::Tensor delta = c.global ? flat.narrow(0, offset, b.install->Part(b.theta0, t).numel())
                                : b.projections[t].Apply(theta);
    const int64_t size = delta.numel();
    delta = delta.view(c.shapes[t]);
    if (!c.groups.empty()) delta = lambdas[c.groups[t]] * delta;
    out.push_back(b.theta0.narrow(0, offset, size).view(c.shapes[t]) + delta);
    offset += size;
  }
  return out;
}

struct Result {
  std::vector<at::Tensor> values;
  at::Tensor grad_theta, grad_lambdas;
  size_t distinct_nodes = 0;
};

// Runs `make` on fresh leaves, takes a weighted sum of every output but `unused`, and backpropagates.
template <typename Make>
Result RunAndBackprop(const Make& make, const at::Tensor& theta0, const at::Tensor& lambdas0, int64_t unused) {
  Result r;
  at::Tensor theta = theta0.clone().set_requires_grad(true);
  at::Tensor lambdas = lambdas0.clone().set_requires_grad(lambdas0.numel() > 0);
  const std::vector<at::Tensor> outs = make(theta, lambdas);
  at::Tensor loss = at::zeros({}, theta0.options());
  std::vector<const torch::autograd::Node*> nodes;
  for (size_t t = 0; t < outs.size(); ++t) {
    r.values.push_back(outs[t].detach().clone());
    bool seen = false;
    for (const auto* n : nodes) seen = seen || n == outs[t].grad_fn().get();
    if (!seen) nodes.push_back(outs[t].grad_fn().get());
    if (static_cast<int64_t>(t) == unused) continue;
    const at::Tensor w =
        at::randn(outs[t].sizes(), at::make_generator<at::CPUGeneratorImpl>(20 + t)).to(outs[t].options());
    loss = loss + (outs[t] * w).sum() + outs[t].pow(2).sum();
  }
  loss.backward();
  r.grad_theta = theta.grad();
  r.grad_lambdas = lambdas0.numel() > 0 ? lambdas.grad() : at::Tensor();
  r.distinct_nodes = nodes.size();
  return r;
}

void ExpectSame(const Case& c, at::ScalarType dtype, int64_t unused, const std::string& label) {
  const int64_t n = 40;
  const at::Tensor theta = at::randn({n}, at::make_generator<at::CPUGeneratorImpl>(5)).to(dtype);
  const at::Tensor lambdas = c.group_count > 0
                                 ? at::tensor(std::vector<double>{0.7, 1.3, -0.4}).narrow(0, 0, c.group_count).to(dtype)
                                 : at::empty({0}, dtype);
  const Built per_target = Build(c, n, dtype, Ops::kPerTarget);
  const Built flat = Build(c, n, dtype, Ops::kFlat);
  auto fused = [](const Built& b) {
    return [&b](const at::Tensor& th, const at::Tensor& la) { return ApplyFusedInstall(b.install, th, la); };
  };
  const Result a = RunAndBackprop(fused(per_target), theta, lambdas, unused);
  const Result f = RunAndBackprop(fused(flat), theta, lambdas, unused);
  const Result r = RunAndBackprop(
      [&](const at::Tensor& th, const at::Tensor& la) { return Reference(per_target, c, th, la); }, theta, lambdas,
      unused);
  EXPECT_EQ(a.distinct_nodes, 1u) << label << ": one node for every target";
  EXPECT_EQ(f.distinct_nodes, 1u) << label;
  ASSERT_EQ(a.values.size(), c.shapes.size());
  for (size_t t = 0; t < c.shapes.size(); ++t) {
    EXPECT_EQ(a.values[t].sizes(), at::IntArrayRef(c.shapes[t])) << label;
    EXPECT_TRUE(at::equal(a.values[t], r.values[t])) << label << ": target " << t;
    EXPECT_TRUE(at::equal(f.values[t], r.values[t])) << label << ": target " << t;
  }
  // theta's gradient: both fused ways hand the projection the same per-target gradients (bit for bit); the
  // per-target graph sums its targets' transposes in autograd's order.
  EXPECT_TRUE(at::equal(a.grad_theta, f.grad_theta)) << label;
  const double scale = r.grad_theta.abs().max().item<double>();
  EXPECT_GT(scale, 0.0) << label;
  EXPECT_LE((a.grad_theta - r.grad_theta).abs().max().item<double>(), 1e-5 * scale) << label;
  if (c.group_count > 0) {
    // Each group's sum over its targets of sum(grad * delta), in three summation orders.
    const at::Tensor ref = r.grad_lambdas.to(at::kDouble);
    EXPECT_GT(ref.abs().min().item<double>(), 0.0) << label;
    const double tolerance = dtype == at::kDouble ? 1e-12 : 1e-6;
    EXPECT_LE(((a.grad_lambdas.to(at::kDouble) - ref).abs() / ref.abs()).max().item<double>(), tolerance) << label;
    EXPECT_LE(((f.grad_lambdas.to(at::kDouble) - ref).abs() / ref.abs()).max().item<double>(), tolerance) << label;
  } else {
    EXPECT_FALSE(a.grad_lambdas.defined()) << label;
  }
}

const Case kMixed{{{30, 20}, {30}, {7, 3, 3, 3}, {1}, {5, 200}}, {}, 0, false};

TEST(FusedInstallTest, BothWaysEqualThePerTargetGraphWithoutGroups) {
  for (auto dtype : {at::kFloat, at::kDouble}) {
    ExpectSame(kMixed, dtype, -1, std::string("batched, ") + at::toString(dtype));
    Case global = kMixed;
    global.global = true;
    ExpectSame(global, dtype, -1, std::string("global, ") + at::toString(dtype));
  }
}

TEST(FusedInstallTest, BothWaysEqualThePerTargetGraphWithGroups) {
  Case grouped = kMixed;
  grouped.groups = {0, 0, 2, 1, 0};  // group 0 has three targets, out of order with the others
  grouped.group_count = 3;
  for (auto dtype : {at::kFloat, at::kDouble}) {
    ExpectSame(grouped, dtype, -1, std::string("batched, grouped, ") + at::toString(dtype));
    Case global = grouped;
    global.global = true;
    ExpectSame(global, dtype, -1, std::string("global, grouped, ") + at::toString(dtype));
  }
}

TEST(FusedInstallTest, AnUnusedTargetGetsNoGradient) {
  Case grouped = kMixed;
  grouped.groups = {0, 1, 1, 1, 0};
  grouped.group_count = 2;
  ExpectSame(grouped, at::kFloat, 4, "batched, grouped, target 4 unused");
  ExpectSame(kMixed, at::kFloat, 0, "batched, target 0 unused");
}

TEST(FusedInstallTest, NoGradModeBuildsNoGraph) {
  const Built b = Build(kMixed, 40, at::kFloat, Ops::kPerTarget);
  const at::Tensor theta = at::randn({40}).set_requires_grad(true);
  at::NoGradGuard no_grad;
  for (const at::Tensor& t : ApplyFusedInstall(b.install, theta, at::empty({0}))) {
    EXPECT_FALSE(t.requires_grad());
    EXPECT_EQ(t.grad_fn(), nullptr);
  }
}

// On a GPU both ways (kFlat is the GPU's default) against the CPU: the same numbers up to the CUDA
// transform's rounding, one node, the lambdas' gradients included.
TEST(FusedInstallTest, BothWaysMatchTheCpu_CUDA) {
  Case grouped = kMixed;
  grouped.groups = {0, 0, 2, 1, 0};
  grouped.group_count = 3;
  for (const Case& c : {kMixed, grouped}) {
    const at::Tensor theta = at::randn({40}, at::make_generator<at::CPUGeneratorImpl>(5));
    const at::Tensor lambdas = c.group_count > 0 ? at::tensor({0.7f, 1.3f, -0.4f}) : at::empty({0});
    const Built cpu = Build(c, 40, at::kFloat, Ops::kPerTarget);
    auto fused = [](const Built& b) {
      return [&b](const at::Tensor& th, const at::Tensor& la) { return ApplyFusedInstall(b.install, th, la); };
    };
    const Result expected = RunAndBackprop(fused(cpu), theta, lambdas, 1);
    for (Ops ops : {Ops::kFlat, Ops::kPerTarget}) {
      const std::string label =
          std::string(ops == Ops::kFlat ? "flat" : "per target") + (c.group_count ? ", grouped" : "");
      const Built cuda = Build(c, 40, at::kFloat, ops, at::Device(at::kCUDA, 0));
      const Result got = RunAndBackprop(fused(cuda), theta.cuda(), lambdas.cuda(), 1);
      EXPECT_EQ(got.distinct_nodes, 1u) << label;
      for (size_t t = 0; t < c.shapes.size(); ++t) {
        EXPECT_TRUE(got.values[t].is_cuda()) << label;
        EXPECT_TRUE(at::allclose(got.values[t].cpu(), expected.values[t], 1e-5, 1e-5)) << label << ": target " << t;
      }
      EXPECT_TRUE(at::allclose(got.grad_theta.cpu(), expected.grad_theta, 1e-4, 1e-4)) << label;
      if (c.group_count > 0) {
        EXPECT_TRUE(at::allclose(got.grad_lambdas.cpu(), expected.grad_lambdas, 1e-4, 1e-4)) << label;
      }
    }
  }
}

}  // namespace
}  // namespace dwarp::engine::internal
