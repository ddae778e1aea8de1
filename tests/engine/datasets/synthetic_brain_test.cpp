// Contract of synthetic_brain.h: responses are a known warp of a teacher's representation plus noise.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <string>

#include "worker/engine/datasets/synthetic_brain.h"
#include "worker/engine/models/mlp.h"
#include "worker/engine/seeded_random.h"
#include "worker/engine/subspace_model.h"

namespace dwarp::engine {
namespace {

torch::jit::Module Teacher(uint64_t seed = 3) {
  auto mlp = CreateMlp(MlpOptions(16, 12).hidden({32}).seed(seed));
  EXPECT_TRUE(mlp.ok()) << mlp.status();
  return std::move(mlp).value();
}

at::Tensor Stimuli(int64_t n = 400) { return at::randn({n, 16}, at::make_generator<at::CPUGeneratorImpl>(11)); }

at::Tensor Features(torch::jit::Module module, const at::Tensor& x) {
  at::NoGradGuard no_grad;
  module.eval();
  return module.forward({x}).toTensor().to(at::kDouble);
}

// Test R^2 (uniform over targets) of a least-squares linear map fitted on the training rows.
double LinearFitR2(const at::Tensor& train_x, const at::Tensor& train_y, const at::Tensor& test_x,
                   const at::Tensor& test_y) {
  auto with_bias = [](const at::Tensor& x) { return at::cat({x, at::ones({x.size(0), 1}, x.options())}, 1); };
  // gelsd (SVD): a rank found by column-pivoted QR (gelsy, the default) can come out one short on
  // nearly dependent columns, depending on how the threads summed.
  const at::Tensor w =
      std::get<0>(at::linalg_lstsq(with_bias(train_x), train_y.to(at::kDouble), c10::nullopt, "gelsd"));
  const at::Tensor y = test_y.to(at::kDouble);
  const at::Tensor residual = (y - at::matmul(with_bias(test_x), w)).pow(2).sum(0);
  const at::Tensor total = (y - y.mean(0)).pow(2).sum(0);
  return (1 - residual / total).mean().item<double>();
}

TEST(SyntheticBrainTest, ShapesSplitsIdsAndNoiseCeiling) {
  auto data = MakeSyntheticBrain(Teacher(), Stimuli(), {}, SyntheticBrainOptions().targets(7).noise(0.5));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->train.size(), 240);
  EXPECT_EQ(data->validation.size(), 80);
  EXPECT_EQ(data->test.size(), 80);
  EXPECT_EQ(data->train.responses.sizes(), (std::vector<int64_t>{240, 7}));
  EXPECT_EQ(data->train.stimuli.sizes(), (std::vector<int64_t>{240, 16}));
  EXPECT_EQ(data->test.stimulus_ids.front(), "stimulus_320");
  EXPECT_EQ(data->num_targets(), 7);
  EXPECT_NEAR(data->noise_ceiling[0].item<float>(), 1.0 / 1.25, 1e-6);
  EXPECT_EQ(data->train.responses.scalar_type(), at::kFloat);
}

TEST(SyntheticBrainTest, SameSeedSameBrainOtherSeedOtherBrain) {
  const auto options = SyntheticBrainOptions().targets(5).seed(9);
  auto a = MakeSyntheticBrain(Teacher(), Stimuli(), {}, options);
  auto b = MakeSyntheticBrain(Teacher(), Stimuli(), {}, options);
  auto c = MakeSyntheticBrain(Teacher(), Stimuli(), {}, SyntheticBrainOptions(options).seed(10));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(at::equal(a->train.responses, b->train.responses));
  EXPECT_FALSE(at::equal(a->train.responses, c->train.responses));
}

TEST(SyntheticBrainTest, WithoutWarpOrNoiseTheBrainIsLinearInTheTeacher) {
  const torch::jit::Module teacher = Teacher();
  const at::Tensor x = Stimuli();
  auto data = MakeSyntheticBrain(teacher, x, {}, SyntheticBrainOptions().targets(6).warp_scale(0.0).noise(0.0));
  ASSERT_TRUE(data.ok()) << data.status();
  const double r2 = LinearFitR2(Features(teacher, data->train.stimuli), data->train.responses,
                                Features(teacher, data->test.stimuli), data->test.responses);
  EXPECT_GT(r2, 0.9999);
}

TEST(SyntheticBrainTest, AWarpedBrainIsFitBetterByTheWarpedTeacherThanByTheTeacher) {
  const torch::jit::Module teacher = Teacher();
  const auto options = SyntheticBrainOptions().targets(6).warp_dim(10).warp_scale(2.0).noise(0.0).seed(4);
  auto data = MakeSyntheticBrain(teacher, Stimuli(), {}, options);
  ASSERT_TRUE(data.ok()) << data.status();
  // The same warp, rebuilt from the seed (its projection seeded from the brain seed's own stream, as the
  // header says), explains the brain linearly; the unwarped teacher does not; and neither does the same
  // draw of theta in the subspace a candidate trained with seed 4 would use (SubspaceOptions().seed(4)):
  // the brain's warp is not hidden in the subspace of a job that happens to share its seed.
  auto fit_with_projection_seed = [&](uint64_t projection_seed) {
    auto warped = SubspaceModel::Create(teacher, SubspaceOptions(10).seed(projection_seed));
    EXPECT_TRUE(warped.ok()) << warped.status();
    {
      at::NoGradGuard no_grad;
      warped->theta_d().normal_(0.0, 2.0, at::make_generator<at::CPUGeneratorImpl>(4));
    }
    warped->eval();
    auto warped_features = [&](const at::Tensor& s) {
      at::NoGradGuard no_grad;
      return warped->Forward(s).to(at::kDouble);
    };
    return LinearFitR2(warped_features(data->train.stimuli), data->train.responses,
                       warped_features(data->test.stimuli), data->test.responses);
  };
  const double with_warp = fit_with_projection_seed(SeededStream(4, "synthetic-brain/warp-projection").NextU64());
  const double candidate_subspace = fit_with_projection_seed(4);
  const double without = LinearFitR2(Features(teacher, data->train.stimuli), data->train.responses,
                                     Features(teacher, data->test.stimuli), data->test.responses);
  EXPECT_GT(with_warp, 0.9999);
  EXPECT_LT(without, with_warp - 0.05) << "the warp should matter: unwarped R^2 " << without;
  EXPECT_LT(candidate_subspace, with_warp - 0.05) << "a job's own subspace reproduced the warp: " << candidate_subspace;
}

// Labels the stimuli can be classified by: which of the first three inputs is largest.
at::Tensor Labels(const at::Tensor& stimuli) { return stimuli.narrow(1, 0, 3).argmax(1); }

TEST(SyntheticBrainTest, ATrainedWarpLearnsToClassifyTheLabels) {
  const at::Tensor x = Stimuli();
  const auto options = SyntheticBrainOptions().targets(6).warp_dim(40).warp_epochs(15).warp_lr(0.5).seed(2);
  auto trained = MakeSyntheticBrain(Teacher(), x, {}, SyntheticBrainOptions(options).trained_warp(Labels(x)));
  auto random = MakeSyntheticBrain(Teacher(), x, {}, options);
  ASSERT_TRUE(trained.ok()) << trained.status();
  ASSERT_TRUE(random.ok()) << random.status();
  EXPECT_FALSE(at::allclose(trained->train.responses, random->train.responses));
  // The description reports what the warp learned: 3 classes, well above chance (1/3).
  const std::string& text = trained->description;
  const size_t at = text.find("validation accuracy ");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_NE(text.find("3 classes"), std::string::npos) << text;
  EXPECT_GT(std::stod(text.substr(at + 20)), 0.6) << text;
  // Same seed, same labels: the same brain.
  auto again = MakeSyntheticBrain(Teacher(), x, {}, SyntheticBrainOptions(options).trained_warp(Labels(x)));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(at::equal(trained->train.responses, again->train.responses));
  // Labels that are not one int64 per stimulus are refused, naming their shape.
  auto wrong = MakeSyntheticBrain(Teacher(), x, {}, SyntheticBrainOptions(options).trained_warp(Labels(x).narrow(0, 0, 5)));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("[5]"), std::string::npos) << wrong.status();
}

