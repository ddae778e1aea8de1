#include "common/job_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/subspace_dim.h"

namespace dwarp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A small valid Majaj-Hong job; tests change one thing and look at the result.
constexpr char kMajajYaml[] = R"(
model:
  arch: resnet18
  layer: avgpool
data:
  kind: majaj_hong
  file: /data/hvm.nc
  stimuli: /data/hvm
d: 1000
)";

JobSpec MustParse(const std::string& text, SpecFormat format = SpecFormat::kYaml,
                  const std::vector<std::string>& overrides = {}) {
  StatusOr<JobSpec> spec = ParseJobSpec(text, format, overrides);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : JobSpec{};
}

// The message of a parse that must fail with InvalidArgument.
std::string ErrorOf(const std::string& text, SpecFormat format = SpecFormat::kYaml,
                    const std::vector<std::string>& overrides = {}) {
  StatusOr<JobSpec> spec = ParseJobSpec(text, format, overrides);
  EXPECT_FALSE(spec.ok()) << "parsed, but should have failed:\n" << text;
  if (spec.ok()) return "";
  EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument) << spec.status();
  return spec.status().message();
}

std::string ErrorWithOverrides(const std::vector<std::string>& overrides) {
  return ErrorOf(kMajajYaml, SpecFormat::kYaml, overrides);
}

// kMajajYaml with `lines` appended (top-level keys or whole blocks).
std::string MajajWith(const std::string& lines) { return std::string(kMajajYaml) + lines + "\n"; }

// kMajajYaml with `d: <d>` instead of `d: 1000`, and `lines` appended.
std::string MajajWithD(const std::string& d, const std::string& lines = "") {
  std::string text = kMajajYaml;
  text.replace(text.find("d: 1000"), 7, "d: " + d);
  return text + lines + "\n";
}

// kMajajYaml with `model:` lines added after the layer.
std::string MajajWithModelLines(const std::string& lines) {
  std::string text = kMajajYaml;
  text.replace(text.find("layer: avgpool"), 14, "layer: avgpool\n" + lines);
  return text;
}

// ------------------------------------------------------------------------- image transforms and research keys

TEST(JobSpecTest, TransformIsWeightsForResnet18ImageFilesAndSquashOtherwise) {
  EXPECT_EQ(MustParse(kMajajYaml).data.transform, DataTransform::kWeights);
  const JobSpec squash = MustParse(MajajWith(""), SpecFormat::kYaml, {"+data.transform=squash"});
  EXPECT_EQ(squash.data.transform, DataTransform::kSquash);
  EXPECT_EQ(ToJson(squash)["data"]["transform"], "squash");
  EXPECT_EQ(MustParse(ToJson(squash).dump(), SpecFormat::kJson), squash);
  EXPECT_EQ(ToJson(MustParse(kMajajYaml))["data"]["transform"], "weights");
  // The small nets keep today's squash; so do IDX images, which refuse weights.
  const std::string mlp_idx = "model: {arch: mlp, layer: fc1}\ndata: {kind: idx, images: a.idx, labels: b.idx}\nd: 0\n";
  EXPECT_EQ(MustParse(mlp_idx).data.transform, DataTransform::kSquash);
  const std::string resnet_idx =
      "model: {arch: resnet18}\ndata: {kind: synthetic, images: a.idx, synthetic: {targets: 2}}\nd: 0\n";
  EXPECT_EQ(MustParse(resnet_idx).data.transform, DataTransform::kSquash);
  EXPECT_THAT(ErrorOf(resnet_idx, SpecFormat::kYaml, {"+data.transform=weights"}),
              HasSubstr("data.transform = \"weights\"; expected squash or no value for IDX images"));
  EXPECT_THAT(ErrorWithOverrides({"+data.transform=crop"}), HasSubstr("data.transform"));
}

TEST(JobSpecTest, ResearchCodeDataKeysAreAliasesOfDwarpsKeys) {
  const JobSpec majaj = MustParse("model: {arch: resnet18}\n"
                                  "data: {kind: majaj_hong, data_path: /d/hvm.nc, stimuli_dir: /d/hvm, roi: IT}\nd: 0\n");
  EXPECT_EQ(majaj.data.file, "/d/hvm.nc");
  EXPECT_EQ(majaj.data.stimuli, "/d/hvm");
  EXPECT_EQ(majaj, MustParse("model: {arch: resnet18}\n"
                             "data: {kind: majaj_hong, file: /d/hvm.nc, stimuli: /d/hvm, roi: IT}\nd: 0\n"));
  // Results record dwarp's keys.
  EXPECT_EQ(ToJson(majaj)["data"]["file"], "/d/hvm.nc");
  EXPECT_FALSE(ToJson(majaj)["data"].contains("data_path"));
  const JobSpec nsd = MustParse("model: {arch: resnet18}\ndata: {kind: nsd, nsd_dir: /n/subj01, stimuli_dir: /n/st}\nd: 0\n");
  EXPECT_EQ(nsd.data.root, "/n/subj01");
  EXPECT_EQ(nsd.data.stimuli, "/n/st");
  const JobSpec folder = MustParse("model: {arch: resnet18}\ndata: {kind: image_folder, data_dir: /i}\nd: 0\n");
  EXPECT_EQ(folder.data.root, "/i");
  // An override may use the alias too.
  EXPECT_EQ(MustParse(kMajajYaml, SpecFormat::kYaml, {"~data.file", "+data.data_path=/x.nc"}).data.file, "/x.nc");

  // Both an alias and its key: refused naming both.
  EXPECT_THAT(ErrorOf("model: {arch: resnet18}\ndata: {kind: nsd, nsd_dir: /a, root: /b, stimuli: /s}\nd: 0\n"),
              HasSubstr("data.nsd_dir and data.root are both given"));
  EXPECT_THAT(ErrorWithOverrides({"+data.stimuli_dir=/other"}),
              HasSubstr("data.stimuli_dir and data.stimuli are both given"));
  // An alias of another kind: refused, saying which kinds it belongs to.
  const std::string wrong_kind = ErrorWithOverrides({"+data.nsd_dir=/n"});
  EXPECT_THAT(wrong_kind, HasSubstr("data.nsd_dir = \"/n\"; expected no nsd_dir for data.kind majaj_hong"));
  EXPECT_THAT(wrong_kind, HasSubstr("nsd (root)"));
  // Research-code keys that are no alias get a migration hint.
  EXPECT_THAT(ErrorWithOverrides({"+data.neural_dir=/m"}), HasSubstr("set data.file to <neural_dir>/neural.nc"));
  EXPECT_THAT(ErrorWithOverrides({"+data.name=majaj"}), HasSubstr("set data.kind (majaj -> majaj_hong"));
}

TEST(JobSpecErrorTest, SettingsAKindWouldNotUseAreRefused) {
  const std::string generic = "model: {arch: mlp, layer: fc1}\ndata: {kind: generic, root: /g}\nd: 0\n";
  EXPECT_THAT(ErrorOf(generic, SpecFormat::kYaml, {"+data.split={train: 0.5, val: 0.25, test: 0.25}"}),
              HasSubstr("data.split.train = 0.5; expected no train for data.kind generic (its split comes from its files"));
  EXPECT_THAT(ErrorOf(generic, SpecFormat::kYaml, {"+data.limit_stimuli=10"}),
              HasSubstr("data.limit_stimuli = 10; expected no limit_stimuli for data.kind generic"));
  // No split fractions are recorded for generic data (its files decide the split).
  EXPECT_FALSE(ToJson(MustParse(generic))["data"].contains("split"));
  EXPECT_FALSE(ToJson(MustParse(generic))["data"].contains("limit_stimuli"));
  const std::string folder = "model: {arch: resnet18}\ndata: {kind: image_folder, root: /i}\nd: 0\n";
  EXPECT_THAT(ErrorOf(folder, SpecFormat::kYaml, {"+data.limit_stimuli=10"}),
              HasSubstr("data.limit_stimuli = 10; expected no limit_stimuli for data.kind image_folder"));
  EXPECT_THAT(ErrorOf("model: {arch: mlp, layer: fc1, input_size: 8}\n"
                      "data: {kind: generic, root: /g, image_size: 6}\nd: 0\n"),
              HasSubstr("data.image_size = 6; expected model.input_size = 8"));
}

// ----------------------------------------------------------------------------------------------- SubspaceDim

