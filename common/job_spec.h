// JobSpec: one dwarp job = (model, layer, dataset, d, seed, objective, readout, training settings), as
// DESIGN.md "Jobs", read from YAML or JSON and validated before anything runs.
//
// A job file (configs/jobs/ has examples):
//
//   model: {arch: resnet18, layer: avgpool, weights: resnet18.pt}
//   data:  {kind: majaj_hong, file: hvm.nc, stimuli: hvm-images/, roi: IT}
//   d: 1000
//   train: {lr: 1.0e-3, weight_decay: 5.0e-3, seed: 0}
//
// Validation: every key is checked. Unknown keys are errors that list the valid keys at that level (and
// suggest the nearest one), so a typo never silently falls back to a default. Every error message names
// the field path (`train.lr`, `model.layer_groups[1][0]`), the bad value and what was expected, e.g.
//   train.lr = -0.01; expected a number > 0
// A key set to null (`weights:` with nothing after it, as in Hydra configs) counts as not given.
//
// Hydra-style overrides (`train.lr=0.01 d=full data.roi=V4 model.hidden=[100,100]`) are applied to the
// parsed document before validation; the value is read as YAML (so `[a, b]` is a list and `1e-3` a
// number), `~key` removes a key, a leading `+` is accepted and ignored. An error caused by an override
// names the override.
//
// Defaults follow the research code (EricElmoznino/encoder_warping, "the seed") where it has one; the
// ones marked "dwarp" are this project's choices. Each is documented next to its field.
//
// ToJson(spec) writes every field the job uses, defaults resolved, and none that it does not use
// (SettingsUnusedBy), so results record exactly what ran and ParseJobSpec(ToJson(spec).dump(), kJson) == spec.
// It also writes "spec_version": kJobSpecVersion, the version of this written format, so that a worker can
// decode a coordinator's spec without validating it again (DecodeJobSpec) and knows when it cannot.
//
// Thread-safety: free functions on values; safe to call concurrently.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/subspace_dim.h"

