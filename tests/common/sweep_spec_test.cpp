#include "common/sweep_spec.h"
#include "common/spec_document.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

namespace dwarp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Two models (one with two read-out layers), one Majaj-Hong dataset, d = 0, 10, 100, full, two seeds:
// (2 + 1) groups x 4 d x 2 seeds = 24 jobs. Tests change one thing and look at the result.
constexpr char kSweepYaml[] = R"(
name: test_sweep
models:
  - name: mlp_wide
    arch: mlp
    hidden: [32]
    layers: [fc1, fc2]
  - name: lenet
    arch: lenet
datasets:
  - {name: it, kind: majaj_hong, file: hvm.nc, stimuli: images/, roi: IT}
dims: [100, 0, full, 10]
seeds: [0, 1]
train: {lr: 0.001, max_epochs: 5}
)";

std::string SweepWith(const std::string& lines) { return std::string(kSweepYaml) + lines + "\n"; }

// kSweepYaml with `from` replaced by `to` (the first occurrence).
std::string SweepReplacing(const std::string& from, const std::string& to) {
  std::string text = kSweepYaml;
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

SweepSpec MustParse(const std::string& text, const std::vector<std::string>& overrides = {},
                    const std::string& base_dir = "", SpecFormat format = SpecFormat::kYaml) {
  StatusOr<SweepSpec> spec = ParseSweepSpec(text, format, overrides, base_dir);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : SweepSpec{};
}

// The message of a parse that must fail with `code`.
std::string ErrorOf(const std::string& text, const std::vector<std::string>& overrides = {},
                    StatusCode code = StatusCode::kInvalidArgument) {
  StatusOr<SweepSpec> spec = ParseSweepSpec(text, SpecFormat::kYaml, overrides);
  EXPECT_FALSE(spec.ok()) << "parsed, but should have failed:\n" << text;
  if (spec.ok()) return "";
  EXPECT_EQ(spec.status().code(), code) << spec.status();
  return spec.status().message();
}

std::vector<PlannedJob> MustExpand(const SweepSpec& spec) {
  StatusOr<std::vector<PlannedJob>> jobs = ExpandSweep(spec);
  EXPECT_TRUE(jobs.ok()) << jobs.status();
  return jobs.ok() ? *jobs : std::vector<PlannedJob>{};
}

// ----------------------------------------------------------------------------------------------- grid

TEST(DefaultDimGridTest, MatchesNumpyLogspaceRoundedToNearest) {
  // numpy.round(numpy.logspace(1, numpy.log10(max), samples - 1)), unique, after 0 (computed with numpy).
  auto seed = DefaultDimGrid(10000, 10);
  ASSERT_TRUE(seed.ok()) << seed.status();
  EXPECT_THAT(*seed, ElementsAre(0, 10, 24, 56, 133, 316, 750, 1778, 4217, 10000));
  auto small = DefaultDimGrid(1000, 5);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_THAT(*small, ElementsAre(0, 10, 46, 215, 1000));
  auto dense = DefaultDimGrid(50, 20);  // 19 points from 10 to 50: several round to the same integer
  ASSERT_TRUE(dense.ok()) << dense.status();
  EXPECT_EQ(*dense, (std::vector<int64_t>{0, 10, 11, 12, 13, 14, 16, 17, 19, 20, 22, 24, 27, 29, 32, 35, 38, 42,
                                          46, 50}));
  auto two = DefaultDimGrid(10, 2);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_THAT(*two, ElementsAre(0, 10));
  auto collapsed = DefaultDimGrid(10, 5);
  ASSERT_TRUE(collapsed.ok()) << collapsed.status();
  EXPECT_THAT(*collapsed, ElementsAre(0, 10));
}

TEST(DefaultDimGridTest, RejectsSmallMaxAndTooFewSamplesNamingTheValue) {
  auto max = DefaultDimGrid(9, 10);
  ASSERT_FALSE(max.ok());
  EXPECT_EQ(max.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(max.status().message(), HasSubstr("max = 9"));
  auto samples = DefaultDimGrid(1000, 1);
  ASSERT_FALSE(samples.ok());
  EXPECT_THAT(samples.status().message(), HasSubstr("samples = 1"));
}

// ----------------------------------------------------------------------------------------------- parsing

TEST(SweepSpecTest, ParsesEveryFieldWithDefaults) {
  const SweepSpec s = MustParse(kSweepYaml);
  EXPECT_EQ(s.name, "test_sweep");
  ASSERT_EQ(s.models.size(), 2u);
  EXPECT_EQ(s.models[0].name, "mlp_wide");
  EXPECT_THAT(s.models[0].layers, ElementsAre("fc1", "fc2"));
  EXPECT_EQ(s.models[0].model, (nlohmann::json{{"arch", "mlp"}, {"hidden", {32}}}));
  EXPECT_THAT(s.models[1].layers, ElementsAre(""));
  ASSERT_EQ(s.datasets.size(), 1u);
  EXPECT_EQ(s.datasets[0].name, "it");
  EXPECT_FALSE(s.datasets[0].data.contains("name"));
  EXPECT_EQ(s.datasets[0].data["file"], "hvm.nc");  // base_dir "": relative paths kept as written
  // Sorted ascending, full last.
  EXPECT_THAT(s.dims, ElementsAre(SubspaceDim::Linear(), SubspaceDim::Subspace(10), SubspaceDim::Subspace(100),
                                  SubspaceDim::Full()));
  EXPECT_THAT(s.seeds, ElementsAre(0u, 1u));
  EXPECT_EQ(s.job_defaults, (nlohmann::json{{"train", {{"lr", 0.001}, {"max_epochs", 5}}}}));
  EXPECT_EQ(s.threshold.kind, ThresholdKind::kFractionOfDatasetBest);
  EXPECT_DOUBLE_EQ(s.threshold.value, 0.9);
  EXPECT_FALSE(s.early_stop);
  EXPECT_EQ(s.max_attempts, 3);
}

TEST(SweepSpecTest, DimsMappingIsTheSeedsGridPlusFull) {
  const SweepSpec s = MustParse(SweepReplacing("dims: [100, 0, full, 10]", "dims: {max: 1000, samples: 5, full: true}"));
  EXPECT_THAT(s.dims, ElementsAre(SubspaceDim::Linear(), SubspaceDim::Subspace(10), SubspaceDim::Subspace(46),
                                  SubspaceDim::Subspace(215), SubspaceDim::Subspace(1000), SubspaceDim::Full()));
  const SweepSpec no_full = MustParse(SweepReplacing("dims: [100, 0, full, 10]", "dims: {max: 100, samples: 3}"));
  EXPECT_THAT(no_full.dims, ElementsAre(SubspaceDim::Linear(), SubspaceDim::Subspace(10), SubspaceDim::Subspace(100)));
}

TEST(SweepSpecTest, SeedsCountMeansZeroToNMinusOneAndDefaultIsZero) {
  EXPECT_THAT(MustParse(SweepReplacing("seeds: [0, 1]", "seeds: 3")).seeds, ElementsAre(0u, 1u, 2u));
  EXPECT_THAT(MustParse(SweepReplacing("seeds: [0, 1]", "")).seeds, ElementsAre(0u));
}

TEST(SweepSpecTest, ThresholdEarlyStopAndAttempts) {
  const SweepSpec s = MustParse(SweepWith("threshold: {kind: absolute, value: 0.35}\nearly_stop: true\nmax_attempts: 5"));
  EXPECT_EQ(s.threshold.kind, ThresholdKind::kAbsolute);
  EXPECT_DOUBLE_EQ(s.threshold.value, 0.35);
  EXPECT_TRUE(s.early_stop);
  EXPECT_EQ(s.max_attempts, 5);
  const SweepSpec full = MustParse(SweepWith("threshold: {kind: fraction_of_full}"));
  EXPECT_EQ(full.threshold.kind, ThresholdKind::kFractionOfFull);
  EXPECT_DOUBLE_EQ(full.threshold.value, 0.9);
  EXPECT_STREQ(ThresholdKindName(ThresholdKind::kFractionOfGroupBest), "fraction_of_group_best");
  const SweepSpec ceiling = MustParse(SweepWith("threshold: {kind: fraction_of_noise_ceiling, value: 0.8}"));
  EXPECT_EQ(ceiling.threshold.kind, ThresholdKind::kFractionOfNoiseCeiling);
  EXPECT_DOUBLE_EQ(ceiling.threshold.value, 0.8);
  EXPECT_STREQ(ThresholdKindName(ThresholdKind::kFractionOfNoiseCeiling), "fraction_of_noise_ceiling");
  // The value defaults as for every fraction kind, and 1 (the ceiling itself) is allowed.
  EXPECT_DOUBLE_EQ(MustParse(SweepWith("threshold: {kind: fraction_of_noise_ceiling}")).threshold.value, 0.9);
  EXPECT_DOUBLE_EQ(MustParse(SweepWith("threshold: {kind: fraction_of_noise_ceiling, value: 1}")).threshold.value, 1.0);
}

TEST(SweepSpecTest, OverridesApplyBeforeValidation) {
  const SweepSpec s = MustParse(SweepReplacing("dims: [100, 0, full, 10]", "dims: {max: 10000, samples: 10}"),
                                {"dims.max=1000", "dims.samples=5", "seeds=[4,5,6]", "train.lr=0.01", "early_stop=true"});
  EXPECT_EQ(s.dims.size(), 5u);
  EXPECT_EQ(s.dims.back(), SubspaceDim::Subspace(1000));
  EXPECT_THAT(s.seeds, ElementsAre(4u, 5u, 6u));
  EXPECT_DOUBLE_EQ(s.job_defaults["train"]["lr"].get<double>(), 0.01);
  EXPECT_TRUE(s.early_stop);
}

// ----------------------------------------------------------------------------------------------- errors

TEST(SweepSpecErrorsTest, UnknownKeysSuggestTheNearest) {
  const std::string top = ErrorOf(SweepWith("early_stpo: true"));
  EXPECT_THAT(top, HasSubstr("early_stpo: unknown key"));
  EXPECT_THAT(top, HasSubstr("did you mean \"early_stop\""));
  const std::string dims = ErrorOf(SweepReplacing("dims: [100, 0, full, 10]", "dims: {max: 100, sample: 3}"));
  EXPECT_THAT(dims, HasSubstr("dims.sample: unknown key"));
  EXPECT_THAT(dims, HasSubstr("did you mean \"samples\""));
  const std::string threshold = ErrorOf(SweepWith("threshold: {knd: absolute, value: 1}"));
  EXPECT_THAT(threshold, HasSubstr("threshold.knd: unknown key"));
}

TEST(SweepSpecErrorsTest, UnknownArchAndKindNameTheSweepField) {
  const std::string arch = ErrorOf(SweepReplacing("arch: lenet", "arch: resnet19"));
  EXPECT_THAT(arch, HasSubstr("models[1].arch = \"resnet19\""));
  EXPECT_THAT(arch, HasSubstr("did you mean \"resnet18\""));
  const std::string kind = ErrorOf(SweepReplacing("kind: majaj_hong", "kind: majaj"));
  EXPECT_THAT(kind, HasSubstr("datasets[0].kind = \"majaj\""));
  const std::string missing = ErrorOf(SweepReplacing("    arch: lenet\n", ""));
  EXPECT_THAT(missing, HasSubstr("models[1].arch: missing"));
}

TEST(SweepSpecErrorsTest, RequiredFieldsAndNames) {
  EXPECT_THAT(ErrorOf(SweepReplacing("name: test_sweep", "")), HasSubstr("name: missing"));
  EXPECT_THAT(ErrorOf(SweepReplacing("name: test_sweep", "name: \"my sweep\"")), HasSubstr("name = \"my sweep\""));
  EXPECT_THAT(ErrorOf(SweepReplacing("dims: [100, 0, full, 10]", "")), HasSubstr("dims: missing"));
  EXPECT_THAT(ErrorOf(SweepReplacing("name: lenet", "name: mlp_wide")),
              HasSubstr("models[1].name = \"mlp_wide\"; expected a name not used by models[0]"));
  EXPECT_THAT(ErrorOf(SweepReplacing("layers: [fc1, fc2]", "layers: [fc1, fc1]")), HasSubstr("models[0].layers[1]"));
  EXPECT_THAT(ErrorOf(SweepReplacing("layers: [fc1, fc2]", "layer: fc1")), HasSubstr("models[0].layer = \"fc1\""));
}

TEST(SweepSpecErrorsTest, DuplicateAndNegativeDimsAndSeeds) {
  EXPECT_THAT(ErrorOf(SweepReplacing("dims: [100, 0, full, 10]", "dims: [0, 10, 10]")),
              HasSubstr("dims[2] = 10; expected a dimension not listed before (dims[1] is the same)"));
  EXPECT_THAT(ErrorOf(SweepReplacing("dims: [100, 0, full, 10]", "dims: [0, -5]")), HasSubstr("dims[1] = -5"));
  EXPECT_THAT(ErrorOf(SweepReplacing("dims: [100, 0, full, 10]", "dims: [0, fuul]")), HasSubstr("dims[1] = \"fuul\""));
  EXPECT_THAT(ErrorOf(SweepReplacing("seeds: [0, 1]", "seeds: [0, 1, 0]")),
              HasSubstr("seeds[2] = 0; expected a seed not listed before (seeds[0] is the same)"));
  EXPECT_THAT(ErrorOf(SweepReplacing("seeds: [0, 1]", "seeds: [-1]")), HasSubstr("seeds[0] = -1"));
  EXPECT_THAT(ErrorOf(SweepReplacing("seeds: [0, 1]", "seeds: 0")), HasSubstr("seeds = 0"));
  EXPECT_THAT(ErrorOf(SweepReplacing("dims: [100, 0, full, 10]", "dims: {max: 5, samples: 3}")),
              HasSubstr("dims.max = 5"));
}

TEST(SweepSpecErrorsTest, ThresholdChecks) {
  EXPECT_THAT(ErrorOf(SweepWith("threshold: {kind: fraction_of_group_best, value: 1.5}")),
              HasSubstr("threshold.value = 1.5; expected a fraction in (0, 1]"));
  EXPECT_THAT(ErrorOf(SweepWith("threshold: {kind: absolute}")), HasSubstr("threshold.value: missing"));
  EXPECT_THAT(ErrorOf(SweepWith("threshold: {kind: fraction_of_ful}")), HasSubstr("did you mean \"fraction_of_full\""));
  const std::string no_full = ErrorOf(SweepReplacing("dims: [100, 0, full, 10]", "dims: [0, 10]") +
                                      "threshold: {kind: fraction_of_full}\n");
  EXPECT_THAT(no_full, HasSubstr("threshold.kind = \"fraction_of_full\""));
  EXPECT_THAT(no_full, HasSubstr("needs d = full in dims"));
  EXPECT_THAT(ErrorOf(SweepWith("max_attempts: 0")), HasSubstr("max_attempts = 0"));
}

TEST(SweepSpecErrorsTest, EveryFractionKindTakesAFractionInZeroToOne) {
  for (const char* kind :
       {"fraction_of_group_best", "fraction_of_dataset_best", "fraction_of_full", "fraction_of_noise_ceiling"}) {
    for (const char* value : {"0", "-0.25", "1.5", "1.0001", ".nan", ".inf"}) {
      const std::string error =
          ErrorOf(SweepWith(std::string("threshold: {kind: ") + kind + ", value: " + value + "}"));
      EXPECT_THAT(error, HasSubstr("threshold.value = ")) << kind << " " << value;
      EXPECT_THAT(error, HasSubstr("expected a fraction in (0, 1]")) << kind << " " << value;
    }
    EXPECT_THAT(ErrorOf(SweepWith(std::string("threshold: {kind: ") + kind + ", value: 1.5}")),
                HasSubstr("threshold.value = 1.5; expected a fraction in (0, 1]"))
        << kind;
    EXPECT_THAT(ErrorOf(SweepWith(std::string("threshold: {kind: ") + kind + ", value: high}")),
                HasSubstr("threshold.value = \"high\""))
        << kind;
  }
  // An absolute threshold is a score, not a fraction: any finite number.
  EXPECT_DOUBLE_EQ(MustParse(SweepWith("threshold: {kind: absolute, value: 1.5}")).threshold.value, 1.5);
}

TEST(SweepSpecErrorsTest, AnUnknownThresholdKindListsTheAcceptedOnes) {
  const std::string error = ErrorOf(SweepWith("threshold: {kind: fraction_of_ceiling, value: 0.9}"));
  EXPECT_THAT(error, HasSubstr("threshold.kind = \"fraction_of_ceiling\""));
  EXPECT_THAT(error, HasSubstr("expected one of absolute | fraction_of_group_best | fraction_of_dataset_best | "
                               "fraction_of_full | fraction_of_noise_ceiling"));
  EXPECT_THAT(error, HasSubstr("did you mean \"fraction_of_full\""));
}

TEST(SweepSpecErrorsTest, TrainSeedIsSetBySeeds) {
  EXPECT_THAT(ErrorOf(SweepReplacing("train: {lr: 0.001, max_epochs: 5}", "train: {lr: 0.001, seed: 3}")),
              HasSubstr("train.seed = 3; expected no train.seed in a sweep"));
}

TEST(SweepSpecErrorsTest, JobValidationErrorsNameTheJob) {
  const std::string hidden = ErrorOf(SweepReplacing("hidden: [32]", "hidden: [-1]"));
  EXPECT_THAT(hidden, HasSubstr("model mlp_wide, layer fc1, dataset it, d 0, seed 0: model.hidden[0] = -1"));
  const std::string typo = ErrorOf(SweepReplacing("max_epochs: 5", "max_epoch: 5"));
  EXPECT_THAT(typo, HasSubstr("train.max_epoch: unknown key"));
  EXPECT_THAT(typo, HasSubstr("did you mean \"max_epochs\""));
  const std::string missing = ErrorOf(SweepReplacing(" file: hvm.nc,", ""));
  EXPECT_THAT(missing, HasSubstr("dataset it"));
  EXPECT_THAT(missing, HasSubstr("data.file: missing"));
}

TEST(SweepSpecErrorsTest, ErrorsCausedByAnOverrideNameIt) {
  const std::string lr = ErrorOf(kSweepYaml, {"train.lr=-1"});
  EXPECT_THAT(lr, HasSubstr("override `train.lr=-1`"));
  EXPECT_THAT(lr, HasSubstr("train.lr = -1; expected a number > 0"));
  EXPECT_THAT(ErrorOf(kSweepYaml, {"seeds=[1,1]"}), HasSubstr("override `seeds=[1,1]`: seeds[1] = 1"));
  EXPECT_THAT(ErrorOf(kSweepYaml, {"dims"}), HasSubstr("override `dims`: no `=`"));
  // A list element cannot be addressed by its index: the error says so and what to do instead.
  EXPECT_THAT(ErrorOf(kSweepYaml, {"datasets.0.limit_stimuli=100"}),
              HasSubstr("override `datasets.0.limit_stimuli=100`: \"0\" in datasets.0.limit_stimuli is a list index, "
                        "and overrides name mapping keys only; replace the whole list (datasets=[...]) or edit the "
                        "file"));
  EXPECT_THAT(ErrorOf(kSweepYaml, {"models.1={name: x, arch: mlp}"}),
              HasSubstr("\"1\" in models.1 is a list index"));
}

TEST(SweepSpecErrorsTest, SyntaxErrorsNameTheSweep) {
  EXPECT_THAT(ErrorOf("name: [x\n"), HasSubstr("sweep spec is not valid YAML"));
  StatusOr<SweepSpec> json = ParseSweepSpec("{\"name\": \"a\", \"name\": \"b\"}", SpecFormat::kJson);
  ASSERT_FALSE(json.ok());
  EXPECT_THAT(json.status().message(), HasSubstr("duplicate key \"name\""));
}

TEST(SweepSpecErrorsTest, TooManyJobsIsResourceExhaustedNamingCountAndLimit) {
  // 3 groups x 4 d x 8334 seeds = 100008 jobs.
  const std::string count = ErrorOf(SweepReplacing("seeds: [0, 1]", "seeds: 8334"), {}, StatusCode::kResourceExhausted);
  EXPECT_THAT(count, HasSubstr("100008 jobs"));
  EXPECT_THAT(count, HasSubstr("100000"));
  // A count past the limit alone is refused before any seed is listed.
  const std::string huge =
      ErrorOf(SweepReplacing("seeds: [0, 1]", "seeds: 1000000000000"), {}, StatusCode::kResourceExhausted);
  EXPECT_THAT(huge, HasSubstr("1000000000000 jobs"));
}

// ----------------------------------------------------------------------------------------------- limits
// What spec_document.h promises about strings, names and nesting: a value at the limit passes, one past it
// is refused naming the field, what was found and the limit, and nothing (however long or deep) crashes.

// kSweepYaml with a list nested `levels` deep as `train.extra` (the document is level 1, train level 2).
std::string JsonSweepWithNesting(size_t levels) {
  return R"({"name": "s", "models": [{"name": "m", "arch": "mlp"}], "datasets": [{"name": "d", "kind": "generic"}],
             "dims": [0], "x": )" + std::string(levels - 1, '[') + std::string(levels - 1, ']') + "}";
}

