// Hydra-style composition of sweep files (common/sweep_spec.h "Composition"): defaults lists, _self_,
// group overrides, merge rules, errors that name the file, and the shipped configs/.
#include "common/sweep_spec.h"
#include "tests/support/test_dir.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace dwarp {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// A configs root in a fresh temporary folder:
//   data/{it,two}.yaml   model/{mlp,lenet}.yaml   train/{fast,slow,bad}.yaml   threshold/strict.yaml
// Sweeps are written next to the groups or in a sweeps/ sub-folder.
class SweepComposeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One level down, so that the parent folder (searched too) holds nothing else.
    top_ = dwarp::testing::FreshTestDir("dwarp_sweep_compose");
    root_ = top_ / "configs";
    Write("data/it.yaml", "- {name: it, kind: majaj_hong, file: /d/hvm.nc, stimuli: /d/images, roi: IT}\n");
    Write("data/two.yaml",
          "- {name: v4, kind: majaj_hong, file: /d/hvm.nc, stimuli: /d/images, roi: V4}\n"
          "- {name: nsd, kind: nsd, root: /d/nsd, stimuli: /d/nsd_images}\n");
    Write("model/mlp.yaml", "- {name: mlp, arch: mlp, hidden: [16], layers: [fc1]}\n");
    Write("model/lenet.yaml", "- {name: lenet, arch: lenet}\n");
    Write("train/fast.yaml", "lr: 0.1\nbatch_size: 16\nmax_epochs: 2\n");
    Write("train/slow.yaml", "lr: 0.001\nmax_epochs: 50\n");
    Write("train/bad.yaml", "lr: -1\n");
    Write("threshold/strict.yaml", "{kind: fraction_of_group_best, value: 0.99}\n");
  }
  void TearDown() override { fs::remove_all(top_); }

  fs::path Write(const std::string& relative, const std::string& text) {
    const fs::path file = root_ / relative;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
    return file;
  }

  // A sweep with `defaults` (YAML list lines) and `rest` (top-level keys) written at `relative`.
  StatusOr<SweepSpec> Load(const std::string& defaults, const std::string& rest,
                           const std::vector<std::string>& overrides = {}, const std::string& relative = "sweep.yaml") {
    const std::string text = (defaults.empty() ? "" : "defaults:\n" + defaults) + "name: composed\ndims: [0, 10]\n" + rest;
    return LoadSweepSpecFile(Write(relative, text).string(), overrides);
  }

  SweepSpec MustLoad(const std::string& defaults, const std::string& rest,
                     const std::vector<std::string>& overrides = {}, const std::string& relative = "sweep.yaml") {
    StatusOr<SweepSpec> spec = Load(defaults, rest, overrides, relative);
    EXPECT_TRUE(spec.ok()) << spec.status();
    return spec.ok() ? *spec : SweepSpec{};
  }

  std::string ErrorOf(const std::string& defaults, const std::string& rest,
                      const std::vector<std::string>& overrides = {}) {
    StatusOr<SweepSpec> spec = Load(defaults, rest, overrides);
    EXPECT_FALSE(spec.ok()) << "composed, but should have failed";
    return spec.ok() ? "" : spec.status().message();
  }

  fs::path top_;
  fs::path root_;
};

std::vector<std::string> DatasetNames(const SweepSpec& spec) {
  std::vector<std::string> names;
  for (const SweepDataset& d : spec.datasets) names.push_back(d.name);
  return names;
}

const char kDefaults[] = "  - data: it\n  - model: mlp\n  - train: fast\n";

TEST_F(SweepComposeTest, GroupsMergeAtTheirKeysAndTheFilesOwnKeysWinByDefault) {
  const SweepSpec s = MustLoad(kDefaults, "train: {lr: 0.5}\n");
  ASSERT_THAT(DatasetNames(s), ElementsAre("it"));
  EXPECT_EQ(s.datasets[0].data["roi"], "IT");
  ASSERT_EQ(s.models.size(), 1u);
  EXPECT_EQ(s.models[0].name, "mlp");
  EXPECT_THAT(s.models[0].layers, ElementsAre("fc1"));
  // Mappings merge: lr from the file itself, batch_size and max_epochs from train/fast.yaml.
  EXPECT_EQ(s.job_defaults["train"]["lr"], 0.5);
  EXPECT_EQ(s.job_defaults["train"]["batch_size"], 16);
  EXPECT_EQ(s.job_defaults["train"]["max_epochs"], 2);
}

