// RunJob (worker/job_runner.h) on small real jobs: a synthetic brain on Fashion-MNIST images (skipped when
// Debian's dataset-fashion-mnist is not installed) at d = 0 (ridge, SGD) and d > 0, Fashion-MNIST
// classification through the model's logits or a linear head (d = 0, an inner layer), and the errors for
// what is bad or unsupported.
#include "worker/job_runner.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "common/job_spec.h"
#include "tests/engine/datasets/neural_fixtures.h"
#include "worker/engine/datasets/npy_file.h"
#include "worker/engine/device.h"
#include "worker/job_data.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace dwarp::worker {
namespace {

const char* kImages = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

std::string SyntheticJob(const std::string& layer = "fc1") {
  return std::string("model: {arch: mlp, hidden: [16], layer: ") + layer + ", layer_groups: []}\n" +
         "data: {kind: synthetic, images: " + kImages + ", limit_stimuli: 300,\n" +
         "       synthetic: {targets: 4, warp_dim: 3, noise: 0.1}}\n"
         "d: 10\n"
         "train: {lr: 1.0e-2, batch_size: 32, max_epochs: 4, patience: 0, seed: 1, threads: 1}\n";
}

// Overrides that make SyntheticJob a d = 0 job: its loop settings and layer groups do nothing there and would
// be refused (JobSpec's SettingsUnusedBy), so they go.
std::vector<std::string> AtDZero(bool ridge, std::vector<std::string> more = {}) {
  std::vector<std::string> overrides = {"d=0", "~model.layer_groups"};
  if (ridge) {
    for (const char* o : {"readout=ridge", "~train.lr", "~train.batch_size", "~train.max_epochs", "~train.patience"}) {
      overrides.push_back(o);
    }
  }
  overrides.insert(overrides.end(), more.begin(), more.end());
  return overrides;
}

JobSpec Parse(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  auto spec = ParseJobSpec(yaml, SpecFormat::kYaml, overrides);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return *spec;
}

class JobRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kImages)) GTEST_SKIP() << kImages << " not installed";
  }
};

TEST_F(JobRunnerTest, SubspaceJobReportsEveryEpochAndScores) {
  const JobSpec spec = Parse(SyntheticJob());
  int epochs_seen = 0;
  JobRunOptions options;
  options.on_epoch = [&](const engine::EpochRecord& record, int64_t max_epochs) {
    ++epochs_seen;
    EXPECT_EQ(record.epoch, epochs_seen);
    EXPECT_EQ(max_epochs, 4);
  };
  auto result = RunJob(spec, options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(epochs_seen, 4);
  EXPECT_EQ(result->epochs_run, 4);
  EXPECT_EQ(result->metric, "r2");
  EXPECT_EQ(result->numbers_trained, 10);
  EXPECT_EQ(result->parameters_warped, 784 * 16 + 16);  // fc1 only: the layers up to the read-out
  EXPECT_EQ(result->train_size + result->val_size + result->test_size, 300);
  EXPECT_EQ(result->num_targets, 4);
  // The synthetic brain's ceiling is 1 / (1 + noise^2) for every neuroid (noise 0.1 here).
  EXPECT_NEAR(result->noise_ceiling, 1.0 / 1.01, 1e-6);
  const nlohmann::json json = JobReportToJson(*result);
  EXPECT_EQ(json["d"], "10");
  EXPECT_NEAR(json["noise_ceiling"].get<double>(), 1.0 / 1.01, 1e-6);
  EXPECT_EQ(json["device"], "cpu");
  EXPECT_EQ(json["history"].size(), 4u);
  EXPECT_EQ(json["trained_parameters"], 10);
  EXPECT_EQ(json["D"], 784 * 16 + 16);
  // The spec is the job's (stored with it by the coordinator), not the result's.
  EXPECT_FALSE(json.contains("spec")) << json["spec"];
  EXPECT_TRUE(result->spec == spec);

  // The result a worker sends: the report's metric scores, counts and JSON, through JobResultOf alone.
  const JobResult sent = JobResultOf(*result);
  EXPECT_EQ(sent.metric, "r2");
  EXPECT_EQ(sent.train_score, result->train.r2);
  EXPECT_EQ(sent.val_score, result->validation.r2);
  EXPECT_EQ(sent.test_score, result->test.r2);
  EXPECT_EQ(sent.test_pearson_mean, result->test.pearson_mean);
  EXPECT_EQ(sent.test_pearson_median, result->test.pearson_median);
  EXPECT_NE(sent.test_pearson_mean, 0.0);
  EXPECT_EQ(sent.epochs_run, 4);
  EXPECT_EQ(sent.best_epoch, result->best_epoch);
  EXPECT_GE(sent.best_epoch, 1);
  EXPECT_EQ(sent.seconds, result->seconds);
  EXPECT_GT(sent.seconds, 0.0);
  EXPECT_EQ(sent.numbers_trained, 10);
  EXPECT_EQ(sent.parameters_warped, 784 * 16 + 16);
  EXPECT_EQ(sent.device, "cpu");
  EXPECT_EQ(sent.noise_ceiling, result->noise_ceiling);
  EXPECT_EQ(sent.result_json, json.dump());
}

// A sweep's seeds vary the training, never the data: the synthetic brain comes from data.synthetic.seed, and
// model.seed holds a random-init network fixed across seeds. A d = 0 ridge job is a deterministic function of
// the brain and the network, so equal scores mean the same brain and network.
TEST_F(JobRunnerTest, TheSyntheticBrainDependsOnItsOwnSeedNotTheJobsSeed) {
  const std::vector<std::string> linear = AtDZero(/*ridge=*/true, {"+ridge={alphas: [0.01, 1, 100]}",
                                           "+data.synthetic.teacher={arch: mlp, hidden: [16], layer: fc1}"});
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> overrides = linear;
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    auto result = RunJob(Parse(SyntheticJob(), overrides));
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    return result.ok() ? *result : JobReport();
  };
  const JobReport seed1 = run({"train.seed=1", "+model.seed=7"});
  const JobReport seed2 = run({"train.seed=2", "+model.seed=7"});
  EXPECT_EQ(seed1.test.r2, seed2.test.r2);
  EXPECT_EQ(seed1.data_description, seed2.data_description);
  // Without model.seed the network is initialised from train.seed: same brain, another network.
  const JobReport own_init = run({"train.seed=2"});
  EXPECT_EQ(own_init.data_description, seed1.data_description);
  EXPECT_NE(own_init.test.r2, seed1.test.r2);
  // Another brain seed is another brain.
  const JobReport other_brain = run({"train.seed=1", "+model.seed=7", "data.synthetic.seed=5"});
  EXPECT_NE(other_brain.data_description, seed1.data_description);
  EXPECT_NE(other_brain.test.r2, seed1.test.r2);
}

