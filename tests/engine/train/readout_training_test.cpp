#include "worker/engine/train/readout_training.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "worker/engine/train/feature_cache.h"
#include "worker/engine/train/metrics.h"

namespace dwarp::engine {
namespace {

// A frozen "model": stimuli [N, 2, 3, 4] -> tanh(flatten(x) M) [N, 16], with a call counter.
struct TanhFeatures {
  at::Tensor m;
  int64_t calls = 0;
  FeatureExtractor Extractor() {
    return [this](const at::Tensor& x) {
      ++calls;
      EXPECT_FALSE(at::GradMode::is_enabled()) << "features are computed without autograd";
      return at::tanh(at::matmul(x.reshape({x.size(0), -1}), m));
    };
  }
};

TanhFeatures MakeTanhFeatures(uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return {(at::empty({24, 16}).normal_(0.0, 0.3, gen)).set_requires_grad(true)};
}

// Responses that are a linear function of the features plus noise, split 300 / 100 / 100.
NeuralData LinearNeuralData(TanhFeatures& model, double noise, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t n = 500, targets = 5;
  const at::Tensor stimuli = at::empty({n, 2, 3, 4}).normal_(0.0, 1.0, gen);
  at::Tensor features;
  {
    at::NoGradGuard no_grad;
    features = at::tanh(at::matmul(stimuli.reshape({n, -1}), model.m));
  }
  const at::Tensor w = at::empty({16, targets}).normal_(0.0, 1.0, gen);
  const at::Tensor responses = at::matmul(features, w) + 0.5 + at::empty({n, targets}).normal_(0.0, noise, gen);
  NeuralData data;
  const auto split = [&](int64_t begin, int64_t count) {
    NeuralSplit s;
    s.stimuli = stimuli.narrow(0, begin, count);
    s.responses = responses.narrow(0, begin, count);
    for (int64_t i = 0; i < count; ++i) s.stimulus_ids.push_back("img" + std::to_string(begin + i));
    return s;
  };
  data.train = split(0, 300);
  data.validation = split(300, 100);
  data.test = split(400, 100);
  for (int64_t t = 0; t < targets; ++t) data.target_names.push_back("neuroid" + std::to_string(t));
  return data;
}

TEST(FeatureCacheTest, RunsTheModelOnceInBatchesWithoutAutograd) {
  TanhFeatures model = MakeTanhFeatures(1);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const at::Tensor stimuli = at::empty({10, 2, 3, 4}).normal_(0.0, 1.0, gen);
  auto features = ComputeFeatures(model.Extractor(), stimuli, FeatureCacheOptions().batch_size(4));
  ASSERT_TRUE(features.ok()) << features.status();
  EXPECT_EQ(model.calls, 3);  // 4 + 4 + 2
  EXPECT_EQ(features->sizes(), (at::IntArrayRef{10, 16}));
  EXPECT_EQ(features->scalar_type(), at::kFloat);
  EXPECT_FALSE(features->requires_grad());
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::allclose(*features, at::tanh(at::matmul(stimuli.reshape({10, -1}), model.m)), 1e-6, 1e-6));
}

TEST(FeatureCacheTest, CachesEverySplitWithItsResponses) {
  TanhFeatures model = MakeTanhFeatures(1);
  const NeuralData data = LinearNeuralData(model, 0.1, 3);
  auto cache = CacheFeatures(model.Extractor(), data, FeatureCacheOptions().batch_size(128));
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ(model.calls, 3 + 1 + 1);
  EXPECT_EQ(cache->train.features.sizes(), (at::IntArrayRef{300, 16}));
  EXPECT_EQ(cache->validation.size(), 100);
  EXPECT_EQ(cache->test.responses.sizes(), (at::IntArrayRef{100, 5}));
  EXPECT_TRUE(at::equal(cache->test.responses, data.test.responses));
  EXPECT_EQ(cache->num_features(), 16);
  EXPECT_EQ(cache->num_targets(), 5);
}

TEST(FeatureCacheTest, BadExtractorsAndSplitsNameTheProblem) {
  const at::Tensor stimuli = at::zeros({10, 3});
  auto rows = ComputeFeatures([](const at::Tensor& x) { return x.narrow(0, 0, 1); }, stimuli,
                              FeatureCacheOptions().batch_size(4));
  ASSERT_FALSE(rows.ok());
  EXPECT_EQ(rows.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(rows.status().message().find("batch of 4"), std::string::npos) << rows.status();

  auto nan = ComputeFeatures([](const at::Tensor& x) { return at::log(x - 1.0); }, at::zeros({3, 2}));
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.status().message().find("row 0, column 0"), std::string::npos) << nan.status();

  auto throws = ComputeFeatures([](const at::Tensor& x) { return at::matmul(x, at::zeros({5, 2})); }, stimuli);
  ASSERT_FALSE(throws.ok());
  EXPECT_EQ(throws.status().code(), StatusCode::kInternal) << throws.status();

  auto batch = ComputeFeatures([](const at::Tensor& x) { return x; }, stimuli, FeatureCacheOptions().batch_size(0));
  ASSERT_FALSE(batch.ok());
  EXPECT_NE(batch.status().message().find("batch_size = 0"), std::string::npos) << batch.status();

  TanhFeatures model = MakeTanhFeatures(1);
  NeuralData data = LinearNeuralData(model, 0.1, 3);
  data.validation.responses = data.validation.responses.narrow(0, 0, 99);
  auto mismatch = CacheFeatures(model.Extractor(), data);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("validation split"), std::string::npos) << mismatch.status();
  EXPECT_NE(mismatch.status().message().find("[99, 5]"), std::string::npos) << mismatch.status();
}