// The labels as indicator columns of classes 1 and 2 (class 0 is the bias): the best any representation
// can do for a category brain is to know them.
at::Tensor OneHot(const at::Tensor& labels) { return at::one_hot(labels, 3).narrow(1, 1, 2).to(at::kDouble); }

TEST(SyntheticBrainTest, CategoryNeuroidsRespondToTheCategoryOnly) {
  const at::Tensor x = Stimuli();
  const at::Tensor labels = Labels(x);
  const auto options = SyntheticBrainOptions().targets(6).noise(0.0).seed(5);
  auto pure = MakeSyntheticBrain(Teacher(), x, {}, SyntheticBrainOptions(options).categories(labels, 1.0));
  ASSERT_TRUE(pure.ok()) << pure.status();
  EXPECT_NE(pure->description.find("1 of the signal from 3 categories"), std::string::npos) << pure->description;
  const at::Tensor train_labels = labels.narrow(0, 0, 240), test_labels = labels.narrow(0, 320, 80);
  // Without noise, the category alone predicts every neuroid exactly; the teacher's features do not.
  EXPECT_GT(LinearFitR2(OneHot(train_labels), pure->train.responses, OneHot(test_labels), pure->test.responses), 0.9999);
  const torch::jit::Module teacher = Teacher();
  EXPECT_LT(LinearFitR2(Features(teacher, pure->train.stimuli), pure->train.responses,
                        Features(teacher, pure->test.stimuli), pure->test.responses),
            0.9);
  // Two stimuli of one category get the same responses.
  const int64_t first = test_labels[0].item<int64_t>();
  const at::Tensor same = at::nonzero(test_labels == first).flatten();
  ASSERT_GE(same.size(0), 2);
  EXPECT_TRUE(at::allclose(pure->test.responses[same[0].item<int64_t>()], pure->test.responses[same[1].item<int64_t>()]));

  // Half the signal's variance from the categories: the category part explains about half, the teacher's
  // features the other half, and both together all of it.
  auto half = MakeSyntheticBrain(teacher, x, {}, SyntheticBrainOptions(options).warp_scale(0.0).categories(labels, 0.5));
  ASSERT_TRUE(half.ok()) << half.status();
  const double by_category = LinearFitR2(OneHot(train_labels), half->train.responses, OneHot(test_labels), half->test.responses);
  EXPECT_GT(by_category, 0.3);
  EXPECT_LT(by_category, 0.7);
  const at::Tensor both_train = at::cat({Features(teacher, half->train.stimuli), OneHot(train_labels)}, 1);
  const at::Tensor both_test = at::cat({Features(teacher, half->test.stimuli), OneHot(test_labels)}, 1);
  EXPECT_GT(LinearFitR2(both_train, half->train.responses, both_test, half->test.responses), 0.9999);

  // A weight of 0 is the brain without categories, draw for draw.
  auto none = MakeSyntheticBrain(teacher, x, {}, SyntheticBrainOptions(options).categories(labels, 0.0));
  auto plain = MakeSyntheticBrain(teacher, x, {}, options);
  ASSERT_TRUE(none.ok() && plain.ok());
  EXPECT_TRUE(at::equal(none->train.responses, plain->train.responses));

  // Bad weights and labels are refused, naming the value.
  auto heavy = MakeSyntheticBrain(teacher, x, {}, SyntheticBrainOptions(options).categories(labels, 1.5));
  ASSERT_FALSE(heavy.ok());
  EXPECT_NE(heavy.status().message().find("categories = 1.5"), std::string::npos) << heavy.status();
  auto unlabelled = MakeSyntheticBrain(teacher, x, {}, SyntheticBrainOptions(options).categories(at::Tensor(), 0.5));
  ASSERT_FALSE(unlabelled.ok());
  EXPECT_NE(unlabelled.status().message().find("without labels"), std::string::npos) << unlabelled.status();
  auto short_labels = MakeSyntheticBrain(teacher, x, {}, SyntheticBrainOptions(options).categories(labels.narrow(0, 0, 7), 0.5));
  ASSERT_FALSE(short_labels.ok());
  EXPECT_NE(short_labels.status().message().find("category labels of shape [7]"), std::string::npos) << short_labels.status();
}

