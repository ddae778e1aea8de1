#include "worker/engine/train/classifier_training.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "worker/engine/datasets/idx_dataset.h"
#include "worker/engine/models/mlp.h"
#include "worker/engine/models/model_registry.h"

namespace dwarp::engine {
namespace {

// Ten Gaussian blobs in 20 dimensions, shaped like small images [N, 1, 4, 5].
ClassificationData Blobs(int64_t n, uint64_t seed) {
  at::Generator means_gen = at::make_generator<at::CPUGeneratorImpl>(1234);  // the same classes in every split
  const at::Tensor means = at::empty({10, 20}).normal_(0.0, 1.0, means_gen);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor labels = at::empty({n}, at::kLong).random_(0, 10, gen);
  const at::Tensor noise = at::empty({n, 20}).normal_(0.0, 0.5, gen);
  return {(means.index_select(0, labels) + noise).view({n, 1, 4, 5}), labels, 10};
}

ClassifierSplits BlobSplits() { return {Blobs(1500, 1), Blobs(300, 2), Blobs(300, 3)}; }

torch::jit::Module SmallMlp(uint64_t seed = 0) {
  auto mlp = CreateMlp(MlpOptions(20, 10).hidden({32}).seed(seed));
  EXPECT_TRUE(mlp.ok()) << mlp.status();
  return std::move(mlp).value();
}

SubspaceModel Wrap(const torch::jit::Module& module, int64_t d) {
  auto model = SubspaceModel::Create(module, SubspaceOptions(d).seed(11));
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(model).value();
}

ClassifierTrainingOptions Options() {
  return ClassifierTrainingOptions().epochs(3).batch_size(64).learning_rate(0.05).seed(4);
}

double Evaluate(SubspaceModel& model, const ClassificationData& data) {
  at::NoGradGuard no_grad;
  model.eval();
  return model.Forward(data.inputs).argmax(1).eq(data.labels).to(at::kDouble).mean().item<double>();
}

TEST(ClassifierTrainingTest, LearnsThroughASubspace) {
  const ClassifierSplits splits = BlobSplits();
  SubspaceModel model = Wrap(SmallMlp(), 60);
  const double before = Evaluate(model, splits.test);
  int64_t callbacks = 0;
  auto result = TrainClassifierInSubspace(model, splits,
                                          Options().on_epoch([&](const EpochRecord& r) { EXPECT_EQ(r.epoch, ++callbacks); }));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_FALSE(result->full);
  EXPECT_EQ(result->numbers_trained, 60);
  EXPECT_EQ(result->parameters_warped, 21 * 32 + 33 * 10);
  EXPECT_EQ(result->epochs_run, 3);
  EXPECT_EQ(callbacks, 3);
  ASSERT_EQ(result->history.size(), 3u);
  EXPECT_LT(result->history.back().train_loss, result->history.front().train_loss);
  EXPECT_GT(result->test_accuracy, 0.6) << "chance is 0.1; before training " << before;
  EXPECT_GT(result->test_accuracy, before + 0.3);
  EXPECT_GT(result->seconds, 0.0);
  // The best state is installed: evaluating the model again gives the reported accuracy.
  EXPECT_DOUBLE_EQ(Evaluate(model, splits.test), result->test_accuracy);
  EXPECT_DOUBLE_EQ(Evaluate(model, splits.validation), result->best_validation_accuracy);
  EXPECT_DOUBLE_EQ(result->history[static_cast<size_t>(result->best_epoch - 1)].validation_score,
                   result->best_validation_accuracy);
}

TEST(ClassifierTrainingTest, SameSeedSameResultOtherSeedOtherResult) {
  const ClassifierSplits splits = BlobSplits();
  const torch::jit::Module mlp = SmallMlp();
  SubspaceModel a = Wrap(mlp, 40);
  SubspaceModel b = Wrap(mlp, 40);
  SubspaceModel c = Wrap(mlp, 40);
  auto ra = TrainClassifierInSubspace(a, splits, Options());
  auto rb = TrainClassifierInSubspace(b, splits, Options());
  auto rc = TrainClassifierInSubspace(c, splits, Options().seed(5));
  ASSERT_TRUE(ra.ok() && rb.ok() && rc.ok());
  EXPECT_TRUE(a.theta_d().equal(b.theta_d()));
  EXPECT_EQ(ra->test_accuracy, rb->test_accuracy);
  EXPECT_EQ(ra->history.back().train_loss, rb->history.back().train_loss);
  EXPECT_FALSE(a.theta_d().equal(c.theta_d()));  // another minibatch order
}

TEST(ClassifierTrainingTest, FullTrainingTrainsEveryParameter) {
  const ClassifierSplits splits = BlobSplits();
  torch::jit::Module mlp = SmallMlp();
  const at::Tensor w0 = mlp.attr("fc1").toModule().attr("weight").toTensor().detach().clone();
  auto result = TrainClassifierFull(mlp, splits, Options().learning_rate(1e-2));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->full);
  EXPECT_EQ(result->numbers_trained, 21 * 32 + 33 * 10);
  EXPECT_EQ(result->parameters_warped, result->numbers_trained);
  EXPECT_GT(result->test_accuracy, 0.8);
  EXPECT_FALSE(mlp.attr("fc1").toModule().attr("weight").toTensor().equal(w0));
}

TEST(ClassifierTrainingTest, FullTrainingOfADeepCopyLeavesTheOriginalAlone) {
  // deepcopy() clones parameters that require grad into non-leaf tensors; training must still work.
  const ClassifierSplits splits = BlobSplits();
  const torch::jit::Module original = SmallMlp();
  const at::Tensor w0 = original.attr("fc1").toModule().attr("weight").toTensor().detach().clone();
  torch::jit::Module copy = original.deepcopy();
  auto result = TrainClassifierFull(copy, splits, Options().epochs(1).learning_rate(1e-2));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(result->test_accuracy, 0.5);
  EXPECT_TRUE(original.attr("fc1").toModule().attr("weight").toTensor().equal(w0));
  const at::Tensor trained = copy.attr("fc1").toModule().attr("weight").toTensor();
  EXPECT_TRUE(trained.is_leaf());
  EXPECT_FALSE(trained.equal(w0));
}

TEST(ClassifierTrainingTest, CosineScheduleChangesTrainingAndStillLearns) {
  const ClassifierSplits splits = BlobSplits();
  const torch::jit::Module mlp = SmallMlp();
  SubspaceModel constant = Wrap(mlp, 60);
  SubspaceModel cosine = Wrap(mlp, 60);
  auto rc = TrainClassifierInSubspace(constant, splits, Options());
  auto rs = TrainClassifierInSubspace(cosine, splits, Options().schedule(LearningRateSchedule::kCosine));
  ASSERT_TRUE(rc.ok() && rs.ok());
  // The first step has the full learning rate under both schedules, later steps do not.
  EXPECT_FALSE(constant.theta_d().equal(cosine.theta_d()));
  EXPECT_GT(rs->test_accuracy, 0.6);
}

TEST(ClassifierTrainingTest, WarmupMakesTheFirstStepsSmallAndStillLearns) {
  const ClassifierSplits splits = BlobSplits();
  const torch::jit::Module mlp = SmallMlp();
  // Four steps in one epoch: Adam moves every coordinate by about the rate per step, the warmup by a
  // quarter, half, three quarters and all of it, so theta moves about 2.5 / 4 as far.
  SubspaceModel constant4 = Wrap(mlp, 60);
  SubspaceModel warmup4 = Wrap(mlp, 60);
  auto quarter = Options().epochs(1).batch_size((splits.train.size() + 3) / 4);
  ASSERT_TRUE(TrainClassifierInSubspace(constant4, splits, quarter).ok());
  ASSERT_TRUE(TrainClassifierInSubspace(warmup4, splits, quarter.schedule(LearningRateSchedule::kWarmupCosine)).ok());
  EXPECT_LT(warmup4.theta_d().abs().max().item<double>(), 0.8 * constant4.theta_d().abs().max().item<double>());
  SubspaceModel learner = Wrap(mlp, 60);
  auto learned = TrainClassifierInSubspace(learner, splits, Options().schedule(LearningRateSchedule::kWarmupCosine));
  ASSERT_TRUE(learned.ok()) << learned.status();
  EXPECT_GT(learned->test_accuracy, 0.6);
}

TEST(ClassifierTrainingTest, PatienceStopsEarly) {
  const ClassifierSplits splits = BlobSplits();
  SubspaceModel model = Wrap(SmallMlp(), 30);
  // A learning rate so small that validation accuracy cannot improve after the first epoch's level moves.
  auto result = TrainClassifierInSubspace(model, splits, Options().epochs(20).learning_rate(1e-9).patience(2));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_LT(result->epochs_run, 20);
  EXPECT_EQ(result->epochs_run, result->best_epoch + 2);
}

TEST(ClassifierTrainingTest, NonFiniteLossFailsWithReason) {
  ClassifierSplits splits = BlobSplits();
  splits.train.inputs = splits.train.inputs.clone();
  splits.train.inputs.view(-1).fill_(std::numeric_limits<float>::quiet_NaN());
  SubspaceModel model = Wrap(SmallMlp(), 30);
  auto result = TrainClassifierInSubspace(model, splits, Options());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("diverged"), std::string::npos) << result.status();
  EXPECT_NE(result.status().message().find("epoch 1, step 1"), std::string::npos) << result.status();
}