// One process builds a synthetic brain once: jobs that differ only in d, seed or training share it, and
// another brain (another synthetic seed) is built anew.
TEST_F(JobRunnerTest, JobsOfOneBrainShareItsBuild) {
  const std::string brain = "data.synthetic.seed=4242";  // a brain no other test of this binary builds
  // A teacher of its own: without one the teacher is the job's network, initialised from train.seed.
  const std::string teacher = "+data.synthetic.teacher={arch: mlp, hidden: [16], layer: fc1}";
  const int64_t before = SyntheticBrainsBuilt();
  auto first = RunJob(Parse(SyntheticJob(), AtDZero(/*ridge=*/true, {brain, teacher})));
  auto second = RunJob(Parse(SyntheticJob(), {brain, teacher, "train.seed=3", "train.max_epochs=1"}));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(SyntheticBrainsBuilt(), before + 1);
  EXPECT_EQ(first->data_description, second->data_description);
  auto other = RunJob(Parse(SyntheticJob(), AtDZero(/*ridge=*/true, {"data.synthetic.seed=4243", teacher})));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(SyntheticBrainsBuilt(), before + 2);
}

// readout prefit_warped through the job path: the head's entries count in D and the result says so.
TEST_F(JobRunnerTest, PrefitWarpedJobsWarpTheHeadWithTheNetwork) {
  auto plain = RunJob(Parse(SyntheticJob(), {"train.head_init=ridge"}));
  auto prefit = RunJob(Parse(SyntheticJob(), {"readout=prefit_warped"}));
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  ASSERT_TRUE(prefit.ok()) << prefit.status().ToString();
  // The MLP read out at fc1 (16 features) and a head to 4 targets: 16 * 4 + 4 more warped numbers.
  EXPECT_EQ(prefit->parameters_warped, plain->parameters_warped + 16 * 4 + 4);
  EXPECT_EQ(prefit->numbers_trained, plain->numbers_trained);
  EXPECT_EQ(ToJson(prefit->spec)["readout"], "prefit_warped");
  EXPECT_GT(prefit->test.r2, 0.0);
}

// model.projection reaches the subspace: a global projection trains the same d and D as per-tensor
// projections but moves the parameters differently, so the same seed gives another result.
TEST_F(JobRunnerTest, GlobalProjectionTrainsTheSameDimensionsDifferently) {
  // An explicit teacher keeps the brain's warp per-tensor in both jobs: only the candidate changes.
  const std::string teacher = "+data.synthetic.teacher={arch: mlp, hidden: [16], layer: fc1}";
  auto per_tensor = RunJob(Parse(SyntheticJob(), {teacher}));
  auto global = RunJob(Parse(SyntheticJob(), {teacher, "model.projection=global"}));
  ASSERT_TRUE(per_tensor.ok()) << per_tensor.status().ToString();
  ASSERT_TRUE(global.ok()) << global.status().ToString();
  EXPECT_EQ(global->numbers_trained, per_tensor->numbers_trained);
  EXPECT_EQ(global->parameters_warped, per_tensor->parameters_warped);
  EXPECT_NE(global->history.front().train_loss, per_tensor->history.front().train_loss);
  EXPECT_EQ(ToJson(global->spec)["model"]["projection"], "global");
  EXPECT_EQ(global->data_description, per_tensor->data_description);
  // The teacher's projection is the brain's warp's.
  auto global_brain = RunJob(Parse(SyntheticJob(), {"+data.synthetic.teacher={arch: mlp, hidden: [16], layer: fc1, "
                                                    "projection: global}"}));
  ASSERT_TRUE(global_brain.ok()) << global_brain.status().ToString();
  EXPECT_NE(global_brain->data_description, per_tensor->data_description);
}

TEST_F(JobRunnerTest, LinearReadoutsFitTheSyntheticBrain) {
  auto ridge = RunJob(Parse(SyntheticJob(), AtDZero(/*ridge=*/true, {"+ridge={alphas: [0.01, 1, 100]}"})));
  ASSERT_TRUE(ridge.ok()) << ridge.status().ToString();
  EXPECT_EQ(ridge->epochs_run, 0);
  EXPECT_GT(ridge->train.r2, 0.5);
  EXPECT_EQ(ridge->representation_size, 16);
  auto sgd = RunJob(Parse(SyntheticJob(), AtDZero(/*ridge=*/false)));
  ASSERT_TRUE(sgd.ok()) << sgd.status().ToString();
  EXPECT_EQ(sgd->epochs_run, 4);
  EXPECT_TRUE(std::isfinite(sgd->test.r2));
}

TEST_F(JobRunnerTest, ACategoryBrainReadsTheLabelsAndTrainingThroughASubspaceHelpsToFitIt) {
  const std::vector<std::string> category = {"+data.labels=/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz",
                                             "+data.synthetic.categories=1.0", "data.limit_stimuli=600"};
  auto with = [&](std::vector<std::string> overrides) {
    overrides.insert(overrides.end(), category.begin(), category.end());
    return RunJob(Parse(SyntheticJob(), overrides));
  };
  auto linear = with(AtDZero(/*ridge=*/true));
  auto warped = with({"d=300", "+train.head_init=ridge", "+train.low_dim_lr=0.05", "train.max_epochs=8"});
  auto plain = RunJob(Parse(SyntheticJob(), AtDZero(/*ridge=*/true, {"data.limit_stimuli=600"})));
  ASSERT_TRUE(linear.ok()) << linear.status().ToString();
  ASSERT_TRUE(warped.ok()) << warped.status().ToString();
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  // Another brain than the teacher's alone, recorded as such.
  EXPECT_GT(std::abs(linear->test.r2 - plain->test.r2), 0.01);
  EXPECT_EQ(ToJson(linear->spec)["data"]["synthetic"]["categories"], 1.0);
  // A random 16-unit layer separates the ten categories only partly; warping the network separates them more.
  EXPECT_LT(linear->test.r2, 0.6);
  EXPECT_GT(warped->test.r2, linear->test.r2 + 0.02) << "d = 0: " << linear->test.r2;
}

