// SweepSpec: a sweep = candidate models x read-out layers x datasets x d grid x seeds, each point one job
// (common/job_spec.h), plus how d_warp is judged (DESIGN.md "d_warp"). Read from YAML or JSON with the
// same rules as job files: every key checked, unknown keys listed with the nearest valid one, errors that
// name the field path and the bad value, Hydra-style overrides (`dims.max=1000 seeds=[0,1,2]
// train.lr=0.01`) applied before validation.
//
// A sweep file (configs/sweeps/ has examples):
//
//   name: quickstart                   # required, [A-Za-z0-9_.-]+, at most kMaxSpecNameBytes (128) bytes
//   models:                            # required, >= 1; names unique, [A-Za-z0-9_.-]+ (at most 128 bytes)
//     - name: mlp_wide                 # required; the rest is a job-spec `model` block (without `layer`)
//       arch: mlp
//       hidden: [256]
//       layers: [fc1, fc2]             # optional read-out layers, unique, at most 128 bytes each; `default`
//                                      # (and leaving layers out) = the arch's default layer, stored as ""
//   datasets:                          # required, >= 1; names unique, [A-Za-z0-9_.-]+ (at most 128 bytes); the
//                                      # rest is a job-spec `data` block
//     - {name: it, kind: majaj_hong, file: hvm.nc, stimuli: images/, roi: IT}
//   dims: {max: 10000, samples: 10, full: false}  # required: the seed's grid (DefaultDimGrid), or a list:
//   # dims: [0, 10, 100, full]         # any order (stored ascending, full last); no repeats
//   seeds: [0, 1]                      # a list (no repeats), or a count n meaning 0 .. n-1; default [0]
//   objective: regression              # job-spec fields shared by every job (optional)
//   readout: sgd                       # used by the d = 0 jobs; d > 0 and full jobs train a head by SGD,
//                                      # except with prefit_warped: d = 0 jobs are the ridge fit and d > 0
//                                      # jobs warp network and ridge-fitted head together (full: SGD)
//   ridge: {alphas: [...]}             # with readout ridge or prefit_warped
//   train: {lr: 1e-3, max_epochs: 20}  # job-spec train block; train.seed is set per job from `seeds` (and may
//                                      # not be given); freeze_head applies to the d > 0 jobs only
//   threshold: {kind: fraction_of_dataset_best, value: 0.9}
//     # kinds: absolute | fraction_of_group_best | fraction_of_dataset_best | fraction_of_full
//     #        | fraction_of_noise_ceiling (value x the dataset's noise ceiling, which the data must carry)
//     # default fraction_of_dataset_best 0.9 (dwarp); fraction_of_full needs d = full in the grid; every
//     # fraction_* value is a fraction in (0, 1], absolute any finite number
//   early_stop: false                  # cancel queued jobs above a final crossing
//   max_attempts: 3                    # leases per job before it fails for good, >= 1
//   search: grid                       # grid (default): every d of `dims` x every seed, fixed at submit;
//                                      # or adaptive (coordinator/adaptive_search.h), `search: adaptive` or
//   # search: {mode: adaptive, rel_width: 0.25, max_jobs: 0, max_seeds: 3}
//   #   dims and seeds are then the coarse grid every group starts with; the coordinator adds d values
//   #   inside the bracket where the mean score crosses the threshold (bisection in log d) until the
//   #   bracket's ends are within a factor 1 + rel_width (rel_width > 0, default 0.25), and new seeds at
//   #   every d up to the crossing whose side of the threshold the seeds leave undecided, before the
//   #   bracket moves, up to max_seeds seeds per d (>= the number of seeds; default that number: no extra
//   #   seeds). max_jobs: at most this many jobs
//   #   per group, the coarse grid included, so at least dims x seeds (0, the default: no budget but
//   #   rel_width and max_seeds).
//   #   rel_width, max_jobs and max_seeds need mode adaptive.
//
// Relative paths in model and data blocks (weights, root, file, stimuli, images, labels, test_images,
// test_labels, synthetic.teacher.weights) are resolved against `base_dir` (the sweep file's folder), so
// workers on other machines get absolute paths.
//
// Composition (Hydra-style config groups, configs/README.md): a sweep file may start with a defaults list
//
//   defaults:
//     - data: majaj          # loads <group folder data>/majaj.yaml
//     - model: resnet18
//     - train: majaj_optimal
//     - _self_               # where the file's own keys merge; default: last (the file's own keys win)
//
// Each entry `group: option` loads the group file `<configs root>/<group>/<option>.yaml` and merges its whole
// content at the group's key, in list order; the file's own keys (without `defaults`) merge where `_self_`
// stands. Merging is Hydra's: mappings merge key by key, recursively; lists and scalars replace. The group
// -> key mapping keeps the seed's group names over this format's keys:
//   data   -> datasets   a group file holds a list of dataset entries (each with name and kind)
//   model  -> models     a group file holds a list of model entries (each with name and arch)
//   any other group g -> g (Hydra's package default): train/ files hold a train block, threshold/ files a
//                         threshold mapping, dims/ files a dims value, ...
// Options are names ([A-Za-z0-9_.-]+, not `.` or `..`); `option: null` (or `~`) leaves the entry out.
// Group files have no defaults lists of their own.
//
// Configs root: the group folder `<g>/` is looked for in `config_dir` when one is given, else in `base_dir`
// (the sweep file's folder) and then its parent, so configs/encoding_dim.yaml and configs/sweeps/x.yaml
// both find configs/data/.
//
// Overrides choose options as Hydra does, before the key=value overrides apply to the composed document:
//   data=nsd         replaces the option of the defaults entry for group data (which must be in the list);
//   +data=nsd        adds group data (whose folder must exist) at the end of the list (before an implicit
//                    _self_), an error if the list has it already;
//   data=null        drops the entry.
// Any other override (a dotted key, or a name that is no group of the list) is a key=value override as
// above. An unknown group or option is an error naming the sweep file, the group and the options there are
// (the .yaml files of the group folder), or the folders searched.
//
// Errors: a validation error about a value that came from a group file ends with "(from <group file>)";
// LoadSweepSpecFile prefixes every message with the sweep file's path.
//
// Paths in group files: relative ones resolve against base_dir (the sweep file's folder), as the sweep's own;
// the shipped group files use absolute placeholders.
//
// Sending a sweep elsewhere: ToJson(spec) is composed and resolved (no defaults list, absolute paths), so a
// client that cannot share its files with the coordinator sends ToJson(spec).dump() as JSON, with no
// overrides; ParseSweepSpec then needs no group files.
//
// Limits on strings, names and nesting (common/spec_document.h) apply to every sweep document, composed or not.
//
// Thread-safety: free functions on values; safe to call concurrently.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/job_spec.h"
#include "common/status.h"
#include "common/subspace_dim.h"

