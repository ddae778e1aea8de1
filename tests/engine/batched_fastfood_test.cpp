// Contract of BatchedFastfood (fastfood_projection.h): every target's P_t theta[0, d_t) in one operation,
// equal to each FastfoodProjection's own Forward, and one gradient of theta equal to the sum of their
// transposes; on the CPU here, and on CUDA against the per-target path and the CPU (*_CUDA tests).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#if defined(DWARP_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "tests/support/expect_c10_error.h"
#include "worker/engine/fastfood_projection.h"

namespace dwarp::engine {
namespace {

struct TargetShape {
  int64_t size;    // D_t
  int64_t inputs;  // d_t: the entries of theta it reads
};

std::vector<FastfoodProjection> MakeAll(const std::vector<TargetShape>& shapes, at::Device device = at::kCPU,
                                        uint64_t seed = 3) {
  std::vector<FastfoodProjection> out;
  for (size_t t = 0; t < shapes.size(); ++t) {
    auto p = FastfoodProjection::Create(shapes[t].size, shapes[t].inputs, seed, "t" + std::to_string(t), device);
    EXPECT_TRUE(p.ok()) << p.status();
    // A scale of its own per target, as the size-weighted mode gives.
    out.push_back(p->Scaled(1.0 + 0.25 * static_cast<double>(t % 3)));
  }
  return out;
}

BatchedFastfood MakeBatched(const std::vector<FastfoodProjection>& projections, int64_t theta_size) {
  auto b = BatchedFastfood::Create(projections, theta_size);
  EXPECT_TRUE(b.ok()) << b.status();
  return std::move(b).value();
}

// The per-target path: P_t theta[0, d_t) and sum_t P_t^T g_t padded to theta's length.
std::vector<at::Tensor> PerTargetForward(const std::vector<FastfoodProjection>& ps, const at::Tensor& theta) {
  std::vector<at::Tensor> out;
  for (const auto& p : ps) out.push_back(p.Forward(theta.narrow(0, 0, p.subspace_dim())));
  return out;
}

at::Tensor PerTargetTranspose(const std::vector<FastfoodProjection>& ps, const std::vector<at::Tensor>& grads,
                              int64_t theta_size) {
  at::Tensor sum = at::zeros({theta_size}, grads.front().options());
  for (size_t t = 0; t < ps.size(); ++t) sum.narrow(0, 0, ps[t].subspace_dim()) += ps[t].Transpose(grads[t]);
  return sum;
}

double MaxRelativeError(const at::Tensor& got, const at::Tensor& expected) {
  const double scale = std::max(expected.abs().max().item<double>(), 1e-30);
  return (got.to(at::kDouble).cpu() - expected.to(at::kDouble).cpu()).abs().max().item<double>() / scale;
}

// Targets smaller and larger than d, from one element to 2^18 (L_t from 2^9 to 2^18), and reference-style
// truncated ones that read only theta's first L_t < d entries.
std::vector<TargetShape> MixedShapes(int64_t d) {
  return {{1, d}, {7, 8}, {100, d}, {300, 128}, {4096, d}, {70000, d}, {5, d}, {200000, d}, {3000, d / 2}, {1, 1}};
}

class BatchedFastfoodDtypeTest : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(BatchedFastfoodDtypeTest, ForwardEqualsEachProjectionAndTransposeTheirSum) {
  const at::ScalarType dtype = GetParam();
  const int64_t d = 300;
  const auto shapes = MixedShapes(d);
  const auto ps = MakeAll(shapes);
  const BatchedFastfood batched = MakeBatched(ps, d);
  EXPECT_EQ(batched.target_count(), static_cast<int64_t>(shapes.size()));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const at::Tensor theta = at::randn({d}, gen).to(dtype);