TEST_F(JobRunnerTest, RsaJobsScoreRdmsAndTrainThemThroughASubspace) {
  // The brain's teacher is the candidate's own architecture and initialisation (model seed 0).
  const std::string job = std::string("model: {arch: mlp, hidden: [16], layer: fc1, layer_groups: []}\n") +
                          "data: {kind: synthetic, images: " + kImages + ", limit_stimuli: 600,\n"
                          "       synthetic: {targets: 16, noise: 0.1, seed: 0, teacher: {arch: mlp, hidden: [16], "
                          "layer: fc1, seed: 0}}}\n"
                          "objective: rsa\n"
                          "d: 300\n"
                          "train: {low_dim_lr: 0.02, batch_size: 64, max_epochs: 6, patience: 0, seed: 1, threads: 1}\n";
  // At d = 0 the frozen model is only scored: the training settings would be refused there.
  const std::vector<std::string> scored = {"d=0", "~model.layer_groups", "~train.low_dim_lr", "~train.batch_size",
                                           "~train.max_epochs", "~train.patience"};
  std::vector<std::string> teacher_init = scored;
  teacher_init.push_back("+model.seed=0");
  auto teacher = RunJob(Parse(job, teacher_init));
  auto other = RunJob(Parse(job, scored));
  auto warped = RunJob(Parse(job));
  ASSERT_TRUE(teacher.ok()) << teacher.status().ToString();
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  ASSERT_TRUE(warped.ok()) << warped.status().ToString();
  EXPECT_EQ(teacher->metric, "rsa");
  EXPECT_EQ(teacher->epochs_run, 0);
  EXPECT_GT(teacher->test.rsa, other->test.rsa + 0.05) << "the teacher should score highest at d = 0";
  EXPECT_EQ(warped->numbers_trained, 300);  // no head: d counts everything that moved
  EXPECT_EQ(warped->epochs_run, 6);
  EXPECT_GT(warped->test.rsa, other->test.rsa + 0.05);
  const nlohmann::json json = JobReportToJson(*warped);
  EXPECT_EQ(json["metric"], "rsa");
  EXPECT_DOUBLE_EQ(json["scores"]["test"]["rsa"].get<double>(), warped->test.rsa);
  EXPECT_DOUBLE_EQ(MetricScore("rsa", warped->test), warped->test.rsa);
}

TEST_F(JobRunnerTest, UnknownLayerIsNamed) {
  auto result = RunJob(Parse(SyntheticJob("fc9")));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("fc9"), std::string::npos) << result.status().message();
}

TEST_F(JobRunnerTest, ADeviceThisProcessCannotUseIsRefusedBeforeAnyWork) {
  if (engine::ResolveDevice("cuda:0").ok()) GTEST_SKIP() << "this process can use cuda:0";
  std::vector<std::string> phases;
  JobRunOptions options;
  options.on_phase = [&phases](const std::string& phase) { phases.push_back(phase); };
  auto result = RunJob(Parse(SyntheticJob(), {"train.device=cuda:0"}), options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status().message().find("train.device = 'cuda:0'"), std::string::npos) << result.status().message();
  EXPECT_TRUE(phases.empty()) << phases.front();
}

const char* kLabels = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz";

// A tiny Fashion-MNIST classification job (300 images: 180 / 60 / 60) on an MLP with 16 hidden units.
std::string IdxClassificationJob(const std::string& layer, const std::string& d) {
  // No layer scalars in a subspace; at d = 0 there is no subspace, and layer_groups would be refused.
  const std::string groups = d == "0" ? "" : ", layer_groups: []";
  return "model: {arch: mlp, hidden: [16], layer: " + layer + groups + "}\n" +
         "data: {kind: idx, images: " + kImages + ", labels: " + kLabels + ", limit_stimuli: 300}\n" +
         "d: " + d + "\nobjective: classification\n" +
         "train: {lr: 1.0e-2, batch_size: 32, max_epochs: 3, patience: 0, seed: 2, threads: 1}\n";
}