TEST(SyntheticBrainTest, RejectsBadOptionsNamingTheValue) {
  const torch::jit::Module teacher = Teacher();
  auto no_targets = MakeSyntheticBrain(teacher, Stimuli(), {}, SyntheticBrainOptions().targets(0));
  ASSERT_FALSE(no_targets.ok());
  EXPECT_NE(no_targets.status().message().find("targets = 0"), std::string::npos);
  auto bad_fractions = MakeSyntheticBrain(teacher, Stimuli(), {}, SyntheticBrainOptions().fractions(0.7, 0.4));
  ASSERT_FALSE(bad_fractions.ok());
  EXPECT_NE(bad_fractions.status().message().find("train = 0.7"), std::string::npos) << bad_fractions.status();
  auto too_few = MakeSyntheticBrain(teacher, Stimuli(3), {}, SyntheticBrainOptions());
  ASSERT_FALSE(too_few.ok());
  EXPECT_NE(too_few.status().message().find("3 stimuli"), std::string::npos) << too_few.status();
  auto ids = MakeSyntheticBrain(teacher, Stimuli(10), {"a", "b"}, SyntheticBrainOptions());
  ASSERT_FALSE(ids.ok());
  EXPECT_NE(ids.status().message().find("2 stimulus ids for 10 stimuli"), std::string::npos) << ids.status();
}

}  // namespace
}  // namespace dwarp::engine