TEST_F(SweepComposeTest, SelfFirstLetsTheGroupsWin) {
  const SweepSpec s = MustLoad(std::string("  - _self_\n") + kDefaults, "train: {lr: 0.5, patience: 7}\n");
  EXPECT_EQ(s.job_defaults["train"]["lr"], 0.1);       // train/fast.yaml, merged after _self_
  EXPECT_EQ(s.job_defaults["train"]["patience"], 7);   // only the file has it
}

TEST_F(SweepComposeTest, ListsReplaceRatherThanConcatenate) {
  // data/two.yaml's two datasets, then the file's own list replaces them whole.
  EXPECT_THAT(DatasetNames(MustLoad("  - data: two\n  - model: mlp\n", "")), ElementsAre("v4", "nsd"));
  const SweepSpec s = MustLoad("  - data: two\n  - model: mlp\n",
                               "datasets:\n  - {name: own, kind: majaj_hong, file: /x.nc, stimuli: /x}\n");
  EXPECT_THAT(DatasetNames(s), ElementsAre("own"));
  // A list inside merged mappings replaces too, while its sibling keys merge.
  Write("ridge/wide.yaml", "alphas: [1, 10, 100]\nper_target: true\n");
  const SweepSpec t = MustLoad(std::string(kDefaults) + "  - ridge: wide\n", "readout: ridge\n"
                               "ridge: {alphas: [5]}\n");
  EXPECT_EQ(t.job_defaults["ridge"]["alphas"], nlohmann::json::array({5}));
  EXPECT_EQ(t.job_defaults["ridge"]["per_target"], true);
}

TEST_F(SweepComposeTest, GroupOverrideReplacesTheEntryThenKeyOverridesApply) {
  const SweepSpec s = MustLoad(kDefaults, "", {"data=two", "train=slow", "train.lr=0.02"});
  EXPECT_THAT(DatasetNames(s), ElementsAre("v4", "nsd"));
  EXPECT_EQ(s.job_defaults["train"]["lr"], 0.02);        // the key override, after the group choice
  EXPECT_EQ(s.job_defaults["train"]["max_epochs"], 50);  // train/slow.yaml
  EXPECT_FALSE(s.job_defaults["train"].contains("batch_size"));  // train/fast.yaml is gone entirely
  // Order on the command line does not matter: group choices first (Hydra's rule).
  const SweepSpec t = MustLoad(kDefaults, "", {"train.lr=0.02", "train=slow"});
  EXPECT_EQ(t.job_defaults["train"]["lr"], 0.02);
  EXPECT_EQ(t.job_defaults["train"]["max_epochs"], 50);
}

TEST_F(SweepComposeTest, PlusAddsAGroupNotInTheListAndRefusesOneThatIs) {
  const SweepSpec s = MustLoad(kDefaults, "", {"+threshold=strict"});
  EXPECT_EQ(s.threshold.kind, ThresholdKind::kFractionOfGroupBest);
  EXPECT_DOUBLE_EQ(s.threshold.value, 0.99);
  StatusOr<SweepSpec> again = Load(kDefaults, "", {"+data=two"});
  ASSERT_FALSE(again.ok());
  EXPECT_THAT(again.status().message(), HasSubstr("override `+data=two`"));
  EXPECT_THAT(again.status().message(), HasSubstr("already"));
  // Without the +, a group not in the list is a plain key: threshold=strict is a bad threshold value.
  StatusOr<SweepSpec> plain = Load(kDefaults, "", {"threshold=strict"});
  ASSERT_FALSE(plain.ok());
  EXPECT_THAT(plain.status().message(), HasSubstr("threshold"));
}

