// RunJob (worker/job_runner.h) on small real jobs: a synthetic brain on Fashion-MNIST images (skipped when
// Debian's dataset-fashion-mnist is not installed) at d = 0 (ridge, SGD) and d > 0, and the errors for
// what is bad or unsupported.
#include "worker/job_runner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "common/job_spec.h"

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
  EXPECT_EQ(result->d, 10);
  EXPECT_EQ(result->D, 784 * 16 + 16);  // fc1 only: the layers up to the read-out
  EXPECT_EQ(result->train_size + result->val_size + result->test_size, 300);
  EXPECT_EQ(result->num_targets, 4);
  const nlohmann::json json = JobResultToJson(*result);
  EXPECT_EQ(json["d"], "10");
  EXPECT_EQ(json["device"], "cpu");
  EXPECT_EQ(json["history"].size(), 4u);
  auto round_trip = JobSpecFromJson(json["spec"]);
  ASSERT_TRUE(round_trip.ok()) << round_trip.status().ToString();
  EXPECT_TRUE(*round_trip == spec);
}

TEST_F(JobRunnerTest, LinearReadoutsFitTheSyntheticBrain) {
  auto ridge = RunJob(Parse(SyntheticJob(), {"d=0", "readout=ridge", "+ridge={alphas: [0.01, 1, 100]}"}));
  ASSERT_TRUE(ridge.ok()) << ridge.status().ToString();
  EXPECT_EQ(ridge->epochs_run, 0);
  EXPECT_GT(ridge->train.r2, 0.5);
  EXPECT_EQ(ridge->representation_size, 16);
  auto sgd = RunJob(Parse(SyntheticJob(), {"d=0"}));
  ASSERT_TRUE(sgd.ok()) << sgd.status().ToString();
  EXPECT_EQ(sgd->epochs_run, 4);
  EXPECT_TRUE(std::isfinite(sgd->test.r2));
}

TEST_F(JobRunnerTest, UnknownLayerIsNamed) {
  auto result = RunJob(Parse(SyntheticJob("fc9")));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("fc9"), std::string::npos) << result.status().message();
}

TEST_F(JobRunnerTest, UnsupportedDeviceIsAnError) {
  auto result = RunJob(Parse(SyntheticJob(), {"train.device=cuda"}));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("train.device = cuda"), std::string::npos) << result.status().message();
}

TEST_F(JobRunnerTest, ClassificationRejectsHeadOptionsItWouldIgnore) {
  const std::string job =
      "model: {arch: mlp, hidden: [16], layer: fc2, layer_groups: []}\n"
      "data: {kind: idx, images: /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz,\n"
      "       labels: /usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz, limit_stimuli: 300}\n"
      "d: 10\nobjective: classification\n"
      "train: {max_epochs: 1, threads: 1}\n";
  auto decay = RunJob(Parse(job, {"train.weight_decay=0.1"}));
  ASSERT_FALSE(decay.ok());
  EXPECT_NE(decay.status().message().find("weight_decay"), std::string::npos) << decay.status().message();
  auto ok = RunJob(Parse(job));
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
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

}  // namespace
}  // namespace dwarp::worker