TEST(SubspaceDimTest, ParsesZeroIntegersAndFull) {
  auto zero = SubspaceDim::Parse("0");
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_EQ(*zero, SubspaceDim::Linear());
  auto d = SubspaceDim::Parse("1000");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->kind, SubspaceDim::kSubspace);
  EXPECT_EQ(d->value, 1000);
  auto full = SubspaceDim::Parse("full");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_TRUE(full->is_full());
  for (const SubspaceDim& v : {SubspaceDim::Linear(), SubspaceDim::Subspace(7), SubspaceDim::Full()}) {
    auto again = SubspaceDim::Parse(v.ToString());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, v) << v.ToString();
  }
  EXPECT_EQ(SubspaceDim::Subspace(30).ToString(), "30");
  EXPECT_EQ(SubspaceDim::Full().ToString(), "full");
}

TEST(SubspaceDimTest, RejectsNegativeTyposAndOverflow) {
  for (const char* bad : {"-1", "fuul", "Full", "1e3", "", " 10", "99999999999999999999"}) {
    auto d = SubspaceDim::Parse(bad);
    ASSERT_FALSE(d.ok()) << bad;
    EXPECT_THAT(d.status().message(), HasSubstr(std::string("\"") + bad + "\"")) << bad;
    EXPECT_THAT(d.status().message(), HasSubstr("full")) << bad;
  }
  EXPECT_THAT(SubspaceDim::Parse("fuul").status().message(), HasSubstr("did you mean `full`"));
  auto negative = SubspaceDim::FromInt(-3);
  ASSERT_FALSE(negative.ok());
  EXPECT_THAT(negative.status().message(), HasSubstr("d = -3"));
}

// ----------------------------------------------------------------------------------------------- parsing

TEST(JobSpecTest, YamlAndJsonGiveTheSameSpec) {
  const std::string yaml = R"(
model: {arch: mlp, layer: fc2, hidden: [64, 32], layer_groups: [[fc1], fc2]}
data:
  kind: idx
  images: a-images.idx
  labels: a-labels.idx
  limit_classes: 5
  split: {train: 0.5, val: 0.25, test: 0.25}
d: 300
train: {lr: 1e-3, low_dim_lr: 0.5, batch_size: 32, device: "cuda:1", freeze_head: true, seed: 7}
)";
  const std::string json = R"({
  "model": {"arch": "mlp", "layer": "fc2", "hidden": [64, 32], "layer_groups": [["fc1"], "fc2"]},
  "data": {"kind": "idx", "images": "a-images.idx", "labels": "a-labels.idx", "limit_classes": 5,
           "split": {"train": 0.5, "val": 0.25, "test": 0.25}},
  "d": 300,
  "train": {"lr": 0.001, "low_dim_lr": 0.5, "batch_size": 32, "device": "cuda:1", "freeze_head": true, "seed": 7}
})";
  const JobSpec from_yaml = MustParse(yaml, SpecFormat::kYaml);
  const JobSpec from_json = MustParse(json, SpecFormat::kJson);
  EXPECT_EQ(from_yaml, from_json);
  // And the values are the ones written, not defaults that happen to agree.
  EXPECT_EQ(from_yaml.model.arch, ModelArch::kMlp);
  EXPECT_EQ(from_yaml.model.hidden, (std::vector<int64_t>{64, 32}));
  ASSERT_TRUE(from_yaml.model.layer_groups.has_value());
  EXPECT_EQ(*from_yaml.model.layer_groups, (std::vector<std::vector<std::string>>{{"fc1"}, {"fc2"}}));
  EXPECT_EQ(from_yaml.d, SubspaceDim::FromInt(300).value());
  EXPECT_DOUBLE_EQ(from_yaml.train.lr, 1e-3);
  ASSERT_TRUE(from_yaml.train.low_dim_lr.has_value());
  EXPECT_DOUBLE_EQ(*from_yaml.train.low_dim_lr, 0.5);
  EXPECT_EQ(from_yaml.train.device, "cuda:1");
  EXPECT_EQ(from_yaml.train.seed, 7u);
  EXPECT_TRUE(from_yaml.train.freeze_head);
  EXPECT_EQ(from_yaml.data.limit_classes, 5);
  EXPECT_DOUBLE_EQ(from_yaml.data.split.val, 0.25);
  EXPECT_EQ(from_yaml.objective, Objective::kClassification);
}

TEST(JobSpecTest, DefaultsFollowTheResearchCode) {
  const JobSpec s = MustParse(kMajajYaml);
  EXPECT_EQ(s.d, SubspaceDim::Subspace(1000));
  EXPECT_EQ(s.objective, Objective::kRegression);
  EXPECT_EQ(s.readout, Readout::kSgd);
  EXPECT_FALSE(s.ridge.has_value());
  EXPECT_EQ(s.model.weights, "");
  EXPECT_EQ(s.model.layer, "avgpool");
  EXPECT_FALSE(s.model.layer_groups.has_value());
  EXPECT_EQ(s.model.input_channels, 3);
  EXPECT_EQ(s.model.input_size, 224);
  EXPECT_TRUE(s.model.hidden.empty());
  EXPECT_EQ(s.data.roi, std::vector<std::string>{"IT"});
  EXPECT_DOUBLE_EQ(s.data.split.train, 0.6);
  EXPECT_DOUBLE_EQ(s.data.split.val, 0.2);
  EXPECT_DOUBLE_EQ(s.data.split.test, 0.2);
  EXPECT_EQ(s.data.image_size, 224);
  EXPECT_EQ(s.data.mean, (std::vector<double>{0.485, 0.456, 0.406}));
  EXPECT_EQ(s.data.std, (std::vector<double>{0.229, 0.224, 0.225}));
  EXPECT_EQ(s.data.limit_stimuli, 0);
  EXPECT_DOUBLE_EQ(s.train.lr, 1e-2);
  EXPECT_FALSE(s.train.low_dim_lr.has_value());
  EXPECT_DOUBLE_EQ(s.train.weight_decay, 0.0);
  EXPECT_EQ(s.train.batch_size, 64);
  EXPECT_EQ(s.train.max_epochs, 100);
  EXPECT_EQ(s.train.patience, 3);
  EXPECT_DOUBLE_EQ(s.train.min_delta, 1e-4);
  EXPECT_FALSE(s.train.freeze_head);
  EXPECT_EQ(s.train.seed, 0u);
  EXPECT_EQ(s.train.device, "cpu");
  EXPECT_EQ(s.train.threads, 0);
}

TEST(JobSpecTest, DefaultsDependOnKindAndArch) {
  const JobSpec nsd = MustParse(R"(
model: {arch: resnet18, layer: layer4}
data: {kind: nsd, root: /nsd, stimuli: /nsd/stimuli}
d: 0
)");
  EXPECT_DOUBLE_EQ(nsd.data.split.train, 0.8);  // non-shared 80 / 20, test = shared1000 (the seed)
  EXPECT_DOUBLE_EQ(nsd.data.split.val, 0.2);
  EXPECT_DOUBLE_EQ(nsd.data.split.test, 0.0);
  EXPECT_TRUE(nsd.data.roi.empty());
  const auto nsd_twice = ParseJobSpec("model: {arch: resnet18, layer: layer4}\n"
                                      "data: {kind: nsd, root: /nsd, stimuli: /s, roi: [V1v, V1v]}\nd: 0\n",
                                      SpecFormat::kYaml);
  ASSERT_FALSE(nsd_twice.ok());
  EXPECT_THAT(nsd_twice.status().message(), HasSubstr("data.roi[1] = \"V1v\"; expected each region once"));
  EXPECT_TRUE(nsd.d.is_linear());

  const JobSpec mnist = MustParse(R"(
model: {arch: mlp}
data: {kind: idx, images: i, labels: l}
d: 10
)");
  EXPECT_EQ(mnist.model.layer, "");  // the arch's default, which the engine's model registry fills in
  const nlohmann::json written = ToJson(mnist);
  EXPECT_FALSE(written["model"].contains("layer"));
  StatusOr<JobSpec> again = JobSpecFromJson(written);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, mnist);
  EXPECT_EQ(mnist.objective, Objective::kClassification);
  EXPECT_EQ(mnist.model.hidden, (std::vector<int64_t>{200, 200}));
  EXPECT_EQ(mnist.model.input_channels, 1);
  EXPECT_EQ(mnist.model.input_size, 28);
  EXPECT_EQ(mnist.data.image_size, 28);
  EXPECT_EQ(mnist.data.mean, std::vector<double>{0.0});
  EXPECT_EQ(mnist.data.std, std::vector<double>{1.0});

  const JobSpec ridge = MustParse(MajajWithD("0", "readout: ridge"));
  ASSERT_TRUE(ridge.ridge.has_value());
  EXPECT_FALSE(ridge.ridge->per_target);
  EXPECT_FALSE(ridge.ridge->alphas.empty());
  EXPECT_EQ(ridge.ridge->folds, 0);  // alpha chosen on the validation split unless folds are asked for
}