TEST(SweepSpecLimitsTest, NamesUpToTheLimitPassLongerOnesAreRefusedWithLengthAndLimit) {
  const std::string at_limit(kMaxSpecNameBytes, 'n');
  EXPECT_EQ(MustParse(SweepReplacing("name: test_sweep", "name: " + at_limit)).name, at_limit);
  EXPECT_EQ(MustParse(SweepReplacing("fc1, fc2", at_limit + ", fc2")).models[0].layers[0], at_limit);
  const std::string past(kMaxSpecNameBytes + 1, 'n');
  const std::string sweep = ErrorOf(SweepReplacing("name: test_sweep", "name: " + past));
  EXPECT_THAT(sweep, HasSubstr("name: a name of 129 bytes"));
  EXPECT_THAT(sweep, HasSubstr("at most 128 bytes"));
  EXPECT_THAT(ErrorOf(SweepReplacing("name: lenet", "name: " + past)), HasSubstr("models[1].name: a name of 129 bytes"));
  EXPECT_THAT(ErrorOf(SweepReplacing("name: it,", "name: " + past + ",")), HasSubstr("datasets[0].name: a name of 129"));
  EXPECT_THAT(ErrorOf(SweepReplacing("fc1, fc2", "fc1, " + past)), HasSubstr("models[0].layers[1]: a name of 129"));
}

