// Contract of encoding_training.h: subspace and full encoding training on a brain with a known answer.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "worker/engine/datasets/synthetic_brain.h"
#include "worker/engine/models/mlp.h"
#include "worker/engine/train/encoding_training.h"
#include "worker/engine/train/feature_cache.h"
#include "worker/engine/train/readout_training.h"
#include "worker/engine/train/ridge_readout.h"

namespace dwarp::engine {
namespace {

torch::jit::Module Mlp(uint64_t seed) {
  auto mlp = CreateMlp(MlpOptions(16, 24).hidden({48}).seed(seed));
  EXPECT_TRUE(mlp.ok()) << mlp.status();
  return std::move(mlp).value();
}

// A brain made by warping the teacher (seed 3) at d = 12, read out linearly with a little noise.
NeuralData Brain() {
  const at::Tensor stimuli = at::randn({600, 16}, at::make_generator<at::CPUGeneratorImpl>(5));
  auto data = MakeSyntheticBrain(Mlp(3), stimuli, {},
                                 SyntheticBrainOptions().targets(10).warp_dim(12).warp_scale(1.5).noise(0.1).seed(8));
  EXPECT_TRUE(data.ok()) << data.status();
  return std::move(data).value();
}

EncodingTrainingOptions Options() {
  return EncodingTrainingOptions()
      .epochs(40)
      .batch_size(32)
      .head_learning_rate(1e-2)
      .learning_rate(5e-2)
      .patience(0)
      .seed(1);
}

double TestR2InSubspace(const NeuralData& data, int64_t d) {
  auto model = SubspaceModel::Create(Mlp(3), SubspaceOptions(d).seed(21));
  EXPECT_TRUE(model.ok()) << model.status();
  auto result = TrainEncoderInSubspace(*model, data, Options());
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? result->test.r2 : -1.0;
}

// d = 0: the best linear readout (ridge, alpha chosen on validation) of the unwarped model's features.
double TestR2Linear(const NeuralData& data) {
  torch::jit::Module model = Mlp(3);
  model.eval();
  auto cache = CacheFeatures([&](const at::Tensor& x) { return model.forward({x}).toTensor(); }, data);
  EXPECT_TRUE(cache.ok()) << cache.status();
  auto result = TrainRidgeReadout(*cache);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? result->test.r2 : 2.0;
}

TEST(EncodingTrainingTest, AWarpedBrainIsFitBetterWithMoreDimensionsThanLinearly) {
  const NeuralData data = Brain();
  const double linear = TestR2Linear(data);
  const double small = TestR2InSubspace(data, 2);
  const double large = TestR2InSubspace(data, 200);
  std::printf("test R^2: d = 0 (ridge): %.4f, d = 2: %.4f, d = 200: %.4f\n", linear, small, large);
  EXPECT_GT(large, small + 0.02) << "d = 2: " << small << ", d = 200: " << large;
  // The brain needs warping: even the best linear readout (closed-form ridge, so not limited by SGD)
  // of the unwarped features stays well below the warped fit.
  EXPECT_GT(large, linear + 0.05) << "d = 0: " << linear << ", d = 200: " << large;
  EXPECT_GT(large, 0.5);
}

TEST(EncodingTrainingTest, BestEpochIsRestoredAndReported) {
  const NeuralData data = Brain();
  auto model = SubspaceModel::Create(Mlp(3), SubspaceOptions(50).seed(2));
  ASSERT_TRUE(model.ok());
  int64_t callbacks = 0;
  auto result = TrainEncoderInSubspace(*model, data, Options().epochs(8).on_epoch([&](const EpochRecord& r) {
    EXPECT_EQ(r.epoch, ++callbacks);
  }));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(callbacks, 8);
  ASSERT_GE(result->best_epoch, 1);
  const double best = result->history[static_cast<size_t>(result->best_epoch - 1)].validation_score;
  EXPECT_NEAR(result->validation.r2, best, 1e-9);  // the restored state scores what its epoch scored
  for (const auto& r : result->history) EXPECT_LE(r.validation_score, best + 1e-12);
  EXPECT_EQ(result->numbers_trained, 50);
  EXPECT_EQ(result->representation_size, 24);
  EXPECT_EQ(result->head_weight.sizes(), (std::vector<int64_t>{10, 24}));
}

TEST(EncodingTrainingTest, FrozenHeadKeepsItsInitialisationWhileTheModelMoves) {
  const NeuralData data = Brain();
  auto a = SubspaceModel::Create(Mlp(3), SubspaceOptions(20));
  auto b = SubspaceModel::Create(Mlp(3), SubspaceOptions(20));
  ASSERT_TRUE(a.ok() && b.ok());
  auto frozen = TrainEncoderInSubspace(*a, data, Options().epochs(3).freeze_head(true));
  auto untrained = TrainEncoderInSubspace(*b, data, Options().epochs(1).freeze_head(true).learning_rate(1e-12));
  ASSERT_TRUE(frozen.ok() && untrained.ok());
  EXPECT_TRUE(at::equal(frozen->head_weight, untrained->head_weight));
  EXPECT_GT(a->theta_d().abs().sum().item<float>(), 0.0f);
}

// The d = 0 ridge fit of the unwarped teacher's features, as the d = 0 ridge job computes it.
RidgeFit D0RidgeFit(const NeuralData& data) {
  torch::jit::Module model = Mlp(3);
  model.eval();
  auto cache = CacheFeatures([&](const at::Tensor& x) { return model.forward({x}).toTensor(); }, data);
  EXPECT_TRUE(cache.ok()) << cache.status();
  auto fit = FitRidgeCV(cache->train.features, cache->train.responses, cache->validation.features,
                        cache->validation.responses);
  EXPECT_TRUE(fit.ok()) << fit.status();
  return std::move(fit).value();
}

void ExpectHeadIsTheRidgeFit(const EncodingTrainingResult& result, const RidgeFit& fit) {
  ASSERT_EQ(result.head_weight.sizes(), (std::vector<int64_t>{10, 24}));
  EXPECT_TRUE(at::allclose(result.head_weight, fit.weights.t().to(at::kFloat), 1e-5, 1e-6))
      << "max difference " << (result.head_weight - fit.weights.t().to(at::kFloat)).abs().max().item<float>();
  EXPECT_TRUE(at::allclose(result.head_bias, fit.bias.to(at::kFloat), 1e-5, 1e-6));
  EXPECT_EQ(result.head_init_alpha, fit.alphas[0].item<double>());
  // The starting state's score is the ridge fit's validation R^2 (float32 head vs float64 fit).
  EXPECT_NEAR(result.head_init_validation_r2, fit.validation_r2, 1e-4);
}

TEST(EncodingTrainingTest, RidgeHeadStartsAtTheD0RidgeFitInSubspaceAndFullTraining) {
  const NeuralData data = Brain();
  const RidgeFit fit = D0RidgeFit(data);
  // A frozen head stays where it started while theta_d moves, so the result shows the initial head.
  auto model = SubspaceModel::Create(Mlp(3), SubspaceOptions(20).seed(4));
  ASSERT_TRUE(model.ok());
  auto subspace = TrainEncoderInSubspace(*model, data, Options().epochs(2).freeze_head(true).head_init(HeadInit::kRidge));
  ASSERT_TRUE(subspace.ok()) << subspace.status();
  ExpectHeadIsTheRidgeFit(*subspace, fit);

  torch::jit::Module module = Mlp(3).deepcopy();
  auto full = TrainEncoderFull(module, data,
                               Options().epochs(2).learning_rate(1e-3).head_learning_rate(1e-3).freeze_head(true)
                                   .head_init(HeadInit::kRidge));
  ASSERT_TRUE(full.ok()) << full.status();
  ExpectHeadIsTheRidgeFit(*full, fit);

  // The default head is torch.nn.Linear's, and records no ridge start.
  auto other = SubspaceModel::Create(Mlp(3), SubspaceOptions(20).seed(4));
  ASSERT_TRUE(other.ok());
  auto random = TrainEncoderInSubspace(*other, data, Options().epochs(1).freeze_head(true));
  ASSERT_TRUE(random.ok()) << random.status();
  EXPECT_FALSE(at::allclose(random->head_weight, fit.weights.t().to(at::kFloat), 1e-3, 1e-3));
  EXPECT_TRUE(std::isnan(random->head_init_alpha));
  EXPECT_TRUE(std::isnan(random->head_init_validation_r2));
}

// The training loop scores only after each epoch; the ridge start is scored before the first and kept
// when no epoch beats it, so a ridge-initialised job never ends below the d = 0 ridge readout.
TEST(EncodingTrainingTest, RidgeHeadNeverEndsBelowTheD0RidgeReadout) {
  const NeuralData data = Brain();
  const RidgeFit fit = D0RidgeFit(data);
  for (const int64_t d : {5, 200}) {
    auto model = SubspaceModel::Create(Mlp(3), SubspaceOptions(d).seed(21));
    ASSERT_TRUE(model.ok());
    auto result = TrainEncoderInSubspace(*model, data, Options().epochs(6).head_init(HeadInit::kRidge));
    ASSERT_TRUE(result.ok()) << result.status();
    std::printf("d = %lld: validation R^2 %.4f (d = 0 ridge %.4f), best epoch %lld\n", static_cast<long long>(d),
                result->validation.r2, fit.validation_r2, static_cast<long long>(result->best_epoch));
    EXPECT_GE(result->validation.r2, fit.validation_r2 - 1e-4) << "d = " << d;
  }

  // Steps far too large wreck the head in the first epoch: the ridge start is restored, model included.
  auto model = SubspaceModel::Create(Mlp(3), SubspaceOptions(20).seed(4));
  ASSERT_TRUE(model.ok());
  auto wrecked = TrainEncoderInSubspace(*model, data, Options().epochs(1).head_learning_rate(0.5).learning_rate(0.5)
                                                         .head_init(HeadInit::kRidge));
  ASSERT_TRUE(wrecked.ok()) << wrecked.status();
  ASSERT_EQ(wrecked->history.size(), 1u);
  EXPECT_LT(wrecked->history[0].validation_score, wrecked->head_init_validation_r2);
  EXPECT_EQ(wrecked->best_epoch, 0);
  EXPECT_NEAR(wrecked->validation.r2, wrecked->head_init_validation_r2, 1e-9);
  EXPECT_EQ(model->theta_d().abs().sum().item<float>(), 0.0f);
  ExpectHeadIsTheRidgeFit(*wrecked, fit);
}

TEST(EncodingTrainingTest, FullTrainingLearns) {
  const NeuralData data = Brain();
  torch::jit::Module module = Mlp(3).deepcopy();
  auto result = TrainEncoderFull(module, data, Options().epochs(15).learning_rate(3e-3).head_learning_rate(3e-3));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->full);
  EXPECT_EQ(result->numbers_trained, MlpParameterCount(MlpOptions(16, 24).hidden({48})));
  EXPECT_GT(result->test.r2, 0.5);
  EXPECT_GT(result->history.back().validation_score, result->history.front().validation_score);
}

TEST(EncodingTrainingTest, DeterministicForASeed) {
  const NeuralData data = Brain();
  auto run = [&] {
    auto model = SubspaceModel::Create(Mlp(3), SubspaceOptions(30));
    return TrainEncoderInSubspace(*model, data, Options().epochs(3));
  };
  auto first = run();
  auto second = run();
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->test.r2, second->test.r2);
}