TEST(JobSpecTest, RidgeFoldsAreZeroOrAtLeastTwo) {
  EXPECT_EQ(MustParse(MajajWithD("0", "readout: ridge\nridge: {folds: 5}")).ridge->folds, 5);
  EXPECT_THAT(ErrorOf(MajajWithD("0", "readout: ridge\nridge: {folds: 1}")),
              HasSubstr("ridge.folds = 1; expected 0 (choose alpha on the validation split) or an integer >= 2"));
  EXPECT_THAT(ErrorOf(MajajWithD("0", "readout: ridge\nridge: {folds: -2}")), HasSubstr("ridge.folds = -2"));
}

TEST(JobSpecTest, NullMeansNotGiven) {
  // Hydra configs leave keys empty (`weights:`); that is "use the default", not an error.
  const JobSpec s = MustParse(MajajWith("train:\n  lr:\n  batch_size: 8"));
  EXPECT_DOUBLE_EQ(s.train.lr, 1e-2);
  EXPECT_EQ(s.train.batch_size, 8);
}

JobSpec NonDefaultSpec() {
  return MustParse(R"(
model:
  arch: torchscript
  weights: /models/cornet.pt
  layer: features.7
  layer_groups: [[features.0, features.1], [features.4]]
  input_channels: 3
  input_size: 96
data:
  kind: synthetic
  images: /data/train-images.idx
  split: {train: 0.5, val: 0.3, test: 0.2}
  limit_stimuli: 500
  image_size: 64
  mean: [0.5]
  std: [0.25]
  synthetic:
    targets: 12
    warp_dim: 5
    warp_scale: 0.5
    noise: 0.1
    seed: 9
    teacher: {arch: small_cnn, layer: conv2, input_channels: 1, input_size: 28, seed: 3}
d: 123
train: {lr: 3.0e-4, low_dim_lr: 0.1, weight_decay: 1.0e-5, batch_size: 16, max_epochs: 7, patience: 0,
        min_delta: 0.0, freeze_head: true, head_init: ridge, seed: 42, device: cuda, threads: 2}
)");
}

TEST(JobSpecTest, ToJsonRoundTrips) {
  std::vector<JobSpec> specs = {
      MustParse(kMajajYaml), NonDefaultSpec(),
      MustParse(MajajWithD("0", "readout: ridge\nridge: {alphas: [0.5, 2], per_target: true, folds: 4}"))};
  ASSERT_TRUE(specs[2].ridge.has_value());
  EXPECT_EQ(specs[2].ridge->alphas, (std::vector<double>{0.5, 2}));
  for (const JobSpec& spec : specs) {
    const nlohmann::json written = ToJson(spec);
    StatusOr<JobSpec> again = ParseJobSpec(written.dump(2), SpecFormat::kJson);
    ASSERT_TRUE(again.ok()) << again.status() << "\n" << written.dump(2);
    EXPECT_EQ(*again, spec) << written.dump(2);
    EXPECT_EQ(ToJson(*again), written);
  }
  // The non-default values survive (equality alone would pass if a field were dropped on both sides).
  const nlohmann::json j = ToJson(specs[1]);
  EXPECT_EQ(j["model"]["arch"], "torchscript");
  EXPECT_EQ(j["model"]["layer_groups"][1][0], "features.4");
  EXPECT_EQ(j["data"]["synthetic"]["teacher"]["arch"], "small_cnn");
  EXPECT_EQ(j["data"]["synthetic"]["warp_dim"], 5);
  EXPECT_EQ(j["data"]["synthetic"]["seed"], 9);
  EXPECT_EQ(j["data"]["synthetic"]["teacher"]["seed"], 3);
  EXPECT_FALSE(j["model"].contains("seed"));  // unset: train.seed initialises the network
  EXPECT_EQ(j["d"], 123);
  EXPECT_EQ(j["train"]["low_dim_lr"], 0.1);
  EXPECT_EQ(j["train"]["seed"], 42);
  EXPECT_EQ(j["train"]["device"], "cuda");
  EXPECT_EQ(j["train"]["head_init"], "ridge");
  EXPECT_EQ(ToJson(specs[0])["train"]["head_init"], "default");
  EXPECT_EQ(ToJson(MustParse(MajajWithD("full")))["d"], "full");
}

// Specs of every data kind, objective and readout, with settings left to defaults and set, and settings the
// job does not use given (dropped by the sweep-style validation).
std::vector<JobSpec> SpecsOfEveryKind() {
  std::vector<JobSpec> specs = {
      MustParse(kMajajYaml), NonDefaultSpec(), MustParse(MajajWithD("full")),
      MustParse(MajajWithD("0", "readout: ridge\nridge: {alphas: [0.5, 2], per_target: true, folds: 4}")),
      MustParse(MajajWith("readout: prefit_warped\nridge: {alphas: [1, 10]}\ntrain: {low_dim_lr: 0.5}")),
      MustParse(kMajajYaml, SpecFormat::kYaml,
                {"data.coords={image_id: stim, region: area}", "data.nan=drop_targets", "data.roi=[V1, pIT]",
                 "+train.low_dim_lr_scaling=none", "+train.schedule=constant", "+model.projection=global"}),
      MustParse("model: {arch: resnet18, layer: layer4, weights: /w.pt}\n"
                "data: {kind: nsd, root: /nsd, stimuli: /s, roi: [V1v, hV4]}\nd: 0\n"),
      MustParse("model: {arch: mlp, layer: fc1}\ndata: {kind: generic, root: /g}\nd: 0\n"),
      MustParse("model: {arch: mlp, layer: fc1}\ndata: {kind: generic, root: /g, split: {column: part}}\nd: 5\n"),
      MustParse("model: {arch: mlp, hidden: [30, 20]}\n"
                "data: {kind: idx, images: i, labels: l, test_images: ti, test_labels: tl, limit_classes: 3}\n"
                "d: 10\n"),
      MustParse("model: {arch: lenet}\ndata: {kind: image_folder, root: /i, limit_samples: 4}\nd: full\n"),
      MustParse("model: {arch: mlp, hidden: [16]}\n"
                "data: {kind: synthetic, images: /i.gz, labels: /l.gz,\n"
                "       synthetic: {targets: 8, warp: trained, warp_epochs: 3, warp_lr: 0.2, categories: 0.5}}\n"
                "objective: rsa\nd: 100\n"),
      MustParse("model: {arch: mlp, hidden: [16]}\ndata: {kind: synthetic, images: /i.gz}\nobjective: rsa\nd: 0\n")};
  // A sweep's jobs are validated with the settings they do not use dropped (low_dim_lr at d = 0 here).
  StatusOr<JobSpec> dropped =
      JobSpecFromJson(nlohmann::json::parse(R"({"model": {"arch": "mlp", "projection": "global"},
          "data": {"kind": "idx", "images": "i", "labels": "l"}, "d": 0, "train": {"low_dim_lr": 0.1}})"),
                      UnusedSettings::kDrop);
  EXPECT_TRUE(dropped.ok()) << dropped.status();
  if (dropped.ok()) specs.push_back(*dropped);
  return specs;
}

TEST(JobSpecVersionTest, ToJsonWritesTheVersionAndDecodeJobSpecReadsBackTheSameSpec) {
  for (const JobSpec& spec : SpecsOfEveryKind()) {
    const nlohmann::json written = ToJson(spec);
    EXPECT_EQ(written["spec_version"], kJobSpecVersion);
    StatusOr<JobSpec> decoded = DecodeJobSpec(written);
    ASSERT_TRUE(decoded.ok()) << decoded.status() << "\n" << written.dump(2);
    EXPECT_EQ(*decoded, spec) << written.dump(2);
    EXPECT_EQ(ToJson(*decoded), written);
    // The full validation reads the same (a result's recorded spec given back to `dwarp train`).
    StatusOr<JobSpec> validated = JobSpecFromJson(written);
    ASSERT_TRUE(validated.ok()) << validated.status() << "\n" << written.dump(2);
    EXPECT_EQ(*validated, spec);
  }
}

