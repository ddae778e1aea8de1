#include "worker/engine/train/metrics.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include <unistd.h>

#include "worker/engine/train/tensor_checks.h"

namespace dwarp::engine {
namespace {

at::Tensor Matrix(std::initializer_list<std::initializer_list<double>> rows) {
  std::vector<double> values;
  int64_t cols = 0;
  for (const auto& row : rows) {
    cols = static_cast<int64_t>(row.size());
    values.insert(values.end(), row.begin(), row.end());
  }
  return at::tensor(values, at::kDouble).view({static_cast<int64_t>(rows.size()), cols}).clone();
}

// torchmetrics' own docstring example, worked by hand:
//   target column 0: 0.5, -1, 7   mean 13/6, SS_tot = (1/2-13/6)^2 + (-1-13/6)^2 + (7-13/6)^2 = 217/6
//            preds   0,   -1, 8   SS_res = 0.25 + 0 + 1 = 5/4           R² = 1 - (5/4)/(217/6) = 1 - 7.5/217
//   target column 1: 1, 1, -6     mean -4/3, SS_tot = 2 (7/3)^2 + (14/3)^2 = 98/3
//            preds   2, 2, -5     SS_res = 3                            R² = 1 - 3/(98/3) = 1 - 9/98
// (torchmetrics prints tensor([0.9654, 0.9082]).)
TEST(MetricsTest, R2MatchesTheHandWorkedTorchmetricsExample) {
  const at::Tensor target = Matrix({{0.5, 1}, {-1, 1}, {7, -6}});
  const at::Tensor preds = Matrix({{0, 2}, {-1, 2}, {8, -5}});
  auto per_target = R2PerTarget(preds.to(at::kFloat), target.to(at::kFloat));
  ASSERT_TRUE(per_target.ok()) << per_target.status();
  ASSERT_EQ(per_target->scalar_type(), at::kDouble);
  ASSERT_EQ(per_target->numel(), 2);
  EXPECT_NEAR((*per_target)[0].item<double>(), 1.0 - 7.5 / 217.0, 1e-12);
  EXPECT_NEAR((*per_target)[1].item<double>(), 1.0 - 9.0 / 98.0, 1e-12);
  auto average = R2Score(preds, target);
  ASSERT_TRUE(average.ok());
  EXPECT_NEAR(*average, 0.5 * ((1.0 - 7.5 / 217.0) + (1.0 - 9.0 / 98.0)), 1e-12);
}

TEST(MetricsTest, OneDimensionalInputsAreOneTarget) {
  // y = 1, 2, 3: mean 2, SS_tot = 2; p = 1, 2, 4: SS_res = 1; R² = 1/2.
  auto r2 = R2Score(at::tensor({1.0, 2.0, 4.0}), at::tensor({1.0, 2.0, 3.0}));
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_DOUBLE_EQ(*r2, 0.5);
}

// torchmetrics' rules for (near-)constant columns, with its absolute tolerance 1e-4 on both sums.
TEST(MetricsTest, ConstantTargetsFollowTorchmetrics) {
  // Column 0: constant target predicted exactly           -> SS_res = 0 -> 1
  // Column 1: constant target predicted off by 1 per row  -> SS_res = 3, SS_tot = 0 -> 0
  // Column 2: SS_res = 3 * (0.005)^2 = 7.5e-5 <= 1e-4, SS_tot = 2 -> 1 (not 1 - 3.75e-5)
  const at::Tensor target = Matrix({{5, 5, 1}, {5, 5, 2}, {5, 5, 3}});
  const at::Tensor preds = Matrix({{5, 6, 1.005}, {5, 6, 2.005}, {5, 6, 3.005}});
  auto per_target = R2PerTarget(preds, target);
  ASSERT_TRUE(per_target.ok()) << per_target.status();
  EXPECT_EQ((*per_target)[0].item<double>(), 1.0);
  EXPECT_EQ((*per_target)[1].item<double>(), 0.0);
  EXPECT_EQ((*per_target)[2].item<double>(), 1.0);
  auto average = R2Score(preds, target);
  ASSERT_TRUE(average.ok());
  EXPECT_NEAR(*average, 2.0 / 3.0, 1e-15);
}

// r by hand: p = 1, 2, 3 and y = 1, 3, 2: centred (-1, 0, 1) and (-1, 1, 0): r = 1 / sqrt(2 * 2) = 0.5.
TEST(MetricsTest, PearsonPerTargetMeanAndMedian) {
  const at::Tensor preds = Matrix({{1, 1, 1, 1}, {2, 2, 2, 2}, {3, 3, 3, 3}});
  const at::Tensor target = Matrix({{2, 3, 1, 7}, {4, 2, 3, 7}, {6, 1, 2, 7}});
  auto scores = ScoreRegression(preds, target);
  ASSERT_TRUE(scores.ok()) << scores.status();
  const at::Tensor r = scores->pearson_per_target;
  EXPECT_NEAR(r[0].item<double>(), 1.0, 1e-15);
  EXPECT_NEAR(r[1].item<double>(), -1.0, 1e-15);
  EXPECT_NEAR(r[2].item<double>(), 0.5, 1e-15);
  EXPECT_TRUE(std::isnan(r[3].item<double>())) << "a constant response column has no correlation";
  EXPECT_EQ(scores->pearson_undefined, 1);
  EXPECT_NEAR(scores->pearson_mean, (1.0 - 1.0 + 0.5) / 3.0, 1e-15);
  EXPECT_NEAR(scores->pearson_median, 0.5, 1e-15);
  // Even count: the median is the mean of the middle two (-1, 0.5 | 1 -> drop column 0: -1, 0.5).
  auto even = ScoreRegression(preds.narrow(1, 1, 2), target.narrow(1, 1, 2));
  ASSERT_TRUE(even.ok());
  EXPECT_NEAR(even->pearson_median, -0.25, 1e-15);
  EXPECT_NEAR(even->pearson_mean, -0.25, 1e-15);
}

TEST(MetricsTest, SumsAreFloat64WhateverTheInputDtype) {
  // Responses with a large offset and small spread: float32 accumulation of SS_tot in one pass
  // (sum y² - n mean²) loses every digit here; float64 two-pass keeps them.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
  const at::Tensor target = (at::empty({20000, 3}).normal_(0.0, 1.0, gen) + 1000.0).to(at::kFloat);
  const at::Tensor preds = (target.to(at::kDouble) + at::empty({20000, 3}, at::kDouble).normal_(0.0, 0.5, gen))
                               .to(at::kFloat);
  auto from_float = R2Score(preds, target);
  auto from_double = R2Score(preds.to(at::kDouble), target.to(at::kDouble));
  ASSERT_TRUE(from_float.ok() && from_double.ok());
  EXPECT_EQ(*from_float, *from_double);
  EXPECT_NEAR(*from_float, 0.75, 0.02);  // 1 - 0.25 / 1
}

// An independent implementation: numpy (Debian's /usr/bin/python3) computes R² and np.corrcoef on the
// same numbers, read from a fixture this test writes.
TEST(MetricsTest, AgreesWithNumpy) {
  if (std::system("/usr/bin/python3 -c 'import numpy' > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 with numpy is not available";
  }
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const int64_t n = 157, t = 9;
  const at::Tensor target = at::empty({n, t}, at::kDouble).normal_(0.0, 2.0, gen);
  const at::Tensor preds = (0.6 * target + at::empty({n, t}, at::kDouble).normal_(0.0, 1.5, gen)).contiguous();
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("dwarp_metrics_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir / "data.bin", std::ios::binary);
    out.write(reinterpret_cast<const char*>(preds.data_ptr<double>()), n * t * sizeof(double));
    const at::Tensor y = target.contiguous();
    out.write(reinterpret_cast<const char*>(y.data_ptr<double>()), n * t * sizeof(double));
  }
  const std::string script =
      "import numpy as np, sys\n"
      "d = np.fromfile(sys.argv[1], dtype=np.float64).reshape(2, " + std::to_string(n) + ", " + std::to_string(t) +
      ")\n"
      "p, y = d[0], d[1]\n"
      "r2 = 1 - ((y - p) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)\n"
      "r = np.array([np.corrcoef(p[:, j], y[:, j])[0, 1] for j in range(y.shape[1])])\n"
      "np.concatenate([r2, r, [r2.mean(), r.mean(), np.median(r)]]).tofile(sys.argv[2])\n";
  { std::ofstream(dir / "score.py") << script; }
  const std::string command = "/usr/bin/python3 " + (dir / "score.py").string() + " " + (dir / "data.bin").string() +
                              " " + (dir / "expected.bin").string();
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::vector<double> expected(2 * t + 3);
  {
    std::ifstream in(dir / "expected.bin", std::ios::binary);
    in.read(reinterpret_cast<char*>(expected.data()), static_cast<std::streamsize>(expected.size() * sizeof(double)));
    ASSERT_TRUE(in.good());
  }
  std::filesystem::remove_all(dir);

  auto scores = ScoreRegression(preds, target);
  ASSERT_TRUE(scores.ok()) << scores.status();
  for (int64_t j = 0; j < t; ++j) {
    EXPECT_NEAR(scores->r2_per_target[j].item<double>(), expected[j], 1e-12) << "target " << j;
    EXPECT_NEAR(scores->pearson_per_target[j].item<double>(), expected[t + j], 1e-12) << "target " << j;
  }
  EXPECT_NEAR(scores->r2, expected[2 * t], 1e-12);
  EXPECT_NEAR(scores->pearson_mean, expected[2 * t + 1], 1e-12);
  EXPECT_NEAR(scores->pearson_median, expected[2 * t + 2], 1e-12);
  EXPECT_EQ(scores->pearson_undefined, 0);
}

TEST(MetricsTest, AccuracyFromLogitsOrLabels) {
  const at::Tensor logits = Matrix({{0.1, 0.9, 0.0}, {2.0, 1.0, 0.0}, {0.0, 0.0, 3.0}, {1.0, 0.0, 0.5}});
  const at::Tensor labels = at::tensor({1, 0, 1, 0}, at::kLong);
  auto from_logits = Accuracy(logits, labels);
  ASSERT_TRUE(from_logits.ok()) << from_logits.status();
  EXPECT_DOUBLE_EQ(*from_logits, 0.75);
  auto from_labels = Accuracy(at::tensor({1, 0, 2, 2}, at::kLong), labels);
  ASSERT_TRUE(from_labels.ok());
  EXPECT_DOUBLE_EQ(*from_labels, 0.5);
  auto wrong_rows = Accuracy(logits.narrow(0, 0, 3), labels);
  ASSERT_FALSE(wrong_rows.ok());
  EXPECT_NE(wrong_rows.status().message().find("[3, 3]"), std::string::npos) << wrong_rows.status();
}

TEST(MetricsTest, BadInputsNameTheValue) {
  const at::Tensor a = at::zeros({4, 3});
  auto mismatch = R2Score(a, at::zeros({4, 2}));
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.status().message().find("[4, 3]"), std::string::npos) << mismatch.status();
  EXPECT_NE(mismatch.status().message().find("[4, 2]"), std::string::npos) << mismatch.status();

  at::Tensor target = at::ones({4, 3});
  target[2][1] = std::numeric_limits<float>::quiet_NaN();
  auto nan = ScoreRegression(a, target);
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.status().message().find("targets"), std::string::npos) << nan.status();
  EXPECT_NE(nan.status().message().find("row 2, column 1"), std::string::npos) << nan.status();

