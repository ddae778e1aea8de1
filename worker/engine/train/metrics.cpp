#include "worker/engine/train/metrics.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "worker/engine/train/tensor_checks.h"

namespace dwarp::engine {
namespace {

using internal::CheckFinite;
using internal::DescribeTensor;

// torchmetrics treats a sum of squares within this of zero as zero (torch.isclose(x, 0, atol=1e-4)).
constexpr double kTorchmetricsZeroTolerance = 1e-4;

// Checks a (predictions, targets) pair and returns both as float64 [N, T] on the CPU.
StatusOr<std::pair<at::Tensor, at::Tensor>> AsFloat64Columns(const at::Tensor& predictions, const at::Tensor& targets,
                                                             int64_t min_rows) {
  for (const auto& [t, name] : {std::pair{&predictions, "predictions"}, std::pair{&targets, "targets"}}) {
    if (!t->defined() || (t->dim() != 1 && t->dim() != 2) || !at::isFloatingType(t->scalar_type())) {
      return InvalidArgumentError(std::string(name) + " is " + DescribeTensor(*t) +
                                  "; expected floating-point [N] or [N, targets]");
    }
  }
  if (predictions.sizes() != targets.sizes()) {
    return InvalidArgumentError("predictions are " + DescribeTensor(predictions) + " but targets are " +
                                DescribeTensor(targets) + "; expected the same shape");
  }
  if (targets.size(0) < min_rows) {
    return InvalidArgumentError("scores need at least " + std::to_string(min_rows) + " rows, got " +
                                std::to_string(targets.size(0)));
  }
  at::Tensor p = predictions.detach().to(at::kCPU, at::kDouble);
  at::Tensor y = targets.detach().to(at::kCPU, at::kDouble);
  if (p.dim() == 1) p = p.unsqueeze(1);
  if (y.dim() == 1) y = y.unsqueeze(1);
  DWARP_RETURN_IF_ERROR(CheckFinite(p, "predictions"));
  DWARP_RETURN_IF_ERROR(CheckFinite(y, "targets"));
  return std::pair{p, y};
}

at::Tensor R2Columns(const at::Tensor& p, const at::Tensor& y) {
  const at::Tensor rss = (y - p).square().sum(0);
  const at::Tensor tss = (y - y.mean(0, /*keepdim=*/true)).square().sum(0);
  const at::Tensor rss_nonzero = rss > kTorchmetricsZeroTolerance;
  const at::Tensor tss_nonzero = tss > kTorchmetricsZeroTolerance;
  at::Tensor scores = at::ones_like(rss);
  scores = at::where(rss_nonzero.logical_and(tss_nonzero), 1.0 - rss / tss, scores);
  scores = at::where(rss_nonzero.logical_and(tss_nonzero.logical_not()), at::zeros_like(rss), scores);
  return scores;
}

at::Tensor PearsonColumns(const at::Tensor& p, const at::Tensor& y) {
  const at::Tensor pc = p - p.mean(0, /*keepdim=*/true);
  const at::Tensor yc = y - y.mean(0, /*keepdim=*/true);
  const at::Tensor r = (pc * yc).sum(0) / (pc.square().sum(0) * yc.square().sum(0)).sqrt();
  // Exactly constant columns (compared directly: a float64 mean of equal values may differ from them in
  // the last bit, which would turn 0/0 into a meaningless number).
  const at::Tensor constant = (p.amax(0) == p.amin(0)).logical_or(y.amax(0) == y.amin(0));
  return at::where(constant, at::full_like(r, std::numeric_limits<double>::quiet_NaN()), r);
}

}  // namespace

StatusOr<at::Tensor> R2PerTarget(const at::Tensor& predictions, const at::Tensor& targets) {
  auto columns = AsFloat64Columns(predictions, targets, 2);
  if (!columns.ok()) return columns.status();
  return R2Columns(columns->first, columns->second);
}

StatusOr<double> R2Score(const at::Tensor& predictions, const at::Tensor& targets) {
  auto per_target = R2PerTarget(predictions, targets);
  if (!per_target.ok()) return per_target.status();
  return per_target->mean().item<double>();
}

StatusOr<at::Tensor> PearsonPerTarget(const at::Tensor& predictions, const at::Tensor& targets) {
  auto columns = AsFloat64Columns(predictions, targets, 2);
  if (!columns.ok()) return columns.status();
  return PearsonColumns(columns->first, columns->second);
}

StatusOr<RegressionScores> ScoreRegression(const at::Tensor& predictions, const at::Tensor& targets) {
  auto columns = AsFloat64Columns(predictions, targets, 2);
  if (!columns.ok()) return columns.status();
  const auto& [p, y] = *columns;
  RegressionScores scores;
  scores.r2_per_target = R2Columns(p, y);
  scores.r2 = scores.r2_per_target.mean().item<double>();
  scores.pearson_per_target = PearsonColumns(p, y);

  std::vector<double> defined;
  const at::Tensor r = scores.pearson_per_target.contiguous();
  const double* data = r.data_ptr<double>();
  for (int64_t i = 0; i < r.numel(); ++i) {
    if (std::isnan(data[i])) {
      ++scores.pearson_undefined;
    } else {
      defined.push_back(data[i]);
    }
  }
  if (defined.empty()) {
    scores.pearson_mean = scores.pearson_median = std::numeric_limits<double>::quiet_NaN();
    return scores;
  }
  double sum = 0.0;
  for (double v : defined) sum += v;
  scores.pearson_mean = sum / static_cast<double>(defined.size());
  std::sort(defined.begin(), defined.end());
  const size_t mid = defined.size() / 2;
  scores.pearson_median = defined.size() % 2 == 1 ? defined[mid] : 0.5 * (defined[mid - 1] + defined[mid]);
  return scores;
}

StatusOr<double> Accuracy(const at::Tensor& predictions, const at::Tensor& labels) {
  if (!labels.defined() || labels.dim() != 1 || at::isFloatingType(labels.scalar_type()) || labels.size(0) < 1) {
    return InvalidArgumentError("labels are " + DescribeTensor(labels) + "; expected integer class labels [N], N >= 1");
  }
  const int64_t n = labels.size(0);
  at::Tensor predicted;
  if (predictions.defined() && predictions.dim() == 2 && predictions.size(0) == n &&
      at::isFloatingType(predictions.scalar_type())) {
    DWARP_RETURN_IF_ERROR(CheckFinite(predictions, "logits"));
    predicted = predictions.detach().argmax(1);
  } else if (predictions.defined() && predictions.dim() == 1 && predictions.size(0) == n &&
             !at::isFloatingType(predictions.scalar_type())) {
    predicted = predictions.detach();
  } else {
    return InvalidArgumentError("predictions are " + DescribeTensor(predictions) + " for " + std::to_string(n) +
                                " labels; expected logits [" + std::to_string(n) +
                                ", classes] or integer labels [" + std::to_string(n) + "]");
  }
  const int64_t correct = predicted.to(at::kCPU, at::kLong).eq(labels.to(at::kCPU, at::kLong)).sum().item<int64_t>();
  return static_cast<double>(correct) / static_cast<double>(n);
}

}  // namespace dwarp::engine