TEST(JobSpecVersionTest, AVersionedSpecIsDecodedWithoutValidatingItAgain) {
  // What the coordinator guaranteed at submit is not checked again: a split that does not sum to 1 and
  // readout ridge at a subspace d, which validation refuses, are decoded as written.
  nlohmann::json written = ToJson(MustParse(kMajajYaml));
  written["data"]["split"]["train"] = 0.1;
  written["readout"] = "ridge";
  written["ridge"] = {{"alphas", {1.0}}, {"per_target", false}, {"folds", 0}};
  EXPECT_FALSE(JobSpecFromJson(written).ok());
  StatusOr<JobSpec> decoded = DecodeJobSpec(written);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_DOUBLE_EQ(decoded->data.split.train, 0.1);
  EXPECT_EQ(decoded->readout, Readout::kRidge);
  EXPECT_EQ(decoded->d, SubspaceDim::Subspace(1000));
  // Types still are: a wrong one names the field.
  written["train"]["batch_size"] = "sixteen";
  StatusOr<JobSpec> mistyped = DecodeJobSpec(written);
  ASSERT_FALSE(mistyped.ok());
  EXPECT_EQ(mistyped.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(mistyped.status().message(), HasSubstr("train.batch_size"));
  written = ToJson(MustParse(kMajajYaml));
  written.erase("objective");
  EXPECT_THAT(DecodeJobSpec(written).status().message(), HasSubstr("objective: missing"));
}

TEST(JobSpecVersionTest, ASpecWithoutAVersionIsValidatedInFullWithUnusedSettingsDropped) {
  // As a coordinator from before the version stored it: validated, defaults resolved, unused settings dropped.
  nlohmann::json old = ToJson(MustParse(MajajWithD("0")));
  old.erase("spec_version");
  old["train"]["low_dim_lr"] = 0.3;  // unused at d = 0
  old["data"].erase("image_size");   // resolved by validation from the model
  StatusOr<JobSpec> decoded = DecodeJobSpec(old);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, MustParse(MajajWithD("0")));
  EXPECT_FALSE(decoded->train.low_dim_lr.has_value());
  EXPECT_EQ(decoded->data.image_size, 224);
  // And refused where validation refuses.
  old["data"]["split"] = {{"train", 0.1}, {"val", 0.2}, {"test", 0.2}};
  StatusOr<JobSpec> refused = DecodeJobSpec(old);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("expected fractions summing to 1"));
}

TEST(JobSpecVersionTest, AnotherVersionIsRefusedNamingBothVersions) {
  nlohmann::json written = ToJson(MustParse(kMajajYaml));
  for (const nlohmann::json& version : {nlohmann::json(2), nlohmann::json(0), nlohmann::json("1")}) {
    written["spec_version"] = version;
    StatusOr<JobSpec> decoded = DecodeJobSpec(written);
    ASSERT_FALSE(decoded.ok()) << version;
    EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(decoded.status().message(), HasSubstr("spec_version = " + version.dump()));
    EXPECT_THAT(decoded.status().message(), HasSubstr("it reads spec_version 1"));
    // A job file or a result's spec with another version is refused by validation too.
    EXPECT_THAT(JobSpecFromJson(written).status().message(), HasSubstr("spec_version = " + version.dump()));
  }
  EXPECT_THAT(DecodeJobSpec(nlohmann::json::array()).status().message(), HasSubstr("expected a JSON object"));
}

TEST(JobSpecTest, DataCoordsAndNanNameWhatTheNetcdfLoadersRead) {
  const JobSpec majaj = MustParse(kMajajYaml);
  EXPECT_EQ(majaj.data.coords.image_id, "image_id");
  EXPECT_EQ(majaj.data.coords.image_name, "image_name");
  EXPECT_EQ(majaj.data.coords.region, "region");
  EXPECT_EQ(majaj.data.nan, NanPolicy::kRefuse);
  EXPECT_EQ(ToJson(majaj)["data"]["nan"], "refuse");
  EXPECT_EQ(ToJson(majaj)["data"]["coords"]["image_name"], "image_name");

  const JobSpec lab = MustParse(
      kMajajYaml, SpecFormat::kYaml,
      {"data.coords={image_id: stim, region: area}", "data.nan=drop_targets", "data.roi=[V1, pIT]"});
  EXPECT_EQ(lab.data.coords.image_id, "stim");
  EXPECT_EQ(lab.data.coords.image_name, "image_name");
  EXPECT_EQ(lab.data.coords.region, "area");
  EXPECT_EQ(lab.data.nan, NanPolicy::kDropTargets);
  EXPECT_EQ(lab.data.roi, (std::vector<std::string>{"V1", "pIT"}));  // any region: the file has the list
  const nlohmann::json written = ToJson(lab);
  EXPECT_EQ(written["data"]["coords"]["image_id"], "stim");
  EXPECT_EQ(written["data"]["nan"], "drop_targets");
  StatusOr<JobSpec> again = ParseJobSpec(written.dump(), SpecFormat::kJson);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, lab);
  JobSpec changed = lab;
  changed.data.coords.region = "roi";
  EXPECT_NE(changed, lab);
  changed = lab;
  changed.data.nan = NanPolicy::kRefuse;
  EXPECT_NE(changed, lab);

  const JobSpec nsd = MustParse("model: {arch: resnet18, layer: layer4}\n"
                                "data: {kind: nsd, root: /nsd, stimuli: /s, coords: {region: area}}\nd: 0\n");
  EXPECT_EQ(nsd.data.coords.image_id, "stimulus_id");
  EXPECT_EQ(nsd.data.coords.region, "area");
  EXPECT_FALSE(ToJson(nsd)["data"]["coords"].contains("image_name"));

  EXPECT_THAT(ErrorWithOverrides({"+data.coords={image_key: stim}"}),
              HasSubstr("data.coords.image_key: unknown key \"image_key\" (did you mean \"image_id\"?); valid keys "
                        "in data.coords: image_id, image_name, region"));
  EXPECT_THAT(ErrorWithOverrides({"data.nan=zero"}), HasSubstr("data.nan = \"zero\""));
  EXPECT_THAT(ErrorWithOverrides({"data.nan=zero"}), HasSubstr("refuse"));
  EXPECT_THAT(ErrorOf("model: {arch: resnet18, layer: layer4}\n"
                      "data: {kind: nsd, root: /nsd, stimuli: /s, coords: {image_name: file}}\nd: 0\n"),
              HasSubstr("data.coords.image_name = \"file\"; expected no image_name for data.kind nsd"));
  EXPECT_THAT(ErrorOf("model: {arch: resnet18, layer: layer4}\ndata: {kind: generic, root: /g, nan: refuse}\nd: 0\n"),
              HasSubstr("data.nan = \"refuse\"; expected no nan for data.kind generic"));
}

TEST(JobSpecTest, EqualityNoticesEveryChange) {
  const JobSpec base = NonDefaultSpec();
  JobSpec changed = base;
  changed.data.synthetic->teacher->input_size = 32;
  EXPECT_NE(changed, base);
  changed = base;
  changed.train.low_dim_lr.reset();
  EXPECT_NE(changed, base);
  changed = base;
  changed.d = SubspaceDim::Subspace(124);
  EXPECT_NE(changed, base);
  changed = base;
  changed.train.head_init = HeadInit::kDefault;
  EXPECT_NE(changed, base);
  changed = base;
  changed.data.synthetic->seed = 10;
  EXPECT_NE(changed, base);
  changed = base;
  changed.model.seed = 0;
  EXPECT_NE(changed, base);
  changed = base;
  changed.data.transform = DataTransform::kWeights;
  EXPECT_NE(changed, base);
}

TEST(JobSpecTest, HeadInitDefaultsToTheResearchCodeAndParsesRidge) {
  EXPECT_EQ(MustParse(kMajajYaml).train.head_init, HeadInit::kDefault);
  EXPECT_EQ(MustParse(MajajWith("train: {head_init: default}")).train.head_init, HeadInit::kDefault);
  EXPECT_EQ(MustParse(MajajWith("train: {head_init: ridge}")).train.head_init, HeadInit::kRidge);
  EXPECT_EQ(MustParse(MajajWithD("full", "train: {head_init: ridge}")).train.head_init, HeadInit::kRidge);
  EXPECT_EQ(MustParse(kMajajYaml, SpecFormat::kYaml, {"train.head_init=ridge"}).train.head_init, HeadInit::kRidge);
  EXPECT_STREQ(HeadInitName(HeadInit::kRidge), "ridge");
  EXPECT_STREQ(HeadInitName(HeadInit::kDefault), "default");
}

// ----------------------------------------------------------------------------------------------- errors

TEST(JobSpecErrorTest, UnknownKeyNamesItSuggestsAndListsValidKeys) {
  const std::string m = ErrorOf(MajajWith("train: {lrr: 0.1}"));
  EXPECT_THAT(m, HasSubstr("train.lrr"));
  EXPECT_THAT(m, HasSubstr("did you mean \"lr\""));
  EXPECT_THAT(m, HasSubstr("low_dim_lr, low_dim_lr_scaling, schedule, weight_decay, batch_size"));

  const std::string top = ErrorOf(MajajWith("objectve: regression"));
  EXPECT_THAT(top, HasSubstr("unknown key \"objectve\""));
  EXPECT_THAT(top, HasSubstr("did you mean \"objective\""));
  EXPECT_THAT(top, HasSubstr("at the top level"));

  const std::string far = ErrorOf(MajajWith("train: {learning_rate_schedule: cosine}"));
  EXPECT_THAT(far, HasSubstr("train.learning_rate_schedule"));
  EXPECT_THAT(far, Not(HasSubstr("did you mean")));
}