  auto one_row = R2Score(at::zeros({1, 3}), at::zeros({1, 3}));
  ASSERT_FALSE(one_row.ok());
  EXPECT_NE(one_row.status().message().find("got 1"), std::string::npos) << one_row.status();

  auto integers = PearsonPerTarget(at::zeros({4, 3}, at::kLong), at::zeros({4, 3}));
  ASSERT_FALSE(integers.ok());
  EXPECT_NE(integers.status().message().find("Long"), std::string::npos) << integers.status();
}

}  // namespace
}  // namespace dwarp::engine

namespace dwarp::engine::internal {
namespace {

TEST(TensorChecksTest, FiniteCheckSurvivesAnOverflowingSumAndNamesTheFirstBadElement) {
  // The float64 sum of these finite values overflows to inf; the check must still pass them.
  EXPECT_TRUE(CheckFinite(at::full({3}, 1e308, at::kDouble), "big").ok());
  at::Tensor bad = at::zeros({2, 3});
  bad[1][2] = -std::numeric_limits<float>::infinity();
  bad[1][0] = std::numeric_limits<float>::quiet_NaN();
  const Status status = CheckFinite(bad, "responses");
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("responses has the non-finite value nan at row 1, column 0"), std::string::npos)
      << status;
  const Status flat = CheckFinite(at::tensor({1.0, 2.0, std::numeric_limits<double>::infinity()}), "v");
  ASSERT_FALSE(flat.ok());
  EXPECT_NE(flat.message().find("flat index 2"), std::string::npos) << flat;
}

}  // namespace
}  // namespace dwarp::engine::internal