CachedFeatures LinearCache(double noise, uint64_t seed) {
  TanhFeatures model = MakeTanhFeatures(1);
  auto cache = CacheFeatures(model.Extractor(), LinearNeuralData(model, noise, seed));
  EXPECT_TRUE(cache.ok()) << cache.status();
  return std::move(cache).value();
}

SgdReadoutOptions FastSgd() {
  return SgdReadoutOptions().head_learning_rate(0.05).batch_size(32).epochs(60).patience(10).seed(3);
}

TEST(SgdReadoutTest, LearnsTheLinearMapAndRestoresTheBestEpoch) {
  const CachedFeatures cache = LinearCache(0.1, 4);
  int64_t callbacks = 0;
  auto result = TrainSgdReadout(cache, FastSgd().on_epoch([&](const EpochRecord& r) {
    EXPECT_EQ(r.epoch, ++callbacks);
  }));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(callbacks, result->epochs_run);
  ASSERT_EQ(static_cast<int64_t>(result->history.size()), result->epochs_run);
  EXPECT_LT(result->history.back().train_loss, result->history.front().train_loss);
  EXPECT_GT(result->test.r2, 0.9);
  EXPECT_GT(result->test.pearson_mean, 0.95);
  EXPECT_GT(result->seconds, 0.0);

  // The restored head is the best epoch's: its validation score is that epoch's record, and scoring the
  // returned weights again gives the reported test score.
  ASSERT_GE(result->best_epoch, 1);
  EXPECT_DOUBLE_EQ(result->validation.r2,
                   result->history[static_cast<size_t>(result->best_epoch - 1)].validation_score);
  ASSERT_EQ(result->head_weight.sizes(), (at::IntArrayRef{5, 16}));
  auto test_r2 = R2Score(at::linear(cache.test.features, result->head_weight, result->head_bias), cache.test.responses);
  ASSERT_TRUE(test_r2.ok());
  EXPECT_DOUBLE_EQ(*test_r2, result->test.r2);

  // Closed-form ridge on the same cache is the yardstick: SGD gets close to it.
  auto ridge = TrainRidgeReadout(cache);
  ASSERT_TRUE(ridge.ok()) << ridge.status();
  EXPECT_GT(ridge->test.r2, 0.95);
  EXPECT_GT(result->test.r2, ridge->test.r2 - 0.05);
  EXPECT_EQ(ridge->alphas.numel(), 5);
  EXPECT_EQ(ridge->head_weight.sizes(), (at::IntArrayRef{5, 16}));
  EXPECT_EQ(ridge->epochs_run, 0);
}

