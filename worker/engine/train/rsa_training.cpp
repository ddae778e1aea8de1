#include "worker/engine/train/rsa_training.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

namespace dwarp::engine {
namespace {

using Clock = std::chrono::steady_clock;

// Keeps a zero row (a constant stimulus or a constant RDM) from dividing by zero: it correlates 0.
constexpr double kNormFloor = 1e-12;

// Rows centred and scaled to unit norm: their dot products are Pearson correlations.
at::Tensor UnitRows(const at::Tensor& x) {
  const at::Tensor centred = x - x.mean(1, /*keepdim=*/true);
  return centred / centred.norm(2, 1, /*keepdim=*/true).clamp_min(kNormFloor);
}

at::Tensor UpperTriangle(const at::Tensor& square) {
  const at::Tensor index = at::triu_indices(square.size(0), square.size(1), 1, at::TensorOptions(at::kLong).device(square.device()));
  return square.index({index[0], index[1]});
}

// Pearson r of two vectors (same length), as a scalar tensor.
at::Tensor Correlation(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ca = a - a.mean();
  const at::Tensor cb = b - b.mean();
  return (ca * cb).sum() / (ca.norm() * cb.norm()).clamp_min(kNormFloor);
}


// A split with at least 3 stimuli, or an error naming it.
Status CheckSplit(const NeuralSplit& split, const char* name) {
  if (split.size() >= 3) return OkStatus();
  return InvalidArgumentError(std::string("the ") + name + " split has " + std::to_string(split.size()) +
                              " stimuli; an RDM needs at least 3");
}

// The representation [n, F] of a split's first n = min(size, max_rdm_stimuli) stimuli, in eval batches,
// without gradients, on the CPU in double precision.
at::Tensor Represent(const std::function<at::Tensor(const at::Tensor&)>& represent, const NeuralSplit& split,
                     at::Device device, const RsaTrainingOptions& options) {
  at::NoGradGuard no_grad;
  const int64_t n = std::min(split.size(), options.max_rdm_stimuli_);
  std::vector<at::Tensor> out;
  for (int64_t begin = 0; begin < n; begin += options.eval_batch_size_) {
    const int64_t count = std::min(options.eval_batch_size_, n - begin);
    out.push_back(represent(split.stimuli.narrow(0, begin, count).to(device)).flatten(1).to(at::kCPU, at::kDouble));
  }
  return at::cat(out);
}

StatusOr<double> ScoreSplit(const std::function<at::Tensor(const at::Tensor&)>& represent, const NeuralSplit& split,
                            at::Device device, const RsaTrainingOptions& options) {
  const at::Tensor features = Represent(represent, split, device, options);
  return RsaScore(features, split.responses.narrow(0, 0, features.size(0)));
}

StatusOr<RsaScores> ScoreAll(const std::function<at::Tensor(const at::Tensor&)>& represent, const NeuralData& data,
                             at::Device device, const RsaTrainingOptions& options) {
  RsaScores scores;
  const std::pair<const NeuralSplit*, double*> splits[] = {
      {&data.train, &scores.train}, {&data.validation, &scores.validation}, {&data.test, &scores.test}};
  for (const auto& [split, score] : splits) {
    auto s = ScoreSplit(represent, *split, device, options);
    if (!s.ok()) return s.status();
    *score = *s;
  }
  return scores;
}

Status CheckProblem(const NeuralData& data, const RsaTrainingOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckRsaTrainingOptions(options));
  DWARP_RETURN_IF_ERROR(CheckNeuralData(data));
  DWARP_RETURN_IF_ERROR(CheckSplit(data.train, "training"));
  DWARP_RETURN_IF_ERROR(CheckSplit(data.validation, "validation"));
  return CheckSplit(data.test, "test");
}

}  // namespace

at::Tensor CorrelationDistanceRdm(const at::Tensor& x) {
  const at::Tensor unit = UnitRows(x.flatten(1));
  return 1.0 - at::matmul(unit, unit.transpose(0, 1));
}

at::Tensor RsaLoss(const at::Tensor& representation, const at::Tensor& responses) {
  const at::Tensor model = UpperTriangle(CorrelationDistanceRdm(representation));
  const at::Tensor brain = UpperTriangle(CorrelationDistanceRdm(responses.to(representation.options())));
  return 1.0 - Correlation(model, brain);
}

StatusOr<double> RsaScore(const at::Tensor& representation, const at::Tensor& responses) {
  if (representation.dim() < 2 || responses.dim() != 2 || representation.size(0) != responses.size(0) ||
      representation.size(0) < 3) {
    std::ostringstream os;
    os << "RSA score of a representation " << representation.sizes() << " and responses " << responses.sizes()
       << "; expected [N, ...] and [N, T] with the same N >= 3";
    return InvalidArgumentError(os.str());
  }
  at::NoGradGuard no_grad;
  const at::Tensor x = representation.detach().to(at::kCPU, at::kDouble);
  const at::Tensor y = responses.detach().to(at::kCPU, at::kDouble);
  const double score = 1.0 - RsaLoss(x, y).item<double>();
  if (!std::isfinite(score)) return InvalidArgumentError("RSA score is not finite; expected finite representations");
  return score;
}

