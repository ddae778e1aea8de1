// Scores of a trained readout: R² and Pearson r for regression (encoding) jobs, accuracy for
// classification jobs. Stateless free functions; every sum is taken in float64 whatever the input dtype
// (float32 sums over many thousands of rows lose the digits R² close to 1 is made of).
//
// Shapes: predictions and targets are [N, T] (N stimuli, T targets: voxels or neuroids) or [N] (one
// target). Results are on the CPU.
//
// R² follows torchmetrics' R2Score(multioutput="uniform_average") exactly, per target t:
//   SS_res_t = sum_i (y_it - p_it)^2,  SS_tot_t = sum_i (y_it - mean_i y_it)^2   (around the target's own mean)
//   R²_t = 1 - SS_res_t / SS_tot_t
// then the plain mean over targets. Near-constant columns are handled as torchmetrics does, with its
// absolute tolerance 1e-4 (torch.isclose(x, 0, atol=1e-4)):
//   SS_res_t <= 1e-4                      -> R²_t = 1  (a perfect prediction, even of a constant target)
//   SS_res_t >  1e-4 and SS_tot_t <= 1e-4 -> R²_t = 0  (a constant target predicted imperfectly)
// so the average stays finite. (The tolerance is absolute, so it depends on the responses' units; that is
// torchmetrics' behaviour and the seed's numbers were computed with it.) N must be >= 2, as torchmetrics
// requires.
//
// Pearson r per target: r_t = sum (p - mean p)(y - mean y) / sqrt(sum (p - mean p)^2 sum (y - mean y)^2).
// It is undefined (NaN) for a target where either column is constant; the mean and median are taken over
// the defined targets only (NaN when none is defined), and `pearson_undefined` counts the others.
//
// Errors (InvalidArgument, naming the value): shapes that differ or are not [N] / [N, T], N < 2 (R², r),
// non-floating dtypes, and non-finite values (naming which tensor, and the row and column).
// Thread-safety: pure functions.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "common/status.h"

namespace dwarp::engine {

struct RegressionScores {
  double r2 = 0.0;              // R² averaged uniformly over targets (torchmetrics' R2Score)
  double pearson_mean = 0.0;    // mean of the defined per-target r
  double pearson_median = 0.0;  // median of the defined per-target r (mean of the middle two for an even count)
  int64_t pearson_undefined = 0;  // targets whose r is NaN (a constant prediction or response column)
  at::Tensor r2_per_target;       // float64 [T]
  at::Tensor pearson_per_target;  // float64 [T]; NaN where undefined
};

// R²_t for every target: float64 [T] ([1] for [N] inputs).
StatusOr<at::Tensor> R2PerTarget(const at::Tensor& predictions, const at::Tensor& targets);

// The uniform average of R2PerTarget: torchmetrics' R2Score(multioutput="uniform_average").
StatusOr<double> R2Score(const at::Tensor& predictions, const at::Tensor& targets);

// Pearson r for every target: float64 [T] ([1] for [N] inputs); NaN where undefined.
StatusOr<at::Tensor> PearsonPerTarget(const at::Tensor& predictions, const at::Tensor& targets);

// All regression scores at once.
StatusOr<RegressionScores> ScoreRegression(const at::Tensor& predictions, const at::Tensor& targets);

// Fraction of rows whose prediction equals the label, in [0, 1]. `predictions` is either logits [N, C]
// (the argmax is the predicted class) or integer labels [N]; `labels` is integer [N]. N >= 1.
StatusOr<double> Accuracy(const at::Tensor& predictions, const at::Tensor& labels);

}  // namespace dwarp::engine