TEST_F(JobRunnerTest, ClassificationRejectsHeadOptionsWithoutAHead) {
  // fc2 is the MLP's output layer: at d > 0 the job reads its 10 logits and has no head to decay or freeze.
  const std::string job = IdxClassificationJob("fc2", "10");
  auto decay = RunJob(Parse(job, {"train.weight_decay=0.1"}));
  ASSERT_FALSE(decay.ok());
  EXPECT_EQ(decay.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(decay.status().message().find("train.weight_decay = 0.1"), std::string::npos) << decay.status().message();
  auto freeze = RunJob(Parse(job, {"train.freeze_head=true"}));
  ASSERT_FALSE(freeze.ok());
  EXPECT_NE(freeze.status().message().find("train.freeze_head = true"), std::string::npos) << freeze.status().message();
  auto logits = RunJob(Parse(job, {"train.max_epochs=1"}));
  ASSERT_TRUE(logits.ok()) << logits.status().ToString();
  EXPECT_FALSE(logits->linear_head);
  EXPECT_EQ(logits->representation_size, 10);
  // On the inner layer fc1 the same options apply to the head.
  auto inner = RunJob(Parse(IdxClassificationJob("fc1", "10"),
                            {"train.weight_decay=0.1", "train.freeze_head=true", "train.max_epochs=1"}));
  ASSERT_TRUE(inner.ok()) << inner.status().ToString();
  EXPECT_TRUE(inner->linear_head);
}

TEST_F(JobRunnerTest, IdxClassificationAtDZeroTrainsALinearClassifier) {
  auto result = RunJob(Parse(IdxClassificationJob("fc1", "0"), {"train.max_epochs=20", "train.lr=0.05"}));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const nlohmann::json json = JobReportToJson(*result);
  EXPECT_EQ(json["metric"], "accuracy");
  EXPECT_EQ(json["d"], "0");
  EXPECT_EQ(json["trained_parameters"], 0);
  EXPECT_EQ(json["D"], 784 * 16 + 16);  // the frozen model: fc1
  EXPECT_EQ(json["representation_size"], 16);
  EXPECT_EQ(json["linear_head"], true);
  EXPECT_TRUE(std::isnan(result->noise_ceiling));  // classification has none
  EXPECT_TRUE(json["noise_ceiling"].is_null()) << json["noise_ceiling"];
  const JobResult sent = JobResultOf(*result);
  EXPECT_FALSE(sent.has_noise_ceiling());
  EXPECT_EQ(sent.metric, "accuracy");
  EXPECT_EQ(sent.test_score, result->test.accuracy);
  EXPECT_EQ(sent.val_score, result->validation.accuracy);
  EXPECT_EQ(sent.numbers_trained, 0);
  EXPECT_EQ(sent.parameters_warped, 784 * 16 + 16);
  EXPECT_EQ(json["data"]["train"], 180);
  EXPECT_EQ(json["data"]["val"], 60);
  EXPECT_EQ(json["data"]["test"], 60);
  EXPECT_EQ(json["data"]["targets"], 10);
  EXPECT_EQ(json["epochs_run"], 20);
  EXPECT_GT(json["scores"]["train"]["accuracy"].get<double>(), 0.5) << "chance is 0.1";
  EXPECT_GT(json["scores"]["test"]["accuracy"].get<double>(), 0.4) << "chance is 0.1";
}

TEST_F(JobRunnerTest, IdxClassificationOnAnInnerLayerTrainsAHeadThroughASubspace) {
  auto result =
      RunJob(Parse(IdxClassificationJob("fc1", "50"), {"train.lr=0.05", "train.batch_size=16", "train.max_epochs=5"}));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const nlohmann::json json = JobReportToJson(*result);
  EXPECT_EQ(json["d"], "50");
  EXPECT_EQ(json["trained_parameters"], 50);
  EXPECT_EQ(json["D"], 784 * 16 + 16);  // the warped layers: fc1 only
  EXPECT_EQ(json["representation_size"], 16);
  EXPECT_EQ(json["linear_head"], true);
  EXPECT_EQ(json["data"]["train"].get<int64_t>() + json["data"]["val"].get<int64_t>() +
                json["data"]["test"].get<int64_t>(),
            300);
  EXPECT_EQ(json["epochs_run"], 5);
  EXPECT_GT(json["scores"]["train"]["accuracy"].get<double>(), 0.3) << "chance is 0.1";
  EXPECT_GT(json["scores"]["test"]["accuracy"].get<double>(), 0.25) << "chance is 0.1";
}

TEST_F(JobRunnerTest, RidgeReadoutForClassificationIsRefusedNamingIt) {
  // The spec validation refuses it ...
  auto parsed = ParseJobSpec(IdxClassificationJob("fc1", "0"), SpecFormat::kYaml, {"readout=ridge"});
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("readout"), std::string::npos) << parsed.status().ToString();
  EXPECT_NE(parsed.status().message().find("ridge"), std::string::npos) << parsed.status().ToString();
  // ... and so does RunJob for a spec built in code.
  JobSpec spec = Parse(IdxClassificationJob("fc1", "0"));
  spec.readout = Readout::kRidge;
  auto result = RunJob(spec);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("readout = ridge with objective classification"), std::string::npos)
      << result.status().ToString();
  EXPECT_NE(result.status().message().find("expected readout sgd"), std::string::npos) << result.status().ToString();
}

// Three classes of 16x16 PNGs that differ in colour (with a little per-pixel variation): easy to learn.
std::string WriteColourFolder() {
  const std::filesystem::path root = std::filesystem::path(::testing::TempDir()) / "dwarp_colour_folder";
  std::filesystem::remove_all(root);
  const char* names[] = {"blue", "green", "red"};
  for (int c = 0; c < 3; ++c) {
    std::filesystem::create_directories(root / names[c]);
    for (int i = 0; i < 8; ++i) {
      unsigned char pixels[16 * 16 * 3];
      for (int p = 0; p < 16 * 16; ++p) {
        for (int ch = 0; ch < 3; ++ch) {
          const int base = (ch == 2 - c) ? 200 : 40;  // blue, green, red in folder order
          pixels[p * 3 + ch] = static_cast<unsigned char>(base + (p * 7 + i * 13 + ch) % 31);
        }
      }
      const std::string file = (root / names[c] / ("img" + std::to_string(i) + ".png")).string();
      EXPECT_NE(stbi_write_png(file.c_str(), 16, 16, 3, pixels, 16 * 3), 0) << file;
    }
  }
  return root.string();
}

TEST(JobRunnerImageFolder, ClassifiesAnImageFolder) {
  const std::string root = WriteColourFolder();
  const std::string job = "model: {arch: mlp, hidden: [8], layer: fc2, layer_groups: [], input_channels: 3, "
                          "input_size: 16}\n"
                          "data: {kind: image_folder, root: " + root + "}\n"
                          "d: 20\nobjective: classification\n"
                          "train: {lr: 5.0e-2, batch_size: 4, max_epochs: 15, patience: 0, seed: 0, threads: 1}\n";
  auto result = RunJob(Parse(job));
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->metric, "accuracy");
  EXPECT_EQ(result->num_targets, 3);
  EXPECT_EQ(result->train_size + result->val_size + result->test_size, 24);
  EXPECT_GT(result->train.accuracy, 0.6) << "chance is 1/3";
  auto one_channel = RunJob(Parse(job, {"model.input_channels=1"}));
  ASSERT_FALSE(one_channel.ok());
  EXPECT_NE(one_channel.status().message().find("input_channels = 1"), std::string::npos)
      << one_channel.status().ToString();
}

