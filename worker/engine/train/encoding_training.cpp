#include "worker/engine/train/encoding_training.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <sstream>
#include <tuple>

#include "worker/engine/models/linear_head.h"
#include "worker/engine/train/feature_cache.h"
#include "worker/engine/train/ridge_readout.h"

namespace dwarp::engine {
namespace {

using Clock = std::chrono::steady_clock;

Status CheckOptions(const EncodingTrainingOptions& o) {
  const std::pair<double, const char*> rates[] = {{o.learning_rate_, "learning_rate"},
                                                  {o.head_learning_rate_, "head_learning_rate"}};
  for (const auto& [rate, name] : rates) {
    if (!std::isfinite(rate) || rate <= 0.0) {
      std::ostringstream os;
      os << name << " = " << rate << "; expected a finite number > 0";
      return InvalidArgumentError(os.str());
    }
  }
  if (!(o.head_weight_decay_ >= 0.0) || !std::isfinite(o.head_weight_decay_)) {
    std::ostringstream os;
    os << "head_weight_decay = " << o.head_weight_decay_ << "; expected a finite number >= 0";
    return InvalidArgumentError(os.str());
  }
  if (o.eval_batch_size_ < 1) {
    return InvalidArgumentError("eval_batch_size = " + std::to_string(o.eval_batch_size_) + "; expected >= 1");
  }
  return CheckTrainingLoopOptions(o.loop_);
}

// What the loop needs to know about the model being trained, whichever mode.
struct Encoder {
  std::function<at::Tensor(const at::Tensor&)> represent;  // stimuli [B, ...] -> [B, F]
  std::function<void(bool)> set_training;
  std::vector<at::Tensor> model_parameters;  // what moves in the model (theta_d and lambdas, or all)
  double model_lr = 0.0;
  at::Device device = at::kCPU;
  // false: represent() already predicts the targets [B, T] (the head is part of the warped model) and
  // `start` is that model's initial state, which competes with the epochs as a ridge-initialised head.
  bool has_head = true;
};

// Predictions from features: the linear head, or the features themselves when the model has none.
at::Tensor Predictions(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& bias) {
  return weight.defined() ? at::linear(features, weight, bias) : features;
}

// The encoder's predictions [N, T] for a split, in eval batches, without gradients.
at::Tensor Predict(const Encoder& encoder, const at::Tensor& weight, const at::Tensor& bias, const NeuralSplit& split,
                   int64_t batch_size) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> out;
  for (int64_t begin = 0; begin < split.size(); begin += batch_size) {
    const int64_t count = std::min(batch_size, split.size() - begin);
    const at::Tensor features = encoder.represent(split.stimuli.narrow(0, begin, count).to(encoder.device));
    out.push_back(Predictions(features, weight, bias).to(at::kCPU));
  }
  return at::cat(out);
}

// The closed-form ridge readout of the encoder's features in its current (initial) state: the d = 0
// ridge job's fit (features as feature_cache.h computes them, FitRidgeCV with the default grid), so a
// ridge-initialised head starts exactly where that job ends.
StatusOr<RidgeFit> FitRidgeHead(const Encoder& encoder, const NeuralData& data, int64_t batch_size,
                                 const RidgeOptions& ridge) {
  encoder.set_training(false);
  const FeatureCacheOptions cache = FeatureCacheOptions().batch_size(batch_size).device(encoder.device);
  auto train = ComputeFeatures(encoder.represent, data.train.stimuli, cache);
  if (!train.ok()) return Status(train.status().code(), "head_init ridge: training split: " + train.status().message());
  auto validation = ComputeFeatures(encoder.represent, data.validation.stimuli, cache);
  if (!validation.ok()) {
    return Status(validation.status().code(), "head_init ridge: validation split: " + validation.status().message());
  }
  auto fit = FitRidgeCV(*train, data.train.responses, *validation, data.validation.responses, ridge);
  if (!fit.ok()) return Status(fit.status().code(), "head_init ridge: " + fit.status().message());
  return fit;
}

StatusOr<EncodingTrainingResult> Train(const Encoder& encoder, const NeuralData& data,
                                       const EncodingTrainingOptions& options, EncodingTrainingResult result) {
  const auto start = Clock::now();
  // The head's input size comes from a dry forward of one training stimulus.
  at::Tensor probe;
  {
    at::NoGradGuard no_grad;
    encoder.set_training(false);
    probe = encoder.represent(data.train.stimuli.narrow(0, 0, 1).to(encoder.device));
  }
  if (probe.dim() != 2 || probe.size(0) != 1) {
    std::ostringstream os;
    os << "the model maps one stimulus to a representation of shape " << probe.sizes()
       << "; expected [1, F] (the read-out layer, flattened)";
    return InvalidArgumentError(os.str());
  }
  const int64_t features = probe.size(1);
  const int64_t targets = data.num_targets();
  if (encoder.has_head) result.representation_size = features;
  if (!encoder.has_head && features != targets) {
    return InvalidArgumentError("the warped model predicts " + std::to_string(features) + " values per stimulus; expected " +
                                std::to_string(targets) + " (one per target)");
  }

  at::Tensor weight, bias;
  const bool ridge_head = options.head_init_ == HeadInit::kRidge;
  if (!encoder.has_head) {
    // The head is inside the model (prefit_warped): nothing to create.
  } else if (ridge_head) {
    auto fit = FitRidgeHead(encoder, data, options.eval_batch_size_, options.head_ridge_);
    if (!fit.ok()) return fit.status();
    // RidgeFit's W is [F, T] float64 (Y = X W + b); the head holds nn.Linear's [T, F] in the model's dtype.
    weight = fit->weights.transpose(0, 1).contiguous().to(probe.scalar_type());
    bias = fit->bias.to(probe.scalar_type());
    result.head_init_alpha = fit->alphas[0].item<double>();
  } else {
    // torch.nn.Linear's initialisation, from the job's seed.
    std::tie(weight, bias) = InitLinearHead(features, targets, options.loop_.seed_, probe.scalar_type());
  }
  const bool train_head = encoder.has_head && !options.freeze_head_;
  if (encoder.has_head) {
    weight = weight.to(encoder.device).set_requires_grad(train_head);
    bias = bias.to(encoder.device).set_requires_grad(train_head);
  }

  TrainingProblem problem;
  problem.train_size = data.train.size();
  problem.groups.push_back(ParameterGroup{encoder.model_parameters, encoder.model_lr, 0.0});
  if (train_head) problem.groups.push_back(ParameterGroup{{weight, bias}, options.head_learning_rate_, options.head_weight_decay_});
  problem.shuffle_name = "encoding-training/minibatch-order";
  problem.set_training = encoder.set_training;
  problem.batch_loss = [&](const at::Tensor& rows) -> StatusOr<at::Tensor> {
    const at::Tensor x = data.train.stimuli.index_select(0, rows).to(encoder.device);
    const at::Tensor y = data.train.responses.index_select(0, rows).to(encoder.device);
    return at::mse_loss(Predictions(encoder.represent(x), weight, bias), y);
  };
  problem.validation_score = [&]() -> StatusOr<double> {
    return R2Score(Predict(encoder, weight, bias, data.validation, options.eval_batch_size_), data.validation.responses);
  };

  // The loop scores only after each epoch, so the ridge starting state is scored (and kept) here: an
  // epoch has to beat the d = 0 ridge readout to replace it.
  std::vector<at::Tensor> state, initial_state;
  if (ridge_head) {
    auto initial_score = problem.validation_score();
    if (!initial_score.ok()) return initial_score.status();
    result.head_init_validation_r2 = *initial_score;
    state = encoder.model_parameters;
    if (encoder.has_head) {
      state.push_back(weight);
      state.push_back(bias);
    }
    for (const auto& p : state) initial_state.push_back(p.detach().clone());
  }
  auto loop = RunTrainingLoop(problem, options.loop_);
  if (!loop.ok()) return loop.status();
  if (ridge_head && !(loop->best_validation_score > result.head_init_validation_r2 + options.loop_.min_delta_)) {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < state.size(); ++i) state[i].copy_(initial_state[i]);
    loop->best_epoch = 0;
  }