TEST(SweepSpecLimitsTest, StringsUpToTheLimitPassLongerOnesAreRefusedInYamlJsonAndOverrides) {
  // A quoted and a plain scalar, a JSON string and an override value, each as long as allowed and one more.
  const std::string at_limit = "/" + std::string(kMaxSpecStringBytes - 1, 'p');
  const std::string past = at_limit + "p";
  EXPECT_EQ(MustExpand(MustParse(SweepReplacing("file: hvm.nc", "file: " + at_limit)))[0].spec.data.file, at_limit);
  EXPECT_THAT(ErrorOf(SweepReplacing("file: hvm.nc", "file: " + past)),
              HasSubstr("datasets[0].file: a string of 4097 bytes (\"/pppp"));
  EXPECT_THAT(ErrorOf(SweepReplacing("file: hvm.nc", "file: \"" + past + "\"")), HasSubstr("at most 4096 bytes"));
  // A plain scalar made of digits is where std::regex used to recurse once per character.
  EXPECT_THAT(ErrorOf(SweepReplacing("lr: 0.001", "lr: " + std::string(30000, '1'))),
              HasSubstr("train.lr: a string of 30000 bytes"));
  EXPECT_THAT(ErrorOf(SweepReplacing("lr: 0.001", "lr: 0." + std::string(kMaxSpecStringBytes, '1'))),
              HasSubstr("train.lr: a string of 4098 bytes"));
  EXPECT_THAT(ErrorOf(kSweepYaml, {"datasets[0]=" + past}), HasSubstr("bad key"));
  EXPECT_THAT(ErrorOf(kSweepYaml, {"train.lr=" + past}), HasSubstr("train.lr: a string of 4097 bytes"));
  EXPECT_THAT(ErrorOf(kSweepYaml, {std::string(30000, 'k') + "=1"}), HasSubstr("a key of 30000 bytes; at most 4096"));
  // (YAML itself allows no implicit key past 1024 characters.)
  StatusOr<SweepSpec> long_key =
      ParseSweepSpec("{\"" + std::string(kMaxSpecStringBytes + 1, 'k') + "\": 1}", SpecFormat::kJson);
  ASSERT_FALSE(long_key.ok());
  EXPECT_THAT(long_key.status().message(), HasSubstr("the document: a key of 4097 bytes"));
  const std::string json = R"({"name": ")" + std::string(30000, 'a') + R"("})";
  StatusOr<SweepSpec> long_json = ParseSweepSpec(json, SpecFormat::kJson);
  ASSERT_FALSE(long_json.ok());
  EXPECT_THAT(long_json.status().message(), HasSubstr("name: a string of 30000 bytes"));
}