TEST(JobRunnerErrors, MissingImagesAreNotFound) {
  auto spec = ParseJobSpec(
      "model: {arch: mlp, hidden: [8], layer: fc1}\n"
      "data: {kind: synthetic, images: /nonexistent/dwarp/x-idx3-ubyte}\n"
      "d: 5\n",
      SpecFormat::kYaml);
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  auto result = RunJob(*spec);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kNotFound);
  EXPECT_NE(result.status().message().find("/nonexistent/dwarp/x-idx3-ubyte"), std::string::npos);
}

TEST_F(JobRunnerTest, IdxFewShotClassificationDrawsClassesAndSamples) {
  const JobSpec spec = Parse(std::string("model: {arch: mlp, hidden: [16], layer: fc2, layer_groups: []}\n") +
                             "data: {kind: idx, images: " + kImages + ", labels: " +
                             "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz, limit_stimuli: 3000, "
                             "limit_classes: 3, limit_samples: 20}\n"
                             "d: 50\nobjective: classification\n"
                             "train: {max_epochs: 2, batch_size: 8, patience: 0, threads: 1}\n");
  auto result = RunJob(spec);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->metric, "accuracy");
  EXPECT_EQ(result->num_targets, 3);
  // 20 per class, split 60 / 20 / 20 inside each class.
  EXPECT_EQ(result->train_size, 36);
  EXPECT_EQ(result->val_size, 12);
  EXPECT_EQ(result->test_size, 12);
  EXPECT_GE(result->test.accuracy, 0.0);
  EXPECT_LE(result->test.accuracy, 1.0);
}

// Jobs on the real dataset layouts (the xarray-written fixtures of tests/engine/datasets/).
TEST(JobRunnerNeuralData, NsdJobAcceptsMetadataForStimuliTheSubjectNeverSaw) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  // The real NSD metadata.csv lists all 73,000 images; one subject's voxels.nc holds ~10,000 of them.
  namespace fs = std::filesystem;
  const engine::testing::FixtureCopy nsd("nsd");
  const fs::path root = nsd.path();
  std::ofstream(root / "metadata.csv", std::ios::app) << "10,555,nsd_555.png,False,5555\n";
  const JobSpec spec = Parse("model: {arch: mlp, hidden: [8], layer: fc1, input_size: 8}\n"
                             "data: {kind: nsd, root: " + root.string() + ", stimuli: " + (root / "stimuli").string() +
                             "}\nd: 0\nreadout: ridge\ntrain: {threads: 1}\n");
  auto result = RunJob(spec);
  ASSERT_TRUE(result.ok()) << result.status();
  // 10 stimuli seen: 3 shared1000 (test), the 7 others split 80/20 in voxels.nc order.
  EXPECT_EQ(result->train_size, 5);
  EXPECT_EQ(result->val_size, 2);
  EXPECT_EQ(result->test_size, 3);
  EXPECT_EQ(result->num_targets, 4);
  EXPECT_TRUE(std::isfinite(result->test.r2));
}

TEST(JobRunnerNeuralData, NsdJobWithARoiHasThatRoisVoxelsAsTargets) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  const std::string root = engine::testing::FixturePath("nsd");  // voxels labelled V1v LOC V1v FFA-1
  const std::string job = "model: {arch: mlp, hidden: [8], layer: fc1, input_size: 8}\n"
                          "data: {kind: nsd, root: " + root + ", stimuli: " + root + "/stimuli, roi: V1v}\n"
                          "d: 0\nreadout: ridge\ntrain: {threads: 1}\n";
  auto result = RunJob(Parse(job));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->num_targets, 2);
  EXPECT_EQ(result->test_size, 3);
  EXPECT_NE(result->data_description.find("nsd V1v:"), std::string::npos) << result->data_description;
  EXPECT_TRUE(std::isfinite(result->test.r2));

  auto unknown = RunJob(Parse(job, {"data.roi=[V1v, hV4]"}));
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("'hV4' matches no voxel"), std::string::npos) << unknown.status();
}

// A job on the Majaj-Hong fixture (regions IT V4 IT V4 IT) with `roi` and the lines after data.
JobSpec MajajHongJob(const std::string& roi, const std::string& rest) {
  return Parse("model: {arch: mlp, hidden: [8], layer: fc1, input_size: 8}\n"
               "data: {kind: majaj_hong, file: " + engine::testing::FixturePath("majaj/brainio.nc") +
               ", stimuli: " + engine::testing::FixturePath("majaj/stimuli") + ", roi: " + roi + "}\n" + rest);
}

TEST(JobRunnerNeuralData, MajajHongJobReadsOneRegionThroughASubspace) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  const JobSpec spec = MajajHongJob("IT", "d: 10\ntrain: {max_epochs: 2, batch_size: 4, patience: 0, threads: 1}\n");
  auto result = RunJob(spec);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->num_targets, 3);  // the IT neuroids of IT V4 IT V4 IT
  EXPECT_EQ(result->train_size + result->val_size + result->test_size, 10);
  EXPECT_EQ(result->train_size, 6);
  EXPECT_EQ(result->epochs_run, 2);
}

TEST(JobRunnerNeuralData, MajajHongJobWithTwoRegionsHasBothRegionsNeuroidsAsTargets) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  const JobSpec spec = MajajHongJob("[IT, V4]", "d: 0\nreadout: ridge\ntrain: {threads: 1}\n");
  auto result = RunJob(spec);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->num_targets, 5);  // 3 IT + 2 V4 neuroids
  EXPECT_EQ(result->train_size, 6);
  EXPECT_NE(result->data_description.find("majaj_hong IT+V4:"), std::string::npos) << result->data_description;
  EXPECT_TRUE(std::isfinite(result->test.r2));

  const auto twice = ParseJobSpec("data: {kind: majaj_hong, file: a.nc, stimuli: b, roi: [V4, IT, V4]}\n"
                                  "model: {arch: mlp, layer: fc1}\nd: 0\n", SpecFormat::kYaml);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("data.roi[2] = \"V4\"; expected each region once"), std::string::npos)
      << twice.status();
}

