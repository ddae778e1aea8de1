// Contract of rsa_training.h: the RDM, the loss (differentiable, zero for equal RDMs), the score, and
// training through a subspace against a synthetic brain.
#include "worker/engine/train/rsa_training.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "worker/engine/datasets/synthetic_brain.h"
#include "worker/engine/models/mlp.h"

namespace dwarp::engine {
namespace {

at::Tensor Random(std::vector<int64_t> shape, uint64_t seed, at::ScalarType dtype = at::kDouble) {
  return at::randn(shape, at::make_generator<at::CPUGeneratorImpl>(seed), dtype);
}

torch::jit::Module Mlp(uint64_t seed) {
  auto mlp = CreateMlp(MlpOptions(16, 12).hidden({32}).seed(seed));
  EXPECT_TRUE(mlp.ok()) << mlp.status();
  return std::move(mlp).value();
}

TEST(RsaTest, TheRdmHoldsCorrelationDistances) {
  const at::Tensor x = at::tensor({1.0, 2.0, 3.0, -1.0, -2.0, -3.0, 2.0, 4.0, 6.0}, at::kDouble).view({3, 3});
  const at::Tensor rdm = CorrelationDistanceRdm(x);
  ASSERT_EQ(rdm.sizes(), (std::vector<int64_t>{3, 3}));
  EXPECT_NEAR(rdm[0][0].item<double>(), 0.0, 1e-12);
  EXPECT_NEAR(rdm[0][1].item<double>(), 2.0, 1e-12);  // anti-correlated
  EXPECT_NEAR(rdm[0][2].item<double>(), 0.0, 1e-12);  // the same up to scale
  EXPECT_TRUE(at::allclose(rdm, rdm.transpose(0, 1)));
  // A constant stimulus correlates 0 with every other: distance 1, not NaN.
  const at::Tensor with_constant = at::cat({x, at::full({1, 3}, 5.0, at::kDouble)});
  const at::Tensor rdm4 = CorrelationDistanceRdm(with_constant);
  EXPECT_NEAR(rdm4[3][0].item<double>(), 1.0, 1e-12);
}

TEST(RsaTest, TheLossIsZeroForEqualRdmsAndDifferentiable) {
  const at::Tensor brain = Random({12, 7}, 1);
  const at::Tensor same = brain.clone();
  EXPECT_NEAR(RsaLoss(same, brain).item<double>(), 0.0, 1e-12);
  // Per-stimulus scale and offset do not change correlation distances.
  EXPECT_NEAR(RsaLoss(brain * 3.0 + 2.0, brain).item<double>(), 0.0, 1e-12);
  // Another representation: a clear loss.
  const at::Tensor other = Random({12, 5}, 2).set_requires_grad(true);
  const at::Tensor loss = RsaLoss(other, brain);
  EXPECT_GT(loss.item<double>(), 0.5);
  loss.backward();
  const at::Tensor grad = other.grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_TRUE(at::isfinite(grad).all().item<bool>());
  EXPECT_GT(grad.abs().max().item<double>(), 1e-6);
  // The gradient is the loss's: central differences on a few entries.
  for (int64_t i : {0, 17, 40}) {
    const double h = 1e-6;
    at::Tensor plus = other.detach().clone(), minus = other.detach().clone();
    plus.view(-1)[i] += h;
    minus.view(-1)[i] -= h;
    const double numeric = (RsaLoss(plus, brain).item<double>() - RsaLoss(minus, brain).item<double>()) / (2 * h);
    EXPECT_NEAR(grad.view(-1)[i].item<double>(), numeric, 1e-6) << "entry " << i;
  }
  // A gradient step lowers the loss.
  const at::Tensor stepped = (other.detach() - 0.05 * grad);
  EXPECT_LT(RsaLoss(stepped, brain).item<double>(), loss.item<double>());
}

TEST(RsaTest, ScoreNeedsThreeStimuliOfOneCount) {
  EXPECT_NEAR(*RsaScore(Random({6, 4}, 3), Random({6, 4}, 3)), 1.0, 1e-12);
  auto two = RsaScore(Random({2, 4}, 3), Random({2, 4}, 3));
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("N >= 3"), std::string::npos) << two.status();
  auto mismatch = RsaScore(Random({6, 4}, 3), Random({5, 4}, 3));
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("[5, 4]"), std::string::npos) << mismatch.status();
}

