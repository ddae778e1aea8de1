// Closed-form ridge regression from features to neural responses: the d = 0 readout of the seed's
// ols_linear_encoder, with the penalty chosen on the validation split.
//
// Model: Y ≈ X W + 1 b^T, X [N, F] features, Y [N, T] responses, W [F, T], b [T].
// The intercept is not penalised: X and Y are centred on their training means (x̄, ȳ), W minimises
//   ||Yc - Xc W||² + alpha ||W||²   i.e.  W = (Xc^T Xc + alpha I)^-1 Xc^T Yc,
// and b = ȳ - x̄ W (scikit-learn's Ridge(fit_intercept=True) does the same).
//
// One thin SVD Xc = U diag(s) V^T (k = min(N, F) singular values) serves every alpha:
//   W(alpha) = V diag(s / (s² + alpha)) U^T Yc,
// so the cost is one SVD, O(N F k), plus O((N_val + F) k T) per alpha; it works the same for F > N
// (wide features from a convolutional layer) and F < N. Everything is computed in float64.
//
// Choosing alpha: each alpha of the grid is fitted on the training split and scored by R² (torchmetrics'
// definition, metrics.h) on the validation split; the best alpha is kept, the earliest in grid order on
// ties. The validation split is what NeuralData already holds out for early stopping of the SGD readout,
// so both readouts choose their hyper-parameter on the same rows and the test split stays unseen; the
// final weights are the training-split fit at the chosen alpha (not refitted on train + validation, so the
// reported validation score is the one that chose it). Per target (`per_target(true)`), each response
// column gets the alpha that maximises its own validation R², as RidgeCV(alpha_per_target=True) does.
//
// Errors (InvalidArgument, naming the value): non-matrix or non-floating inputs, row counts of X and Y
// that differ, feature or target counts that differ between splits, non-finite features or responses (with
// row and column), fewer than 2 training or validation rows, an empty alpha grid or an alpha that is not
// finite and > 0, folds = 1 or more folds than half the training rows.
//
// K-fold (`folds(k)`, k >= 2): alpha is chosen by k-fold cross-validation on the training split instead
// (contiguous folds in row order, the last taking the remainder; each alpha scored by the mean over folds
// of the held-out fold's R², per target with per_target), as scikit-learn's RidgeCV(cv=k); the final fit
// is still the whole training split at the chosen alpha, and validation_r2 is still the validation split's.
// validation_r2_per_alpha then holds the cross-validated scores the choice was made on. LibTorch exceptions are caught and returned as Internal. Nothing throws.
// Thread-safety: pure functions.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "common/status.h"

namespace dwarp::engine {

// The default grid: 10 values, logspace(-3, 6): 1e-3, 1e-2, ..., 1e6.
std::vector<double> DefaultRidgeAlphas();

struct RidgeOptions {
  // The penalties to try; each finite and > 0.
  RidgeOptions& alphas(std::vector<double> v) { alphas_ = std::move(v); return *this; }
  // One alpha per response column instead of one shared by all.
  RidgeOptions& per_target(bool v) { per_target_ = v; return *this; }
  // 0: choose alpha on the validation split; k >= 2: k-fold cross-validation on the training split.
  RidgeOptions& folds(int64_t v) { folds_ = v; return *this; }

  std::vector<double> alphas_ = DefaultRidgeAlphas();
  bool per_target_ = false;
  int64_t folds_ = 0;
};

struct RidgeFit {
  at::Tensor weights;          // float64 [F, T], on the CPU
  at::Tensor bias;             // float64 [T]
  at::Tensor alphas;           // float64 [T]: the alpha each target was fitted with (all equal unless per target)
  double validation_r2 = 0.0;  // uniform-average validation R² at the chosen alpha(s); NaN without validation
  // float64 [A, T]: the score of every target at every alpha of the grid that alpha was chosen by: the
  // validation split's R², or the mean held-out R² over folds with folds(k) (undefined without either).
  at::Tensor validation_r2_per_alpha;

  // Y ≈ X W + b for features [M, F] (any floating dtype): float64 [M, T].
  at::Tensor Predict(const at::Tensor& features) const;
};

// Ridge at one fixed alpha (> 0) on (x [N, F], y [N, T]); N >= 1.
StatusOr<RidgeFit> FitRidge(const at::Tensor& x, const at::Tensor& y, double alpha);

// Ridge with alpha (or one alpha per target) chosen on the validation split, as described above.
StatusOr<RidgeFit> FitRidgeCV(const at::Tensor& x_train, const at::Tensor& y_train, const at::Tensor& x_validation,
                              const at::Tensor& y_validation, const RidgeOptions& options = RidgeOptions());

}  // namespace dwarp::engine
