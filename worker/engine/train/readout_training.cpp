#include "worker/engine/train/readout_training.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <sstream>
#include <string>
#include <tuple>

#include "worker/engine/train/tensor_checks.h"

namespace dwarp::engine {
namespace {

using Clock = std::chrono::steady_clock;
using internal::CheckFinite;
using internal::CheckFloatingMatrix;
using internal::DescribeTensor;

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

Status CheckCachedFeatures(const CachedFeatures& cache) {
  const std::pair<const FeatureSplit*, const char*> splits[] = {
      {&cache.train, "training"}, {&cache.validation, "validation"}, {&cache.test, "test"}};
  for (const auto& [split, name] : splits) {
    const std::string prefix(name);
    DWARP_RETURN_IF_ERROR(CheckFloatingMatrix(split->features, prefix + " features"));
    DWARP_RETURN_IF_ERROR(CheckFloatingMatrix(split->responses, prefix + " responses"));
    if (split->features.size(0) != split->responses.size(0)) {
      return InvalidArgumentError(prefix + " features are " + DescribeTensor(split->features) + " but responses are " +
                                  DescribeTensor(split->responses) + "; expected the same number of rows");
    }
    if (split->features.size(0) < 2) {
      return InvalidArgumentError(prefix + " split has " + std::to_string(split->features.size(0)) +
                                  " rows; expected >= 2 (R² needs two)");
    }
    if (split->features.size(1) != cache.num_features() || split->responses.size(1) != cache.num_targets()) {
      return InvalidArgumentError(prefix + " features " + DescribeTensor(split->features) + " and responses " +
                                  DescribeTensor(split->responses) + " do not match the training split's " +
                                  std::to_string(cache.num_features()) + " features and " +
                                  std::to_string(cache.num_targets()) + " targets");
    }
    DWARP_RETURN_IF_ERROR(CheckFinite(split->features, prefix + " features"));
    DWARP_RETURN_IF_ERROR(CheckFinite(split->responses, prefix + " responses"));
  }
  return OkStatus();
}


Status CheckOptions(const SgdReadoutOptions& o) {
  std::ostringstream os;
  if (!std::isfinite(o.head_learning_rate_) || o.head_learning_rate_ <= 0.0) {
    os << "head_learning_rate = " << o.head_learning_rate_ << "; expected a finite number > 0";
  } else if (!std::isfinite(o.head_weight_decay_) || o.head_weight_decay_ < 0.0) {
    os << "head_weight_decay = " << o.head_weight_decay_ << "; expected a finite number >= 0";
  } else if (o.eval_batch_size_ < 1) {
    os << "eval_batch_size = " << o.eval_batch_size_ << "; expected >= 1";
  } else {
    return CheckTrainingLoopOptions(o.loop_);  // epochs, batch_size, patience, min_delta
  }
  return InvalidArgumentError(os.str());
}

// X W^T + b over `features` in row chunks, in the head's dtype and on its device.
at::Tensor PredictInChunks(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& bias,
                           int64_t chunk) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> parts;
  for (int64_t begin = 0; begin < features.size(0); begin += chunk) {
    const int64_t count = std::min(chunk, features.size(0) - begin);
    const at::Tensor rows = features.narrow(0, begin, count).to(weight.device(), weight.scalar_type());
    parts.push_back(at::linear(rows, weight, bias));
  }
  return at::cat(parts);
}

Status ScoreAllSplits(const CachedFeatures& cache, const at::Tensor& weight, const at::Tensor& bias, int64_t chunk,
                      ReadoutResult& result) {
  const std::pair<const FeatureSplit*, RegressionScores*> scored[] = {
      {&cache.train, &result.train}, {&cache.validation, &result.validation}, {&cache.test, &result.test}};
  for (const auto& [split, scores] : scored) {
    auto s = ScoreRegression(PredictInChunks(split->features, weight, bias, chunk), split->responses);
    if (!s.ok()) return s.status();
    *scores = std::move(s).value();
  }
  return OkStatus();
}

StatusOr<ReadoutResult> RunSgd(const CachedFeatures& cache, const SgdReadoutOptions& options) {
  const auto start = Clock::now();
  const at::Tensor train_x = cache.train.features.to(at::kFloat);
  const at::Device device = train_x.device();
  const at::Tensor train_y = cache.train.responses.to(device, at::kFloat);

  // torch.nn.Linear's initialisation from the seed, as encoding_training's head.
  at::Tensor weight, bias;
  std::tie(weight, bias) = InitLinearHead(cache.num_features(), cache.num_targets(), options.loop_.seed_);
  weight = weight.to(device).set_requires_grad(true);
  bias = bias.to(device).set_requires_grad(true);

  TrainingProblem problem;
  problem.train_size = cache.train.size();
  problem.groups.push_back(ParameterGroup{{weight, bias}, options.head_learning_rate_, options.head_weight_decay_});
  problem.shuffle_name = "sgd-readout/minibatch-order";
  problem.set_training = [](bool) {};  // a linear head has no train/eval behaviour
  problem.batch_loss = [&](const at::Tensor& rows) -> StatusOr<at::Tensor> {
    const at::Tensor on_device = RowIndexOn(train_x, rows);
    const at::Tensor predictions = at::linear(train_x.index_select(0, on_device), weight, bias);
    return at::mse_loss(predictions, train_y.index_select(0, on_device));
  };
  problem.validation_score = [&]() -> StatusOr<double> {
    return R2Score(PredictInChunks(cache.validation.features, weight, bias, options.eval_batch_size_),
                   cache.validation.responses);
  };
  auto loop = RunTrainingLoop(problem, options.loop_);
  if (!loop.ok()) return loop.status();

  ReadoutResult result;
  DWARP_RETURN_IF_ERROR(ScoreAllSplits(cache, weight, bias, options.eval_batch_size_, result));
  result.head_weight = weight.detach().cpu();
  result.head_bias = bias.detach().cpu();
  result.RecordLoop(std::move(loop).value());
  result.representation_size = cache.num_features();
  result.seconds = SecondsSince(start);
  return result;
}

}  // namespace

StatusOr<ReadoutResult> TrainSgdReadout(const CachedFeatures& features, const SgdReadoutOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckOptions(options));
  DWARP_RETURN_IF_ERROR(CheckCachedFeatures(features));
  return CatchLibTorchErrors<ReadoutResult>("the SGD readout", [&] { return RunSgd(features, options); });
}

StatusOr<ReadoutResult> TrainRidgeReadout(const CachedFeatures& features, const RidgeOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckCachedFeatures(features));
  return CatchLibTorchErrors<ReadoutResult>("the ridge readout", [&]() -> StatusOr<ReadoutResult> {
    const auto start = Clock::now();
    auto fit = FitRidgeCV(features.train.features, features.train.responses, features.validation.features,
                          features.validation.responses, options);
    if (!fit.ok()) return fit.status();
    ReadoutResult result;
    result.head_weight = fit->weights.t().contiguous();
    result.head_bias = fit->bias;
    result.alphas = fit->alphas;
    result.representation_size = features.num_features();
    DWARP_RETURN_IF_ERROR(ScoreAllSplits(features, result.head_weight, result.head_bias, /*chunk=*/4096, result));
    result.seconds = SecondsSince(start);
    return result;
  });
}

}  // namespace dwarp::engine