  const std::vector<at::Tensor> got = batched.Forward(theta);
  const std::vector<at::Tensor> expected = PerTargetForward(ps, theta);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t t = 0; t < got.size(); ++t) {
    EXPECT_EQ(got[t].sizes(), expected[t].sizes()) << "target " << t;
    EXPECT_EQ(got[t].scalar_type(), dtype);
    // The same kernels on the same numbers: bit for bit.
    EXPECT_TRUE(at::equal(got[t], expected[t])) << "target " << t << " (D_t = " << shapes[t].size << ")";
  }

  std::vector<at::Tensor> grads;
  for (const auto& s : shapes) grads.push_back(at::randn({s.size}, gen).to(dtype));
  const at::Tensor transpose = batched.Transpose(grads);
  EXPECT_EQ(transpose.sizes(), (std::vector<int64_t>{d}));
  EXPECT_LE(MaxRelativeError(transpose, PerTargetTranspose(ps, grads, d)), dtype == at::kDouble ? 1e-13 : 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, BatchedFastfoodDtypeTest, ::testing::Values(at::kFloat, at::kDouble),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

TEST(BatchedFastfoodTest, AutogradMatchesThePerTargetGraph) {
  const int64_t d = 200;
  const auto shapes = MixedShapes(d);
  const auto ps = MakeAll(shapes);
  const BatchedFastfood batched = MakeBatched(ps, d);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor theta0 = at::randn({d}, gen);
  std::vector<at::Tensor> weights;
  for (const auto& s : shapes) weights.push_back(at::randn({s.size}, gen));
  auto loss_of = [&](const std::vector<at::Tensor>& outs) {
    at::Tensor loss = at::zeros({});
    for (size_t t = 0; t < outs.size(); ++t) loss = loss + (at::tanh(outs[t]) * weights[t]).sum();
    return loss;
  };

  const at::Tensor a = theta0.clone().set_requires_grad(true);
  loss_of(batched.Apply(a)).backward();
  const at::Tensor b = theta0.clone().set_requires_grad(true);
  std::vector<at::Tensor> per_target;
  for (const auto& p : ps) per_target.push_back(p.Apply(b.narrow(0, 0, p.subspace_dim())));
  loss_of(per_target).backward();
  ASSERT_TRUE(a.grad().defined());
  EXPECT_GT(a.grad().abs().max().item<double>(), 0.0);
  EXPECT_LE(MaxRelativeError(a.grad(), b.grad()), 1e-5);
}

// Central differences in float64 against the autograd gradient of a non-linear loss (a gradcheck).
TEST(BatchedFastfoodTest, FiniteDifferenceGradientInFloat64) {
  const int64_t d = 12;
  const std::vector<TargetShape> shapes{{3, d}, {40, d}, {5, 4}, {17, 8}, {1, 1}};
  const auto ps = MakeAll(shapes);
  const BatchedFastfood batched = MakeBatched(ps, d);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  const at::Tensor theta = at::randn({d}, gen).to(at::kDouble);
  auto loss = [&](const at::Tensor& x) {
    at::Tensor sum = at::zeros({}, at::kDouble);
    for (const auto& out : batched.Apply(x)) sum = sum + at::sin(out).sum() + 0.5 * out.pow(2).sum();
    return sum;
  };
  const at::Tensor x = theta.clone().set_requires_grad(true);
  loss(x).backward();
  const double h = 1e-6;
  for (int64_t j = 0; j < d; ++j) {
    at::Tensor plus = theta.clone();
    at::Tensor minus = theta.clone();
    plus[j] += h;
    minus[j] -= h;
    const double numeric = (loss(plus).item<double>() - loss(minus).item<double>()) / (2 * h);
    EXPECT_NEAR(x.grad()[j].item<double>(), numeric, 1e-6 * std::max(1.0, std::abs(numeric))) << "entry " << j;
  }
}

TEST(BatchedFastfoodTest, OneTargetAndTargetsOfWidelyDifferentLengths) {
  {
    const auto ps = MakeAll({{1 << 16, 64}});
    const BatchedFastfood batched = MakeBatched(ps, 64);
    const at::Tensor theta = at::randn({64});
    EXPECT_TRUE(at::equal(batched.Forward(theta)[0], ps[0].Forward(theta)));
    const at::Tensor g = at::randn({1 << 16});
    EXPECT_LE(MaxRelativeError(batched.Transpose({g}), ps[0].Transpose(g)), 1e-6);
  }
  // L_t from 2^3 to 2^21 in one batch, in no particular order.
  const std::vector<TargetShape> shapes{{3, 8}, {(1 << 21) - 5, 8}, {9, 8}, {1 << 12, 8}, {1000, 8}};
  const auto ps = MakeAll(shapes, at::kCPU, 21);
  const BatchedFastfood batched = MakeBatched(ps, 8);
  const at::Tensor theta = at::randn({8});
  const auto got = batched.Forward(theta);
  for (size_t t = 0; t < ps.size(); ++t) EXPECT_TRUE(at::equal(got[t], ps[t].Forward(theta))) << "target " << t;
  std::vector<at::Tensor> grads;
  for (const auto& s : shapes) grads.push_back(at::randn({s.size}));
  EXPECT_LE(MaxRelativeError(batched.Transpose(grads), PerTargetTranspose(ps, grads, 8)), 1e-5);
}

// The kernels split each target over the intra-op pool: the thread count must not change a bit.
TEST(BatchedFastfoodTest, ResultsDoNotDependOnTheThreadCount) {
  const int64_t d = 300;
  const auto shapes = MixedShapes(d);
  const auto ps = MakeAll(shapes);
  const BatchedFastfood batched = MakeBatched(ps, d);
  const at::Tensor theta = at::randn({d});
  std::vector<at::Tensor> grads;
  for (const auto& s : shapes) grads.push_back(at::randn({s.size}));
  const int threads = at::get_num_threads();
  std::vector<std::vector<at::Tensor>> forwards;
  std::vector<at::Tensor> transposes;
  for (const int n : {1, 3}) {
    at::set_num_threads(n);
    forwards.push_back(batched.Forward(theta));
    transposes.push_back(batched.Transpose(grads));
  }
  at::set_num_threads(threads);
  for (size_t t = 0; t < shapes.size(); ++t) EXPECT_TRUE(at::equal(forwards[0][t], forwards[1][t])) << "target " << t;
  EXPECT_TRUE(at::equal(transposes[0], transposes[1]));
}

// A loss that reads only some targets: autograd hands the others undefined gradients, which count as zero.
TEST(BatchedFastfoodTest, UnusedTargetsContributeNothing) {
  const int64_t d = 50;
  const auto ps = MakeAll({{100, d}, {2000, d}, {30, 32}});
  const BatchedFastfood batched = MakeBatched(ps, d);
  const at::Tensor theta = at::randn({d}).set_requires_grad(true);
  const auto outs = batched.Apply(theta);
  const at::Tensor g = at::randn({2000});
  (outs[1] * g).sum().backward();
  EXPECT_LE(MaxRelativeError(theta.grad(), ps[1].Transpose(g)), 1e-6);
  EXPECT_TRUE(at::equal(batched.Transpose({at::Tensor(), at::Tensor(), at::Tensor()}), at::zeros({d})));
}

TEST(BatchedFastfoodTest, RejectsBadInputNamingTheValue) {
  auto expect_error = [](const StatusOr<BatchedFastfood>& b, const std::string& text) {
    ASSERT_FALSE(b.ok());
    EXPECT_NE(b.status().message().find(text), std::string::npos) << b.status();
  };
  expect_error(BatchedFastfood::Create({}, 10), "at least one projection");
  const auto ps = MakeAll({{10, 20}});
  expect_error(BatchedFastfood::Create(ps, 0), "got 0");
  expect_error(BatchedFastfood::Create(ps, 19), "reads 20 entries of theta, which has 19");
  const BatchedFastfood batched = MakeBatched(ps, 25);
  dwarp::testing::ExpectC10ErrorContaining([&] { batched.Forward(at::zeros({20})); }, "expected theta of shape [25]");
  dwarp::testing::ExpectC10ErrorContaining([&] { batched.Transpose({at::zeros({11})}); },
                                           "expected gradient 0 of 10 elements");
}

// ---- CUDA: the batched kernels against the per-target CUDA path and against the CPU ---------------------

// ResNet-like: many targets, L_t from 2^10 to 2^22 (tile and strided FWHT passes, several of one length
// side by side), reference-style truncated ones (other d'_t), one with d_t above the shared-memory fold's
// limit, and the smallest: d_t = 1 (a length-1 small transform, mask 0) and L_t = 1.
std::vector<TargetShape> CudaShapes(int64_t d) {
  return {{64, d},     {9408, d}, {64, d},      {36864, d}, {1, d},    {589824, d}, {147456, d}, {64, 64},
          {2359296, d}, {8192, d}, {512, 512},  {7, 8},     {36864, d}, {130000, 20000}, {1 << 20, d},
          {5, 1},       {1, 1}};
}

TEST(BatchedFastfoodTest, MatchesPerTargetAndCpu_CUDA) {
  const int64_t theta_size = 20000;
  const int64_t d = 1000;
  const auto shapes = CudaShapes(d);
  const auto cpu = MakeAll(shapes, at::kCPU, 17);
  const auto gpu = MakeAll(shapes, at::kCUDA, 17);
  const BatchedFastfood batched_gpu = MakeBatched(gpu, theta_size);
  const BatchedFastfood batched_cpu = MakeBatched(cpu, theta_size);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const at::Tensor theta = at::randn({theta_size}, gen);
  const auto got = batched_gpu.Forward(theta.cuda());
  const auto per_target = PerTargetForward(gpu, theta.cuda());
  const auto on_cpu = batched_cpu.Forward(theta);
  for (size_t t = 0; t < shapes.size(); ++t) {
    ASSERT_EQ(got[t].numel(), shapes[t].size);
    EXPECT_LE(MaxRelativeError(got[t], per_target[t]), 1e-5) << "target " << t;
    EXPECT_LE(MaxRelativeError(got[t], on_cpu[t]), 1e-4) << "target " << t;
  }
  std::vector<at::Tensor> grads_cpu, grads_gpu;
  for (const auto& s : shapes) {
    grads_cpu.push_back(at::randn({s.size}, gen));
    grads_gpu.push_back(grads_cpu.back().cuda());
  }
  const at::Tensor transpose = batched_gpu.Transpose(grads_gpu);
  EXPECT_LE(MaxRelativeError(transpose, PerTargetTranspose(gpu, grads_gpu, theta_size)), 1e-5);
  EXPECT_LE(MaxRelativeError(transpose, batched_cpu.Transpose(grads_cpu)), 1e-4);
  // Undefined gradients count as zero (the copy-in's null pointers), here every other one.
  std::vector<at::Tensor> some_gpu = grads_gpu;
  std::vector<at::Tensor> some_cpu = grads_cpu;
  for (size_t t = 0; t < shapes.size(); t += 2) {
    some_gpu[t] = at::Tensor();
    some_cpu[t] = at::zeros({shapes[t].size});
  }
  EXPECT_LE(MaxRelativeError(batched_gpu.Transpose(some_gpu), batched_cpu.Transpose(some_cpu)), 1e-4);
  // Through autograd, with one target unused (autograd hands it zeros).
  const at::Tensor x = theta.cuda().set_requires_grad(true);
  const auto outs = batched_gpu.Apply(x);
  at::Tensor loss = at::zeros({}, at::kCUDA);
  for (size_t t = 1; t < outs.size(); ++t) loss = loss + (outs[t] * grads_gpu[t]).sum();
  loss.backward();
  grads_cpu[0].zero_();
  EXPECT_LE(MaxRelativeError(x.grad(), batched_cpu.Transpose(grads_cpu)), 1e-4);
}

// More targets than the gradients' copy-in takes per launch (64), of many lengths in no order: the device
// layout (sorted by L_t) must map every target's output and gradient back to it.
TEST(BatchedFastfoodTest, ManyTargetsMatchTheCpu_CUDA) {
  const int64_t d = 300;
  std::vector<TargetShape> shapes;
  for (int t = 0; t < 150; ++t) shapes.push_back({1 + (t * 7919) % 20000, t % 5 == 0 ? 100 : d});
  const auto cpu = MakeAll(shapes, at::kCPU, 23);
  const auto gpu = MakeAll(shapes, at::kCUDA, 23);
  const BatchedFastfood batched_gpu = MakeBatched(gpu, d);
  const BatchedFastfood batched_cpu = MakeBatched(cpu, d);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
  const at::Tensor theta = at::randn({d}, gen);
  const auto got = batched_gpu.Forward(theta.cuda());
  const auto expected = batched_cpu.Forward(theta);
  for (size_t t = 0; t < shapes.size(); ++t) {
    ASSERT_EQ(got[t].numel(), shapes[t].size) << "target " << t;
    EXPECT_LE(MaxRelativeError(got[t], expected[t]), 1e-4) << "target " << t;
  }
  std::vector<at::Tensor> grads_cpu, grads_gpu;
  for (const auto& s : shapes) {
    grads_cpu.push_back(at::randn({s.size}, gen));
    grads_gpu.push_back(grads_cpu.back().cuda());
  }
  EXPECT_LE(MaxRelativeError(batched_gpu.Transpose(grads_gpu), batched_cpu.Transpose(grads_cpu)), 1e-4);
}

#if defined(DWARP_WITH_CUDA)
// As FastfoodProjectionTest.RunsOnTheCurrentStream_CUDA: every launch on the stream LibTorch makes
// current (a non-blocking pool stream here), behind long-running work that produces the inputs.
TEST(BatchedFastfoodTest, RunsOnTheCurrentStream_CUDA) {
  const int64_t d = 1000;
  const auto shapes = CudaShapes(d);
  const int64_t theta_size = 20000;
  const auto cpu = MakeAll(shapes, at::kCPU, 17);
  const auto gpu = MakeAll(shapes, at::kCUDA, 17);
  const BatchedFastfood batched_cpu = MakeBatched(cpu, theta_size);
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, 0);
  const c10::cuda::CUDAStreamGuard guard(side);
  // Created on the side stream too: the plan's own uploads must be complete before any stream uses it.
  const BatchedFastfood batched_gpu = MakeBatched(gpu, theta_size);
  const at::Tensor theta = at::randn({theta_size});
  std::vector<at::Tensor> grads;
  for (const auto& s : shapes) grads.push_back(at::randn({s.size}));
  const auto expected = batched_cpu.Forward(theta);
  const at::Tensor expected_t = batched_cpu.Transpose(grads);
  at::Tensor busy = at::zeros({int64_t{1} << 26}, at::kCUDA);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 4; ++i) busy.add_(1.0);
    const double scale = round + 1.0;
    const at::Tensor theta_gpu = theta.cuda() * scale + busy.narrow(0, 0, theta_size) * 0.0;
    std::vector<at::Tensor> grads_gpu;
    for (const auto& g : grads) grads_gpu.push_back(g.cuda() * scale + busy.narrow(0, 0, g.numel()) * 0.0);
    const auto forward = batched_gpu.Forward(theta_gpu);
    const at::Tensor transpose = batched_gpu.Transpose(grads_gpu).cpu() / scale;
    for (size_t t = 0; t < shapes.size(); ++t) {
      EXPECT_LE(MaxRelativeError(forward[t].cpu() / scale, expected[t]), 1e-4) << "round " << round << " target " << t;
    }
    EXPECT_LE(MaxRelativeError(transpose, expected_t), 1e-4) << "round " << round;
  }
}
#endif

}  // namespace
}  // namespace dwarp::engine
