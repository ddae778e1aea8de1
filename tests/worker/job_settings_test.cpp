// Every train and model setting a job file may hold either changes what the job does or is refused naming
// the field (common/job_spec.h SettingsUnusedBy), at each kind of job: d = 0 with a ridge or an SGD readout,
// a subspace d, d = full, objective rsa at d = 0 and d > 0, and readout prefit_warped. Each accepted
// setting runs a real job (RunJob on a synthetic brain over Debian's Fashion-MNIST images; skipped when
// dataset-fashion-mnist is not installed) and must change its sizes, scores, losses or epochs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/job_spec.h"
#include "worker/job_runner.h"

namespace dwarp::worker {
namespace {

const char* kImages = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";

// A small synthetic-brain job of one kind. The brain has a teacher, so the job's own projection shapes only
// its subspace. The loop settings (given only where the job trains by epochs) stop after the second epoch
// unless a validation gain of 0.5 comes (patience 1), so patience and min_delta show in the epoch count.
std::string Job(const std::string& kind) {
  const std::string loop = "lr: 1.0e-2, batch_size: 32, max_epochs: 4, patience: 1, min_delta: 0.5, ";
  std::string head = "d: 0\nreadout: ridge\n";
  std::string train = "";
  if (kind == "sgd0") head = "d: 0\n", train = loop;
  if (kind == "subspace") head = "d: 10\n", train = loop;
  if (kind == "full") head = "d: full\n", train = loop;
  if (kind == "rsa0") head = "d: 0\nobjective: rsa\n";
  if (kind == "rsa") head = "d: 10\nobjective: rsa\n", train = loop;
  if (kind == "prefit") head = "d: 10\nreadout: prefit_warped\n", train = loop;
  return std::string("model: {arch: mlp, hidden: [16, 12], layer: fc2}\n") +
         "data: {kind: synthetic, images: " + kImages + ", limit_stimuli: 300,\n" +
         "       synthetic: {targets: 4, warp_dim: 3, noise: 0.1, teacher: {arch: mlp, hidden: [16, 12], "
         "layer: fc2, seed: 9}}}\n" +
         head + "train: {" + train + "seed: 1, threads: 1}\n";
}

struct Observed {
  int64_t train = 0, val = 0, test = 0, targets = 0, epochs = 0, best_epoch = 0;
  double score = 0.0, losses = 0.0;
  std::string error;
};

Observed RunAndObserve(const JobSpec& spec) {
  auto r = RunJob(spec);
  Observed o;
  if (!r.ok()) {
    o.error = r.status().message();
    return o;
  }
  for (const auto& epoch : r->history) o.losses += epoch.train_loss;
  o.train = r->train_size, o.val = r->val_size, o.test = r->test_size, o.targets = r->num_targets;
  o.epochs = r->epochs_run, o.best_epoch = r->best_epoch;
  o.score = spec.objective == Objective::kRsa ? r->test.rsa : r->test.r2;
  return o;
}

bool Differs(const Observed& a, const Observed& b) {
  return a.train != b.train || a.val != b.val || a.test != b.test || a.targets != b.targets ||
         a.epochs != b.epochs || a.best_epoch != b.best_epoch || std::abs(a.score - b.score) > 1e-9 ||
         std::abs(a.losses - b.losses) > 1e-9;
}

TEST(JobSettingsTest, EveryAcceptedTrainAndModelSettingChangesTheJobOrIsRefused) {
  if (!std::filesystem::exists(kImages)) GTEST_SKIP() << kImages << " not installed";
  struct Row {
    std::string kind;
    std::vector<std::string> overrides;
    std::string refused;  // a substring of the parse error, or empty: the job must run differently
  };
  const std::string closed_form = "expected no value: at d = 0 with readout ridge";
  const std::string scoring = "expected no value: objective rsa at d = 0 scores";
  const std::string no_theta_0 = "d = 0 has no theta_d";
  const std::string no_theta_full = "d = full has no theta_d";
  const std::vector<Row> rows = {
      {"ridge0", {"+train.lr=0.5"}, "train.lr = 0.5; " + closed_form},
      {"ridge0", {"+train.schedule=cosine"}, "train.schedule = \"cosine\"; " + closed_form},
      {"ridge0", {"+train.batch_size=8"}, "train.batch_size = 8; " + closed_form},
      {"ridge0", {"+train.max_epochs=2"}, "train.max_epochs = 2; " + closed_form},
      {"ridge0", {"+train.patience=3"}, "train.patience = 3; " + closed_form},
      {"ridge0", {"+train.min_delta=0"}, "train.min_delta = 0; " + closed_form},
      {"ridge0", {"+train.weight_decay=0.1"}, "train.weight_decay = 0.1; expected no value: readout ridge's penalty"},
      {"ridge0", {"+train.low_dim_lr=0.5"}, "train.low_dim_lr = 0.5; expected no value: the rate of theta_d"},
      {"ridge0", {"+train.low_dim_lr_scaling=none"}, no_theta_0},
      {"ridge0", {"+model.projection=global"}, "model.projection = \"global\"; expected no value"},
      {"ridge0", {"+model.layer_groups=[[fc1]]"}, "model.layer_groups = [[\"fc1\"]]; expected no value"},
      {"ridge0", {"+ridge.alphas=[1.0e+4]"}, ""},
      {"sgd0", {"train.lr=0.3"}, ""},
      {"sgd0", {"+train.schedule=cosine"}, ""},
      {"sgd0", {"train.batch_size=8"}, ""},
      {"sgd0", {"train.max_epochs=1"}, ""},
      {"sgd0", {"train.patience=3"}, ""},
      {"sgd0", {"train.min_delta=0"}, ""},
      {"sgd0", {"+train.weight_decay=0.5"}, ""},
      {"sgd0", {"+train.low_dim_lr=0.5"}, no_theta_0},
      {"sgd0", {"+model.projection=global"}, no_theta_0},
      {"sgd0", {"+train.freeze_head=true"}, "train.freeze_head = true; expected false when d = 0"},
      {"sgd0", {"+train.head_init=ridge"}, "expected default when d = 0"},
      {"subspace", {"train.lr=0.3"}, ""},
      {"subspace", {"+train.low_dim_lr=0.5"}, ""},
      {"subspace", {"+train.low_dim_lr_scaling=none"}, ""},
      {"subspace", {"+train.schedule=constant"}, ""},
      {"subspace", {"train.batch_size=8"}, ""},
      {"subspace", {"train.max_epochs=1"}, ""},
      {"subspace", {"train.patience=3"}, ""},
      {"subspace", {"train.min_delta=0"}, ""},
      {"subspace", {"+train.weight_decay=0.5"}, ""},
      {"subspace", {"+train.freeze_head=true"}, ""},
      {"subspace", {"+train.head_init=ridge"}, ""},
      {"subspace", {"+model.projection=global"}, ""},
      {"subspace", {"+model.layer_groups=[[fc1, fc2]]"}, ""},  // one scalar instead of one per layer
      {"full", {"train.lr=0.3"}, ""},
      {"full", {"+train.low_dim_lr=0.5"}, no_theta_full},
      {"full", {"+train.low_dim_lr_scaling=none"}, no_theta_full},
      {"full", {"+model.projection=per_tensor"}, no_theta_full},
      {"full", {"+model.layer_groups=[[fc1]]"}, no_theta_full},
      {"rsa0", {"+train.lr=0.5"}, "train.lr = 0.5; " + scoring},
      {"rsa0", {"+train.max_epochs=2"}, "train.max_epochs = 2; " + scoring},
      {"rsa0", {"+model.projection=global"}, no_theta_0},
      {"rsa", {"train.lr=0.3"}, ""},  // low_dim_lr's default
      {"rsa", {"~train.lr", "+train.low_dim_lr=0.3"}, ""},
      {"rsa", {"train.lr=0.3", "+train.low_dim_lr=0.02"}, "train.lr = 0.3; expected no value: with objective rsa"},
      {"rsa", {"+train.weight_decay=0.1"}, "train.weight_decay = 0.1; expected 0 with objective rsa"},
      {"prefit", {"~train.lr", "+train.low_dim_lr=0.3"}, ""},
      {"prefit", {"train.lr=0.3"}, ""},  // low_dim_lr's default
      {"prefit", {"train.lr=0.3", "+train.low_dim_lr=0.02"}, "expected no value: with readout prefit_warped"},
      {"prefit", {"+train.freeze_head=true"}, "train.freeze_head = true; expected false (with readout prefit_warped"},
  };
  std::map<std::string, Observed> before;
  for (const Row& row : rows) {
    SCOPED_TRACE(row.kind + " " + ::testing::PrintToString(row.overrides));
    auto spec = ParseJobSpec(Job(row.kind), SpecFormat::kYaml, row.overrides);
    if (!row.refused.empty()) {
      ASSERT_FALSE(spec.ok()) << "accepted; expected a refusal containing: " << row.refused;
      EXPECT_NE(spec.status().message().find(row.refused), std::string::npos) << spec.status();
      continue;
    }
    ASSERT_TRUE(spec.ok()) << spec.status();
    if (!before.count(row.kind)) {
      auto base = ParseJobSpec(Job(row.kind), SpecFormat::kYaml);
      ASSERT_TRUE(base.ok()) << base.status();
      before[row.kind] = RunAndObserve(*base);
      ASSERT_TRUE(before[row.kind].error.empty()) << row.kind << ": " << before[row.kind].error;
    }
    const Observed after = RunAndObserve(*spec);
    ASSERT_TRUE(after.error.empty()) << after.error;
    const Observed& b = before[row.kind];
    EXPECT_TRUE(Differs(after, b)) << "the job ran as without the override: test score " << after.score
                                   << ", epochs " << after.epochs;
  }
}

// What a job does not use is left out of its recorded spec, and a sweep's shared block reaches each job
// only where it applies: the d = 0 ridge job of a sweep whose train block sets the subspace's rate records
// no rate, and its d = 10 job records it.
TEST(JobSettingsTest, RecordedSpecsHoldOnlyTheSettingsThatTookEffect) {
  auto ridge = ParseJobSpec(Job("ridge0"), SpecFormat::kYaml);
  ASSERT_TRUE(ridge.ok()) << ridge.status();
  const nlohmann::json recorded = ToJson(*ridge);
  for (const char* key : {"lr", "low_dim_lr", "low_dim_lr_scaling", "schedule", "weight_decay", "batch_size",
                          "max_epochs", "patience", "min_delta"}) {
    EXPECT_FALSE(recorded["train"].contains(key)) << key;
  }
  EXPECT_FALSE(recorded["model"].contains("projection"));
  EXPECT_FALSE(recorded["model"].contains("layer_groups"));
  EXPECT_TRUE(recorded["train"].contains("seed"));
  EXPECT_EQ(JobSpecFromJson(recorded).value(), *ridge);

  auto subspace = ParseJobSpec(Job("subspace"), SpecFormat::kYaml, {"+train.low_dim_lr=0.3"});
  ASSERT_TRUE(subspace.ok()) << subspace.status();
  EXPECT_EQ(ToJson(*subspace)["train"]["low_dim_lr"], 0.3);
  EXPECT_EQ(ToJson(*subspace)["model"]["projection"], "size_weighted");

  // The coordinator's expansion drops what a job does not use instead of refusing it, to the default.
  nlohmann::json document = ToJson(*subspace);
  document["d"] = 0;
  EXPECT_FALSE(JobSpecFromJson(document).ok());
  auto dropped = JobSpecFromJson(document, UnusedSettings::kDrop);
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_FALSE(dropped->train.low_dim_lr.has_value());
  EXPECT_FALSE(ToJson(*dropped)["train"].contains("low_dim_lr"));
}

}  // namespace
}  // namespace dwarp::worker