TEST(ClassifierTrainingTest, BadOptionsAndDataAreRejected) {
  const ClassifierSplits splits = BlobSplits();
  SubspaceModel model = Wrap(SmallMlp(), 30);
  auto no_epochs = TrainClassifierInSubspace(model, splits, Options().epochs(0));
  ASSERT_FALSE(no_epochs.ok());
  EXPECT_NE(no_epochs.status().message().find("epochs = 0"), std::string::npos) << no_epochs.status();

  auto bad_lr = TrainClassifierInSubspace(model, splits, Options().learning_rate(-1.0));
  ASSERT_FALSE(bad_lr.ok());
  EXPECT_NE(bad_lr.status().message().find("learning_rate = -1"), std::string::npos) << bad_lr.status();

  ClassifierSplits empty_validation = splits;
  empty_validation.validation = SliceRows(splits.validation, 0, 0);
  auto empty = TrainClassifierInSubspace(model, empty_validation, Options());
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("validation split is empty"), std::string::npos) << empty.status();

  // A model with 10 outputs cannot classify 12 classes.
  ClassifierSplits twelve = splits;
  for (ClassificationData* split : {&twelve.train, &twelve.validation, &twelve.test}) split->num_classes = 12;
  auto wrong_width = TrainClassifierInSubspace(model, twelve, Options());
  ASSERT_FALSE(wrong_width.ok());
  EXPECT_NE(wrong_width.status().message().find("expected logits [64, 12]"), std::string::npos) << wrong_width.status();
}