Status CheckRsaTrainingOptions(const RsaTrainingOptions& o) {
  if (!std::isfinite(o.learning_rate_) || o.learning_rate_ <= 0.0) {
    std::ostringstream os;
    os << "learning_rate = " << o.learning_rate_ << "; expected a finite number > 0";
    return InvalidArgumentError(os.str());
  }
  if (o.loop_.batch_size_ < 3) {
    return InvalidArgumentError("batch_size = " + std::to_string(o.loop_.batch_size_) +
                                "; expected >= 3 (the RDM of a minibatch needs three stimuli)");
  }
  if (o.eval_batch_size_ < 1) {
    return InvalidArgumentError("eval_batch_size = " + std::to_string(o.eval_batch_size_) + "; expected >= 1");
  }
  if (o.max_rdm_stimuli_ < 3) {
    return InvalidArgumentError("max_rdm_stimuli = " + std::to_string(o.max_rdm_stimuli_) + "; expected >= 3");
  }
  return CheckTrainingLoopOptions(o.loop_);
}

StatusOr<RsaTrainingResult> TrainRsaInSubspace(SubspaceModel& model, const NeuralData& data,
                                               const RsaTrainingOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckProblem(data, options));
  return CatchLibTorchErrors<RsaTrainingResult>("RSA training", [&]() -> StatusOr<RsaTrainingResult> {
    const auto start = Clock::now();
    const at::Device device = model.theta_d().device();
    const auto represent = [&model](const at::Tensor& x) { return model.Forward(x).flatten(1); };
    RsaTrainingResult result;
    result.numbers_trained = model.subspace_dim();
    result.parameters_warped = model.warped_parameter_count();

    TrainingProblem problem;
    problem.train_size = data.train.size();
    const std::vector<at::Tensor> state = model.parameters();
    problem.groups.push_back(ParameterGroup{state, options.learning_rate_, 0.0});
    problem.shuffle_name = "rsa-training/minibatch-order";
    problem.set_training = [&model](bool on) { model.train(on); };
    problem.batch_loss = [&](const at::Tensor& rows) -> StatusOr<at::Tensor> {
      const at::Tensor x = data.train.stimuli.index_select(0, rows).to(device);
      const at::Tensor y = data.train.responses.index_select(0, rows).to(device);
      if (rows.size(0) < 3) return (represent(x) * 0.0).sum();  // a last minibatch too small for an RDM
      return RsaLoss(represent(x), y);
    };
    problem.validation_score = [&]() -> StatusOr<double> {
      model.train(false);
      return ScoreSplit(represent, data.validation, device, options);
    };

    // The unwarped start competes with the epochs: an epoch has to beat it to replace it.
    auto initial = problem.validation_score();
    if (!initial.ok()) return initial.status();
    std::vector<at::Tensor> initial_state;
    for (const auto& p : state) initial_state.push_back(p.detach().clone());
    auto loop = RunTrainingLoop(problem, options.loop_);
    if (!loop.ok()) return loop.status();
    if (!(loop->best_validation_score > *initial + options.loop_.min_delta_)) {
      at::NoGradGuard no_grad;
      for (size_t i = 0; i < state.size(); ++i) state[i].copy_(initial_state[i]);
      loop->best_epoch = 0;
    }
    model.train(false);
    {
      at::NoGradGuard no_grad;
      result.representation_size = represent(data.train.stimuli.narrow(0, 0, 1).to(device)).size(1);
    }
    auto scores = ScoreAll(represent, data, device, options);
    if (!scores.ok()) return scores.status();
    result.scores = *scores;
    result.RecordLoop(std::move(loop).value());
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return result;
  });
}

StatusOr<RsaTrainingResult> ScoreRsa(const torch::jit::Module& module, const NeuralData& data,
                                     const RsaTrainingOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckProblem(data, options));
  return CatchLibTorchErrors<RsaTrainingResult>("RSA scoring", [&]() -> StatusOr<RsaTrainingResult> {
    const auto start = Clock::now();
    torch::jit::Module frozen = module.deepcopy();
    frozen.eval();
    at::Device device = at::kCPU;
    for (const auto& p : frozen.parameters()) {
      device = p.device();
      break;
    }
    const auto represent = [&frozen](const at::Tensor& x) { return frozen.forward({x}).toTensor().flatten(1); };
    RsaTrainingResult result;
    {
      at::NoGradGuard no_grad;
      result.representation_size = represent(data.train.stimuli.narrow(0, 0, 1).to(device)).size(1);
    }
    auto scores = ScoreAll(represent, data, device, options);
    if (!scores.ok()) return scores.status();
    result.scores = *scores;
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return result;
  });
}

}  // namespace dwarp::engine