namespace dwarp {

enum class ModelArch { kMlp, kLenet, kSmallCnn, kResnet18, kTorchscript };
enum class DataKind { kNsd, kMajajHong, kGeneric, kImageFolder, kIdx, kSynthetic };
enum class Objective { kRegression, kClassification, kRsa };
enum class Readout { kSgd, kRidge, kPrefitWarped };
enum class HeadInit { kDefault, kRidge };
enum class Projection { kPerTensor, kGlobal, kReference, kSizeWeighted };
enum class LowDimLrScaling { kNone, kInverseD };
enum class LrSchedule { kConstant, kCosine, kWarmupCosine };
// What a majaj_hong or nsd job does with NaN responses (data.nan): refuse the data (default), or drop every
// target (neuroid / voxel) that has one, the count in the data description and the log.
enum class NanPolicy { kRefuse, kDropTargets };
enum class DataTransform { kSquash, kWeights };

// The spelling used in job files and messages: "mlp", "small_cnn", "majaj_hong", "image_folder", ...
const char* ModelArchName(ModelArch arch);
const char* DataKindName(DataKind kind);
const char* ObjectiveName(Objective objective);
const char* ReadoutName(Readout readout);
const char* HeadInitName(HeadInit head_init);
const char* ProjectionName(Projection projection);
const char* LowDimLrScalingName(LowDimLrScaling scaling);
const char* LrScheduleName(LrSchedule schedule);
const char* NanPolicyName(NanPolicy policy);
const char* DataTransformName(DataTransform transform);

// The reference d of LowDimLrScaling::kInverseD: low_dim_lr is the rate at this d.
inline constexpr int64_t kLowDimLrReferenceDim = 1000;
// Adam's rate on theta_d at subspace dimension d >= 1: `low_dim_lr` (kNone) or low_dim_lr * 1000 / d
// (kInverseD). One Adam step moves each of theta_d's d coordinates by about the rate, each along a random
// direction whose gradient component is g_i = <P e_i, grad>, so to first order the loss falls by
// rate * sum_i |g_i|, which grows like d: kInverseD keeps that first-order progress per step the same at
// every d. `dwarp intrinsic-dim` and the job path both use this function.
double LowDimLearningRate(double low_dim_lr, int64_t d, LowDimLrScaling scaling);

struct ModelSpec {
  ModelArch arch = ModelArch::kResnet18;  // required: mlp | lenet | small_cnn | resnet18 | torchscript
  // Path to the weights: a TorchScript file for torchscript (required), optional for the built-in archs
  // (empty: the architecture's random initialisation, seeded by `seed`).
  std::string weights;
  // Seed of a built-in architecture's random initialisation (no weights file), >= 0; unset: train.seed, so
  // each seed of a sweep starts from its own network. Set it to hold the network fixed across seeds (as a
  // pretrained network is), e.g. to the synthetic brain's seed for its teacher's exact initialisation.
  std::optional<uint64_t> seed;
  // How theta_d reaches the warped parameters at d > 0 (worker/engine/subspace_model.h ProjectionMode has
  // each formula): size_weighted (default, dwarp: per-tensor projections scaled by sqrt(D_t / D), so each
  // tensor's share of the movement is its share of the parameters; chosen by the README's study),
  // per_tensor (one projection per tensor, each with unit-norm columns, so every tensor moves by about
  // |theta_d|), global (Li et al.'s form: one projection over all warped parameters concatenated) or
  // reference (the research code's per-tensor map, which truncates theta_d to 2^ceil(log2 D_t) entries for
  // a tensor of D_t, so tensors smaller than d move less; the seed's configs use it).
  Projection projection = Projection::kSizeWeighted;
  // The read-out layer, a module name as the model names it (resnet18: maxpool, layer1..layer4, avgpool, fc;
  // mlp: fc1..fcN; lenet: conv1 .. fc3; torchscript: any child module, nested names like `features.7`
  // included). Empty (not given): the arch's default as the engine's model registry defines it (resnet18
  // avgpool, the seed's choice; the last layer of the other built-ins; a torchscript model's own output).
  std::string layer;
  // SAID layer groups (one learned scale per group): lists of parameter-name prefixes; a group may be
  // written as a single string. Unset: the architecture's default (the seed's resnet18 groups
  // [[conv1, bn1], [layer1], ..., [layer4]] cut at the layer). Set to [] for no groups (no scales).
  std::optional<std::vector<std::vector<std::string>>> layer_groups;
  // The input the network is built for, images [channels, size, size]. Defaults per arch (dwarp):
  // resnet18 and torchscript 3 x 224 (torchvision); mlp, lenet and small_cnn 1 x 28 (MNIST, as Li et al.
  // 2018). Both >= 1.
  int64_t input_channels = 0;
  int64_t input_size = 0;
  // mlp only: hidden widths, input side first, each >= 1. Default [200, 200] (the README's
  // 784-200-200-10 intrinsic-dimension MLP); [] is a single linear layer.
  std::vector<int64_t> hidden;
};

struct SplitSpec {
  // Fractions of the stimuli, in order (image_folder: per class, after a shuffle seeded by train.seed;
  // majaj_hong: train the first floor(n * train), val up to floor(n * (1 - test)), as the seed's
  // int(n * 0.6) and int(n * 0.8); nsd: of the non-shared1000 stimuli, train the first floor(n * train)).
  // Each in (0, 1) and they sum to 1. generic takes its split from its files (or `column`): fractions refused. For nsd the test split is always the shared1000 stimuli (the
  // seed's rule), and for idx with test files it is those files: there train + val = 1 and test = 0.
  // Defaults: nsd 0.8 / 0.2 / - (seed), majaj_hong 0.6 / 0.2 / 0.2 (seed), image_folder 0.6 / 0.2 / 0.2
  // (seed), synthetic 0.6 / 0.2 / 0.2 (dwarp), idx 0.6 / 0.2 / 0.2, or 0.8 / 0.2 / - with
  // test files (dwarp).
  double train = 0.0;
  double val = 0.0;
  double test = 0.0;
  // generic only: the name of a per-stimulus column whose values are train | val | test; when set the
  // fractions are unused (and may not be given).
  std::string column;
};

struct SyntheticSpec {
  int64_t targets = 64;      // neuroids, >= 1
  int64_t warp_dim = 20;     // dimension of the warp applied to the teacher, >= 1
  double warp_scale = 1.0;   // std of the warp's parameters, >= 0
  double noise = 0.3;        // noise std relative to each neuroid's signal std, >= 0
  // random (default): theta_true ~ N(0, warp_scale^2). trained: theta_true = warp_scale x what training the
  // teacher to classify the images (data.labels, an IDX labels file, required then) through the warp's
  // subspace finds (worker/engine/datasets/synthetic_brain.h), warp_epochs epochs (>= 1) of Adam at
  // warp_lr (> 0); both only with trained.
  bool trained_warp = false;
  int64_t warp_epochs = 10;
  double warp_lr = 0.05;
  // Fraction of each neuroid's signal variance, in [0, 1], that is a response to the stimulus's category
  // (data.labels, required when > 0), as IT neurons are category-selective; the rest is the warped teacher.
  double categories = 0.0;
  // The teacher network whose warped representation the responses are; unset: the job's own model. A
  // teacher without its own model.seed is initialised from `seed` below.
  std::optional<ModelSpec> teacher;
  // Seed of the brain, >= 0: the warp, the mixing matrix and the noise (and the teacher's initialisation).
  // Independent of train.seed, so every job of a sweep, whatever its seed, sees the same brain.
  uint64_t seed = 0;
};

// The netCDF coordinates a majaj_hong or nsd job reads (data.coords); defaults resolved, empty for other kinds.
struct DataCoordsSpec {
  // The stimulus id on the stimulus dimension. majaj_hong: default image_id (a dimension of that name without
  // coordinate values gives the row positions as ids); nsd: default stimulus_id.
  std::string image_id;
  // majaj_hong only: the image file name on the stimulus dimension, default image_name.
  std::string image_name;
  // The region of each neuroid / voxel. majaj_hong: default region; nsd: default roi (without it, the
  // boolean masks <region>_<name>, e.g. roi_V1v, define the ROIs).
  std::string region;
};

struct DataSpec {
  DataKind kind = DataKind::kSynthetic;  // required
  // Paths; which are required depends on the kind (any other is an error). The research code's data keys are
  // accepted as aliases (a spec giving both an alias and its key is an error naming both): data_path -> file
  // (majaj_hong), nsd_dir -> root (nsd), stimuli_dir -> stimuli (nsd, majaj_hong), data_dir -> root
  // (image_folder).
  //   nsd           root (voxels.nc and metadata.csv), stimuli (image folder)
  //   majaj_hong    file (the BrainIO netCDF), stimuli (image folder)
  //   generic       root (the generic layout)
  //   image_folder  root (one sub-folder per class)
  //   idx           images, labels (IDX files); optional test_images, test_labels
  //   synthetic     exactly one of images (an IDX images file) or stimuli (an image folder)
  std::string root;
  std::string file;
  std::string stimuli;
  std::string images;
  std::string labels;
  std::string test_images;
  std::string test_labels;
  // Regions of interest, each listed once. majaj_hong: any of the regions the file's region coordinate
  // holds (checked when the file is read), default [IT] (seed); with several, the targets are every listed
  // region's neuroids, in roi order. nsd: any names (labels of
  // voxels.nc's per-voxel `roi` coordinate; the targets are their voxels, in roi order), default [] = every
  // voxel in voxels.nc. Other kinds: not allowed. A single string is a one-element list.
  std::vector<std::string> roi;
  SplitSpec split;
  // Limits, 0 = none, each >= 0. limit_stimuli: the first N stimuli in the file's order, before splitting
  // (nsd, majaj_hong, idx, synthetic; the others refuse it). limit_classes, limit_samples (per class):
  // image_folder and idx only, drawn with train.seed as the seed's few-shot set.
  int64_t limit_stimuli = 0;
  int64_t limit_classes = 0;
  int64_t limit_samples = 0;
  // Images are image_size x image_size (>= 1) for the network; default model.input_size.
  int64_t image_size = 0;
  // How an image file becomes image_size x image_size (worker/engine/datasets/image_io.h): weights (the
  // transforms of torchvision's pretrained weights, as the research code: the shorter side resized to
  // image_size * 256 / 224 with PIL's antialiased bilinear filter, then the central crop) or squash (the whole
  // image resized to image_size x image_size, aspect ratio not kept). Default: weights for arch resnet18 on
  // image files, squash otherwise. IDX images (idx, synthetic with images) are always squashed: weights is
  // refused there.
  DataTransform transform = DataTransform::kSquash;
  // Per-channel normalisation (x - mean) / std of images scaled to [0, 1]; one entry per
  // model.input_channels, or one for all. Default: ImageNet's mean [0.485, 0.456, 0.406] and std
  // [0.229, 0.224, 0.225] for 3 channels; [0] and [1] (none) for 1 channel. std entries > 0.
  std::vector<double> mean;
  std::vector<double> std;
  // synthetic only (and then always set).
  std::optional<SyntheticSpec> synthetic;
  // majaj_hong and nsd only.
  DataCoordsSpec coords;
  NanPolicy nan = NanPolicy::kRefuse;
};

struct TrainSpec {
  double lr = 1e-2;                   // Adam on the readout head, > 0 (seed: train/defaults.yaml)
  std::optional<double> low_dim_lr;   // Adam on theta_d and the layer scales, > 0; unset: lr (seed)
  // How the rate of theta_d follows d (LowDimLearningRate): inverse_d (default, dwarp: low_dim_lr * 1000 / d,
  // so low_dim_lr is the rate at d = 1000) or none (low_dim_lr at every d, as the seed).
  LowDimLrScaling low_dim_lr_scaling = LowDimLrScaling::kInverseD;
  // Learning rates over the epochs: warmup_cosine (default, dwarp: rising linearly through the first epoch,
  // then cosine-annealed to 0 over max_epochs; training_loop.h), cosine, or constant (the seed).
  LrSchedule schedule = LrSchedule::kWarmupCosine;
  double weight_decay = 0.0;          // on the head, >= 0 (seed)
  int64_t batch_size = 64;            // >= 1 (seed)
  int64_t max_epochs = 100;           // >= 1 (seed: train/*_optimal.yaml)
  int64_t patience = 3;               // epochs without improvement before stopping, >= 0 (seed: Lightning)
  double min_delta = 1e-4;            // smallest validation-score gain that counts, >= 0 (seed)
  // d > 0 or full: the head keeps its initialisation and only the model trains (seed). Not valid at d = 0,
  // nor for a classification job that reads the model's own logits (it has no head: worker/job_runner.h).
  bool freeze_head = false;
  // How the readout head of a d > 0 or d = full regression job starts: default (torch.nn.Linear's random
  // initialisation, seed) or ridge (dwarp): the closed-form ridge readout of the unwarped model's training
  // features, one alpha for all targets chosen on the validation split from ridge_readout.h's default
  // grid, so the job starts where the d = 0 ridge readout ends and keeps that start unless an epoch beats
  // its validation R^2 (worker/engine/train/encoding_training.h). Not valid for d = 0 or classification.
  HeadInit head_init = HeadInit::kDefault;
  uint64_t seed = 0;                  // >= 0: subspace, initialisation, shuffles
  std::string device = "cpu";         // cpu | cuda | cuda:N
  int64_t threads = 0;                // CPU threads, >= 0; 0: all cores (dwarp)
};

// readout: ridge only. Closed-form ridge fitted on the training split, alpha (per target with per_target)
// chosen by the validation split's R^2, or by k-fold cross-validation on the training split with folds
// (worker/engine/train/ridge_readout.h).
struct RidgeSpec {
  std::vector<double> alphas = {1e-3, 1e-2, 1e-1, 1, 1e1, 1e2, 1e3, 1e4, 1e5};  // each > 0, >= 1 entry (dwarp)
  bool per_target = false;  // choose alpha per target (voxel / neuroid) rather than one for all (dwarp)
  int64_t folds = 0;        // 0: choose alpha on the validation split (dwarp); k >= 2: k-fold CV (RidgeCV(cv=k))
};

struct JobSpec {
  ModelSpec model;
  DataSpec data;
  SubspaceDim d;  // required: 0, a positive integer or `full`
  // Default: regression for nsd, majaj_hong, generic, synthetic; classification for image_folder and idx
  // (the only kinds with labels). rsa (neural data, d = 0 or a subspace d): no readout head; theta_d moves so
  // that the model's RDM matches the brain's (worker/engine/train/rsa_training.h), scored by the RDMs'
  // correlation on held-out stimuli; weight_decay, freeze_head and head_init do not apply (lr only as
  // low_dim_lr's default). The other
  // pairings are errors.
  Objective objective = Objective::kRegression;
  // Default sgd (seed). ridge needs d = 0 and objective regression. prefit_warped (regression, d > 0): the
  // linear head is fitted first (ridge on the unwarped features, as head_init ridge), then network and head
  // are one model whose parameters, the head's included, all move through the subspace (they count in D);
  // the head has no optimiser of its own, so lr, weight_decay and freeze_head do not apply.
  Readout readout = Readout::kSgd;
  std::optional<RidgeSpec> ridge;  // set exactly when readout is ridge or prefit_warped (the prefit's fit)
  TrainSpec train;
};

enum class SpecFormat { kYaml, kJson };

// Parses `text` (YAML or JSON), applies `overrides` in order, validates and resolves defaults.
// InvalidArgument naming the field path, the bad value and what was expected (or the override, or the
// syntax error's line and column).
StatusOr<JobSpec> ParseJobSpec(std::string_view text, SpecFormat format,
                               const std::vector<std::string>& overrides = {});

// Reads a job file, the format chosen by its extension (.yaml, .yml or .json). NotFound when the file
// cannot be read; InvalidArgument for an unknown extension and as ParseJobSpec.
StatusOr<JobSpec> LoadJobSpecFile(const std::string& path, const std::vector<std::string>& overrides = {});

// What validation does with a train or model setting that the job would not use at its d, readout and
// objective (SettingsUnusedBy): refuse it, naming the field and why it does nothing there (a job file, `dwarp
// train`), or drop it to its default (a sweep's shared train and model blocks, which hold the settings of
// all its d; a job spec from the coordinator, which expanded it that way). Either way a job never holds,
// and its result never records, a setting that did not take effect.
enum class UnusedSettings { kRefuse, kDrop };

// A setting of the train or model block that a job does not use, and why.
struct UnusedSetting {
  std::string path;  // e.g. "train.low_dim_lr"
  std::string why;
};

// The train and model settings that `spec` does not use: the training-loop settings at d = 0 with readout
// ridge (closed form) and for objective rsa at d = 0 (scoring only), weight_decay with readout ridge, lr
// where there is no head and low_dim_lr is set (objective rsa, readout prefit_warped), and low_dim_lr,
// low_dim_lr_scaling, model.projection and model.layer_groups anywhere but a subspace d > 0 (projection
// also shapes a synthetic brain without a teacher, at every d), and model.seed where model.weights sets
// every parameter.
std::vector<UnusedSetting> SettingsUnusedBy(const JobSpec& spec);

// Validates an already-parsed document (overrides applied by the caller), as ParseJobSpec. A document may
// give "spec_version" (a result's recorded spec does); it must then be kJobSpecVersion.
StatusOr<JobSpec> JobSpecFromJson(const nlohmann::json& document, UnusedSettings unused = UnusedSettings::kRefuse);

// The version of the format ToJson writes, as its "spec_version". Bump it when a field's meaning, spelling or
// default changes, so that a worker of another release refuses a job rather than running something else.
inline constexpr int64_t kJobSpecVersion = 1;

// Decodes a job spec that a coordinator validated and wrote with ToJson (a lease's spec_json): the worker's
// one decode of a job.
//   "spec_version": kJobSpecVersion  every field is read as written (its type and its own range checked);
//                                    the validation the coordinator ran at submit (defaults, cross-field
//                                    rules, the unused-settings rule) is not run again.
//   no "spec_version"                a spec stored by a coordinator from before the field: validated in full
//                                    with UnusedSettings::kDrop, as JobSpecFromJson, as such specs always were.
//   another "spec_version"           InvalidArgument naming the version found and the one this build reads.
// InvalidArgument also for a document that is not an object or a field of the wrong type, naming the field.
StatusOr<JobSpec> DecodeJobSpec(const nlohmann::json& document);

// Every field that the job uses, defaults resolved (SettingsUnusedBy's are left out), and "spec_version";
// JobSpecFromJson(ToJson(s)) == s and DecodeJobSpec(ToJson(s)) == s for every spec that validation returned.
// nlohmann::json keeps keys sorted, so "spec_version" is written among the others, not first.
nlohmann::json ToJson(const JobSpec& spec);

// Field by field.
bool operator==(const ModelSpec& a, const ModelSpec& b);
bool operator==(const SplitSpec& a, const SplitSpec& b);
bool operator==(const SyntheticSpec& a, const SyntheticSpec& b);
bool operator==(const DataCoordsSpec& a, const DataCoordsSpec& b);
bool operator==(const DataSpec& a, const DataSpec& b);
bool operator==(const TrainSpec& a, const TrainSpec& b);
bool operator==(const RidgeSpec& a, const RidgeSpec& b);
bool operator==(const JobSpec& a, const JobSpec& b);
inline bool operator!=(const JobSpec& a, const JobSpec& b) { return !(a == b); }

}  // namespace dwarp
