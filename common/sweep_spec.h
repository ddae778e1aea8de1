// SweepSpec: a sweep = candidate models x read-out layers x datasets x d grid x seeds, each point one job
// (common/job_spec.h), plus how d_warp is judged (DESIGN.md "d_warp"). Read from YAML or JSON with the
// same rules as job files: every key checked, unknown keys listed with the nearest valid one, errors that
// name the field path and the bad value, Hydra-style overrides (`dims.max=1000 seeds=[0,1,2]
// train.lr=0.01`) applied before validation.
//
// A sweep file (configs/sweeps/ has examples):
//
//   name: quickstart                   # required, [A-Za-z0-9_.-]+
//   models:                            # required, >= 1; names unique, [A-Za-z0-9_.-]+
//     - name: mlp_wide                 # required; the rest is a job-spec `model` block (without `layer`)
//       arch: mlp
//       hidden: [256]
//       layers: [fc1, fc2]             # optional read-out layers, unique; `default` (and leaving layers out)
//                                      # = the arch's default layer, stored as ""
//   datasets:                          # required, >= 1; names unique, [A-Za-z0-9_.-]+; the rest is a job-spec
//                                      # `data` block
//     - {name: it, kind: majaj_hong, file: hvm.nc, stimuli: images/, roi: IT}
//   dims: {max: 10000, samples: 10, full: false}  # required: the seed's grid (DefaultDimGrid), or a list:
//   # dims: [0, 10, 100, full]         # any order (stored ascending, full last); no repeats
//   seeds: [0, 1]                      # a list (no repeats), or a count n meaning 0 .. n-1; default [0]
//   objective: regression              # job-spec fields shared by every job (optional)
//   readout: sgd                       # used by the d = 0 jobs; d > 0 and full jobs always train by SGD
//   ridge: {alphas: [...]}             # with readout ridge
//   train: {lr: 1e-3, max_epochs: 20}  # job-spec train block; train.seed is set per job from `seeds` (and may
//                                      # not be given); freeze_head applies to the d > 0 jobs only
//   threshold: {kind: fraction_of_dataset_best, value: 0.9}
//     # kinds: absolute | fraction_of_group_best | fraction_of_dataset_best | fraction_of_full
//     # default fraction_of_dataset_best 0.9 (dwarp); fraction_of_full needs d = full in the grid
//   early_stop: false                  # cancel queued jobs above a final crossing
//   max_attempts: 3                    # leases per job before it fails for good, >= 1
//
// Relative paths in model and data blocks (weights, root, file, stimuli, images, labels, test_images,
// test_labels, synthetic.teacher.weights) are resolved against `base_dir` (the sweep file's folder), so
// workers on other machines get absolute paths.
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

enum class ThresholdKind { kAbsolute = 1, kFractionOfGroupBest = 2, kFractionOfDatasetBest = 3, kFractionOfFull = 4 };

// "absolute", "fraction_of_group_best", "fraction_of_dataset_best", "fraction_of_full".
const char* ThresholdKindName(ThresholdKind kind);

struct ThresholdSpec {
  ThresholdKind kind = ThresholdKind::kFractionOfDatasetBest;
  double value = 0.9;  // finite; fractions in (0, 1]
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

// Parses, applies overrides, validates the sweep-level fields and resolves paths against base_dir.
// Every job is validated too (through ExpandSweep), so a sweep that parses expands.
StatusOr<SweepSpec> ParseSweepSpec(std::string_view text, SpecFormat format,
                                   const std::vector<std::string>& overrides = {},
                                   const std::string& base_dir = "");
// Reads the file (format by extension); base_dir = the file's folder.
StatusOr<SweepSpec> LoadSweepSpecFile(const std::string& path, const std::vector<std::string>& overrides = {});

// models x layers x datasets x dims x seeds, in that nesting order. Each job spec is validated with
// JobSpecFromJson; a failure names the job ("model mlp_wide, layer fc1, dataset it, d 300, seed 0: train.lr =
// ..."). Every job's variant is "" (sweep files have no further axes yet).
// ResourceExhausted when the count exceeds kMaxJobsPerSweep (naming both numbers).
StatusOr<std::vector<PlannedJob>> ExpandSweep(const SweepSpec& spec);

// Every field, resolved; ParseSweepSpec(ToJson(s).dump(), kJson) reproduces s.
nlohmann::json ToJson(const SweepSpec& spec);
// Reads the `threshold` and other fields back from ToJson output (for the coordinator's restart).
StatusOr<SweepSpec> SweepSpecFromJson(const nlohmann::json& document);

}  // namespace dwarp