TEST_F(SweepComposeTest, PlusGroupComposesAFileWithoutADefaultsList) {
  const SweepSpec s = MustLoad("", "models: [{name: lenet, arch: lenet}]\n", {"+data=it"});
  EXPECT_THAT(DatasetNames(s), ElementsAre("it"));
}

TEST_F(SweepComposeTest, NullOptionDropsTheEntry) {
  const SweepSpec s = MustLoad(kDefaults, "models: [{name: own, arch: lenet}]\n", {"model=null"});
  ASSERT_EQ(s.models.size(), 1u);
  EXPECT_EQ(s.models[0].name, "own");
  const std::string error = ErrorOf(kDefaults, "", {"model=null"});
  EXPECT_THAT(error, HasSubstr("models: missing"));
}

TEST_F(SweepComposeTest, UnknownOptionNamesTheFileTheGroupAndItsOptions) {
  const std::string error = ErrorOf("  - data: itt\n  - model: mlp\n", "");
  EXPECT_THAT(error, HasSubstr((root_ / "sweep.yaml").string()));
  EXPECT_THAT(error, HasSubstr("defaults[0]"));
  EXPECT_THAT(error, HasSubstr("group data has no option \"itt\""));
  EXPECT_THAT(error, HasSubstr("did you mean \"it\""));
  EXPECT_THAT(error, HasSubstr("it | two"));
  const std::string by_override = ErrorOf(kDefaults, "", {"data=nsd"});
  EXPECT_THAT(by_override, HasSubstr("override `data=nsd`"));
  EXPECT_THAT(by_override, HasSubstr("it | two"));
  // Options are names: no way out of the group folder.
  EXPECT_THAT(ErrorOf(kDefaults, "", {"data=../model/mlp"}), HasSubstr("expected an option name"));
}

TEST_F(SweepComposeTest, UnknownGroupNamesTheFoldersSearchedAndTheGroupsThere) {
  const std::string error = ErrorOf("  - dat: it\n  - model: mlp\n", "");
  EXPECT_THAT(error, HasSubstr((root_ / "sweep.yaml").string()));
  EXPECT_THAT(error, HasSubstr("unknown config group \"dat\""));
  EXPECT_THAT(error, HasSubstr("did you mean \"data\""));
  EXPECT_THAT(error, HasSubstr((root_ / "dat").string() + " or " + (top_ / "dat").string()));
  // Every folder holding .yaml files counts, the sweep's own folder included.
  EXPECT_THAT(error, HasSubstr("groups there: configs, data, model, threshold, train"));
}

TEST_F(SweepComposeTest, MalformedDefaultsListsAreErrors) {
  EXPECT_THAT(ErrorOf("  - data: it\n  - data: two\n", ""), HasSubstr("defaults[1]: group data is listed before"));
  EXPECT_THAT(ErrorOf("  - _self_\n  - _self_\n", ""), HasSubstr("a second _self_"));
  EXPECT_THAT(ErrorOf("  - it\n", ""), HasSubstr("defaults[0]"));
  EXPECT_THAT(ErrorOf("  - {data: it, model: mlp}\n", ""), HasSubstr("one key"));
}

TEST_F(SweepComposeTest, AValueFromAGroupFileNamesThatFile) {
  const std::string error = ErrorOf("  - data: it\n  - model: mlp\n  - train: bad\n", "");
  EXPECT_THAT(error, HasSubstr("train.lr = -1"));
  EXPECT_THAT(error, HasSubstr("(from " + (root_ / "train" / "bad.yaml").string() + ")"));
  // Set again by the file itself: no longer the group file's fault, nor its value.
  EXPECT_TRUE(Load("  - data: it\n  - model: mlp\n  - train: bad\n", "train: {lr: 0.1}\n").ok());
  // Set by an override: the override is named instead.
  const std::string by_override = ErrorOf(kDefaults, "", {"train.lr=-2"});
  EXPECT_THAT(by_override, HasSubstr("override `train.lr=-2`"));
  EXPECT_THAT(by_override, Not(HasSubstr("fast.yaml")));
  // A list from a group file: errors inside it name the file.
  Write("data/broken.yaml", "- {name: broken, kind: majaj_hong, stimuli: /x}\n");
  EXPECT_THAT(ErrorOf("  - data: broken\n  - model: mlp\n", ""),
              HasSubstr("(from " + (root_ / "data" / "broken.yaml").string() + ")"));
  // A group file that is not YAML.
  Write("train/garbled.yaml", "lr: [1, 2\n");
  EXPECT_THAT(ErrorOf("  - data: it\n  - model: mlp\n  - train: garbled\n", ""),
              HasSubstr((root_ / "train" / "garbled.yaml").string()));
}