TEST(ClassifierTrainingTest, LibTorchErrorsBecomeStatus) {
  ClassifierSplits splits = BlobSplits();
  // Examples of the wrong size for the model's first layer: LibTorch throws inside forward.
  for (ClassificationData* split : {&splits.train, &splits.validation, &splits.test}) {
    split->inputs = at::zeros({split->size(), 1, 3, 3});
  }
  SubspaceModel model = Wrap(SmallMlp(), 30);
  auto result = TrainClassifierInSubspace(model, splits, Options());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInternal);
  EXPECT_NE(result.status().message().find("LibTorch"), std::string::npos) << result.status();
}

// The blobs' MLP read out at its hidden layer fc1 (32 features, not the 10 logits): a head's job.
ReadoutModel InnerLayerMlp() {
  auto model = CreateModel("mlp", ModelOptions().layer("fc1").in_channels(1).image_size(4, 5).hidden({32}).num_classes(10));
  EXPECT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->feature_count, 32);
  return std::move(model).value();
}

ClassifierTrainingOptions HeadOptions() { return Options().linear_head(true).head_learning_rate(0.02); }

// The accuracy of logits X W^T + b, computed directly.
double HeadAccuracy(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& bias,
                    const at::Tensor& labels) {
  return at::linear(features, weight, bias).argmax(1).eq(labels).to(at::kDouble).mean().item<double>();
}