NeuralData Brain(double warp_scale) {
  const at::Tensor stimuli = Random({300, 16}, 11, at::kFloat);
  auto brain = MakeSyntheticBrain(Mlp(3), stimuli, {},
                                  SyntheticBrainOptions().targets(20).warp_dim(10).warp_scale(warp_scale).noise(0.1).seed(4));
  EXPECT_TRUE(brain.ok()) << brain.status();
  return std::move(brain).value();
}

TEST(RsaTest, OnASyntheticBrainTheTeacherScoresHighestAtDZero) {
  const NeuralData brain = Brain(0.0);
  const RsaTrainingOptions options;
  auto teacher = ScoreRsa(Mlp(3), brain, options);
  ASSERT_TRUE(teacher.ok()) << teacher.status();
  EXPECT_EQ(teacher->representation_size, 12);
  EXPECT_EQ(teacher->epochs_run, 0);
  for (uint64_t seed : {4, 5, 6}) {
    auto other = ScoreRsa(Mlp(seed), brain, options);
    ASSERT_TRUE(other.ok()) << other.status();
    std::printf("RSA test score: teacher %.4f, network of seed %llu %.4f\n", teacher->scores.test,
                static_cast<unsigned long long>(seed), other->scores.test);
    EXPECT_GT(teacher->scores.test, other->scores.test + 0.05) << "seed " << seed;
  }
}

TEST(RsaTest, TrainingThroughASubspaceMovesTheRdmTowardsTheBrains) {
  const NeuralData brain = Brain(0.0);
  const auto options = RsaTrainingOptions().learning_rate(0.05).batch_size(32).epochs(15).patience(0).seed(1);
  auto start = ScoreRsa(Mlp(5), brain, options);
  ASSERT_TRUE(start.ok()) << start.status();
  auto model = SubspaceModel::Create(Mlp(5), SubspaceOptions(200).seed(7));
  ASSERT_TRUE(model.ok()) << model.status();
  auto trained = TrainRsaInSubspace(*model, brain, options);
  ASSERT_TRUE(trained.ok()) << trained.status();
  std::printf("RSA scores at d = 0 / d = 200: train %.4f / %.4f, validation %.4f / %.4f, test %.4f / %.4f\n",
              start->scores.train, trained->scores.train, start->scores.validation, trained->scores.validation,
              start->scores.test, trained->scores.test);
  EXPECT_EQ(trained->numbers_trained, 200);
  EXPECT_EQ(trained->epochs_run, 15);
  EXPECT_GT(trained->scores.train, start->scores.train + 0.05);
  EXPECT_GT(trained->scores.test, start->scores.test + 0.02);
  // Never below the unwarped start on validation: it competes with the epochs.
  EXPECT_GE(trained->scores.validation, start->scores.validation - 1e-9);
}

TEST(RsaTest, BadOptionsAndSplitsAreRefusedNamingTheValue) {
  const NeuralData brain = Brain(0.0);
  auto model = SubspaceModel::Create(Mlp(5), SubspaceOptions(10));
  ASSERT_TRUE(model.ok());
  auto small_batch = TrainRsaInSubspace(*model, brain, RsaTrainingOptions().batch_size(2));
  ASSERT_FALSE(small_batch.ok());
  EXPECT_NE(small_batch.status().message().find("batch_size = 2"), std::string::npos) << small_batch.status();
  auto bad_rate = TrainRsaInSubspace(*model, brain, RsaTrainingOptions().learning_rate(0.0));
  ASSERT_FALSE(bad_rate.ok());
  EXPECT_NE(bad_rate.status().message().find("learning_rate = 0"), std::string::npos) << bad_rate.status();
  NeuralData tiny = brain;
  tiny.test.stimuli = tiny.test.stimuli.narrow(0, 0, 2);
  tiny.test.responses = tiny.test.responses.narrow(0, 0, 2);
  tiny.test.stimulus_ids.resize(2);
  auto too_few = ScoreRsa(Mlp(5), tiny, RsaTrainingOptions());
  ASSERT_FALSE(too_few.ok());
  EXPECT_NE(too_few.status().message().find("test split has 2 stimuli"), std::string::npos) << too_few.status();
}

}  // namespace
}  // namespace dwarp::engine