TEST(SweepSpecLimitsTest, NestingUpToTheLimitPassesDeeperIsRefusedWithDepthAndLimit) {
  // At the limit the document parses as far as its unknown key: nesting is not what it is refused for.
  StatusOr<SweepSpec> at_limit = ParseSweepSpec(JsonSweepWithNesting(kMaxSpecDepth), SpecFormat::kJson);
  ASSERT_FALSE(at_limit.ok());
  EXPECT_THAT(at_limit.status().message(), HasSubstr("unknown key \"x\""));
  StatusOr<SweepSpec> past = ParseSweepSpec(JsonSweepWithNesting(kMaxSpecDepth + 1), SpecFormat::kJson);
  ASSERT_FALSE(past.ok());
  EXPECT_THAT(past.status().message(), HasSubstr("nested 33 levels deep; at most 32 levels are allowed"));
  EXPECT_THAT(past.status().message(), HasSubstr("x[0][0]"));
  StatusOr<SweepSpec> far = ParseSweepSpec(JsonSweepWithNesting(100000), SpecFormat::kJson);
  ASSERT_FALSE(far.ok());
  EXPECT_THAT(far.status().message(), HasSubstr("nested 100000 levels deep"));
  // YAML: the same document in flow style; an alias that contains itself is refused, not followed.
  StatusOr<SweepSpec> yaml_at_limit = ParseSweepSpec(JsonSweepWithNesting(kMaxSpecDepth), SpecFormat::kYaml);
  ASSERT_FALSE(yaml_at_limit.ok());
  EXPECT_THAT(yaml_at_limit.status().message(), HasSubstr("unknown key \"x\""));
  EXPECT_THAT(ErrorOf(JsonSweepWithNesting(kMaxSpecDepth + 1)), HasSubstr("at most 32 levels are allowed"));
  EXPECT_THAT(ErrorOf(JsonSweepWithNesting(100000)), HasSubstr("at most 32 levels are allowed"));
  EXPECT_THAT(ErrorOf(SweepWith("early_stop: &loop [*loop]")), HasSubstr("at most 32 levels are allowed"));
  // Overrides: the depth of the key counts.
  std::string deep_key = "train";
  for (size_t i = 1; i < kMaxSpecDepth + 1; ++i) deep_key += ".k";
  EXPECT_THAT(ErrorOf(kSweepYaml, {deep_key + "=1"}), HasSubstr("33 levels deep; at most 32"));
  EXPECT_THAT(ErrorOf(kSweepYaml, {"train.lr=" + std::string(40, '[') + std::string(40, ']')}),
              HasSubstr("train.lr[0]"));
}

