#include "worker/engine/train/ridge_readout.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "worker/engine/train/metrics.h"
#include "worker/engine/train/tensor_checks.h"
#include "worker/engine/train/training_loop.h"

namespace dwarp::engine {
namespace {

using internal::CheckFinite;
using internal::CheckFloatingMatrix;
using internal::DescribeTensor;

// What every alpha shares: the training means and the thin SVD of the centred features.
struct Decomposition {
  at::Tensor x_mean;  // [F]
  at::Tensor y_mean;  // [T]
  at::Tensor v;       // [F, k]
  at::Tensor s;       // [k, 1]
  at::Tensor uty;     // U^T Yc, [k, T]
};

Decomposition Decompose(const at::Tensor& x, const at::Tensor& y) {
  Decomposition d;
  const at::Tensor xd = x.detach().to(at::kCPU, at::kDouble);
  const at::Tensor yd = y.detach().to(at::kCPU, at::kDouble);
  d.x_mean = xd.mean(0);
  d.y_mean = yd.mean(0);
  auto [u, s, vh] = at::linalg_svd(xd - d.x_mean, /*full_matrices=*/false);
  d.v = vh.transpose(0, 1);
  d.s = s.unsqueeze(1);
  d.uty = at::matmul(u.transpose(0, 1), yd - d.y_mean);
  return d;
}

// s / (s² + alpha) for alphas [1] or [T]: [k, 1] or [k, T].
at::Tensor ShrinkFactors(const Decomposition& d, const at::Tensor& alphas) {
  return d.s / (d.s.square() + alphas.unsqueeze(0));
}

RidgeFit Solve(const Decomposition& d, const at::Tensor& alphas /* float64 [T] */) {
  RidgeFit fit;
  fit.weights = at::matmul(d.v, ShrinkFactors(d, alphas) * d.uty);
  fit.bias = d.y_mean - at::matmul(d.x_mean, fit.weights);
  fit.alphas = alphas;
  fit.validation_r2 = std::numeric_limits<double>::quiet_NaN();
  return fit;
}

// R² of every target at every alpha for the held-out rows (x_held, y_held), the fit being d's: [A, T].
StatusOr<at::Tensor> ScoreAlphas(const Decomposition& d, const at::Tensor& x_held, const at::Tensor& y_held,
                                 const std::vector<double>& alphas) {
  const at::Tensor xv_v = at::matmul(x_held.detach().to(at::kCPU, at::kDouble) - d.x_mean, d.v);  // [Nv, k]
  const at::Tensor yv = y_held.detach().to(at::kCPU, at::kDouble);
  std::vector<at::Tensor> scores;  // per alpha: R² per target [T]
  for (double alpha : alphas) {
    const at::Tensor factors = ShrinkFactors(d, at::full({1}, alpha, at::kDouble));
    const at::Tensor predictions = at::addmm(d.y_mean, xv_v, factors * d.uty);
    auto r2 = R2PerTarget(predictions, yv);
    if (!r2.ok()) return r2.status();
    scores.push_back(*r2);
  }
  return at::stack(scores);
}

Status CheckAlpha(double alpha, size_t index) {
  if (std::isfinite(alpha) && alpha > 0.0) return OkStatus();
  std::ostringstream os;
  os << "ridge alpha[" << index << "] = " << alpha << "; expected a finite number > 0";
  return InvalidArgumentError(os.str());
}

Status CheckPair(const at::Tensor& x, const at::Tensor& y, const std::string& split, int64_t min_rows) {
  DWARP_RETURN_IF_ERROR(CheckFloatingMatrix(x, split + " features"));
  DWARP_RETURN_IF_ERROR(CheckFloatingMatrix(y, split + " responses"));
  if (x.size(0) != y.size(0)) {
    return InvalidArgumentError(split + " features are " + DescribeTensor(x) + " but " + split + " responses are " +
                                DescribeTensor(y) + "; expected the same number of rows (one per stimulus)");
  }
  if (x.size(0) < min_rows) {
    return InvalidArgumentError(split + " split has " + std::to_string(x.size(0)) + " rows; expected >= " +
                                std::to_string(min_rows));
  }
  if (x.size(1) < 1 || y.size(1) < 1) {
    return InvalidArgumentError(split + " features " + DescribeTensor(x) + " and responses " + DescribeTensor(y) +
                                "; expected >= 1 feature and >= 1 target");
  }
  DWARP_RETURN_IF_ERROR(CheckFinite(x, split + " features"));
  DWARP_RETURN_IF_ERROR(CheckFinite(y, split + " responses"));
  return OkStatus();
}

}  // namespace

std::vector<double> DefaultRidgeAlphas() {
  std::vector<double> alphas;
  for (int e = -3; e <= 6; ++e) alphas.push_back(std::pow(10.0, e));
  return alphas;
}

at::Tensor RidgeFit::Predict(const at::Tensor& features) const {
  return at::addmm(bias, features.detach().to(at::kCPU, at::kDouble), weights);
}

StatusOr<RidgeFit> FitRidge(const at::Tensor& x, const at::Tensor& y, double alpha) {
  DWARP_RETURN_IF_ERROR(CheckAlpha(alpha, 0));
  DWARP_RETURN_IF_ERROR(CheckPair(x, y, "training", 1));
  return CatchLibTorchErrors<RidgeFit>("ridge regression", [&]() -> StatusOr<RidgeFit> {
    const Decomposition d = Decompose(x, y);
    return Solve(d, at::full({y.size(1)}, alpha, at::kDouble));
  });
}

StatusOr<RidgeFit> FitRidgeCV(const at::Tensor& x_train, const at::Tensor& y_train, const at::Tensor& x_validation,
                              const at::Tensor& y_validation, const RidgeOptions& options) {
  if (options.alphas_.empty()) {
    return InvalidArgumentError("the ridge alpha grid is empty; expected at least one alpha > 0");
  }
  for (size_t i = 0; i < options.alphas_.size(); ++i) DWARP_RETURN_IF_ERROR(CheckAlpha(options.alphas_[i], i));
  DWARP_RETURN_IF_ERROR(CheckPair(x_train, y_train, "training", 2));
  DWARP_RETURN_IF_ERROR(CheckPair(x_validation, y_validation, "validation", 2));
  if (x_validation.size(1) != x_train.size(1) || y_validation.size(1) != y_train.size(1)) {
    return InvalidArgumentError("validation features " + DescribeTensor(x_validation) + " and responses " +
                                DescribeTensor(y_validation) + " do not match the training split's " +
                                DescribeTensor(x_train) + " and " + DescribeTensor(y_train) +
                                "; expected the same numbers of features and targets");
  }
  if (options.folds_ != 0 && (options.folds_ < 2 || options.folds_ * 2 > x_train.size(0))) {
    return InvalidArgumentError("ridge folds = " + std::to_string(options.folds_) +
                                "; expected 0 (choose alpha on the validation split) or 2 .. " +
                                std::to_string(x_train.size(0) / 2) + " (k-fold on the " +
                                std::to_string(x_train.size(0)) + " training rows, >= 2 rows per fold)");
  }
  return CatchLibTorchErrors<RidgeFit>("ridge regression", [&]() -> StatusOr<RidgeFit> {
    const Decomposition d = Decompose(x_train, y_train);
    const int64_t num_alphas = static_cast<int64_t>(options.alphas_.size());
    const int64_t targets = y_train.size(1);

    at::Tensor table;  // [A, T]: the scores alpha is chosen by
    if (options.folds_ == 0) {
      auto scores = ScoreAlphas(d, x_validation, y_validation, options.alphas_);
      if (!scores.ok()) return scores.status();
      table = *scores;
    } else {
      const int64_t n = x_train.size(0);
      const int64_t fold_size = n / options.folds_;
      table = at::zeros({num_alphas, targets}, at::kDouble);
      for (int64_t k = 0; k < options.folds_; ++k) {
        const int64_t begin = k * fold_size;
        const int64_t end = k + 1 == options.folds_ ? n : begin + fold_size;
        // CPU indices; the features may be cached on a GPU (SelectRows moves the index to them).
        const at::Tensor held = at::arange(begin, end, at::kLong);
        const at::Tensor kept = at::cat({at::arange(0, begin, at::kLong), at::arange(end, n, at::kLong)});
        const Decomposition fold = Decompose(SelectRows(x_train, kept), SelectRows(y_train, kept));
        auto scores = ScoreAlphas(fold, SelectRows(x_train, held), SelectRows(y_train, held), options.alphas_);
        if (!scores.ok()) return scores.status();
        table += *scores;
      }
      table /= static_cast<double>(options.folds_);
    }
    table = table.contiguous();
    const auto cell = table.accessor<double, 2>();

    at::Tensor chosen = at::empty({targets}, at::kDouble);
    if (options.per_target_) {
      for (int64_t t = 0; t < targets; ++t) {
        int64_t best = 0;
        for (int64_t a = 1; a < num_alphas; ++a) {
          if (cell[a][t] > cell[best][t]) best = a;
        }
        chosen[t] = options.alphas_[static_cast<size_t>(best)];
      }
    } else {
      const at::Tensor mean_scores = table.mean(1).contiguous();
      const double* mean = mean_scores.data_ptr<double>();
      int64_t best = 0;
      for (int64_t a = 1; a < num_alphas; ++a) {
        if (mean[a] > mean[best]) best = a;
      }
      chosen.fill_(options.alphas_[static_cast<size_t>(best)]);
    }

    RidgeFit fit = Solve(d, chosen);
    fit.validation_r2_per_alpha = table;
    auto validation_r2 = R2Score(fit.Predict(x_validation), y_validation.detach().to(at::kCPU, at::kDouble));
    if (!validation_r2.ok()) return validation_r2.status();
    fit.validation_r2 = *validation_r2;
    return fit;
  });
}

}  // namespace dwarp::engine