TEST(JobSpecErrorTest, WrongTypeNamesFieldValueAndType) {
  const std::string m = ErrorOf(MajajWith("train: {batch_size: abc}"));
  EXPECT_THAT(m, HasSubstr("train.batch_size = \"abc\" (a string)"));
  EXPECT_THAT(m, HasSubstr("an integer >= 1"));

  const std::string fractional = ErrorOf(MajajWith("train: {max_epochs: 2.5}"));
  EXPECT_THAT(fractional, HasSubstr("train.max_epochs = 2.5 (a number)"));

  const std::string quoted = ErrorOf(MajajWith("train: {lr: \"0.01\"}"));
  EXPECT_THAT(quoted, HasSubstr("train.lr = \"0.01\" (a string)"));

  const std::string boolean = ErrorOf(MajajWith("train: {freeze_head: 1}"));
  EXPECT_THAT(boolean, HasSubstr("train.freeze_head = 1"));
  EXPECT_THAT(boolean, HasSubstr("true or false"));

  const std::string block = ErrorOf(MajajWith("train: 5"));
  EXPECT_THAT(block, HasSubstr("train = 5 (an integer); expected a mapping"));

  const std::string arch =
      ErrorOf(std::string(kMajajYaml).replace(std::string(kMajajYaml).find("resnet18"), 8, "resnet19"));
  EXPECT_THAT(arch, HasSubstr("model.arch = \"resnet19\""));
  EXPECT_THAT(arch, HasSubstr("mlp | lenet | small_cnn | resnet18 | torchscript"));
  EXPECT_THAT(arch, HasSubstr("did you mean \"resnet18\""));
}

TEST(JobSpecErrorTest, OutOfRangeNamesFieldValueAndRange) {
  struct Case {
    std::string block;
    std::string path_and_value;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"train: {lr: -0.01}", "train.lr = -0.01", "a number > 0"},
      {"train: {lr: 0}", "train.lr = 0", "a number > 0"},
      {"train: {lr: .nan}", "train.lr = ", "a number > 0"},  // nlohmann writes NaN as null
      {"train: {low_dim_lr: -1.0}", "train.low_dim_lr = -1.0", "a number > 0"},
      {"train: {weight_decay: -1.0e-3}", "train.weight_decay = -0.001", ">= 0"},
      {"train: {batch_size: 0}", "train.batch_size = 0", "an integer >= 1"},
      {"train: {max_epochs: -5}", "train.max_epochs = -5", "an integer >= 1"},
      {"train: {patience: -1}", "train.patience = -1", "an integer >= 0"},
      {"train: {min_delta: -0.1}", "train.min_delta = -0.1", ">= 0"},
      {"train: {threads: -2}", "train.threads = -2", "an integer >= 0"},
      {"train: {seed: -1}", "train.seed = -1", "an integer >= 0"},
      {"train: {device: gpu}", "train.device = \"gpu\"", "cpu, cuda or cuda:N"},
      {"train: {device: \"cuda:x\"}", "train.device = \"cuda:x\"", "cpu, cuda or cuda:N"},
  };
  for (const Case& c : cases) {
    const std::string m = ErrorOf(MajajWith(c.block));
    EXPECT_THAT(m, HasSubstr(c.path_and_value)) << c.block;
    EXPECT_THAT(m, HasSubstr(c.expected)) << c.block;
  }
}

TEST(JobSpecTest, ProjectionIsSizeWeightedByDefaultOrGlobal) {
  EXPECT_EQ(MustParse(kMajajYaml).model.projection, Projection::kSizeWeighted);
  const JobSpec global = MustParse(MajajWithModelLines("  projection: global"));
  EXPECT_EQ(global.model.projection, Projection::kGlobal);
  EXPECT_EQ(ToJson(global)["model"]["projection"], "global");
  EXPECT_NE(global, MustParse(kMajajYaml));
  EXPECT_EQ(MustParse(kMajajYaml, SpecFormat::kYaml, {"model.projection=global"}).model.projection, Projection::kGlobal);
  const std::string bad = ErrorOf(MajajWithModelLines("  projection: layerwise"));
  EXPECT_THAT(bad, HasSubstr("model.projection = \"layerwise\""));
  EXPECT_THAT(bad, HasSubstr("per_tensor"));
  EXPECT_THAT(bad, HasSubstr("global"));
}

TEST(JobSpecTest, EveryProjectionModeIsAcceptedAndRoundTrips) {
  for (const auto& [name, mode] : std::vector<std::pair<std::string, Projection>>{
           {"per_tensor", Projection::kPerTensor}, {"global", Projection::kGlobal},
           {"reference", Projection::kReference}, {"size_weighted", Projection::kSizeWeighted}}) {
    const JobSpec spec = MustParse(kMajajYaml, SpecFormat::kYaml, {"model.projection=" + name});
    EXPECT_EQ(spec.model.projection, mode) << name;
    EXPECT_EQ(ToJson(spec)["model"]["projection"], name);
    EXPECT_EQ(MustParse(ToJson(spec).dump(), SpecFormat::kJson), spec) << name;
  }
  const std::string bad = ErrorWithOverrides({"model.projection=truncated"});
  for (const char* accepted : {"per_tensor", "global", "reference", "size_weighted"}) {
    EXPECT_THAT(bad, HasSubstr(accepted));
  }
}

TEST(JobSpecTest, LowDimRateScalingAndScheduleAreReadAndRoundTrip) {
  const JobSpec plain = MustParse(kMajajYaml);
  EXPECT_EQ(plain.train.low_dim_lr_scaling, LowDimLrScaling::kInverseD);
  EXPECT_EQ(plain.train.schedule, LrSchedule::kWarmupCosine);
  const JobSpec scaled =
      MustParse(kMajajYaml, SpecFormat::kYaml, {"train.low_dim_lr_scaling=none", "train.schedule=cosine"});
  EXPECT_EQ(scaled.train.low_dim_lr_scaling, LowDimLrScaling::kNone);
  EXPECT_EQ(scaled.train.schedule, LrSchedule::kCosine);
  EXPECT_EQ(MustParse(ToJson(scaled).dump(), SpecFormat::kJson), scaled);
  EXPECT_NE(scaled, plain);
  EXPECT_THAT(ErrorWithOverrides({"train.low_dim_lr_scaling=sqrt"}), HasSubstr("train.low_dim_lr_scaling = \"sqrt\""));
  EXPECT_THAT(ErrorWithOverrides({"train.low_dim_lr_scaling=sqrt"}), HasSubstr("inverse_d"));
  EXPECT_THAT(ErrorWithOverrides({"train.schedule=step"}), HasSubstr("warmup_cosine"));
  EXPECT_EQ(MustParse(kMajajYaml, SpecFormat::kYaml, {"train.schedule=warmup_cosine"}).train.schedule,
            LrSchedule::kWarmupCosine);
  // The rule itself: low_dim_lr is the rate at d = 1000.
  EXPECT_DOUBLE_EQ(LowDimLearningRate(0.1, 100, LowDimLrScaling::kInverseD), 1.0);
  EXPECT_DOUBLE_EQ(LowDimLearningRate(0.1, 1000, LowDimLrScaling::kInverseD), 0.1);
  EXPECT_DOUBLE_EQ(LowDimLearningRate(0.1, 100, LowDimLrScaling::kNone), 0.1);
}

TEST(JobSpecTest, PrefitWarpedIsASubspaceRegressionReadout) {
  const JobSpec spec = MustParse(MajajWith("readout: prefit_warped\nridge: {alphas: [1, 10]}"));
  EXPECT_EQ(spec.readout, Readout::kPrefitWarped);
  EXPECT_EQ(spec.train.head_init, HeadInit::kRidge);  // the prefit is the ridge fit
  ASSERT_TRUE(spec.ridge.has_value());
  EXPECT_EQ(spec.ridge->alphas, (std::vector<double>{1, 10}));
  EXPECT_EQ(ToJson(spec)["readout"], "prefit_warped");
  EXPECT_EQ(MustParse(ToJson(spec).dump(), SpecFormat::kJson), spec);
  // Refused, naming the field and what is accepted.
  EXPECT_THAT(ErrorOf(MajajWithD("0", "readout: prefit_warped")), HasSubstr("readout = \"prefit_warped\""));
  EXPECT_THAT(ErrorOf(MajajWithD("0", "readout: prefit_warped")), HasSubstr("d > 0"));
  EXPECT_THAT(ErrorOf(MajajWithD("full", "readout: prefit_warped")), HasSubstr("d > 0"));
  EXPECT_THAT(ErrorOf(MajajWith("readout: prefit_warped\ntrain: {freeze_head: true}")),
              HasSubstr("train.freeze_head = true"));
  EXPECT_THAT(ErrorOf(MajajWith("readout: prefit_warped\ntrain: {weight_decay: 0.01}")),
              HasSubstr("train.weight_decay = 0.01"));
  EXPECT_THAT(ErrorOf(MajajWith("readout: prefit_warped\ntrain: {head_init: default}")),
              HasSubstr("train.head_init = \"default\""));
  const std::string unknown = ErrorOf(MajajWith("readout: warped"));
  EXPECT_THAT(unknown, HasSubstr("prefit_warped"));
  EXPECT_THAT(unknown, HasSubstr("ridge"));
}