TEST(SweepSpecLimitsTest, EmptyOverrideNulAndBinaryTextAndOverflowingNumbersAreRefusedClearly) {
  EXPECT_THAT(ErrorOf(kSweepYaml, {"train.lr="}), HasSubstr("override `train.lr=`: no value after `=`"));
  StatusOr<SweepSpec> nul = ParseSweepSpec(R"({"name": "a\u0000b"})", SpecFormat::kJson);
  ASSERT_FALSE(nul.ok());
  EXPECT_THAT(nul.status().message(), HasSubstr("name: a string with a NUL byte at byte 1"));
  const std::string binary = ErrorOf("name: ab\xff\xfe\x01\n");
  EXPECT_THAT(binary, HasSubstr("name: a string that is not UTF-8 text (byte 0xFF at byte 2)"));
  EXPECT_EQ(binary.find('\xff'), std::string::npos);
  // 1e400 is past a double: named as written, not as JSON's null.
  EXPECT_THAT(ErrorOf(SweepReplacing("dims: [100, 0, full, 10]", "dims: [0, 1e400]")),
              HasSubstr("dims[1] = \"1e400\""));
  EXPECT_THAT(ErrorOf(SweepReplacing("lr: 0.001", "lr: .inf")), HasSubstr("train.lr = .inf"));
  StatusOr<SweepSpec> json_overflow = ParseSweepSpec(R"({"name": "s", "dims": [0, 1e400]})", SpecFormat::kJson);
  ASSERT_FALSE(json_overflow.ok());
  EXPECT_THAT(json_overflow.status().message(), HasSubstr("number overflow parsing '1e400'"));
}

// ----------------------------------------------------------------------------------------------- paths

TEST(SweepSpecPathsTest, RelativePathsResolveAgainstBaseDirAbsoluteOnesStay) {
  const SweepSpec s = MustParse(SweepReplacing("arch: lenet", "arch: lenet\n    weights: ../w/lenet.pt"), {},
                                "/sweeps/here");
  EXPECT_EQ(s.datasets[0].data["file"], "/sweeps/here/hvm.nc");
  EXPECT_EQ(s.datasets[0].data["stimuli"], "/sweeps/here/images/");
  EXPECT_EQ(s.models[1].model["weights"], "/sweeps/w/lenet.pt");
  const SweepSpec absolute = MustParse(SweepReplacing("file: hvm.nc", "file: /abs/hvm.nc"), {}, "/sweeps/here");
  EXPECT_EQ(absolute.datasets[0].data["file"], "/abs/hvm.nc");
  EXPECT_EQ(absolute.datasets[0].data["stimuli"], "/sweeps/here/images/");
}

TEST(SweepSpecPathsTest, TheResearchCodesDataKeysResolveAndReachTheJobsAsDwarpsKeys) {
  const std::string text = SweepReplacing("  - {name: it, kind: majaj_hong, file: hvm.nc, stimuli: images/, roi: IT}",
                                          "  - {name: it, kind: majaj_hong, data_path: hvm.nc, stimuli_dir: images/}");
  const SweepSpec s = MustParse(text, {}, "/base");
  EXPECT_EQ(s.datasets[0].data["data_path"], "/base/hvm.nc");
  EXPECT_EQ(s.datasets[0].data["stimuli_dir"], "/base/images/");
  auto jobs = ExpandSweep(s);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_FALSE(jobs->empty());
  EXPECT_EQ(jobs->front().spec.data.file, "/base/hvm.nc");
  EXPECT_EQ(jobs->front().spec.data.stimuli, "/base/images/");
}

TEST(SweepSpecPathsTest, SyntheticTeacherWeightsResolve) {
  const std::string text = SweepReplacing(
      "  - {name: it, kind: majaj_hong, file: hvm.nc, stimuli: images/, roi: IT}",
      "  - name: synth\n    kind: synthetic\n    images: imgs.idx\n"
      "    synthetic: {targets: 4, teacher: {arch: mlp, weights: teacher.pt}}");
  const SweepSpec s = MustParse(text, {}, "/base");
  EXPECT_EQ(s.datasets[0].data["images"], "/base/imgs.idx");
  EXPECT_EQ(s.datasets[0].data["synthetic"]["teacher"]["weights"], "/base/teacher.pt");
}