TEST(ClassifierTrainingTest, HeadOnAnInnerLayerLearnsThroughASubspace) {
  const ClassifierSplits splits = BlobSplits();
  const ReadoutModel inner = InnerLayerMlp();
  auto wrapped = SubspaceModel::Create(inner.module, SubspaceOptions(20).seed(11).warp_prefixes(inner.warp_prefixes));
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  auto result = TrainClassifierInSubspace(*wrapped, splits, HeadOptions());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->numbers_trained, 20);  // the head is not counted
  EXPECT_EQ(result->parameters_warped, 21 * 32);
  EXPECT_EQ(result->representation_size, 32);
  ASSERT_TRUE(result->head_weight.defined());
  EXPECT_EQ(result->head_weight.sizes(), (std::vector<int64_t>{10, 32}));
  EXPECT_EQ(result->head_bias.sizes(), (std::vector<int64_t>{10}));
  EXPECT_GT(result->test_accuracy, 0.6) << "chance is 0.1";
  // The restored state is model and head together: recomputing gives the reported accuracies.
  at::NoGradGuard no_grad;
  wrapped->eval();
  const auto features = [&](const ClassificationData& d) { return wrapped->Forward(d.inputs); };
  EXPECT_DOUBLE_EQ(HeadAccuracy(features(splits.test), result->head_weight, result->head_bias, splits.test.labels),
                   result->test_accuracy);
  EXPECT_DOUBLE_EQ(HeadAccuracy(features(splits.train), result->head_weight, result->head_bias, splits.train.labels),
                   result->train_accuracy);
  EXPECT_DOUBLE_EQ(
      HeadAccuracy(features(splits.validation), result->head_weight, result->head_bias, splits.validation.labels),
      result->best_validation_accuracy);
  EXPECT_FALSE(wrapped->theta_d().eq(0).all().item<bool>());  // theta_d trained alongside the head
}

TEST(ClassifierTrainingTest, HeadOnAnInnerLayerLearnsWithFullTraining) {
  const ClassifierSplits splits = BlobSplits();
  ReadoutModel inner = InnerLayerMlp();
  auto result = TrainClassifierFull(inner.module, splits, HeadOptions().learning_rate(1e-2));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->full);
  EXPECT_EQ(result->numbers_trained, 21 * 32);
  EXPECT_EQ(result->representation_size, 32);
  EXPECT_GT(result->test_accuracy, 0.8) << "chance is 0.1";
  EXPECT_GT(result->train_accuracy, 0.8);
}

TEST(ClassifierTrainingTest, FrozenHeadStaysAtItsInitialisation) {
  const ClassifierSplits splits = BlobSplits();
  const ReadoutModel inner = InnerLayerMlp();
  auto wrapped = SubspaceModel::Create(inner.module, SubspaceOptions(20).seed(11).warp_prefixes(inner.warp_prefixes));
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  auto result = TrainClassifierInSubspace(*wrapped, splits, HeadOptions().freeze_head(true));
  ASSERT_TRUE(result.ok()) << result.status();
  const auto [weight, bias] = InitLinearHead(32, 10, /*seed=*/4);
  EXPECT_TRUE(result->head_weight.equal(weight));
  EXPECT_TRUE(result->head_bias.equal(bias));
  EXPECT_FALSE(wrapped->theta_d().eq(0).all().item<bool>());  // the model alone moved
  // Without freezing, the same job moves the head away from that initialisation.
  auto wrapped2 = SubspaceModel::Create(inner.module, SubspaceOptions(20).seed(11).warp_prefixes(inner.warp_prefixes));
  ASSERT_TRUE(wrapped2.ok());
  auto trained = TrainClassifierInSubspace(*wrapped2, splits, HeadOptions());
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_FALSE(trained->head_weight.equal(weight));
}

TEST(ClassifierTrainingTest, HeadWeightDecayShrinksTheHead) {
  const ClassifierSplits splits = BlobSplits();
  ReadoutModel a = InnerLayerMlp();
  ReadoutModel b = InnerLayerMlp();
  auto plain = TrainClassifierFull(a.module, splits, HeadOptions().epochs(2).learning_rate(1e-3));
  auto decayed = TrainClassifierFull(b.module, splits, HeadOptions().epochs(2).learning_rate(1e-3).head_weight_decay(1.0));
  ASSERT_TRUE(plain.ok() && decayed.ok());
  EXPECT_LT(decayed->head_weight.norm().item<double>(), plain->head_weight.norm().item<double>());
}