TEST_F(SweepComposeTest, GroupsAreFoundInTheParentFolderOrAnExplicitConfigDir) {
  const SweepSpec s = MustLoad(kDefaults, "", {}, "sweeps/nested.yaml");
  EXPECT_THAT(DatasetNames(s), ElementsAre("it"));

  const fs::path elsewhere = root_ / "elsewhere" / "deep" / "sweep.yaml";
  fs::create_directories(elsewhere.parent_path());
  std::ofstream(elsewhere) << "defaults:\n" << kDefaults << "name: far\ndims: [0]\n";
  EXPECT_FALSE(LoadSweepSpecFile(elsewhere.string()).ok());
  StatusOr<SweepSpec> found = LoadSweepSpecFile(elsewhere.string(), {}, root_.string());
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_THAT(DatasetNames(*found), ElementsAre("it"));
}

TEST_F(SweepComposeTest, ParseNeedsAFolderForADefaultsListAndComposesAgainstBaseDir) {
  const std::string text = std::string("defaults:\n") + kDefaults + "name: text\ndims: [0]\n";
  StatusOr<SweepSpec> without = ParseSweepSpec(text, SpecFormat::kYaml);
  ASSERT_FALSE(without.ok());
  EXPECT_THAT(without.status().message(), HasSubstr("base_dir"));
  StatusOr<SweepSpec> with = ParseSweepSpec(text, SpecFormat::kYaml, {"data=two"}, root_.string());
  ASSERT_TRUE(with.ok()) << with.status();
  EXPECT_THAT(DatasetNames(*with), ElementsAre("v4", "nsd"));
  // What a client sends a coordinator that cannot see the group files: the composed document.
  StatusOr<SweepSpec> sent = ParseSweepSpec(ToJson(*with).dump(), SpecFormat::kJson);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(ToJson(*sent), ToJson(*with));
}

// ----------------------------------------------------------------------------------------- shipped configs

std::string Shipped(const std::string& relative) { return std::string(DWARP_CONFIGS_DIR) + "/" + relative; }

SweepSpec MustLoadShipped(const std::string& relative, const std::vector<std::string>& overrides = {}) {
  StatusOr<SweepSpec> spec = LoadSweepSpecFile(Shipped(relative), overrides);
  EXPECT_TRUE(spec.ok()) << relative << ": " << spec.status();
  if (!spec.ok()) return SweepSpec{};
  // Expansion validates every job and opens no data file (the paths are placeholders).
  StatusOr<std::vector<PlannedJob>> jobs = ExpandSweep(*spec);
  EXPECT_TRUE(jobs.ok()) << relative << ": " << jobs.status();
  return *spec;
}

TEST(ShippedConfigsTest, EncodingDimIsTheSeedsExperimentOnMajajByDefault) {
  const SweepSpec s = MustLoadShipped("encoding_dim.yaml");
  EXPECT_THAT(DatasetNames(s), ElementsAre("majaj_it"));
  ASSERT_EQ(s.models.size(), 1u);
  EXPECT_EQ(s.models[0].model["arch"], "resnet18");
  EXPECT_THAT(s.models[0].layers, ElementsAre("avgpool"));
  ASSERT_EQ(s.dims.size(), 10u);
  EXPECT_EQ(s.dims.back().value, 10000);
  EXPECT_EQ(s.job_defaults["train"]["lr"], 1e-3);  // train/majaj_optimal
  EXPECT_EQ(s.job_defaults["train"]["device"], "cuda");

  const SweepSpec nsd = MustLoadShipped("encoding_dim.yaml", {"data=nsd", "train=nsd_optimal", "train.device=cpu"});
  EXPECT_THAT(DatasetNames(nsd), ElementsAre("nsd"));
  EXPECT_EQ(nsd.job_defaults["train"]["lr"], 1e-4);
  EXPECT_EQ(nsd.job_defaults["train"]["batch_size"], 1);
  EXPECT_EQ(nsd.job_defaults["train"]["device"], "cpu");
}