TEST(SweepSpecPathsTest, LoadFileResolvesAgainstTheFilesFolder) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "dwarp_sweep_spec_test";
  std::filesystem::create_directories(dir);
  const std::filesystem::path file = dir / "sweep.yaml";
  std::ofstream(file) << kSweepYaml;
  StatusOr<SweepSpec> s = LoadSweepSpecFile(file.string(), {"name=loaded"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->name, "loaded");
  EXPECT_EQ(s->datasets[0].data["file"], (dir / "hvm.nc").string());
  StatusOr<SweepSpec> missing = LoadSweepSpecFile((dir / "nope.yaml").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  StatusOr<SweepSpec> extension = LoadSweepSpecFile((dir / "sweep.toml").string());
  ASSERT_FALSE(extension.ok());
  EXPECT_THAT(extension.status().message(), HasSubstr(".toml"));
  std::filesystem::remove_all(dir);
}

// ----------------------------------------------------------------------------------------------- expansion

TEST(ExpandSweepTest, NestsModelsLayersDatasetsDimsSeeds) {
  const std::vector<PlannedJob> jobs = MustExpand(MustParse(kSweepYaml));
  ASSERT_EQ(jobs.size(), 24u);
  std::vector<std::string> keys;
  for (const PlannedJob& j : jobs) {
    keys.push_back(j.model + "/" + j.layer + "/" + j.dataset + "/" + j.d.ToString() + "/" + std::to_string(j.seed));
  }
  EXPECT_EQ(keys[0], "mlp_wide/fc1/it/0/0");
  EXPECT_EQ(keys[1], "mlp_wide/fc1/it/0/1");
  EXPECT_EQ(keys[2], "mlp_wide/fc1/it/10/0");
  EXPECT_EQ(keys[7], "mlp_wide/fc1/it/full/1");
  EXPECT_EQ(keys[8], "mlp_wide/fc2/it/0/0");
  EXPECT_EQ(keys[16], "lenet/default/it/0/0");
  EXPECT_EQ(keys[23], "lenet/default/it/full/1");
  for (const PlannedJob& j : jobs) EXPECT_EQ(j.variant, "");
}

TEST(ExpandSweepTest, EachJobSpecCarriesItsLayerDSeedAndTheSharedSettings) {
  const std::vector<PlannedJob> jobs = MustExpand(MustParse(kSweepYaml));
  ASSERT_EQ(jobs.size(), 24u);
  const JobSpec& fc2 = jobs[8 + 5].spec;  // mlp_wide fc2, d 100, seed 1
  EXPECT_EQ(fc2.model.arch, ModelArch::kMlp);
  EXPECT_EQ(fc2.model.layer, "fc2");
  EXPECT_EQ(fc2.model.hidden, (std::vector<int64_t>{32}));
  EXPECT_EQ(fc2.d, SubspaceDim::Subspace(100));
  EXPECT_EQ(fc2.train.seed, 1u);
  EXPECT_DOUBLE_EQ(fc2.train.lr, 0.001);
  EXPECT_EQ(fc2.train.max_epochs, 5);
  EXPECT_EQ(fc2.data.kind, DataKind::kMajajHong);
  EXPECT_EQ(fc2.data.file, "hvm.nc");
  const PlannedJob& lenet = jobs[16];
  EXPECT_EQ(lenet.layer, "default");
  EXPECT_EQ(lenet.spec.model.layer, "");  // the engine picks the arch's default
  EXPECT_EQ(jobs[23].spec.d, SubspaceDim::Full());
}

TEST(ExpandSweepTest, RidgeReadoutOnlyForLinearJobs) {
  const SweepSpec s = MustParse(SweepWith("readout: ridge\nridge: {alphas: [1, 10]}"));
  const std::vector<PlannedJob> jobs = MustExpand(s);
  ASSERT_EQ(jobs.size(), 24u);
  for (const PlannedJob& j : jobs) {
    if (j.d.is_linear()) {
      EXPECT_EQ(j.spec.readout, Readout::kRidge) << j.d.ToString();
      ASSERT_TRUE(j.spec.ridge.has_value());
      EXPECT_EQ(j.spec.ridge->alphas, (std::vector<double>{1, 10}));
    } else {
      EXPECT_EQ(j.spec.readout, Readout::kSgd) << j.d.ToString();
      EXPECT_FALSE(j.spec.ridge.has_value());
    }
  }
}

TEST(ExpandSweepTest, FreezeHeadAppliesToWarpedJobsOnly) {
  const SweepSpec s = MustParse(SweepReplacing("max_epochs: 5}", "max_epochs: 5, freeze_head: true}"));
  for (const PlannedJob& j : MustExpand(s)) EXPECT_EQ(j.spec.train.freeze_head, !j.d.is_linear()) << j.d.ToString();
}

TEST(ExpandSweepTest, RidgeHeadInitAppliesToWarpedJobsOnly) {
  const SweepSpec s = MustParse(SweepReplacing("max_epochs: 5}", "max_epochs: 5, head_init: ridge}"));
  for (const PlannedJob& j : MustExpand(s))
    EXPECT_EQ(j.spec.train.head_init, j.d.is_linear() ? HeadInit::kDefault : HeadInit::kRidge) << j.d.ToString();
}

// The sweep's shared blocks hold settings for all its d; each job takes those that apply at its d and holds
// nothing else (JobSpec's SettingsUnusedBy), so no result records a setting that did not take effect.
TEST(ExpandSweepTest, EachJobTakesOnlyTheSharedSettingsThatApplyAtItsD) {
  const SweepSpec s =
      MustParse(SweepReplacing("max_epochs: 5}", "max_epochs: 5, low_dim_lr: 0.3}") + "readout: ridge\n");
  for (const PlannedJob& j : MustExpand(s)) {
    SCOPED_TRACE(j.d.ToString());
    const nlohmann::json train = ToJson(j.spec)["train"];
    EXPECT_EQ(train.contains("low_dim_lr"), j.d.is_subspace());
    EXPECT_EQ(train.contains("lr"), !j.d.is_linear());  // d = 0 is a closed-form ridge fit
    EXPECT_EQ(train.contains("max_epochs"), !j.d.is_linear());
    EXPECT_EQ(ToJson(j.spec)["model"].contains("projection"), j.d.is_subspace());
    if (j.d.is_subspace()) EXPECT_DOUBLE_EQ(*j.spec.train.low_dim_lr, 0.3);
  }
}

TEST(ExpandSweepTest, ExactlyTheLimitExpands) {
  // 1 group x 2 d x 50000 seeds = kMaxJobsPerSweep jobs; also bounds the cost of validating every job.
  const std::string text = R"(
name: big
models: [{name: m, arch: mlp, hidden: []}]
datasets: [{name: s, kind: synthetic, images: x.idx}]
dims: [0, 10]
seeds: 50000
)";
  const auto start = std::chrono::steady_clock::now();
  const SweepSpec s = MustParse(text);
  const std::vector<PlannedJob> jobs = MustExpand(s);
  EXPECT_EQ(static_cast<int64_t>(jobs.size()), kMaxJobsPerSweep);
  EXPECT_EQ(jobs.back().seed, 49999u);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 60.0) << "parsing and expanding the largest sweep allowed";
}

TEST(ExpandSweepTest, ExpandRefusesAHandBuiltSpecPastTheLimit) {
  SweepSpec s = MustParse(kSweepYaml);
  s.seeds.resize(5000);  // 3 x 4 x 5000 = 60000
  for (size_t i = 0; i < s.seeds.size(); ++i) s.seeds[i] = i;
  s.models.push_back(s.models[0]);
  s.models.back().name = "copy";  // 5 x 4 x 5000 = 100000: the limit (ExactlyTheLimitExpands)
  s.seeds.push_back(5000);        // 5 x 4 x 5001 = 100020
  StatusOr<std::vector<PlannedJob>> jobs = ExpandSweep(s);
  ASSERT_FALSE(jobs.ok());
  EXPECT_EQ(jobs.status().code(), StatusCode::kResourceExhausted);
  EXPECT_THAT(jobs.status().message(), HasSubstr("100020 jobs"));
}

// ----------------------------------------------------------------------------------------------- round trip