TEST(JobSpecTest, ATrainedSyntheticWarpNeedsLabelsAndOnlyItTakesThem) {
  const std::string synthetic = R"(
model: {arch: small_cnn}
data:
  kind: synthetic
  images: /data/train-images-idx3-ubyte.gz
  synthetic: {targets: 8}
d: 100
)";
  auto with = [&](const std::vector<std::string>& overrides) {
    return ParseJobSpec(synthetic, SpecFormat::kYaml, overrides);
  };
  auto trained = with({"data.synthetic.warp=trained", "+data.labels=/data/train-labels-idx1-ubyte.gz",
                       "data.synthetic.warp_epochs=3", "data.synthetic.warp_lr=0.2"});
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_TRUE(trained->data.synthetic->trained_warp);
  EXPECT_EQ(trained->data.synthetic->warp_epochs, 3);
  EXPECT_DOUBLE_EQ(trained->data.synthetic->warp_lr, 0.2);
  EXPECT_EQ(ToJson(*trained)["data"]["synthetic"]["warp"], "trained");
  EXPECT_EQ(MustParse(ToJson(*trained).dump(), SpecFormat::kJson), *trained);
  auto plain = with({});
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->data.synthetic->trained_warp);
  EXPECT_FALSE(ToJson(*plain)["data"]["synthetic"].contains("warp_lr"));  // never recorded unused
  // Refused, naming the field.
  auto no_labels = with({"data.synthetic.warp=trained"});
  ASSERT_FALSE(no_labels.ok());
  EXPECT_THAT(no_labels.status().message(), HasSubstr("data.labels: missing"));
  auto unused_labels = with({"+data.labels=/data/l.gz"});
  ASSERT_FALSE(unused_labels.ok());
  EXPECT_THAT(unused_labels.status().message(), HasSubstr("data.labels = \"/data/l.gz\""));
  auto unused_epochs = with({"+data.synthetic.warp_epochs=3"});
  ASSERT_FALSE(unused_epochs.ok());
  EXPECT_THAT(unused_epochs.status().message(), HasSubstr("warp_epochs"));
  auto bad_warp = with({"data.synthetic.warp=learned"});
  ASSERT_FALSE(bad_warp.ok());
  EXPECT_THAT(bad_warp.status().message(), HasSubstr("trained"));

  // Category-selective neuroids read the labels too, and record their weight only when it is used.
  auto categories = with({"+data.synthetic.categories=0.75", "+data.labels=/data/train-labels-idx1-ubyte.gz"});
  ASSERT_TRUE(categories.ok()) << categories.status();
  EXPECT_DOUBLE_EQ(categories->data.synthetic->categories, 0.75);
  EXPECT_FALSE(categories->data.synthetic->trained_warp);
  EXPECT_EQ(ToJson(*categories)["data"]["synthetic"]["categories"], 0.75);
  EXPECT_EQ(MustParse(ToJson(*categories).dump(), SpecFormat::kJson), *categories);
  EXPECT_FALSE(ToJson(*plain)["data"]["synthetic"].contains("categories"));
  auto categories_without_labels = with({"+data.synthetic.categories=1"});
  ASSERT_FALSE(categories_without_labels.ok());
  EXPECT_THAT(categories_without_labels.status().message(), HasSubstr("data.labels: missing"));
  for (const char* bad : {"+data.synthetic.categories=1.5", "+data.synthetic.categories=-0.1"}) {
    auto out_of_range = with({bad, "+data.labels=/data/l.gz"});
    ASSERT_FALSE(out_of_range.ok()) << bad;
    EXPECT_THAT(out_of_range.status().message(), HasSubstr("data.synthetic.categories = "));
    EXPECT_THAT(out_of_range.status().message(), HasSubstr("a fraction in [0, 1]"));
  }
}

TEST(JobSpecTest, RsaNeedsNeuralDataAndNoHeadSettings) {
  const std::string synthetic = R"(
model: {arch: mlp, hidden: [16]}
data: {kind: synthetic, images: /data/train-images-idx3-ubyte.gz, synthetic: {targets: 8}}
objective: rsa
d: 100
)";
  auto with = [&](const std::vector<std::string>& overrides) {
    return ParseJobSpec(synthetic, SpecFormat::kYaml, overrides);
  };
  auto rsa = with({});
  ASSERT_TRUE(rsa.ok()) << rsa.status();
  EXPECT_EQ(rsa->objective, Objective::kRsa);
  EXPECT_EQ(ToJson(*rsa)["objective"], "rsa");
  EXPECT_EQ(MustParse(ToJson(*rsa).dump(), SpecFormat::kJson), *rsa);
  ASSERT_TRUE(with({"d=0"}).ok());
  auto full = with({"d=full"});
  ASSERT_FALSE(full.ok());
  EXPECT_THAT(full.status().message(), HasSubstr("0 or a subspace d > 0 with objective rsa"));
  for (const char* bad : {"+train.weight_decay=0.1", "+train.freeze_head=true", "+train.head_init=ridge"}) {
    auto refused = with({bad});
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_THAT(refused.status().message(), HasSubstr("with objective rsa (no readout head")) << bad;
  }
  auto ridge = with({"d=0", "+readout=ridge"});
  ASSERT_FALSE(ridge.ok());
  EXPECT_THAT(ridge.status().message(), HasSubstr("objective = rsa"));
  auto labelled = ParseJobSpec(R"(
model: {arch: mlp, hidden: [16]}
data: {kind: idx, images: /data/i.gz, labels: /data/l.gz}
objective: rsa
d: 100
)", SpecFormat::kYaml, {});
  ASSERT_FALSE(labelled.ok());
  EXPECT_THAT(labelled.status().message(), HasSubstr("objective = \"rsa\""));
}

TEST(JobSpecErrorTest, SeedsAreNonNegativeIntegers) {
  EXPECT_THAT(ErrorOf(MajajWithModelLines("  seed: -3")), HasSubstr("model.seed = -3"));
  EXPECT_THAT(ErrorOf(MajajWithModelLines("  seed: 1.5")), HasSubstr("model.seed = 1.5"));
  EXPECT_EQ(MustParse(MajajWithModelLines("  seed: 5")).model.seed, std::optional<uint64_t>(5));
  EXPECT_FALSE(MustParse(kMajajYaml).model.seed.has_value());
}