  const std::pair<const NeuralSplit*, RegressionScores*> scored[] = {
      {&data.train, &result.train}, {&data.validation, &result.validation}, {&data.test, &result.test}};
  for (const auto& [split, scores] : scored) {
    auto s = ScoreRegression(Predict(encoder, weight, bias, *split, options.eval_batch_size_), split->responses);
    if (!s.ok()) return s.status();
    *scores = std::move(s).value();
  }
  result.RecordLoop(std::move(loop).value());
  if (encoder.has_head) {
    result.head_weight = weight.detach().to(at::kCPU, at::kFloat);
    result.head_bias = bias.detach().to(at::kCPU, at::kFloat);
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace

StatusOr<EncodingTrainingResult> TrainEncoderInSubspace(SubspaceModel& model, const NeuralData& data,
                                                        const EncodingTrainingOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckOptions(options));
  DWARP_RETURN_IF_ERROR(CheckNeuralData(data));
  return CatchLibTorchErrors<EncodingTrainingResult>("subspace encoding training", [&]() {
    Encoder encoder;
    encoder.represent = [&model](const at::Tensor& x) { return model.Forward(x).flatten(1); };
    encoder.set_training = [&model](bool on) { model.train(on); };
    encoder.model_parameters = model.parameters();
    encoder.model_lr = options.learning_rate_;
    encoder.device = model.theta_d().device();
    EncodingTrainingResult result;
    result.numbers_trained = model.subspace_dim();
    result.parameters_warped = model.warped_parameter_count();
    return Train(encoder, data, options, std::move(result));
  });
}

StatusOr<EncodingTrainingResult> TrainPrefitWarpedEncoder(const torch::jit::Module& module,
                                                          const SubspaceOptions& subspace, const NeuralData& data,
                                                          const EncodingTrainingOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckOptions(options));
  DWARP_RETURN_IF_ERROR(CheckNeuralData(data));
  if (options.freeze_head_) {
    return InvalidArgumentError("freeze_head = true with a prefit, warped head; expected false (the head moves only "
                                "through theta_d)");
  }
  return CatchLibTorchErrors<EncodingTrainingResult>("prefit-warped encoding training", [&]() -> StatusOr<EncodingTrainingResult> {
    // 1. The ridge head of the unwarped features (the d = 0 ridge job's fit).
    torch::jit::Module body = module.deepcopy();
    body.eval();
    Encoder frozen;
    frozen.represent = [&body](const at::Tensor& x) { return body.forward({x}).toTensor().flatten(1); };
    frozen.set_training = [](bool) {};
    at::Device device = at::kCPU;
    at::ScalarType dtype = at::kFloat;
    for (const auto& p : body.parameters()) {  // the first parameter's, as AttachLinearHead requires
      device = p.device();
      dtype = p.scalar_type();
      break;
    }
    frozen.device = device;
    auto fit = FitRidgeHead(frozen, data, options.eval_batch_size_, options.head_ridge_);
    if (!fit.ok()) return fit.status();
    const at::Tensor weight = fit->weights.transpose(0, 1).contiguous().to(device, dtype);
    const at::Tensor bias = fit->bias.to(device, dtype);

    // 2. Network and head as one module, warped through one subspace: the body's prefixes and groups
    // gain the body's name, and the head is warped too (its own layer group when there are groups).
    auto joined = AttachLinearHead(body, weight, bias);
    if (!joined.ok()) return joined.status();
    const std::string prefix = std::string(kAttachedBodyName) + ".";
    SubspaceOptions warp = subspace;
    std::vector<std::string> prefixes;
    for (const auto& p : subspace.warp_prefixes_) prefixes.push_back(prefix + p);
    if (prefixes.empty()) prefixes.push_back(kAttachedBodyName);
    prefixes.push_back(kAttachedHeadName);
    warp.warp_prefixes(prefixes);
    if (!subspace.layer_groups_.empty()) {
      std::vector<std::vector<std::string>> groups;
      for (const auto& group : subspace.layer_groups_) {
        std::vector<std::string> g;
        for (const auto& p : group) g.push_back(prefix + p);
        groups.push_back(std::move(g));
      }
      groups.push_back({kAttachedHeadName});
      warp.layer_groups(std::move(groups));
    }
    auto model = SubspaceModel::Create(*joined, warp);
    if (!model.ok()) return model.status();

    // 3. Train theta_d (and the lambdas) alone; the ridge start competes with the epochs as with
    // head_init ridge, so the job never ends below the d = 0 ridge readout on validation.
    Encoder encoder;
    encoder.represent = [&model](const at::Tensor& x) { return model->Forward(x).flatten(1); };
    encoder.set_training = [&model](bool on) { model->train(on); };
    encoder.model_parameters = model->parameters();
    encoder.model_lr = options.learning_rate_;
    encoder.device = device;
    encoder.has_head = false;
    EncodingTrainingResult result;
    result.numbers_trained = model->subspace_dim();
    result.parameters_warped = model->warped_parameter_count();
    result.representation_size = fit->weights.size(0);
    result.head_init_alpha = fit->alphas[0].item<double>();
    EncodingTrainingOptions ridge_start = options;
    ridge_start.head_init(HeadInit::kRidge);
    auto trained = Train(encoder, data, ridge_start, std::move(result));
    if (!trained.ok()) return trained.status();
    // The head as it ends, theta_d's share included.
    model->eval();
    model->Materialize();
    torch::jit::Module head = model->module().attr(kAttachedHeadName).toModule();
    trained->head_weight = head.attr("weight").toTensor().detach().to(at::kCPU, at::kFloat);
    trained->head_bias = head.attr("bias").toTensor().detach().to(at::kCPU, at::kFloat);
    return trained;
  });
}

StatusOr<EncodingTrainingResult> TrainEncoderFull(torch::jit::Module& module, const NeuralData& data,
                                                  const EncodingTrainingOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckOptions(options));
  DWARP_RETURN_IF_ERROR(CheckNeuralData(data));
  return CatchLibTorchErrors<EncodingTrainingResult>("full encoding training", [&]() -> StatusOr<EncodingTrainingResult> {
    Encoder encoder;
    encoder.represent = [&module](const at::Tensor& x) { return module.forward({x}).toTensor().flatten(1); };
    encoder.set_training = [&module](bool on) { module.train(on); };
    encoder.model_parameters = MakeParametersTrainable(module);
    if (encoder.model_parameters.empty()) return InvalidArgumentError("the module has no parameters to train");
    encoder.model_lr = options.learning_rate_;
    encoder.device = encoder.model_parameters.front().device();
    EncodingTrainingResult result;
    result.full = true;
    for (const auto& p : encoder.model_parameters) result.numbers_trained += p.numel();
    result.parameters_warped = result.numbers_trained;
    return Train(encoder, data, options, std::move(result));
  });
}

}  // namespace dwarp::engine