TEST(SgdReadoutTest, StopsEarlyAfterPatienceEpochsWithoutImprovement) {
  // Few training rows, pure-noise responses: the validation R² peaks early and then falls as the head fits
  // the noise, so training must stop `patience` epochs after the best one.
  CachedFeatures cache = LinearCache(0.1, 5);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(6);
  cache.train.features = cache.train.features.narrow(0, 0, 20);
  cache.train.responses = at::empty({20, 5}).normal_(0.0, 1.0, gen);
  cache.validation.responses = at::empty({100, 5}).normal_(0.0, 1.0, gen);
  cache.test.responses = at::empty({100, 5}).normal_(0.0, 1.0, gen);
  auto result = TrainSgdReadout(cache, FastSgd().epochs(500).patience(4).batch_size(5));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_LT(result->epochs_run, 500);
  EXPECT_EQ(result->epochs_run, result->best_epoch + 4);
  for (size_t i = static_cast<size_t>(result->best_epoch); i < result->history.size(); ++i) {
    EXPECT_FALSE(result->history[i].improved);
    EXPECT_LE(result->history[i].validation_score, result->validation.r2);
  }
}

TEST(SgdReadoutTest, MinDeltaIgnoresSmallImprovements) {
  const CachedFeatures cache = LinearCache(0.1, 4);
  auto result = TrainSgdReadout(cache, FastSgd().min_delta(1e6).patience(3));
  ASSERT_TRUE(result.ok()) << result.status();
  // Only the first epoch improves on -infinity by more than 1e6.
  EXPECT_EQ(result->best_epoch, 1);
  EXPECT_EQ(result->epochs_run, 4);
}

TEST(SgdReadoutTest, SameSeedSameHeadOtherSeedOtherHead) {
  const CachedFeatures cache = LinearCache(0.1, 4);
  auto a = TrainSgdReadout(cache, FastSgd().epochs(3).patience(0));
  auto b = TrainSgdReadout(cache, FastSgd().epochs(3).patience(0));
  auto c = TrainSgdReadout(cache, FastSgd().epochs(3).patience(0).seed(4));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(at::equal(a->head_weight, b->head_weight));
  EXPECT_FALSE(at::equal(a->head_weight, c->head_weight));
}

TEST(SgdReadoutTest, DivergingRunFailsWithTheReason) {
  const CachedFeatures cache = LinearCache(0.1, 4);
  auto result = TrainSgdReadout(cache, FastSgd().head_learning_rate(1e36));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("diverged"), std::string::npos) << result.status();
  EXPECT_NE(result.status().message().find("1e+36"), std::string::npos) << result.status();
}

TEST(SgdReadoutTest, BadOptionsAndDataNameTheValue) {
  CachedFeatures cache = LinearCache(0.1, 4);
  const std::pair<SgdReadoutOptions, std::string> bad[] = {
      {FastSgd().head_learning_rate(0.0), "head_learning_rate = 0"},
      {FastSgd().head_weight_decay(-1.0), "head_weight_decay = -1"},
      {FastSgd().batch_size(0), "batch_size = 0"},
      {FastSgd().epochs(0), "epochs = 0"},
      {FastSgd().patience(-2), "patience = -2"},
      {FastSgd().min_delta(-0.5), "min_delta = -0.5"},
  };
  for (const auto& [options, expected] : bad) {
    auto result = TrainSgdReadout(cache, options);
    ASSERT_FALSE(result.ok()) << expected;
    EXPECT_NE(result.status().message().find(expected), std::string::npos) << result.status();
  }
  cache.test.responses = cache.test.responses.clone();
  cache.test.responses[42][3] = std::numeric_limits<float>::quiet_NaN();
  auto nan = TrainSgdReadout(cache, FastSgd());
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.status().message().find("test responses"), std::string::npos) << nan.status();
  EXPECT_NE(nan.status().message().find("row 42, column 3"), std::string::npos) << nan.status();
  auto nan_ridge = TrainRidgeReadout(cache);
  ASSERT_FALSE(nan_ridge.ok());
  EXPECT_NE(nan_ridge.status().message().find("row 42, column 3"), std::string::npos) << nan_ridge.status();

  CachedFeatures narrow = LinearCache(0.1, 4);
  narrow.validation.features = narrow.validation.features.narrow(1, 0, 15);
  auto shape = TrainSgdReadout(narrow, FastSgd());
  ASSERT_FALSE(shape.ok());
  EXPECT_NE(shape.status().message().find("[100, 15]"), std::string::npos) << shape.status();
}

}  // namespace
}  // namespace dwarp::engine