TEST(JobSpecErrorTest, DataFieldsAreRangeChecked) {
  auto data_error = [](const std::string& extra_data_lines) {
    return ErrorOf(std::string(R"(
model: {arch: resnet18, layer: avgpool}
d: 10
data:
  kind: majaj_hong
  file: /data/hvm.nc
  stimuli: /data/hvm
)") + extra_data_lines + "\n");
  };
  const std::string sum = data_error("  split: {train: 0.7, val: 0.2, test: 0.2}");
  EXPECT_THAT(sum, HasSubstr("data.split: train + val + test = 0.7 + 0.2 + 0.2 = 1.1"));
  EXPECT_THAT(sum, HasSubstr("summing to 1"));
  const std::string fraction = data_error("  split: {train: 1.5}");
  EXPECT_THAT(fraction, HasSubstr("data.split.train = 1.5; expected a fraction in (0, 1)"));
  const std::string roi = data_error("  roi: []");
  EXPECT_THAT(roi, HasSubstr("data.roi = []; expected a region of the file"));
  const std::string roi_item = data_error("  roi: [IT, \"\"]");
  EXPECT_THAT(roi_item, HasSubstr("data.roi[1] = \"\""));
  const std::string roi_twice = data_error("  roi: [IT, V4, IT]");
  EXPECT_THAT(roi_twice, HasSubstr("data.roi[2] = \"IT\"; expected each region once (it is also data.roi[0])"));
  const std::string limit = data_error("  limit_stimuli: -3");
  EXPECT_THAT(limit, HasSubstr("data.limit_stimuli = -3; expected an integer >= 0"));
  const std::string classes = data_error("  limit_classes: 3");
  EXPECT_THAT(classes, HasSubstr("data.limit_classes = 3; expected no limit_classes for data.kind majaj_hong"));
  const std::string std_zero = data_error("  std: [0.2, 0.0, 0.2]");
  EXPECT_THAT(std_zero, HasSubstr("data.std[1] = 0.0; expected a number > 0"));
  const std::string mean_size = data_error("  mean: [0.5, 0.5]");
  EXPECT_THAT(mean_size, HasSubstr("data.mean = [0.5,0.5]; expected a list of 1 or model.input_channels = 3 numbers"));
  const std::string image_size = data_error("  image_size: 0");
  EXPECT_THAT(image_size, HasSubstr("data.image_size = 0"));
  const std::string wrong_path = data_error("  root: /data");
  EXPECT_THAT(wrong_path,
              HasSubstr("data.root = \"/data\"; expected no root for data.kind majaj_hong (its paths: file, stimuli)"));
  const std::string nsd_test = ErrorOf(R"(
model: {arch: resnet18, layer: avgpool}
data: {kind: nsd, root: /nsd, stimuli: /s, split: {train: 0.6, val: 0.2, test: 0.2}}
d: 0
)");
  EXPECT_THAT(nsd_test, HasSubstr("data.split.test = 0.2; expected 0 (the test split is the shared1000 stimuli)"));
}

TEST(JobSpecErrorTest, MissingRequiredFieldsAreNamed) {
  EXPECT_THAT(ErrorOf("model: {arch: resnet18}\ndata: {images: a, labels: b}\nd: 1\n"),
              HasSubstr("data.kind: missing; expected one of nsd | majaj_hong | generic | image_folder | idx"));
  EXPECT_THAT(ErrorOf("model: {layer: avgpool}\ndata: {kind: idx, images: a, labels: b}\nd: 1\n"),
              HasSubstr("model.arch: missing; expected one of mlp | lenet"));
  EXPECT_THAT(ErrorOf("model: {arch: resnet18, layer: avgpool}\ndata: {kind: idx, images: a, labels: b}\n"),
              HasSubstr("d: missing"));
  EXPECT_THAT(ErrorOf("model: {arch: resnet18, layer: avgpool}\ndata: {kind: nsd, root: /nsd}\nd: 1\n"),
              HasSubstr("data.stimuli: missing; expected an image folder (required for data.kind nsd)"));
  EXPECT_THAT(ErrorOf("model: {arch: resnet18, layer: avgpool}\nd: 1\n"), HasSubstr("data: missing"));
  EXPECT_THAT(
      ErrorOf("model: {arch: mlp, layer: fc3}\ndata: {kind: idx, images: a, labels: b, test_images: c}\nd: 1\n"),
      HasSubstr("data.test_labels: missing"));
  EXPECT_THAT(ErrorOf("model: {arch: mlp, layer: fc3}\ndata: {kind: synthetic}\nd: 1\n"),
              HasSubstr("exactly one source of real images"));
}

TEST(JobSpecErrorTest, BadDIsRejectedWithItsValue) {
  const std::string negative = ErrorOf(MajajWithD("-1"));
  EXPECT_THAT(negative, HasSubstr("d = -1; expected 0 (linear readout), a positive integer"));
  const std::string typo = ErrorOf(MajajWithD("fuul"));
  EXPECT_THAT(typo, HasSubstr("d = \"fuul\""));
  EXPECT_THAT(typo, HasSubstr("did you mean `full`"));
  const std::string fractional = ErrorOf(MajajWithD("10.5"));
  EXPECT_THAT(fractional, HasSubstr("d = 10.5 (a number)"));
}

TEST(JobSpecErrorTest, RidgeNeedsLinearRegression) {
  const std::string with_d = ErrorOf(MajajWith("readout: ridge"));
  EXPECT_THAT(with_d, HasSubstr("readout = \"ridge\"; expected sgd when d = 1000"));
  EXPECT_THAT(with_d, HasSubstr("it needs d = 0 and objective regression"));
  const std::string classification = ErrorOf(R"(
model: {arch: mlp, layer: fc3}
data: {kind: idx, images: a, labels: b}
d: 0
readout: ridge
)");
  EXPECT_THAT(classification, HasSubstr("readout = \"ridge\"; expected sgd when objective = classification"));
  const std::string block_without_ridge = ErrorOf(MajajWith("ridge: {per_target: true}"));
  EXPECT_THAT(block_without_ridge, HasSubstr("ridge = {\"per_target\":true}; expected no ridge with readout sgd"));
  const std::string misspelt = ErrorOf(MajajWithD("0", "readout: ridge\nridge: {fold: 3}"));
  EXPECT_THAT(misspelt, HasSubstr("folds"));  // the unknown key's nearest valid one
}

TEST(JobSpecErrorTest, HeadInitIsAChoiceAndRidgeNeedsAWarpedRegressionJob) {
  const std::string bad = ErrorOf(MajajWith("train: {head_init: ols}"));
  EXPECT_THAT(bad, HasSubstr("train.head_init = \"ols\""));
  EXPECT_THAT(bad, HasSubstr("default | ridge"));
  EXPECT_THAT(ErrorOf(MajajWith("train: {head_init: 1}")), HasSubstr("train.head_init = 1"));
  const std::string linear = ErrorOf(MajajWithD("0", "train: {head_init: ridge}"));
  EXPECT_THAT(linear, HasSubstr("train.head_init = \"ridge\"; expected default when d = 0"));
  EXPECT_THAT(linear, HasSubstr("d > 0 or d = full regression job"));
  const std::string classification = ErrorOf(R"(
model: {arch: mlp, layer: fc3}
data: {kind: idx, images: a, labels: b}
d: 10
train: {head_init: ridge}
)");
  EXPECT_THAT(classification, HasSubstr("train.head_init = \"ridge\"; expected default when objective = classification"));
  // An override that causes the error is named.
  EXPECT_THAT(ErrorWithOverrides({"d=0", "train.head_init=ridge"}), HasSubstr("train.head_init"));
}

TEST(JobSpecErrorTest, FreezeHeadNeedsSomethingElseToTrain) {
  EXPECT_THAT(ErrorOf(MajajWithD("0", "train: {freeze_head: true}")),
              HasSubstr("train.freeze_head = true; expected false when d = 0"));
}

TEST(JobSpecErrorTest, ObjectiveMustSuitTheData) {
  const std::string m = ErrorOf(MajajWith("objective: classification"));
  EXPECT_THAT(m, HasSubstr("objective = \"classification\"; expected regression or rsa for data.kind majaj_hong"));
  EXPECT_THAT(ErrorOf(MajajWith("objective: rdm")),
              HasSubstr("objective = \"rdm\"; expected one of regression | classification | rsa"));
}

TEST(JobSpecErrorTest, ArchSpecificFields) {
  const std::string torchscript =
      ErrorOf(std::string(kMajajYaml).replace(std::string(kMajajYaml).find("resnet18"), 8, "torchscript"));
  EXPECT_THAT(torchscript, HasSubstr("model.weights: missing"));
  EXPECT_THAT(torchscript, HasSubstr("torchscript"));
  const std::string hidden = ErrorOf(MajajWithModelLines("  hidden: [10]"));
  EXPECT_THAT(hidden, HasSubstr("model.hidden = [10]; expected no hidden for arch resnet18"));
  const std::string empty_group = ErrorOf(MajajWithModelLines("  layer_groups: [[conv1], []]"));
  EXPECT_THAT(empty_group, HasSubstr("model.layer_groups[1] = []; expected a non-empty list of prefixes"));
  const std::string mlp_width = ErrorOf(R"(
model: {arch: mlp, layer: fc3, hidden: [100, 0]}
data: {kind: idx, images: a, labels: b}
d: 1
)");
  EXPECT_THAT(mlp_width, HasSubstr("model.hidden[1] = 0; expected an integer >= 1"));
  const std::string teacher = ErrorOf(R"(
model: {arch: mlp, layer: fc3}
data: {kind: synthetic, images: a, synthetic: {teacher: {layer: fc1}}}
d: 1
)");
  EXPECT_THAT(teacher, HasSubstr("data.synthetic.teacher.arch: missing"));
}

TEST(JobSpecErrorTest, SyntaxErrorsAndDuplicates) {
  EXPECT_THAT(ErrorOf("model: {arch: resnet18\n"), HasSubstr("not valid YAML"));
  EXPECT_THAT(ErrorOf("{\"model\": ", SpecFormat::kJson), HasSubstr("not valid JSON"));
  EXPECT_THAT(ErrorOf(MajajWith("train: {lr: 0.1}\ntrain: {lr: 0.2}")), HasSubstr("train: duplicate key \"train\""));
  EXPECT_THAT(ErrorOf(R"({"d": 1, "train": {"lr": 0.1, "lr": 0.2}})", SpecFormat::kJson),
              HasSubstr("duplicate key \"lr\""));
  EXPECT_THAT(ErrorOf("- a\n- b\n"), HasSubstr("the document = [\"a\",\"b\"] (a list); expected a mapping"));
}

// A random-init seed does nothing when a weights file sets every parameter: refused in a job file, named.
TEST(JobSpecTest, AModelSeedWithWeightsIsRefusedAsUnused) {
  const std::string error = ErrorOf(MajajWithModelLines("  weights: /w/resnet18.pt\n  seed: 3"));
  EXPECT_THAT(error, HasSubstr("model.seed = 3; expected no value: model.weights sets every parameter"));
  EXPECT_THAT(error, HasSubstr("`~model.seed`"));
  const JobSpec random_init = MustParse(MajajWithModelLines("  seed: 3"));
  EXPECT_EQ(random_init.model.seed, std::optional<uint64_t>(3));
  EXPECT_EQ(ToJson(random_init)["model"]["seed"], 3);
}

// ----------------------------------------------------------------------------------------------- overrides

TEST(JobSpecOverrideTest, OverridesApplyBeforeValidation) {
  const JobSpec s = MustParse(kMajajYaml, SpecFormat::kYaml,
                              {"train.lr=0.01", "d=full", "data.roi=V4", "train.device=cuda:0", "+train.seed=3",
                               "data.split={train: 0.5, val: 0.25, test: 0.25}"});
  EXPECT_DOUBLE_EQ(s.train.lr, 0.01);
  EXPECT_TRUE(s.d.is_full());
  EXPECT_EQ(s.data.roi, std::vector<std::string>{"V4"});
  EXPECT_EQ(s.train.device, "cuda:0");
  EXPECT_EQ(s.train.seed, 3u);
  EXPECT_DOUBLE_EQ(s.data.split.train, 0.5);

  // Later overrides win; lists parse as YAML; ~ removes a key (back to its default).
  const JobSpec t = MustParse(MajajWith("train: {batch_size: 8}"), SpecFormat::kYaml,
                              {"d=0", "d=30", "data.roi=[IT, V4]", "~train.batch_size", "model.layer_groups=[]"});
  EXPECT_EQ(t.d, SubspaceDim::FromInt(30).value());
  EXPECT_EQ(t.data.roi, (std::vector<std::string>{"IT", "V4"}));
  EXPECT_EQ(t.train.batch_size, 64);
  ASSERT_TRUE(t.model.layer_groups.has_value());
  EXPECT_TRUE(t.model.layer_groups->empty());

  // Overrides work on JSON documents too, and may create a block the document lacks.
  // (The d = 0 SGD job records its loop settings, which a closed-form ridge readout would not use.)
  const JobSpec u = MustParse(ToJson(MustParse(MajajWithD("0"))).dump(), SpecFormat::kJson,
                              {"readout=ridge", "~train", "ridge.per_target=true"});
  ASSERT_TRUE(u.ridge.has_value());
  EXPECT_TRUE(u.ridge->per_target);
}

TEST(JobSpecOverrideTest, BadOverridesAreNamed) {
  const std::string range = ErrorWithOverrides({"train.batch_size=8", "train.lr=-1"});
  EXPECT_THAT(range, HasSubstr("override `train.lr=-1`: train.lr = -1; expected a number > 0"));
  const std::string typo = ErrorWithOverrides({"train.lrr=0.1"});
  EXPECT_THAT(typo, HasSubstr("override `train.lrr=0.1`"));
  EXPECT_THAT(typo, HasSubstr("did you mean \"lr\""));
  const std::string d = ErrorWithOverrides({"d=fuul"});
  EXPECT_THAT(d, HasSubstr("override `d=fuul`: d = \"fuul\""));
  const std::string no_equals = ErrorWithOverrides({"train.lr"});
  EXPECT_THAT(no_equals, HasSubstr("override `train.lr`: no `=`"));
  const std::string bad_key = ErrorWithOverrides({"train..lr=1"});
  EXPECT_THAT(bad_key, HasSubstr("override `train..lr=1`: bad key \"train..lr\""));
  const std::string into_scalar = ErrorWithOverrides({"d.value=3"});
  EXPECT_THAT(into_scalar, HasSubstr("override `d.value=3`: d is 1000 (an integer), not a mapping"));
  const std::string remove_unset = ErrorWithOverrides({"~train.lr"});
  EXPECT_THAT(remove_unset, HasSubstr("override `~train.lr`: train is not set"));
  const std::string bad_yaml = ErrorWithOverrides({"data.roi=[IT"});
  EXPECT_THAT(bad_yaml, HasSubstr("override `data.roi=[IT`: the value is not valid YAML"));
  const std::string indirect = ErrorWithOverrides({"train.lr=0.1", "data.kind=nsd"});
  EXPECT_THAT(indirect, HasSubstr("data.root: missing"));
  EXPECT_THAT(indirect, HasSubstr("(after overrides `train.lr=0.1` `data.kind=nsd`)"));
  const std::string sub_block = ErrorWithOverrides({"data.split={train: 0.9}"});
  EXPECT_THAT(sub_block, HasSubstr("override `data.split={train: 0.9}`: data.split: train + val + test"));
}

// ----------------------------------------------------------------------------------------------- files

class TempFile {
 public:
  TempFile(const std::string& name, const std::string& text) : path_(::testing::TempDir() + name) {
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(JobSpecFileTest, FormatFollowsTheExtension) {
  const TempFile yaml("job_spec_test.yml", kMajajYaml);
  auto from_yaml = LoadJobSpecFile(yaml.path());
  ASSERT_TRUE(from_yaml.ok()) << from_yaml.status();
  const TempFile json("job_spec_test.json", ToJson(*from_yaml).dump());
  auto from_json = LoadJobSpecFile(json.path(), {"train.lr=0.5"});
  ASSERT_TRUE(from_json.ok()) << from_json.status();
  EXPECT_DOUBLE_EQ(from_json->train.lr, 0.5);
  from_json->train.lr = from_yaml->train.lr;
  EXPECT_EQ(*from_json, *from_yaml);

  // YAML text in a .json file is a JSON syntax error, which names the file.
  const TempFile mislabelled("job_spec_test_mislabelled.json", kMajajYaml);
  auto bad = LoadJobSpecFile(mislabelled.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr(mislabelled.path()));
  EXPECT_THAT(bad.status().message(), HasSubstr("not valid JSON"));

  auto extension = LoadJobSpecFile(::testing::TempDir() + "job.toml");
  ASSERT_FALSE(extension.ok());
  EXPECT_THAT(extension.status().message(), HasSubstr("\".toml\"; expected .yaml, .yml or .json"));
  auto missing = LoadJobSpecFile(::testing::TempDir() + "no_such_job_spec.yaml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(JobSpecFileTest, ExampleJobsParse) {
  const std::string dir = std::string(DWARP_CONFIGS_DIR) + "/jobs/";
  auto majaj = LoadJobSpecFile(dir + "majaj_hong_it_resnet18_avgpool_d1000.yaml");
  ASSERT_TRUE(majaj.ok()) << majaj.status();
  EXPECT_EQ(majaj->data.kind, DataKind::kMajajHong);
  EXPECT_EQ(majaj->data.roi, std::vector<std::string>{"IT"});
  EXPECT_EQ(majaj->model.layer, "avgpool");
  EXPECT_EQ(majaj->d, SubspaceDim::Subspace(1000));
  EXPECT_DOUBLE_EQ(majaj->train.weight_decay, 5e-3);

  auto nsd = LoadJobSpecFile(dir + "nsd_resnet18_layer4_ridge.json");
  ASSERT_TRUE(nsd.ok()) << nsd.status();
  EXPECT_EQ(nsd->data.kind, DataKind::kNsd);
  EXPECT_EQ(nsd->readout, Readout::kRidge);
  EXPECT_TRUE(nsd->d.is_linear());
  ASSERT_TRUE(nsd->ridge.has_value());
  EXPECT_TRUE(nsd->ridge->per_target);

  auto mnist = LoadJobSpecFile(dir + "fashion_mnist_mlp_d300.yaml");
  ASSERT_TRUE(mnist.ok()) << mnist.status();
  EXPECT_EQ(mnist->objective, Objective::kClassification);
  EXPECT_EQ(mnist->model.arch, ModelArch::kMlp);
  EXPECT_EQ(mnist->d, SubspaceDim::Subspace(300));
  EXPECT_FALSE(mnist->data.test_images.empty());
  EXPECT_DOUBLE_EQ(mnist->data.split.test, 0.0);

  for (const StatusOr<JobSpec>* spec : {&majaj, &nsd, &mnist}) {
    auto again = JobSpecFromJson(ToJson(**spec));
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(*again, **spec);
  }
}

}  // namespace
}  // namespace dwarp
