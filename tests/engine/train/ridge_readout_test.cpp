#include "worker/engine/train/ridge_readout.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "worker/engine/train/metrics.h"

namespace dwarp::engine {
namespace {

// The textbook solution, computed directly: centre, solve (Xc^T Xc + alpha I) W = Xc^T Yc, b = ȳ - x̄ W.
std::pair<at::Tensor, at::Tensor> NormalEquations(const at::Tensor& x, const at::Tensor& y, double alpha) {
  const at::Tensor x_mean = x.mean(0), y_mean = y.mean(0);
  const at::Tensor xc = x - x_mean, yc = y - y_mean;
  const at::Tensor gram = at::matmul(xc.t(), xc) + alpha * at::eye(x.size(1), at::kDouble);
  const at::Tensor w = at::linalg_solve(gram, at::matmul(xc.t(), yc));
  return {w, y_mean - at::matmul(x_mean, w)};
}

class RidgeNormalEquationsTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t>> {};

TEST_P(RidgeNormalEquationsTest, FixedAlphaEqualsTheNormalEquationSolution) {
  const auto [n, f] = GetParam();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(n * 100 + f);
  const at::Tensor x = at::empty({n, f}, at::kDouble).normal_(0.0, 1.0, gen) + 3.0;  // non-zero means
  const at::Tensor y = at::matmul(x, at::empty({f, 4}, at::kDouble).normal_(0.0, 1.0, gen)) +
                       at::empty({n, 4}, at::kDouble).normal_(0.0, 1.0, gen) - 5.0;
  for (double alpha : {0.01, 2.5, 300.0}) {
    auto fit = FitRidge(x, y, alpha);
    ASSERT_TRUE(fit.ok()) << fit.status();
    const auto [w, b] = NormalEquations(x, y, alpha);
    ASSERT_EQ(fit->weights.sizes(), w.sizes());
    EXPECT_LT((fit->weights - w).abs().max().item<double>(), 1e-9 * (1.0 + w.abs().max().item<double>()))
        << "alpha " << alpha;
    EXPECT_LT((fit->bias - b).abs().max().item<double>(), 1e-8 * (1.0 + b.abs().max().item<double>()))
        << "alpha " << alpha;
    EXPECT_EQ(fit->alphas.numel(), 4);
    EXPECT_EQ(fit->alphas[0].item<double>(), alpha);
    // Predict is X W + b.
    EXPECT_TRUE(at::allclose(fit->Predict(x), at::matmul(x, w) + b, 1e-9, 1e-8));
  }
}

// Tall (F < N) and wide (F > N, as a convolutional layer's features) problems.
INSTANTIATE_TEST_SUITE_P(TallAndWide, RidgeNormalEquationsTest,
                         ::testing::Values(std::tuple<int64_t, int64_t>{60, 12}, std::tuple<int64_t, int64_t>{25, 80}));

// y_t = X w_t + noise with w_t ~ N(0, tau² I) and noise ~ N(0, sigma²): the ridge penalty that minimises
// the expected prediction error is alpha* = sigma² / tau² (ridge is then the posterior mean of w).
struct Problem {
  at::Tensor x_train, y_train, x_val, y_val;
};

Problem GaussianProblem(const std::vector<double>& sigma, const std::vector<double>& tau, uint64_t seed) {
  const int64_t n_train = 100, n_val = 2000, f = 40, t = static_cast<int64_t>(sigma.size());
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor x = at::empty({n_train + n_val, f}, at::kDouble).normal_(0.0, 1.0, gen);
  at::Tensor y = at::empty({n_train + n_val, t}, at::kDouble);
  for (int64_t j = 0; j < t; ++j) {
    const at::Tensor w = at::empty({f}, at::kDouble).normal_(0.0, tau[j], gen);
    y.select(1, j).copy_(at::matmul(x, w) + at::empty({n_train + n_val}, at::kDouble).normal_(0.0, sigma[j], gen));
  }
  return {x.narrow(0, 0, n_train).to(at::kFloat), y.narrow(0, 0, n_train).to(at::kFloat),
          x.narrow(0, n_train, n_val).to(at::kFloat), y.narrow(0, n_train, n_val).to(at::kFloat)};
}

TEST(RidgeCVTest, PicksASmallAlphaForCleanDataAndALargeOneForNoisyData) {
  // alpha* = 0.01^2 / 1 = 1e-4 (below the grid); and 1 / 0.05^2 = 400 (between 1e2 and 1e3).
  const Problem clean = GaussianProblem({0.01, 0.01, 0.01, 0.01}, {1.0, 1.0, 1.0, 1.0}, 1);
  auto clean_fit = FitRidgeCV(clean.x_train, clean.y_train, clean.x_val, clean.y_val);
  ASSERT_TRUE(clean_fit.ok()) << clean_fit.status();
  // The validation R² is flat below alpha ~ 0.1 here (shrinkage alpha / s² with s² >= ~10), so any of
  // those may win; what matters is that a small one does.
  EXPECT_LE(clean_fit->alphas[0].item<double>(), 0.1);
  EXPECT_GT(clean_fit->validation_r2, 0.99);
  const Problem noisy = GaussianProblem({1.0, 1.0, 1.0, 1.0}, {0.05, 0.05, 0.05, 0.05}, 2);
  auto fit = FitRidgeCV(noisy.x_train, noisy.y_train, noisy.x_val, noisy.y_val);
  ASSERT_TRUE(fit.ok()) << fit.status();
  const double alpha = fit->alphas[0].item<double>();
  EXPECT_GE(alpha, 1e2);
  EXPECT_LE(alpha, 1e3);
  EXPECT_TRUE(at::all(fit->alphas == alpha).item<bool>()) << "one shared alpha";
}

TEST(RidgeCVTest, ScoresEveryAlphaAsADirectFitWould) {
  const Problem p = GaussianProblem({0.5, 1.0, 0.2}, {0.1, 0.1, 0.1}, 5);
  RidgeOptions options;
  auto fit = FitRidgeCV(p.x_train, p.y_train, p.x_val, p.y_val, options);
  ASSERT_TRUE(fit.ok()) << fit.status();
  ASSERT_EQ(fit->validation_r2_per_alpha.sizes(), (at::IntArrayRef{10, 3}));
  for (size_t a = 0; a < options.alphas_.size(); ++a) {
    auto direct = FitRidge(p.x_train, p.y_train, options.alphas_[a]);
    ASSERT_TRUE(direct.ok());
    auto r2 = R2PerTarget(direct->Predict(p.x_val), p.y_val);
    ASSERT_TRUE(r2.ok());
    EXPECT_TRUE(at::allclose(fit->validation_r2_per_alpha[static_cast<int64_t>(a)], *r2, 1e-9, 1e-10))
        << "alpha " << options.alphas_[a];
  }
  // The reported score is the best row's mean, and the chosen alpha's.
  const at::Tensor means = fit->validation_r2_per_alpha.mean(1);
  EXPECT_NEAR(fit->validation_r2, means.max().item<double>(), 1e-12);
  EXPECT_EQ(fit->alphas[0].item<double>(), options.alphas_[static_cast<size_t>(means.argmax().item<int64_t>())]);
}

TEST(RidgeCVTest, PerTargetAlphasFollowEachTargetsNoise) {
  // Target 0: alpha* = 0.03^2 / 1 ~ 1e-3; target 1: alpha* = 1 / 0.1^2 = 100.
  const Problem p = GaussianProblem({0.03, 1.0}, {1.0, 0.1}, 9);
  auto per_target = FitRidgeCV(p.x_train, p.y_train, p.x_val, p.y_val, RidgeOptions().per_target(true));
  ASSERT_TRUE(per_target.ok()) << per_target.status();
  const double low = per_target->alphas[0].item<double>();
  const double high = per_target->alphas[1].item<double>();
  EXPECT_LE(low, 0.1);  // flat below ~0.1, as above
  EXPECT_GE(high, 1e1);
  EXPECT_LE(high, 1e3);
  // Each target at its own best alpha scores at least as well as with one shared alpha.
  auto shared = FitRidgeCV(p.x_train, p.y_train, p.x_val, p.y_val);
  ASSERT_TRUE(shared.ok());
  EXPECT_GE(per_target->validation_r2, shared->validation_r2);
  // The per-target weights are each target's own fixed-alpha fit.
  auto direct_high = FitRidge(p.x_train, p.y_train, high);
  ASSERT_TRUE(direct_high.ok());
  EXPECT_TRUE(at::allclose(per_target->weights.select(1, 1), direct_high->weights.select(1, 1), 1e-9, 1e-12));
}

TEST(RidgeCVTest, KFoldScoresAreTheMeanOfHeldOutFoldFits) {
  const Problem p = GaussianProblem({0.5, 1.0}, {0.1, 0.1}, 11);  // 100 training rows
  RidgeOptions options;
  options.folds(4);
  auto fit = FitRidgeCV(p.x_train, p.y_train, p.x_val, p.y_val, options);
  ASSERT_TRUE(fit.ok()) << fit.status();
  // Each alpha's score: the mean over 4 contiguous folds of 25 rows of the held-out fold's R² per target.
  for (size_t a = 0; a < options.alphas_.size(); ++a) {
    at::Tensor expected = at::zeros({2}, at::kDouble);
    for (int64_t k = 0; k < 4; ++k) {
      const at::Tensor held = at::arange(25 * k, 25 * (k + 1), at::kLong);
      const at::Tensor kept = at::cat({at::arange(0, 25 * k, at::kLong), at::arange(25 * (k + 1), 100, at::kLong)});
      auto direct = FitRidge(p.x_train.index_select(0, kept), p.y_train.index_select(0, kept), options.alphas_[a]);
      ASSERT_TRUE(direct.ok());
      auto r2 = R2PerTarget(direct->Predict(p.x_train.index_select(0, held)), p.y_train.index_select(0, held));
      ASSERT_TRUE(r2.ok());
      expected += *r2;
    }
    expected /= 4.0;
    EXPECT_TRUE(at::allclose(fit->validation_r2_per_alpha[static_cast<int64_t>(a)], expected, 1e-9, 1e-10))
        << "alpha " << options.alphas_[a];
  }
  // The chosen alpha is the best cross-validated one; the weights are the whole training split's fit at it.
  const int64_t best = fit->validation_r2_per_alpha.mean(1).argmax().item<int64_t>();
  const double alpha = options.alphas_[static_cast<size_t>(best)];
  EXPECT_EQ(fit->alphas[0].item<double>(), alpha);
  auto whole = FitRidge(p.x_train, p.y_train, alpha);
  ASSERT_TRUE(whole.ok());
  EXPECT_TRUE(at::allclose(fit->weights, whole->weights, 1e-9, 1e-12));
  // validation_r2 is still the validation split's score of that fit.
  auto validation = R2Score(whole->Predict(p.x_val), p.y_val.to(at::kDouble));
  ASSERT_TRUE(validation.ok());
  EXPECT_NEAR(fit->validation_r2, *validation, 1e-9);
  // Too many folds for the rows, or one fold: refused, naming the value.
  auto too_many = FitRidgeCV(p.x_train, p.y_train, p.x_val, p.y_val, RidgeOptions().folds(51));
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("folds = 51"), std::string::npos) << too_many.status();
  EXPECT_FALSE(FitRidgeCV(p.x_train, p.y_train, p.x_val, p.y_val, RidgeOptions().folds(1)).ok());
}

TEST(RidgeCVTest, BadInputsNameTheValue) {
  const at::Tensor x = at::randn({10, 3}), y = at::randn({10, 2});
  auto rows = FitRidgeCV(x, at::randn({9, 2}), x, y);
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(rows.status().message().find("[10, 3]"), std::string::npos) << rows.status();
  EXPECT_NE(rows.status().message().find("[9, 2]"), std::string::npos) << rows.status();

  auto columns = FitRidgeCV(x, y, at::randn({5, 4}), at::randn({5, 2}));
  ASSERT_FALSE(columns.ok());
  EXPECT_NE(columns.status().message().find("[5, 4]"), std::string::npos) << columns.status();

  at::Tensor bad = y.clone();
  bad[7][1] = std::numeric_limits<float>::quiet_NaN();
  auto nan = FitRidgeCV(x, bad, x, y);
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.status().message().find("training responses"), std::string::npos) << nan.status();
  EXPECT_NE(nan.status().message().find("row 7, column 1"), std::string::npos) << nan.status();
  auto nan_fixed = FitRidge(x, bad, 1.0);
  ASSERT_FALSE(nan_fixed.ok());
  EXPECT_NE(nan_fixed.status().message().find("row 7, column 1"), std::string::npos) << nan_fixed.status();

  auto empty = FitRidgeCV(x, y, x, y, RidgeOptions().alphas({}));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("grid is empty"), std::string::npos) << empty.status();

  for (double alpha : {0.0, -1.0, std::numeric_limits<double>::infinity()}) {
    auto non_positive = FitRidgeCV(x, y, x, y, RidgeOptions().alphas({1.0, alpha}));
    ASSERT_FALSE(non_positive.ok());
    EXPECT_NE(non_positive.status().message().find("alpha[1] = "), std::string::npos) << non_positive.status();
    auto fixed = FitRidge(x, y, alpha);
    ASSERT_FALSE(fixed.ok()) << alpha;
  }

  auto integers = FitRidge(at::ones({10, 3}, at::kLong), y, 1.0);
  ASSERT_FALSE(integers.ok());
  EXPECT_NE(integers.status().message().find("training features"), std::string::npos) << integers.status();
}

}  // namespace
}  // namespace dwarp::engine