namespace dwarp {

// Hard limits, checked with errors that name the count and the limit.
inline constexpr int64_t kMaxJobsPerSweep = 100000;

// Numbering as dwarp.v1.Threshold.Kind, so conversions are casts.
enum class ThresholdKind {
  kAbsolute = 1,
  kFractionOfGroupBest = 2,
  kFractionOfDatasetBest = 3,
  kFractionOfFull = 4,
  kFractionOfNoiseCeiling = 5,
};

// "absolute", "fraction_of_group_best", "fraction_of_dataset_best", "fraction_of_full",
// "fraction_of_noise_ceiling".
const char* ThresholdKindName(ThresholdKind kind);

struct ThresholdSpec {
  ThresholdKind kind = ThresholdKind::kFractionOfDatasetBest;
  double value = 0.9;  // finite; fractions in (0, 1]
};

enum class SearchMode { kGrid = 1, kAdaptive = 2 };
const char* SearchModeName(SearchMode mode);  // "grid", "adaptive"

struct SearchSpec {
  SearchMode mode = SearchMode::kGrid;
  double rel_width = 0.25;  // adaptive: stop when the bracket's ends are within a factor 1 + rel_width
  int64_t max_jobs = 0;     // adaptive: jobs per group at most (0: no budget)
  int64_t max_seeds = 0;    // adaptive: seeds per d at most (>= the sweep's seeds; set by the parser)
};

struct SweepModel {
  std::string name;
  std::vector<std::string> layers;  // "" = the arch's default layer
  nlohmann::json model;             // the job-spec model block (without name and layers), paths resolved
};

struct SweepDataset {
  std::string name;
  nlohmann::json data;              // the job-spec data block (without name), paths resolved
};

struct SweepSpec {
  std::string name;
  std::vector<SweepModel> models;
  std::vector<SweepDataset> datasets;
  std::vector<SubspaceDim> dims;    // ascending, no duplicates, full (if any) last
  std::vector<uint64_t> seeds;      // no duplicates
  nlohmann::json job_defaults;      // {objective?, readout?, ridge?, train?} shared by every job
  ThresholdSpec threshold;
  bool early_stop = false;
  int32_t max_attempts = 3;
  SearchSpec search;
};

// One job of an expanded sweep.
struct PlannedJob {
  std::string model, layer, dataset, variant;  // layer as the sweep names it; "default" when not given
                                               // (the job spec then leaves model.layer empty)
  SubspaceDim d;
  uint64_t seed = 0;
  JobSpec spec;                                // validated
};

// The seed's default grid: 0 followed by the unique integers of round(logspace(1, log10(max), samples - 1)),
// ascending, rounded to the nearest integer (max 10000, samples 10: 0, 10, 24, 56, 133, 316, 750, 1778, 4217,
// 10000). InvalidArgument for max < 10 or samples < 2 (naming the value).
StatusOr<std::vector<int64_t>> DefaultDimGrid(int64_t max, int64_t samples);

// Parses, composes a defaults list (group files looked up in config_dir, else base_dir and its parent; a
// defaults list with neither is an error), applies group and key overrides, validates the sweep-level fields
// and resolves paths against base_dir. Every job is validated too (through ExpandSweep), so a sweep that
// parses expands. No data or weights file is opened.
StatusOr<SweepSpec> ParseSweepSpec(std::string_view text, SpecFormat format,
                                   const std::vector<std::string>& overrides = {},
                                   const std::string& base_dir = "", const std::string& config_dir = "");
// ParseSweepSpec's sweep with the jobs its validation expanded (ExpandSweep's), so that a caller that needs
// both (the coordinator's Submit) expands the sweep once.
struct ExpandedSweep {
  SweepSpec spec;
  std::vector<PlannedJob> jobs;
};
StatusOr<ExpandedSweep> ParseAndExpandSweepSpec(std::string_view text, SpecFormat format,
                                                const std::vector<std::string>& overrides = {},
                                                const std::string& base_dir = "", const std::string& config_dir = "");
// Reads the file (format by extension); base_dir = the file's folder. Errors start with `path: `.
StatusOr<SweepSpec> LoadSweepSpecFile(const std::string& path, const std::vector<std::string>& overrides = {},
                                      const std::string& config_dir = "");

// models x layers x datasets x dims x seeds, in that nesting order. Each job spec is validated with
// JobSpecFromJson; a failure names the job ("model mlp_wide, layer fc1, dataset it, d 300, seed 0: train.lr =
// ..."). Every job's variant is "" (sweep files have no further axes yet).
// ResourceExhausted when the count exceeds kMaxJobsPerSweep (naming both numbers).
StatusOr<std::vector<PlannedJob>> ExpandSweep(const SweepSpec& spec);

// One job of the sweep outside its grid (an adaptive search's new d or seed), built as ExpandSweep builds
// the grid's: `layer` as PlannedJob names it ("default" for the arch's default layer). InvalidArgument naming
// the key when the model, layer or dataset is not the sweep's, or when the job spec does not validate.
StatusOr<PlannedJob> PlanSweepJob(const SweepSpec& spec, const std::string& model, const std::string& layer,
                                  const std::string& dataset, const SubspaceDim& d, uint64_t seed);

// Every field, resolved (`search` only when adaptive, so a grid sweep's JSON is what it always was);
// ParseSweepSpec(ToJson(s).dump(), kJson) reproduces s.
nlohmann::json ToJson(const SweepSpec& spec);
// Reads the `threshold` and other fields back from ToJson output (for the coordinator's restart).
StatusOr<SweepSpec> SweepSpecFromJson(const nlohmann::json& document);

// The sweep's canonical text, ToJson(spec).dump(): what a client sends (composed and resolved), what the
// coordinator stores as the sweep's spec_json and compares a retried Submit with, and what `dwarp run`
// compares with the stored sweeps to resume one. A fixed point: CanonicalSweepJson(ParseSweepSpec(
// CanonicalSweepJson(s), kJson)) == CanonicalSweepJson(s), so a client computes locally what the coordinator
// will store.
std::string CanonicalSweepJson(const SweepSpec& spec);

}  // namespace dwarp
