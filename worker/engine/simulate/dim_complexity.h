// The seed's dim-complexity simulation (seed README, "Comparing encoding models based on d"): why a
// smaller d_warp means a model closer to the brain, shown on functions of one variable.
//
//   1. Pre-fit: one MLP per initial function f (x², x³, sin(πx/2)) is trained with all its parameters to
//      fit f on x in [-1, 1]. Every MLP starts from the same initialisation (`seed`).
//   2. Warp: each pre-fit MLP is trained toward the target sin(1.5·πx/2) only through a random Fastfood
//      subspace of dimension d (SubspaceModel, one projection per parameter tensor, all d numbers in
//      theta_d), for every d of the grid, and optionally with all parameters ("full").
//   3. Score: R² of each fit against the target on a held-out grid of x (points between the training
//      points). The d at which a function's fit first reaches `threshold` is found with the d_warp rule
//      (common/threshold_crossing.h: first grid crossing, interpolated in log d).
//
// An initial function closer to the target (sin(πx/2)) should need a smaller d than one farther away (x²,
// which is even where the target is odd). Training is full-batch Adam (RunTrainingLoop with one batch per
// epoch), so a run is deterministic for a seed and a thread count.
//
// Thread-safety: RunDimComplexity is re-entrant (no shared state), but uses LibTorch's intra-op pool.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "common/threshold_crossing.h"

namespace dwarp::engine {

// Names of the initial functions, in the seed's order, and of the target.
inline constexpr const char* kDimComplexityFunctionNames[] = {"square", "cube", "sine"};
inline constexpr const char* kDimComplexityTargetName = "target";

// The function `name` ("square": x², "cube": x³, "sine": sin(πx/2), "target": sin(1.5·πx/2)) at x, or
// InvalidArgument naming `name` and the known names.
StatusOr<double> DimComplexityFunction(const std::string& name, double x);
// A readable formula for `name` ("x^2", "sin(1.5*pi*x/2)", ...); empty for an unknown name.
std::string DimComplexityFormula(const std::string& name);

struct DimComplexityOptions {
  DimComplexityOptions& functions(std::vector<std::string> v) { functions_ = std::move(v); return *this; }
  DimComplexityOptions& dims(std::vector<int64_t> v) { dims_ = std::move(v); return *this; }
  DimComplexityOptions& full(bool v) { full_ = v; return *this; }
  DimComplexityOptions& hidden(std::vector<int64_t> v) { hidden_ = std::move(v); return *this; }
  DimComplexityOptions& pretrain_epochs(int64_t v) { pretrain_epochs_ = v; return *this; }
  DimComplexityOptions& epochs(int64_t v) { epochs_ = v; return *this; }
  DimComplexityOptions& pretrain_lr(double v) { pretrain_lr_ = v; return *this; }
  DimComplexityOptions& lr(double v) { lr_ = v; return *this; }
  DimComplexityOptions& train_points(int64_t v) { train_points_ = v; return *this; }
  DimComplexityOptions& seed(uint64_t v) { seed_ = v; return *this; }
  DimComplexityOptions& threshold(double v) { threshold_ = v; return *this; }

  std::vector<std::string> functions_{"square", "cube", "sine"};  // distinct known names, >= 1
  std::vector<int64_t> dims_{1, 2, 3, 5, 10, 20, 50, 100};          // distinct, each >= 1 (sorted on use)
  bool full_ = true;                     // also warp with all parameters (the reference fit)
  std::vector<int64_t> hidden_{32, 32};  // MLP hidden widths (1 input, 1 output), each >= 1
  int64_t pretrain_epochs_ = 1000;       // full-batch Adam steps fitting the initial function, >= 1
  int64_t epochs_ = 500;                 // full-batch Adam steps of every warp run, >= 1
  double pretrain_lr_ = 1e-2;            // Adam, all parameters, > 0
  double lr_ = 5e-2;                     // Adam on theta_d, > 0 (the full run uses pretrain_lr_)
  int64_t train_points_ = 64;            // evenly spaced x in [-1, 1] (ends included), >= 4
  uint64_t seed_ = 0;                    // MLP initialisation and projections
  double threshold_ = 0.95;              // R² (against the target) that a fit must reach, finite
};

// One warp run: subspace dimension d (absent: all parameters), its fit and its score.
struct DimComplexityFit {
  std::optional<int64_t> d;
  double r2 = 0.0;                 // against the target on the held-out grid
  std::vector<double> curve;       // the fit on DimComplexityResult::grid
  int64_t best_epoch = 0;
};

struct DimComplexityFunctionResult {
  std::string name;
  double pretrain_r2 = 0.0;        // the pre-fit against its own function, held-out grid
  double initial_target_r2 = 0.0;  // the pre-fit against the target (d = 0: no warping)
  std::vector<double> initial_curve;  // the pre-fit on the grid
  std::vector<DimComplexityFit> fits;  // by increasing d, then full (if run)
  ThresholdCrossing crossing;      // of R²(d) over the subspace fits, at options.threshold_
};

struct DimComplexityResult {
  DimComplexityOptions options;     // as run (dims sorted)
  int64_t parameter_count = 0;      // D of the MLP
  std::vector<double> grid;         // held-out x, ascending, in (-1, 1)
  std::vector<double> target;       // the target on the grid
  std::vector<DimComplexityFunctionResult> functions;  // in options.functions_ order
  double seconds = 0.0;
};

// Checks the options: InvalidArgument naming the option and the bad value.
Status CheckDimComplexityOptions(const DimComplexityOptions& options);

// Runs the whole simulation. `progress`, when set, is called after each run with a one-line description.
// Errors: the options (as CheckDimComplexityOptions), and anything LibTorch throws as Internal.
StatusOr<DimComplexityResult> RunDimComplexity(const DimComplexityOptions& options,
                                               const std::function<void(const std::string&)>& progress = {});

}  // namespace dwarp::engine