TEST(SweepSpecJsonTest, ToJsonRoundTrips) {
  const SweepSpec s = MustParse(SweepWith("readout: ridge\nthreshold: {kind: fraction_of_full, value: 0.8}\n"
                                          "early_stop: true\nmax_attempts: 2"),
                                {}, "/base");
  const nlohmann::json written = ToJson(s);
  EXPECT_EQ(written["dims"], (nlohmann::json{0, 10, 100, "full"}));
  EXPECT_EQ(written["models"][1]["layers"], (nlohmann::json{"default"}));
  const SweepSpec reparsed = MustParse(written.dump(), {}, "", SpecFormat::kJson);
  EXPECT_EQ(ToJson(reparsed), written);
  EXPECT_EQ(reparsed.name, s.name);
  EXPECT_EQ(reparsed.dims, s.dims);
  EXPECT_EQ(reparsed.seeds, s.seeds);
  EXPECT_EQ(reparsed.models[0].model, s.models[0].model);
  EXPECT_EQ(reparsed.models[1].layers, s.models[1].layers);
  EXPECT_EQ(reparsed.datasets[0].data, s.datasets[0].data);
  EXPECT_EQ(reparsed.datasets[0].data["file"], "/base/hvm.nc");
  EXPECT_EQ(reparsed.job_defaults, s.job_defaults);
  EXPECT_EQ(reparsed.threshold.kind, ThresholdKind::kFractionOfFull);
  EXPECT_DOUBLE_EQ(reparsed.threshold.value, 0.8);
  EXPECT_TRUE(reparsed.early_stop);
  EXPECT_EQ(reparsed.max_attempts, 2);

  StatusOr<SweepSpec> from_json = SweepSpecFromJson(written);
  ASSERT_TRUE(from_json.ok()) << from_json.status();
  EXPECT_EQ(ToJson(*from_json), written);
  // The noise-ceiling kind is written and read back too.
  const SweepSpec ceiling = MustParse(SweepWith("threshold: {kind: fraction_of_noise_ceiling, value: 0.85}"));
  const nlohmann::json ceiling_json = ToJson(ceiling);
  EXPECT_EQ(ceiling_json["threshold"], (nlohmann::json{{"kind", "fraction_of_noise_ceiling"}, {"value", 0.85}}));
  StatusOr<SweepSpec> ceiling_back = SweepSpecFromJson(ceiling_json);
  ASSERT_TRUE(ceiling_back.ok()) << ceiling_back.status();
  EXPECT_EQ(ceiling_back->threshold.kind, ThresholdKind::kFractionOfNoiseCeiling);
  EXPECT_DOUBLE_EQ(ceiling_back->threshold.value, 0.85);
  EXPECT_EQ(ToJson(MustParse(ceiling_json.dump(), {}, "", SpecFormat::kJson)), ceiling_json);

  StatusOr<SweepSpec> bad = SweepSpecFromJson(nlohmann::json{{"name", "x"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("models: missing"));
}

// What a client composes and sends is what the coordinator stores, so `dwarp run` can compare locally.
TEST(SweepSpecJsonTest, CanonicalSweepJsonIsAFixedPointOfSendingAndParsing) {
  std::vector<SweepSpec> specs = {MustParse(kSweepYaml, {}, "/base"),
                                  MustParse(SweepWith("search: {mode: adaptive, rel_width: 0.5, max_seeds: 3}\n"
                                                      "readout: ridge\nthreshold: {kind: absolute, value: 0.3}"),
                                            {"dims={max: 1000, samples: 5}", "train.lr=1.0e-3"}, "/base")};
  for (const char* file : {"/quickstart.yaml", "/encoding_dim.yaml", "/classifier_dim.yaml", "/ridge_baseline.yaml",
                           "/sweeps/synthetic_quickstart.yaml", "/sweeps/encoding_dim_resnet18_avgpool.yaml"}) {
    StatusOr<SweepSpec> loaded = LoadSweepSpecFile(std::string(DWARP_CONFIGS_DIR) + file);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    specs.push_back(*loaded);
  }
  for (const SweepSpec& spec : specs) {
    const std::string sent = CanonicalSweepJson(spec);
    EXPECT_EQ(sent, ToJson(spec).dump());
    // As the coordinator's Submit reads it (another base folder changes nothing: the paths are absolute).
    StatusOr<ExpandedSweep> received = ParseAndExpandSweepSpec(sent, SpecFormat::kJson, {}, "/elsewhere");
    ASSERT_TRUE(received.ok()) << received.status();
    EXPECT_EQ(CanonicalSweepJson(received->spec), sent) << spec.name;
  }
}

TEST(ExpandSweepTest, ParseAndExpandReturnsTheJobsExpandSweepWould) {
  StatusOr<ExpandedSweep> expanded = ParseAndExpandSweepSpec(kSweepYaml, SpecFormat::kYaml, {"seeds=3"});
  ASSERT_TRUE(expanded.ok()) << expanded.status();
  const std::vector<PlannedJob> again = MustExpand(expanded->spec);
  ASSERT_EQ(expanded->jobs.size(), 36u);  // (2 + 1) groups x 4 d x 3 seeds
  ASSERT_EQ(again.size(), expanded->jobs.size());
  for (size_t i = 0; i < again.size(); ++i) {
    const PlannedJob& a = expanded->jobs[i];
    const PlannedJob& b = again[i];
    EXPECT_EQ(std::tie(a.model, a.layer, a.dataset, a.variant, a.seed), std::tie(b.model, b.layer, b.dataset, b.variant, b.seed));
    EXPECT_EQ(a.d, b.d);
    EXPECT_EQ(a.spec, b.spec) << i;
  }
  // A sweep that does not validate expands to nothing, with ParseSweepSpec's error.
  StatusOr<ExpandedSweep> bad = ParseAndExpandSweepSpec(kSweepYaml, SpecFormat::kYaml, {"train.lr=-1"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), ParseSweepSpec(kSweepYaml, SpecFormat::kYaml, {"train.lr=-1"}).status().message());
}

// ----------------------------------------------------------------------------------------------- search

TEST(SweepSearchTest, GridIsTheDefaultAndAdaptiveTakesAWordOrAMapping) {
  EXPECT_EQ(MustParse(kSweepYaml).search.mode, SearchMode::kGrid);
  const SweepSpec word = MustParse(SweepWith("search: adaptive"));
  EXPECT_EQ(word.search.mode, SearchMode::kAdaptive);
  EXPECT_DOUBLE_EQ(word.search.rel_width, 0.25);
  EXPECT_EQ(word.search.max_jobs, 0);
  EXPECT_EQ(word.search.max_seeds, 2);  // the sweep's two seeds: no extra ones
  const SweepSpec mapping =
      MustParse(SweepWith("search: {mode: adaptive, rel_width: 0.5, max_jobs: 12, max_seeds: 4}"));
  EXPECT_EQ(mapping.search.mode, SearchMode::kAdaptive);
  EXPECT_DOUBLE_EQ(mapping.search.rel_width, 0.5);
  EXPECT_EQ(mapping.search.max_jobs, 12);
  EXPECT_EQ(mapping.search.max_seeds, 4);
  EXPECT_STREQ(SearchModeName(SearchMode::kAdaptive), "adaptive");
}

TEST(SweepSearchTest, OverridesSetTheSearchKeys) {
  const SweepSpec s = MustParse(kSweepYaml, {"+search.mode=adaptive", "+search.rel_width=0.1", "+search.max_seeds=3"});
  EXPECT_EQ(s.search.mode, SearchMode::kAdaptive);
  EXPECT_DOUBLE_EQ(s.search.rel_width, 0.1);
  EXPECT_EQ(s.search.max_seeds, 3);
  const SweepSpec word = MustParse(SweepWith("search: {mode: grid}"), {"search.mode=adaptive"});
  EXPECT_EQ(word.search.mode, SearchMode::kAdaptive);
}

TEST(SweepSearchTest, BadSearchSettingsNameTheFieldAndWhatIsExpected) {
  EXPECT_THAT(ErrorOf(SweepWith("search: bisect")), HasSubstr("search"));
  EXPECT_THAT(ErrorOf(SweepWith("search: bisect")), HasSubstr("adaptive"));
  EXPECT_THAT(ErrorOf(SweepWith("search: {mode: adaptive, rel_width: 0}")), HasSubstr("search.rel_width"));
  EXPECT_THAT(ErrorOf(SweepWith("search: {mode: adaptive, rel_width: -1}")), HasSubstr("a number > 0"));
  EXPECT_THAT(ErrorOf(SweepWith("search: {mode: adaptive, max_jobs: -3}")), HasSubstr("search.max_jobs"));
  // 4 dims x 2 seeds: a budget below the coarse grid could not be kept.
  const std::string budget = ErrorOf(SweepWith("search: {mode: adaptive, max_jobs: 7}"));
  EXPECT_THAT(budget, HasSubstr("search.max_jobs"));
  EXPECT_THAT(budget, HasSubstr("dims x seeds = 8"));
  EXPECT_EQ(MustParse(SweepWith("search: {mode: adaptive, max_jobs: 8}")).search.max_jobs, 8);
  const std::string seeds = ErrorOf(SweepWith("search: {mode: adaptive, max_seeds: 1}"));
  EXPECT_THAT(seeds, HasSubstr("search.max_seeds"));
  EXPECT_THAT(seeds, HasSubstr("(2)"));
  EXPECT_THAT(ErrorOf(SweepWith("search: {rel_width: 0.5}")), HasSubstr("mode is grid"));
  EXPECT_THAT(ErrorOf(SweepWith("search: {mode: adaptive, rel_widht: 0.5}")), HasSubstr("rel_width"));
  EXPECT_THAT(ErrorOf(SweepWith("search: [adaptive]")), HasSubstr("search"));
}

TEST(SweepSearchTest, AnAdaptiveSearchRoundTripsThroughJsonAndAGridOneWritesNoSearch) {
  EXPECT_FALSE(ToJson(MustParse(kSweepYaml)).contains("search"));
  const SweepSpec s = MustParse(SweepWith("search: {mode: adaptive, rel_width: 0.3, max_jobs: 20, max_seeds: 3}"));
  const nlohmann::json written = ToJson(s);
  StatusOr<SweepSpec> back = SweepSpecFromJson(written);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->search.mode, SearchMode::kAdaptive);
  EXPECT_DOUBLE_EQ(back->search.rel_width, 0.3);
  EXPECT_EQ(back->search.max_jobs, 20);
  EXPECT_EQ(back->search.max_seeds, 3);
  EXPECT_EQ(ToJson(*back), written);
}

TEST(SweepSearchTest, PlanSweepJobBuildsAJobOutsideTheGridAsTheGridsAre) {
  const SweepSpec s = MustParse(SweepWith("readout: ridge"));
  StatusOr<std::vector<PlannedJob>> grid = ExpandSweep(s);
  ASSERT_TRUE(grid.ok()) << grid.status();
  // A grid point comes out as ExpandSweep made it.
  StatusOr<PlannedJob> same = PlanSweepJob(s, "mlp_wide", "fc1", "it", SubspaceDim::Subspace(100), 1);
  ASSERT_TRUE(same.ok()) << same.status();
  const auto in_grid = std::find_if(grid->begin(), grid->end(), [](const PlannedJob& j) {
    return j.model == "mlp_wide" && j.layer == "fc1" && j.d == SubspaceDim::Subspace(100) && j.seed == 1;
  });
  ASSERT_NE(in_grid, grid->end());
  EXPECT_EQ(ToJson(same->spec), ToJson(in_grid->spec));
  // A new d and seed; d = 0 keeps the ridge readout, as in the grid.
  StatusOr<PlannedJob> added = PlanSweepJob(s, "lenet", "default", "it", SubspaceDim::Subspace(316), 7);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(added->layer, "default");
  EXPECT_EQ(added->spec.d, SubspaceDim::Subspace(316));
  EXPECT_EQ(ToJson(added->spec)["train"]["seed"], 7);
  StatusOr<PlannedJob> linear = PlanSweepJob(s, "lenet", "default", "it", SubspaceDim::Linear(), 3);
  ASSERT_TRUE(linear.ok()) << linear.status();
  EXPECT_EQ(ToJson(linear->spec)["readout"], "ridge");
  // Keys that are not the sweep's.
  EXPECT_THAT(PlanSweepJob(s, "resnet", "default", "it", SubspaceDim::Linear(), 0).status().message(),
              HasSubstr("no such model or dataset"));
  EXPECT_THAT(PlanSweepJob(s, "mlp_wide", "fc9", "it", SubspaceDim::Linear(), 0).status().message(),
              HasSubstr("no read-out layer fc9"));
}

// ----------------------------------------------------------------------------------------------- examples

TEST(SweepExamplesTest, SyntheticQuickstartParsesAndExpands) {
  StatusOr<SweepSpec> s = LoadSweepSpecFile(DWARP_CONFIGS_DIR "/sweeps/synthetic_quickstart.yaml");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->dims, ElementsAre(SubspaceDim::Linear(), SubspaceDim::Subspace(10), SubspaceDim::Subspace(46),
                                   SubspaceDim::Subspace(215), SubspaceDim::Subspace(1000)));
  const std::vector<PlannedJob> jobs = MustExpand(*s);
  EXPECT_EQ(jobs.size(), 30u);  // (2 layers + 1) x 5 d x 2 seeds
  for (const PlannedJob& j : jobs) EXPECT_EQ(j.spec.data.kind, DataKind::kSynthetic);
}