TEST(EncodingTrainingTest, RejectsBadOptionsAndDataNamingTheValue) {
  const NeuralData data = Brain();
  auto model = SubspaceModel::Create(Mlp(3), SubspaceOptions(10));
  ASSERT_TRUE(model.ok());
  auto bad_lr = TrainEncoderInSubspace(*model, data, Options().learning_rate(-1));
  ASSERT_FALSE(bad_lr.ok());
  EXPECT_NE(bad_lr.status().message().find("learning_rate = -1"), std::string::npos) << bad_lr.status();
  auto bad_epochs = TrainEncoderInSubspace(*model, data, Options().epochs(0));
  ASSERT_FALSE(bad_epochs.ok());
  EXPECT_NE(bad_epochs.status().message().find("epochs = 0"), std::string::npos) << bad_epochs.status();
  NeuralData nan = data;
  nan.train.responses = data.train.responses.clone();
  nan.train.responses[3][4] = std::nanf("");
  auto with_nan = TrainEncoderInSubspace(*model, nan, Options());
  ASSERT_FALSE(with_nan.ok());
  EXPECT_NE(with_nan.status().message().find("row 3"), std::string::npos) << with_nan.status();
}

TEST(EncodingTrainingTest, DivergingRunFailsWithTheReason) {
  const NeuralData data = Brain();
  auto model = SubspaceModel::Create(Mlp(3), SubspaceOptions(10));
  ASSERT_TRUE(model.ok());
  auto result = TrainEncoderInSubspace(*model, data, Options().learning_rate(1e12).head_learning_rate(1e12).epochs(5));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("diverged"), std::string::npos) << result.status();
}

}  // namespace
}  // namespace dwarp::engine