// A lab's own files: data.coords names the coordinates, data.nan drops the neuroids with NaN responses and the
// log says how many.
TEST(JobRunnerNeuralData, MajajHongJobReadsTheCoordinatesItNamesAndDropsNanNeuroids) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  const std::string stimuli = engine::testing::FixturePath("majaj/stimuli");
  auto job = [&](const std::string& file, const std::string& data_lines) {
    return Parse("model: {arch: mlp, hidden: [8], layer: fc1, input_size: 8}\n"
                 "data: {kind: majaj_hong, file: " + engine::testing::FixturePath("majaj_lab/" + file) +
                 ", stimuli: " + stimuli + data_lines + "}\nd: 0\nreadout: ridge\ntrain: {threads: 1}\n");
  };
  // Coordinates stim / file / area, regions IT V4 IT V4 IT V1.
  auto renamed = RunJob(job("renamed.nc", ", roi: [V1, V4], coords: {image_id: stim, image_name: file, region: area}"));
  ASSERT_TRUE(renamed.ok()) << renamed.status();
  EXPECT_EQ(renamed->num_targets, 3);
  EXPECT_EQ(renamed->test_size, 2);
  auto defaults = RunJob(job("renamed.nc", ""));
  ASSERT_FALSE(defaults.ok());
  EXPECT_NE(defaults.status().message().find("no 1-D coordinate 'region'"), std::string::npos) << defaults.status();

  // netCDF3 without image_id values; image 4 of neuroid 2 (IT) is NaN in nan.nc.
  auto no_ids = RunJob(job("no_ids_netcdf3.nc", ""));
  ASSERT_TRUE(no_ids.ok()) << no_ids.status();
  EXPECT_EQ(no_ids->num_targets, 3);
  auto refused = RunJob(job("nan.nc", ""));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("stimulus 'img4'"), std::string::npos) << refused.status();
  std::vector<std::string> log;
  JobRunOptions options;
  options.on_phase = [&log](const std::string& line) { log.push_back(line); };
  auto dropped = RunJob(job("nan.nc", ", nan: drop_targets"), options);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(dropped->num_targets, 2);
  const std::string said = "1 of 3 neuroids dropped for NaN responses: 'Chabo_L_M_2'";
  EXPECT_NE(dropped->data_description.find(said), std::string::npos) << dropped->data_description;
  EXPECT_TRUE(std::any_of(log.begin(), log.end(), [&](const std::string& l) { return l.find(said) != std::string::npos; }));
  EXPECT_EQ(dropped->spec.data.nan, NanPolicy::kDropTargets);
}

// NSD ROIs from boolean roi_<name> masks (nsd_masks: roi_V1v = voxels 0, 1; roi_LOC = voxels 1, 2; netCDF3).
TEST(JobRunnerNeuralData, NsdJobSelectsRoisFromBooleanMasks) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  const std::string root = engine::testing::FixturePath("nsd_masks");
  auto result = RunJob(Parse("model: {arch: mlp, hidden: [8], layer: fc1, input_size: 8}\n"
                             "data: {kind: nsd, root: " + root + ", stimuli: " + root + "/stimuli, roi: LOC}\n"
                             "d: 0\nreadout: ridge\ntrain: {threads: 1}\n"));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->num_targets, 2);
  EXPECT_NE(result->data_description.find("nsd LOC:"), std::string::npos) << result->data_description;
}

TEST(JobRunnerNeuralData, GenericJobTakesItsSplitFromTheNamedColumn) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  namespace fs = std::filesystem;
  const engine::testing::FixtureCopy generic("generic_images");
  const fs::path root = generic.path();
  // 8 stimuli: by the `split` column 4 train, 2 val, 2 test; by split_by_session 3 train, 2 val, 3 test.
  std::ofstream(root / "stimuli.csv", std::ios::trunc)
      << "stimulus_id,filename,split,split_by_session\n"
         "s0,g0.png,train,train\ns1,g1.png,test,train\ns2,g2.png,train,train\ns3,g3.png,val,val\n"
         "s4,g4.png,train,test\ns5,g5.png,validation,val\ns6,g6.png,test,test\ns7,g7.png,train,test\n";
  const std::string job = "model: {arch: mlp, hidden: [8], layer: fc1, input_size: 8}\n"
                          "data: {kind: generic, root: " + root.string() + ", split: {column: split_by_session}}\n"
                          "d: 0\nreadout: ridge\ntrain: {threads: 1}\n";
  auto result = RunJob(Parse(job));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->train_size, 3);
  EXPECT_EQ(result->val_size, 2);
  EXPECT_EQ(result->test_size, 3);
  EXPECT_EQ(result->num_targets, 3);
  EXPECT_NEAR(result->noise_ceiling, 0.6, 1e-6);  // the mean of noise_ceiling.npy: 0.5, 0.6, 0.7

  auto missing = RunJob(Parse(job, {"data.split.column=session_split"}));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing.status().message().find("no split column 'session_split'"), std::string::npos)
      << missing.status();
  EXPECT_NE(missing.status().message().find("'split_by_session'"), std::string::npos) << missing.status();
}

TEST(JobRunnerNeuralData, MajajHongJobAppliesItsSplitAndStimulusLimit) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  const std::string rest = "d: 0\nreadout: ridge\ntrain: {threads: 1}\n";
  // 10 distinct images; the default split is the seed's: 6 / 2 / 2.
  auto plain = RunJob(MajajHongJob("IT", rest));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->train_size, 6);
  EXPECT_EQ(plain->val_size, 2);
  EXPECT_EQ(plain->test_size, 2);
  // 0.5 / 0.25 / 0.25 of 10: train floor(5), val up to floor(7.5).
  const JobSpec split_spec = Parse(
      "model: {arch: mlp, hidden: [8], layer: fc1, input_size: 8}\n"
      "data: {kind: majaj_hong, file: " + engine::testing::FixturePath("majaj/brainio.nc") + ", stimuli: " +
      engine::testing::FixturePath("majaj/stimuli") + ", split: {train: 0.5, val: 0.25, test: 0.25}}\n" + rest);
  auto split = RunJob(split_spec);
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(split->train_size, 5);
  EXPECT_EQ(split->val_size, 2);
  EXPECT_EQ(split->test_size, 3);
  // The first 8 images, split 60 / 20 / 20: floor(4.8), up to floor(6.4).
  auto limited = RunJob(Parse(
      "model: {arch: mlp, hidden: [8], layer: fc1, input_size: 8}\n"
      "data: {kind: majaj_hong, file: " + engine::testing::FixturePath("majaj/brainio.nc") + ", stimuli: " +
      engine::testing::FixturePath("majaj/stimuli") + ", limit_stimuli: 8}\n" + rest));
  ASSERT_TRUE(limited.ok()) << limited.status();
  EXPECT_EQ(limited->train_size, 4);
  EXPECT_EQ(limited->val_size, 2);
  EXPECT_EQ(limited->test_size, 2);
  EXPECT_NE(limited->data_description.find(": 8 images"), std::string::npos) << limited->data_description;
}