// Four well-separated classes in 6 dimensions: linearly separable features.
ClassificationData SeparableFeatures(int64_t n, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const at::Tensor labels = at::empty({n}, at::kLong).random_(0, 4, gen);
  const at::Tensor means = at::eye(6).narrow(0, 0, 4) * 4.0;
  return {means.index_select(0, labels) + at::empty({n, 6}).normal_(0.0, 0.3, gen), labels, 4};
}

// An identity "model" that counts the rows it is shown.
struct CountingExtractor {
  std::shared_ptr<int64_t> rows = std::make_shared<int64_t>(0);
  std::shared_ptr<int64_t> calls = std::make_shared<int64_t>(0);
  FeatureExtractor Extractor() const {
    return [rows = rows, calls = calls](const at::Tensor& x) {
      *rows += x.size(0);
      ++*calls;
      return x;
    };
  }
};

TEST(ClassifierTrainingTest, LinearClassifierOnCachedFeatures) {
  const ClassifierSplits splits{SeparableFeatures(400, 1), SeparableFeatures(100, 2), SeparableFeatures(150, 3)};
  CountingExtractor counter;
  auto result = TrainLinearClassifier(
      counter.Extractor(), splits,
      ClassifierTrainingOptions().epochs(10).batch_size(32).head_learning_rate(0.05).eval_batch_size(64).seed(3));
  ASSERT_TRUE(result.ok()) << result.status();
  // Features once per split: 400 + 100 + 150 rows in ceil(400/64) + ceil(100/64) + ceil(150/64) calls, for
  // all ten epochs and the final scores.
  EXPECT_EQ(*counter.rows, 650);
  EXPECT_EQ(*counter.calls, 7 + 2 + 3);
  EXPECT_EQ(result->epochs_run, 10);
  EXPECT_EQ(result->numbers_trained, 0);
  EXPECT_EQ(result->parameters_warped, 0);
  EXPECT_EQ(result->representation_size, 6);
  EXPECT_GT(result->test_accuracy, 0.95) << "chance is 0.25";
  EXPECT_DOUBLE_EQ(HeadAccuracy(splits.train.inputs, result->head_weight, result->head_bias, splits.train.labels),
                   result->train_accuracy);
  EXPECT_DOUBLE_EQ(HeadAccuracy(splits.test.inputs, result->head_weight, result->head_bias, splits.test.labels),
                   result->test_accuracy);
  EXPECT_DOUBLE_EQ(
      HeadAccuracy(splits.validation.inputs, result->head_weight, result->head_bias, splits.validation.labels),
      result->best_validation_accuracy);
  EXPECT_DOUBLE_EQ(result->history[static_cast<size_t>(result->best_epoch - 1)].validation_score,
                   result->best_validation_accuracy);
}

TEST(ClassifierTrainingTest, LinearClassifierIsDeterministicForASeed) {
  const ClassifierSplits splits{SeparableFeatures(200, 1), SeparableFeatures(50, 2), SeparableFeatures(50, 3)};
  const auto options = [](uint64_t seed) {
    return ClassifierTrainingOptions().epochs(2).batch_size(16).head_learning_rate(0.01).seed(seed);
  };
  const FeatureExtractor identity = [](const at::Tensor& x) { return x; };
  auto a = TrainLinearClassifier(identity, splits, options(7));
  auto b = TrainLinearClassifier(identity, splits, options(7));
  auto c = TrainLinearClassifier(identity, splits, options(8));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(a->head_weight.equal(b->head_weight));
  EXPECT_TRUE(a->head_bias.equal(b->head_bias));
  EXPECT_EQ(a->history.back().train_loss, b->history.back().train_loss);
  EXPECT_FALSE(a->head_weight.equal(c->head_weight));  // another initialisation and minibatch order
}

