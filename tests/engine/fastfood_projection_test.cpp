// Contract of fastfood_projection.h: P = (H G Pi H B pad_L)[:D_t] * scale as DESIGN.md defines it, its
// transpose, its autograd, and its reproducibility from (seed, name).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#if defined(DWARP_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "tests/support/expect_c10_error.h"
#include "tests/support/reference_fastfood.h"
#include "worker/engine/fastfood_projection.h"
#include "worker/engine/seeded_random.h"

namespace dwarp::engine {
namespace {

using dwarp::testing::DenseHadamard;
using dwarp::testing::PerStageFastfood;

// SeededStream(42, "fc1.weight")'s first two outputs, recorded when the stream was defined.
constexpr uint64_t kPinnedFirst = 0x14ca2c9c918b713dULL;
constexpr uint64_t kPinnedSecond = 0xe354ac55f01680baULL;

FastfoodProjection Make(int64_t target_size, int64_t d, uint64_t seed = 7, const std::string& name = "w") {
  auto p = FastfoodProjection::Create(target_size, d, seed, name);
  EXPECT_TRUE(p.ok()) << p.status();
  return std::move(p).value();
}

// The D_t x d matrix built from the definition with dense matrices, independently of the kernels.
at::Tensor DenseFromDefinition(const FastfoodProjection& p) {
  const int64_t l = p.padded_size();
  const at::Tensor h = DenseHadamard(l, at::kDouble);
  const at::Tensor b = at::diag(p.signs().to(at::kDouble));
  const at::Tensor g = at::diag(p.gaussians().to(at::kDouble));
  const at::Tensor pi = at::zeros({l, l}, at::kDouble);
  const int32_t* perm = p.permutation().data_ptr<int32_t>();
  for (int64_t i = 0; i < l; ++i) pi[i][perm[i]] = 1.0;  // (Pi y)[i] = y[perm[i]]
  const at::Tensor full = at::matmul(h, at::matmul(g, at::matmul(pi, at::matmul(h, b))));
  return full.narrow(0, 0, p.target_size()).narrow(1, 0, p.subspace_dim()) * p.scale();
}

// The matrix the kernels implement, materialised column by column through Forward(e_j).
at::Tensor DenseFromColumns(const FastfoodProjection& p) {
  std::vector<at::Tensor> columns;
  for (int64_t j = 0; j < p.subspace_dim(); ++j) {
    at::Tensor e = at::zeros({p.subspace_dim()}, at::kDouble);
    e[j] = 1.0;
    columns.push_back(p.Forward(e));
  }
  return at::stack(columns, 1);
}

const std::vector<std::pair<int64_t, int64_t>> kShapes = {
    {1, 1}, {5, 3}, {100, 7}, {7, 100}, {1, 33}, {256, 256}, {300, 37}, {1000, 64}};

TEST(FastfoodProjectionTest, PaddedLengthCoversTheLargerOfTargetAndSubspace) {
  EXPECT_EQ(Make(1000, 10).padded_size(), 1024);
  EXPECT_EQ(Make(1024, 10).padded_size(), 1024);
  EXPECT_EQ(Make(1, 100).padded_size(), 128);  // d > D_t: no silent truncation of theta
  EXPECT_EQ(Make(1, 1).padded_size(), 1);
}

TEST(FastfoodProjectionTest, CompactStorageIsNineBytesPerPaddedElement) {
  const FastfoodProjection p = Make(5000, 100);
  EXPECT_DOUBLE_EQ(p.bytes_per_padded_element(), 9.0);
  EXPECT_EQ(p.signs().scalar_type(), at::kChar);
  EXPECT_EQ(p.permutation().scalar_type(), at::kInt);
  EXPECT_TRUE((p.signs().abs() == 1).all().item<bool>());
  // Pi is a permutation: sorting it gives 0..L-1.
  EXPECT_TRUE(at::equal(std::get<0>(p.permutation().sort()), at::arange(p.padded_size(), at::kInt)));
}

TEST(FastfoodProjectionTest, ForwardMatchesDenseDefinition) {
  for (const auto& [target, d] : kShapes) {
    const FastfoodProjection p = Make(target, d);
    const at::Tensor dense = DenseFromDefinition(p);
    const at::Tensor theta = at::randn({d}, at::kDouble);
    EXPECT_TRUE(at::allclose(p.Forward(theta), at::matmul(dense, theta), 1e-9, 1e-12)) << target << " x " << d;
    EXPECT_TRUE(at::allclose(DenseFromColumns(p), dense, 1e-9, 1e-12)) << target << " x " << d;
    const at::Tensor forward32 = p.Forward(theta.to(at::kFloat)).to(at::kDouble);
    EXPECT_TRUE(at::allclose(forward32, at::matmul(dense, theta), 1e-4, 1e-5)) << target << " x " << d;
  }
}

TEST(FastfoodProjectionTest, TransposeMatchesDenseTranspose) {
  for (const auto& [target, d] : kShapes) {
    const FastfoodProjection p = Make(target, d);
    const at::Tensor dense = DenseFromDefinition(p);
    const at::Tensor g = at::randn({target}, at::kDouble);
    EXPECT_TRUE(at::allclose(p.Transpose(g), at::matmul(dense.t(), g), 1e-9, 1e-12)) << target << " x " << d;
  }
}

TEST(FastfoodProjectionTest, AutogradBackwardIsTheDenseTranspose) {
  for (const auto& [target, d] : kShapes) {
    const FastfoodProjection p = Make(target, d);
    const at::Tensor dense = DenseFromDefinition(p);
    const at::Tensor theta = at::randn({d}, at::kDouble).set_requires_grad(true);
    const at::Tensor w = at::randn({target}, at::kDouble);
    (p.Apply(theta) * w).sum().backward();
    EXPECT_TRUE(at::allclose(theta.grad(), at::matmul(dense.t(), w), 1e-9, 1e-12)) << target << " x " << d;
  }
}

TEST(FastfoodProjectionTest, ColumnsHaveUnitNormWhenNothingIsTruncated) {
  // With D_t = L the definition gives ||P e_j||^2 = L sum(G^2) / (L sum(G^2) * D_t / L) * (L / D_t) = 1.
  const FastfoodProjection p = Make(512, 100);
  const at::Tensor norms = DenseFromColumns(p).norm(2, 0);
  EXPECT_LE((norms - 1.0).abs().max().item<double>(), 1e-12);
}

TEST(FastfoodProjectionTest, TruncatedColumnsHaveUnitNormOnAverage) {
  // Keeping D_t of L rows keeps, in expectation, D_t / L of the squared norm, which the sqrt(D_t / L)
  // factor restores: the mean squared norm over many columns is close to 1.
  const FastfoodProjection p = Make(3000, 400);  // L = 4096
  const double mean_sq = DenseFromColumns(p).pow(2).sum(0).mean().item<double>();
  EXPECT_NEAR(mean_sq, 1.0, 0.05);
}

TEST(FastfoodProjectionTest, FiniteDifferenceGradientOfNonlinearLoss) {
  const FastfoodProjection p = Make(70, 9);
  const at::Tensor theta = at::randn({9}, at::kDouble);
  auto loss = [&](const at::Tensor& t) { return at::sin(p.Apply(t)).pow(2).sum(); };
  at::Tensor x = theta.clone().set_requires_grad(true);
  loss(x).backward();
  const double h = 1e-6;
  for (int64_t j = 0; j < 9; ++j) {
    at::Tensor plus = theta.clone();
    at::Tensor minus = theta.clone();
    plus[j] += h;
    minus[j] -= h;
    const double numeric = (loss(plus).item<double>() - loss(minus).item<double>()) / (2 * h);
    EXPECT_NEAR(x.grad()[j].item<double>(), numeric, 1e-7 * std::max(1.0, std::abs(numeric))) << "coordinate " << j;
  }
}

TEST(FastfoodProjectionTest, LargeTargetMatchesPerStageReferenceBothWays) {
  // Past one L2 block and with d << L, so the sparse first transform and the folded last one are both used.
  const FastfoodProjection p = Make(300000, 1000, 11, "layer3.0.conv2.weight");
  const at::Tensor theta = at::randn({1000}, at::kFloat);
  const at::Tensor reference_in = theta.clone().set_requires_grad(true);
  const at::Tensor reference = PerStageFastfood(p, reference_in);
  const at::Tensor got = p.Forward(theta);
  EXPECT_LE((got - reference).abs().max().item<float>(), 1e-4f * reference.abs().max().item<float>());

  const at::Tensor g = at::randn({300000}, at::kFloat);
  reference.backward(g);
  const at::Tensor transposed = p.Transpose(g);
  EXPECT_LE((transposed - reference_in.grad()).abs().max().item<float>(),
            1e-4f * reference_in.grad().abs().max().item<float>());
}

TEST(FastfoodProjectionTest, SameSeedAndNameGiveTheSameProjection) {
  const FastfoodProjection a = Make(4000, 50, 3, "fc1.weight");
  const FastfoodProjection b = Make(4000, 50, 3, "fc1.weight");
  EXPECT_TRUE(at::equal(a.signs(), b.signs()));
  EXPECT_TRUE(at::equal(a.permutation(), b.permutation()));
  EXPECT_TRUE(at::equal(a.gaussians(), b.gaussians()));
  const FastfoodProjection other_name = Make(4000, 50, 3, "fc2.weight");
  const FastfoodProjection other_seed = Make(4000, 50, 4, "fc1.weight");
  EXPECT_FALSE(at::equal(a.permutation(), other_name.permutation()));
  EXPECT_FALSE(at::equal(a.gaussians(), other_seed.gaussians()));
}

TEST(FastfoodProjectionTest, GeneratorIsPinnedAcrossMachines) {
  // SplitMix64 outputs are fully specified; these values were recorded when the stream was defined.
  // If this fails, projections (and every stored result's meaning) changed: never update it casually.
  SeededStream s(42, "fc1.weight");
  const uint64_t first = s.NextU64();
  const uint64_t second = s.NextU64();
  SeededStream again(42, "fc1.weight");
  EXPECT_EQ(again.NextU64(), first);
  EXPECT_EQ(again.NextU64(), second);
  EXPECT_EQ(StableHash(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(StableHash("a"), 0xaf63dc4c8601ec8cULL);  // FNV-1a test vector
  EXPECT_EQ(first, kPinnedFirst);
  EXPECT_EQ(second, kPinnedSecond);
}

TEST(FastfoodProjectionTest, RejectsBadSizesNamingTheValue) {
  auto zero_d = FastfoodProjection::Create(10, 0, 1, "fc1.bias");
  ASSERT_FALSE(zero_d.ok());
  EXPECT_NE(zero_d.status().message().find("got 0"), std::string::npos) << zero_d.status();
  EXPECT_NE(zero_d.status().message().find("fc1.bias"), std::string::npos) << zero_d.status();
  auto zero_target = FastfoodProjection::Create(0, 5, 1, "x");
  ASSERT_FALSE(zero_target.ok());
  EXPECT_NE(zero_target.status().message().find("size must be >= 1, got 0"), std::string::npos);
}

TEST(FastfoodProjectionTest, RejectsThetaOfTheWrongShape) {
  const FastfoodProjection p = Make(10, 4);
  dwarp::testing::ExpectC10ErrorContaining([&] { p.Forward(at::zeros({5})); }, "expected theta of shape [4]");
}

TEST(FastfoodProjectionTest, MatchesCpu_CUDA) {
  const FastfoodProjection cpu = Make(1 << 20, 1000, 5, "w");
  auto gpu_or = FastfoodProjection::Create(1 << 20, 1000, 5, "w", at::kCUDA);
  ASSERT_TRUE(gpu_or.ok()) << gpu_or.status();
  const FastfoodProjection gpu = std::move(gpu_or).value();
  const at::Tensor theta = at::randn({1000});
  const at::Tensor expected = cpu.Forward(theta);
  EXPECT_LE((gpu.Forward(theta.cuda()).cpu() - expected).abs().max().item<float>(),
            1e-4f * expected.abs().max().item<float>());
  const at::Tensor g = at::randn({1 << 20});
  const at::Tensor expected_t = cpu.Transpose(g);
  EXPECT_LE((gpu.Transpose(g.cuda()).cpu() - expected_t).abs().max().item<float>(),
            1e-4f * expected_t.abs().max().item<float>());
}

#if defined(DWARP_WITH_CUDA)
// The projection must queue its kernels, and the fold's zeroing, on the stream LibTorch makes current:
// here a pool stream, which is non-blocking, so a launch on the legacy default stream or any other would
// not wait for theta (or the gradient), computed on it behind long-running work, nor would the read-back.
TEST(FastfoodProjectionTest, RunsOnTheCurrentStream_CUDA) {
  const FastfoodProjection cpu = Make(1 << 22, 1000, 5, "w");
  auto gpu_or = FastfoodProjection::Create(1 << 22, 1000, 5, "w", at::kCUDA);
  ASSERT_TRUE(gpu_or.ok()) << gpu_or.status();
  const FastfoodProjection gpu = std::move(gpu_or).value();
  const at::Tensor theta = at::randn({1000});
  const at::Tensor g = at::randn({1 << 22});
  const at::Tensor expected = cpu.Forward(theta);
  const at::Tensor expected_t = cpu.Transpose(g);
  const at::Tensor theta_base = theta.cuda();
  const at::Tensor g_base = g.cuda();
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, 0);
  const c10::cuda::CUDAStreamGuard guard(side);
  at::Tensor busy = at::zeros({int64_t{1} << 26}, at::kCUDA);
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 4; ++i) busy.add_(1.0);
    // Ready only when the busy work before it on `side` is done; scaled per round (P is linear), so that
    // memory the allocator hands back from an earlier round holds other values.
    const double scale = round + 1.0;
    const at::Tensor theta_gpu = theta_base * scale + busy.narrow(0, 0, 1000) * 0.0;
    const at::Tensor g_gpu = g_base * scale + busy.narrow(0, 0, 1 << 22) * 0.0;
    const at::Tensor forward = gpu.Forward(theta_gpu).cpu() / scale;
    const at::Tensor transpose = gpu.Transpose(g_gpu).cpu() / scale;
    EXPECT_LE((forward - expected).abs().max().item<float>(), 1e-4f * expected.abs().max().item<float>())
        << "round " << round;
    EXPECT_LE((transpose - expected_t).abs().max().item<float>(), 1e-4f * expected_t.abs().max().item<float>())
        << "round " << round;
  }
}
#endif

}  // namespace
}  // namespace dwarp::engine