TEST(JobRunnerNeuralData, NsdJobAppliesItsTrainFractionAndStimulusLimit) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  const std::string root = engine::testing::FixturePath("nsd");  // stimuli 100..109, 107..109 shared1000
  const std::string job = "model: {arch: mlp, hidden: [8], layer: fc1, input_size: 8}\n"
                          "data: {kind: nsd, root: " + root + ", stimuli: " + root + "/stimuli}\n"
                          "d: 0\nreadout: ridge\ntrain: {threads: 1}\n";
  // 7 non-shared stimuli: train floor(7 * 0.5) = 3, the other 4 validate; the 3 shared1000 test.
  auto split = RunJob(Parse(job, {"+data.split={train: 0.5, val: 0.5}"}));
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_EQ(split->train_size, 3);
  EXPECT_EQ(split->val_size, 4);
  EXPECT_EQ(split->test_size, 3);
  // The first 9 stimuli of voxels.nc (100..108): 7 non-shared split 5 / 2, 2 shared1000.
  auto limited = RunJob(Parse(job, {"+data.limit_stimuli=9"}));
  ASSERT_TRUE(limited.ok()) << limited.status();
  EXPECT_EQ(limited->train_size, 5);
  EXPECT_EQ(limited->val_size, 2);
  EXPECT_EQ(limited->test_size, 2);
}

// Every data field a neural job accepts changes what the job does, or the job is refused naming the field:
// each row overrides one field of a base job and the job's split sizes, targets or test score must move (or
// parsing or running must fail with the row's message). Deterministic: an SGD readout at d = 0 on a seeded
// network, observed through its training losses as well as its scores.
TEST(JobRunnerNeuralData, EveryAcceptedDataFieldChangesTheJobOrIsRefused) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  const std::string nsd = engine::testing::FixturePath("nsd");
  // The generic fixture with patterned, non-square images (the fixture's are solid colours, which every
  // transform leaves alone).
  namespace fs = std::filesystem;
  const engine::testing::FixtureCopy generic_copy("generic_images");
  const fs::path generic = generic_copy.path();
  for (int i = 0; i < 8; ++i) {
    const int w = 16, h = 10;
    std::vector<unsigned char> px(static_cast<size_t>(w * h * 3));
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        unsigned char* p = &px[static_cast<size_t>((y * w + x) * 3)];
        p[0] = static_cast<unsigned char>(15 * x + 20 * i);
        p[1] = static_cast<unsigned char>(25 * y);
        p[2] = static_cast<unsigned char>((x * y * 7 + i * 31) % 256);
      }
    }
    const std::string path = (generic / "stimuli" / ("g" + std::to_string(i) + ".png")).string();
    ASSERT_NE(stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3), 0) << path;
  }
  const std::string rest = "d: 0\ntrain: {threads: 1, max_epochs: 2, patience: 0, batch_size: 4}\n";
  const std::string model = "model: {arch: mlp, hidden: [8], layer: fc1, input_size: 8, input_channels: 3}\n";
  const std::map<std::string, std::string> base = {
      {"majaj_hong", model + "data: {kind: majaj_hong, file: " + engine::testing::FixturePath("majaj/brainio.nc") +
                         ", stimuli: " + engine::testing::FixturePath("majaj/stimuli") + "}\n" + rest},
      {"nsd", model + "data: {kind: nsd, root: " + nsd + ", stimuli: " + nsd + "/stimuli}\n" + rest},
      {"generic", model + "data: {kind: generic, root: " + generic.string() + "}\n" + rest}};
  struct Row {
    std::string kind, override_, refused;  // refused: a substring of the parse error, or empty
  };
  const std::vector<Row> rows = {
      {"majaj_hong", "data.roi=V4", ""},
      {"majaj_hong", "+data.split={train: 0.5, val: 0.25, test: 0.25}", ""},
      {"majaj_hong", "+data.limit_stimuli=8", ""},
      {"majaj_hong", "+data.transform=weights", ""},
      {"majaj_hong", "+data.image_size=6", "data.image_size = 6; expected model.input_size = 8"},
      {"majaj_hong", "+data.mean=[0.2]", ""},
      {"majaj_hong", "+data.std=[0.5]", ""},
      {"nsd", "+data.roi=LOC", ""},
      {"nsd", "+data.split={train: 0.5, val: 0.5}", ""},
      {"nsd", "+data.limit_stimuli=9", ""},
      {"nsd", "+data.transform=weights", ""},
      {"nsd", "+data.mean=[0.2]", ""},
      {"nsd", "+data.std=[0.5]", ""},
      {"generic", "+data.split={train: 0.5, val: 0.25, test: 0.25}", "data.split.train = 0.5; expected no train"},
      {"generic", "+data.limit_stimuli=4", "data.limit_stimuli = 4; expected no limit_stimuli"},
      {"generic", "+data.transform=weights", ""},
      {"generic", "+data.mean=[0.2]", ""},
      {"generic", "+data.roi=IT", "data.roi = \"IT\"; expected no roi"},
      {"nsd", "+data.limit_classes=2", "data.limit_classes = 2; expected no limit_classes"},
  };
  struct Observed {
    int64_t train, val, test, targets;
    double r2, losses;
    std::string error;
  };
  auto run = [](const JobSpec& spec) {
    auto r = RunJob(spec);
    if (!r.ok()) return Observed{0, 0, 0, 0, 0.0, 0.0, r.status().message()};
    double losses = 0.0;
    for (const auto& epoch : r->history) losses += epoch.train_loss;
    return Observed{r->train_size, r->val_size, r->test_size, r->num_targets, r->test.r2, losses, ""};
  };
  std::map<std::string, Observed> before;
  for (const auto& [kind, job] : base) {
    before[kind] = run(Parse(job));
    ASSERT_TRUE(before[kind].error.empty()) << kind << ": " << before[kind].error;
  }
  for (const Row& row : rows) {
    SCOPED_TRACE(row.kind + " " + row.override_);
    auto spec = ParseJobSpec(base.at(row.kind), SpecFormat::kYaml, {row.override_});
    if (!row.refused.empty() && !spec.ok()) {
      EXPECT_NE(spec.status().message().find(row.refused), std::string::npos) << spec.status();
      continue;
    }
    ASSERT_TRUE(spec.ok()) << spec.status();
    const Observed after = run(*spec);
    if (!row.refused.empty()) {
      EXPECT_NE(after.error.find(row.refused), std::string::npos) << after.error;
      continue;
    }
    ASSERT_TRUE(after.error.empty()) << after.error;
    const Observed& b = before[row.kind];
    const bool changed = after.train != b.train || after.val != b.val || after.test != b.test ||
                         after.targets != b.targets || std::abs(after.r2 - b.r2) > 1e-9 ||
                         std::abs(after.losses - b.losses) > 1e-9;
    EXPECT_TRUE(changed) << "the job ran as without the override (test R^2 " << after.r2 << ")";
  }
}