// The loop's minibatch rows are a CPU index, and at d = 0 the features may be cached on a GPU, which
// refuses a CPU index. The meta device stands in for the GPU on a CPU-only machine: RowIndexOn must put
// the index on the source's device, and leave an index that is there already as it is.
TEST(TrainingLoopTest, RowIndexOnPutsTheIndexOnTheSourcesDevice) {
  const at::Tensor rows = at::tensor(std::vector<int64_t>{2, 0, 2});
  const at::Tensor on_meta = RowIndexOn(at::empty({3, 4}, at::TensorOptions().device(at::kMeta)), rows);
  EXPECT_EQ(on_meta.device(), c10::Device(c10::kMeta));
  EXPECT_EQ(on_meta.scalar_type(), at::kLong);
  EXPECT_EQ(on_meta.sizes(), rows.sizes());
  EXPECT_TRUE(RowIndexOn(at::zeros({3, 4}), rows).is_same(rows));
  const at::Tensor meta_rows = rows.to(at::kMeta);
  EXPECT_TRUE(RowIndexOn(at::empty({3}, at::TensorOptions().device(at::kMeta)), meta_rows).is_same(meta_rows));
}

TEST(TrainingLoopTest, SelectRowsTakesTheRowsInTheirOrder) {
  const at::Tensor source = at::arange(12, at::kFloat).view({4, 3});
  const at::Tensor got = SelectRows(source, at::tensor(std::vector<int64_t>{3, 0, 3}));
  EXPECT_TRUE(got.equal(at::stack({source[3], source[0], source[3]}))) << got;
}

TEST(ClassifierTrainingTest, HeadOptionsAreCheckedAgainstTheMode) {
  const ClassifierSplits splits{SeparableFeatures(40, 1), SeparableFeatures(10, 2), SeparableFeatures(10, 3)};
  const FeatureExtractor identity = [](const at::Tensor& x) { return x; };
  auto frozen = TrainLinearClassifier(identity, splits, ClassifierTrainingOptions().freeze_head(true));
  ASSERT_FALSE(frozen.ok());
  EXPECT_NE(frozen.status().message().find("freeze_head = true at d = 0"), std::string::npos) << frozen.status();

  auto bad_head_lr = TrainLinearClassifier(identity, splits, ClassifierTrainingOptions().head_learning_rate(0.0));
  ASSERT_FALSE(bad_head_lr.ok());
  EXPECT_NE(bad_head_lr.status().message().find("head_learning_rate = 0"), std::string::npos) << bad_head_lr.status();

  const ClassifierSplits blobs = BlobSplits();
  SubspaceModel model = Wrap(SmallMlp(), 30);
  auto decay_without_head = TrainClassifierInSubspace(model, blobs, Options().head_weight_decay(0.5));
  ASSERT_FALSE(decay_without_head.ok());
  EXPECT_NE(decay_without_head.status().message().find("head_weight_decay = 0.5"), std::string::npos)
      << decay_without_head.status();
}

TEST(ClassifierTrainingTest, FashionMnistSubsetLearnsThroughASubspace) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "Fashion-MNIST not installed at " << dir;
  auto train = LoadMnistStyleSplit(dir, "train", IdxClassificationOptions().max_items(3000));
  ASSERT_TRUE(train.ok()) << train.status();
  auto test = LoadMnistStyleSplit(dir, "t10k", IdxClassificationOptions().max_items(1000));
  ASSERT_TRUE(test.ok()) << test.status();
  ClassifierSplits splits{SliceRows(*train, 0, 2500), SliceRows(*train, 2500, 500), *test};

  auto mlp = CreateMlp(MlpOptions(784, 10).hidden({64}).seed(0));
  ASSERT_TRUE(mlp.ok()) << mlp.status();
  SubspaceModel model = Wrap(*mlp, 300);
  auto result = TrainClassifierInSubspace(
      model, splits,
      ClassifierTrainingOptions().epochs(3).batch_size(64).learning_rate(0.3).schedule(LearningRateSchedule::kCosine));
  ASSERT_TRUE(result.ok()) << result.status();
  // Chance is 0.1; a 300-dimensional subspace of this MLP gets well above 0.5 within three epochs.
  EXPECT_GT(result->test_accuracy, 0.5);
}

}  // namespace
}  // namespace dwarp::engine