TEST(SweepExamplesTest, ReadmeQuickstartParsesAndExpands) {
  StatusOr<SweepSpec> s = LoadSweepSpecFile(DWARP_CONFIGS_DIR "/quickstart.yaml");
  ASSERT_TRUE(s.ok()) << s.status();
  const std::vector<PlannedJob> jobs = MustExpand(*s);
  EXPECT_EQ(jobs.size(), 72u);  // 4 candidates x 6 d x 3 seeds
  for (const PlannedJob& j : jobs) {
    // One category-selective brain for every job: its labels and its teacher (which fixes its random
    // stream) are set by the dataset, not by each candidate.
    ASSERT_TRUE(j.spec.data.synthetic.has_value());
    EXPECT_DOUBLE_EQ(j.spec.data.synthetic->categories, 1.0);
    EXPECT_FALSE(j.spec.data.labels.empty());
    ASSERT_TRUE(j.spec.data.synthetic->teacher.has_value());
    EXPECT_EQ(j.spec.data.synthetic->teacher->arch, ModelArch::kSmallCnn);
    EXPECT_EQ(j.spec.train.head_init, j.d.is_linear() ? HeadInit::kDefault : HeadInit::kRidge);
    EXPECT_EQ(j.spec.readout, j.d.is_linear() ? Readout::kRidge : Readout::kSgd);
  }
}

TEST(SweepExamplesTest, SeedsEncodingDimExperiment) {
  StatusOr<SweepSpec> s = LoadSweepSpecFile(DWARP_CONFIGS_DIR "/sweeps/encoding_dim_resnet18_avgpool.yaml");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->dims.size(), 10u);
  EXPECT_EQ(s->dims[1], SubspaceDim::Subspace(10));
  EXPECT_EQ(s->dims.back(), SubspaceDim::Subspace(10000));
  const std::vector<PlannedJob> jobs = MustExpand(*s);
  ASSERT_EQ(jobs.size(), 20u);  // 2 datasets x 10 d x 1 seed
  EXPECT_EQ(jobs[0].dataset, "majaj_it");
  EXPECT_EQ(jobs[0].spec.model.layer, "avgpool");
  EXPECT_EQ(jobs[0].spec.data.file, "/data/majaj/hvm.nc");
  EXPECT_EQ(jobs[10].dataset, "nsd");
  EXPECT_EQ(jobs[10].spec.data.kind, DataKind::kNsd);
  EXPECT_EQ(s->threshold.kind, ThresholdKind::kFractionOfDatasetBest);
}

}  // namespace
}  // namespace dwarp