// A ResNet-18 job's features on a folder of real photographs (python3-skimage's) with data.transform: weights
// equal torchvision's pipeline's (ResNet18_Weights.IMAGENET1K_V1.transforms() on PIL images, then the same
// network, exported by clients/export_torchvision.py) to within float noise; squashing the images instead
// gives other features. Skipped without Debian's python3-torchvision or python3-skimage.
TEST(JobRunnerImageTransform, ResNet18FeaturesWithTheWeightsTransformEqualTorchvisionsPipeline) {
  namespace fs = std::filesystem;
  const fs::path photos_dir = "/usr/lib/python3/dist-packages/skimage/data";
  const std::vector<std::string> photos = {"astronaut.png", "camera.png", "chelsea.png", "coffee.png",
                                           "motorcycle_left.png"};
  for (const auto& photo : photos) {
    if (!fs::exists(photos_dir / photo)) GTEST_SKIP() << (photos_dir / photo) << " not installed (python3-skimage)";
  }
  const char* env_python = std::getenv("DWARP_TEST_PYTHON");
  const std::string python = env_python != nullptr && *env_python != '\0' ? env_python : "/usr/bin/python3";
  const fs::path dir = fs::temp_directory_path() / ("dwarp_job_runner_transform_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "photos");
  for (const auto& photo : photos) fs::copy_file(photos_dir / photo, dir / "photos" / photo);
  std::ofstream(dir / "reference.py") << R"(import os, sys
try:
    import numpy as np, torch, torchvision
    from PIL import Image
    from torchvision.models import ResNet18_Weights
except ImportError:
    sys.exit(77)
out = sys.argv[1]
torch.manual_seed(2)
model = torchvision.models.resnet18()
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2); m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5); m.bias.normal_(0, 0.2)
torch.save(model.state_dict(), os.path.join(out, "weights.pth"))
model.fc = torch.nn.Identity()
model.eval()
transform = ResNet18_Weights.IMAGENET1K_V1.transforms()
names = sorted(os.listdir(os.path.join(out, "photos")))
x = torch.stack([transform(Image.open(os.path.join(out, "photos", n)).convert("RGB")) for n in names])
with torch.no_grad():
    np.save(os.path.join(out, "features.npy"), model(x).numpy())
)";
  const std::string log = (dir / "reference.log").string();
  const int status = std::system((python + " " + (dir / "reference.py").string() + " " + dir.string() + " > " + log +
                                  " 2>&1").c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
    fs::remove_all(dir);
    GTEST_SKIP() << python << " cannot import torch, torchvision and PIL (Debian: python3-torchvision)";
  }
  ASSERT_EQ(status, 0) << "the reference script failed; see " << log;
  const std::string export_command = python + " " DWARP_EXPORT_SCRIPT " resnet18 " + (dir / "resnet18.pt").string() +
                                     " --weights " + (dir / "weights.pth").string() + " >> " + log + " 2>&1";
  ASSERT_EQ(std::system(export_command.c_str()), 0) << export_command << "; see " << log;
  auto expected = engine::ReadNpyFile((dir / "features.npy").string());
  ASSERT_TRUE(expected.ok()) << expected.status();

  // No data.transform: weights is resnet18's default for image files.
  const std::string job = "model: {arch: resnet18, layer: avgpool, weights: " + (dir / "resnet18.pt").string() +
                          "}\ndata: {kind: synthetic, stimuli: " + (dir / "photos").string() +
                          ", synthetic: {targets: 4}}\nd: 0\ntrain: {threads: 2}\n";
  const JobSpec spec = Parse(job);
  EXPECT_EQ(spec.data.transform, DataTransform::kWeights);
  auto features = JobFeaturesOfImageFolder(spec, spec.data.stimuli);
  ASSERT_TRUE(features.ok()) << features.status();
  ASSERT_EQ(features->sizes(), expected->sizes());
  const double diff = (*features - *expected).abs().max().item<double>();
  const double scale = expected->abs().max().item<double>();
  std::printf("resnet18 avgpool, %zu photographs, data.transform weights: max |dwarp - torchvision| = %.3g "
              "(max |feature| %.3g)\n", photos.size(), diff, scale);
  EXPECT_LE(diff, 1e-5 * std::max(1.0, scale));

  auto squashed = JobFeaturesOfImageFolder(Parse(job, {"+data.transform=squash"}), spec.data.stimuli);
  ASSERT_TRUE(squashed.ok()) << squashed.status();
  const double squash_diff = (*squashed - *expected).abs().max().item<double>();
  std::printf("resnet18 avgpool, data.transform squash: max |dwarp - torchvision's weights pipeline| = %.3g\n",
              squash_diff);
  EXPECT_GT(squash_diff, 100 * std::max(diff, 1e-6));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dwarp::worker