TEST(ShippedConfigsTest, EveryGroupOptionComposesWithAnExperiment) {
  for (const char* option : {"majaj", "majaj_v4", "majaj_it_v4", "nsd", "majaj_nsd"}) {
    MustLoadShipped("encoding_dim.yaml", {std::string("data=") + option});
  }
  const SweepSpec both = MustLoadShipped("encoding_dim.yaml", {"data=majaj_it_v4"});
  EXPECT_THAT(DatasetNames(both), ElementsAre("majaj_it_v4"));
  EXPECT_EQ(both.datasets[0].data["roi"], nlohmann::json::array({"IT", "V4"}));
  for (const char* option : {"resnet18", "resnet18_logits", "small_cnn", "lenet", "mlp"}) {
    MustLoadShipped("encoding_dim.yaml", {std::string("model=") + option});
  }
  for (const char* option : {"defaults", "majaj_optimal", "nsd_optimal"}) {
    MustLoadShipped("encoding_dim.yaml", {std::string("train=") + option});
  }
  const SweepSpec brain = MustLoadShipped("encoding_dim.yaml", {"data=synthetic_brain", "model=small_cnn"});
  EXPECT_THAT(DatasetNames(brain), ElementsAre("brain"));
  // Every option file of every group is one of the above or of the experiments below.
  size_t files = 0;
  for (const char* group : {"data", "model", "train"}) {
    for (const auto& entry : fs::directory_iterator(Shipped(group))) files += entry.path().extension() == ".yaml";
  }
  EXPECT_EQ(files, 5u + 1u + 1u + 5u + 3u);  // data (+ synthetic_brain, imagenet21k_fewshot), model, train
}

TEST(ShippedConfigsTest, ClassifierDimAndRidgeBaselineCompose) {
  const SweepSpec classifier = MustLoadShipped("classifier_dim.yaml");
  ASSERT_EQ(classifier.datasets.size(), 1u);
  ASSERT_FALSE(classifier.dims.empty());
  EXPECT_EQ(classifier.datasets[0].data["kind"], "image_folder");
  EXPECT_EQ(classifier.datasets[0].data["limit_classes"], 300);
  // The seed's grid, d = 0 included: a linear classifier on the frozen network's avgpool features.
  ASSERT_EQ(classifier.dims.size(), 10u);
  EXPECT_TRUE(classifier.dims.front().is_linear());
  EXPECT_EQ(classifier.dims.back().value, 10000);
  EXPECT_EQ(classifier.models[0].layers, std::vector<std::string>{"avgpool"});
  EXPECT_EQ(classifier.job_defaults["objective"], "classification");

  const SweepSpec ridge = MustLoadShipped("ridge_baseline.yaml", {"data=nsd"});
  ASSERT_EQ(ridge.dims.size(), 1u);
  EXPECT_TRUE(ridge.dims[0].is_linear());
  EXPECT_EQ(ridge.job_defaults["readout"], "ridge");
  EXPECT_THAT(DatasetNames(ridge), ElementsAre("nsd"));
}

TEST(ShippedConfigsTest, SweepsWithoutDefaultsAreUnchanged) {
  const SweepSpec quickstart = MustLoadShipped("quickstart.yaml");
  EXPECT_EQ(quickstart.name, "quickstart");
  EXPECT_EQ(quickstart.models.size(), 4u);
  MustLoadShipped("sweeps/synthetic_quickstart.yaml", {"train.lr=0.05"});
}

}  // namespace
}  // namespace dwarp
