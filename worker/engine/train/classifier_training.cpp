#include "worker/engine/train/classifier_training.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/optim/adam.h>

#include <chrono>
#include <cmath>
#include <exception>
#include <numeric>
#include <sstream>
#include <string>


namespace dwarp::engine {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// What the loop needs to know about the thing being trained, whichever mode.
struct Trainee {
  // [B, ...] -> the read-out layer [B, ...] (flattened for a head), or the logits [B, classes] without one.
  std::function<at::Tensor(const at::Tensor&)> forward;
  std::function<void(bool)> set_training;
  std::vector<at::Tensor> parameters;  // leaf tensors the model's Adam updates; empty for d = 0
  at::Device device = at::kCPU;
};

enum class Mode { kSubspace, kFull, kLinear };


// The loop's own options are checked by the loop's check; these are the classifier's additions.
Status CheckOptions(const ClassifierTrainingOptions& o, Mode mode) {
  DWARP_RETURN_IF_ERROR(CheckTrainingLoopOptions(o.loop_));
  std::ostringstream os;
  const bool head = o.linear_head_ || mode == Mode::kLinear;
  if (o.eval_batch_size_ < 1) {
    os << "eval_batch_size = " << o.eval_batch_size_ << "; expected >= 1";
  } else if (!std::isfinite(o.learning_rate_) || o.learning_rate_ <= 0.0) {
    os << "learning_rate = " << o.learning_rate_ << "; expected a finite number > 0";
  } else if (!std::isfinite(o.head_learning_rate_) || o.head_learning_rate_ <= 0.0) {
    os << "head_learning_rate = " << o.head_learning_rate_ << "; expected a finite number > 0";
  } else if (!std::isfinite(o.head_weight_decay_) || o.head_weight_decay_ < 0.0) {
    os << "head_weight_decay = " << o.head_weight_decay_ << "; expected a finite number >= 0";
  } else if (!head && (o.head_weight_decay_ != 0.0 || o.freeze_head_)) {
    os << "head_weight_decay = " << o.head_weight_decay_ << ", freeze_head = " << std::boolalpha << o.freeze_head_
       << " without linear_head (the model's own logits classify, there is no head); expected 0 and false";
  } else if (mode == Mode::kLinear && o.freeze_head_) {
    os << "freeze_head = true at d = 0; expected false (the head is all that trains on a frozen model)";
  } else {
    return OkStatus();
  }
  return InvalidArgumentError(os.str());
}

Status CheckSplits(const ClassifierSplits& data) {
  const std::pair<const ClassificationData*, const char*> splits[] = {
      {&data.train, "training split"}, {&data.validation, "validation split"}, {&data.test, "test split"}};
  for (const auto& [split, name] : splits) {
    DWARP_RETURN_IF_ERROR(CheckClassificationData(*split, name));
    if (split->size() == 0) return InvalidArgumentError(std::string(name) + " is empty; expected >= 1 example");
    if (split->num_classes != data.train.num_classes) {
      return InvalidArgumentError(std::string(name) + " has " + std::to_string(split->num_classes) +
                                  " classes but the training split has " + std::to_string(data.train.num_classes));
    }
    if (split->inputs.sizes().slice(1) != data.train.inputs.sizes().slice(1)) {
      std::ostringstream os;
      os << name << " has examples of shape " << split->inputs.sizes().slice(1) << " but the training split has "
         << data.train.inputs.sizes().slice(1);
      return InvalidArgumentError(os.str());
    }
  }
  return OkStatus();
}

Status CheckLogits(const at::Tensor& logits, int64_t batch, int64_t num_classes) {
  if (logits.dim() == 2 && logits.size(0) == batch && logits.size(1) == num_classes) return OkStatus();
  std::ostringstream os;
  os << "the model maps a batch of " << batch << " examples to shape " << logits.sizes() << "; expected logits ["
     << batch << ", " << num_classes << "] (one column per class; read out an inner layer through a linear head)";
  return InvalidArgumentError(os.str());
}

// The trainee's logits: its own output, or the linear head on its output flattened to [B, F].
struct Classifier {
  Trainee& trainee;
  at::Tensor weight;  // [classes, F]; undefined: no head
  at::Tensor bias;    // [classes]

  at::Tensor Logits(const at::Tensor& inputs) const {
    const at::Tensor out = trainee.forward(inputs.to(trainee.device));
    return weight.defined() ? at::linear(out.flatten(1), weight, bias) : out;
  }

  // Fraction of `data` whose argmax logit is the label; the trainee must already be in eval mode.
  StatusOr<double> Accuracy(const ClassificationData& data, int64_t batch_size) const {
    at::NoGradGuard no_grad;
    int64_t correct = 0;
    for (int64_t begin = 0; begin < data.size(); begin += batch_size) {
      const int64_t count = std::min(batch_size, data.size() - begin);
      const at::Tensor logits = Logits(data.inputs.narrow(0, begin, count));
      DWARP_RETURN_IF_ERROR(CheckLogits(logits, count, data.num_classes));
      const at::Tensor labels = data.labels.narrow(0, begin, count).to(logits.device());
      correct += logits.argmax(1).eq(labels).sum().item<int64_t>();
    }
    return static_cast<double>(correct) / static_cast<double>(data.size());
  }
};

// What the trainee gives for the first training example, flattened to [1, F] (a dry forward in eval
// mode): the head's input size and dtype.
at::Tensor Probe(Trainee& trainee, const ClassificationData& train) {
  at::NoGradGuard no_grad;
  trainee.set_training(false);
  return trainee.forward(train.inputs.narrow(0, 0, 1).to(trainee.device)).flatten(1);
}

StatusOr<ClassifierTrainingResult> RunTraining(Trainee& trainee, const ClassifierSplits& data,
                                               const ClassifierTrainingOptions& options, bool head,
                                               ClassifierTrainingResult result, Clock::time_point start) {
  const ClassificationData& train = data.train;
  Classifier classifier{trainee, {}, {}};
  const at::Tensor probe = Probe(trainee, train);
  result.representation_size = probe.size(1);
  TrainingProblem problem;
  problem.train_size = train.size();
  problem.groups.push_back(ParameterGroup{trainee.parameters, options.learning_rate_, 0.0});
  if (head) {
    // torch.nn.Linear's initialisation from the job's seed, in the dtype of the read-out layer.
    auto [weight, bias] = InitLinearHead(probe.size(1), train.num_classes, options.loop_.seed_, probe.scalar_type());
    classifier.weight = weight.to(trainee.device).set_requires_grad(!options.freeze_head_);
    classifier.bias = bias.to(trainee.device).set_requires_grad(!options.freeze_head_);
    if (!options.freeze_head_) {
      problem.groups.push_back(ParameterGroup{{classifier.weight, classifier.bias}, options.head_learning_rate_,
                                              options.head_weight_decay_});
    }
  }
  problem.shuffle_name = "classifier-training/minibatch-order";
  problem.set_training = trainee.set_training;
  problem.batch_loss = [&](const at::Tensor& rows) -> StatusOr<at::Tensor> {
    // At d = 0 the inputs are features cached on the feature device; the rows come from the CPU.
    const at::Tensor logits = classifier.Logits(SelectRows(train.inputs, rows));
    DWARP_RETURN_IF_ERROR(CheckLogits(logits, rows.numel(), train.num_classes));
    return at::cross_entropy_loss(logits, SelectRows(train.labels, rows).to(logits.device()));
  };
  problem.validation_score = [&]() { return classifier.Accuracy(data.validation, options.eval_batch_size_); };
  auto loop = RunTrainingLoop(problem, options.loop_);
  if (!loop.ok()) return loop.status();

  auto train_accuracy = classifier.Accuracy(train, options.eval_batch_size_);
  if (!train_accuracy.ok()) return train_accuracy.status();
  auto test_accuracy = classifier.Accuracy(data.test, options.eval_batch_size_);
  if (!test_accuracy.ok()) return test_accuracy.status();
  result.train_accuracy = *train_accuracy;
  result.test_accuracy = *test_accuracy;
  result.best_validation_accuracy = loop->best_validation_score;
  result.RecordLoop(std::move(loop).value());
  if (head) {
    result.head_weight = classifier.weight.detach().to(at::kCPU, at::kFloat);
    result.head_bias = classifier.bias.detach().to(at::kCPU, at::kFloat);
  }
  result.seconds = SecondsSince(start);
  return result;
}

}  // namespace

StatusOr<ClassifierTrainingResult> TrainClassifierInSubspace(SubspaceModel& model, const ClassifierSplits& data,
                                                             const ClassifierTrainingOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckOptions(options, Mode::kSubspace));
  DWARP_RETURN_IF_ERROR(CheckSplits(data));
  return CatchLibTorchErrors<ClassifierTrainingResult>("subspace training", [&]() -> StatusOr<ClassifierTrainingResult> {
    const auto start = Clock::now();
    Trainee trainee;
    trainee.forward = [&model](const at::Tensor& x) { return model.Forward(x); };
    trainee.set_training = [&model](bool on) { model.train(on); };
    trainee.parameters = model.parameters();
    trainee.device = model.theta_d().device();

    ClassifierTrainingResult result;
    result.full = false;
    result.numbers_trained = model.subspace_dim();
    result.parameters_warped = model.warped_parameter_count();
    return RunTraining(trainee, data, options, options.linear_head_, std::move(result), start);
  });
}

StatusOr<ClassifierTrainingResult> TrainClassifierFull(torch::jit::Module& module, const ClassifierSplits& data,
                                                       const ClassifierTrainingOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckOptions(options, Mode::kFull));
  DWARP_RETURN_IF_ERROR(CheckSplits(data));
  return CatchLibTorchErrors<ClassifierTrainingResult>("full training", [&]() -> StatusOr<ClassifierTrainingResult> {
    const auto start = Clock::now();
    Trainee trainee;
    trainee.forward = [&module](const at::Tensor& x) { return module.forward({x}).toTensor(); };
    trainee.set_training = [&module](bool on) { module.train(on); };
    trainee.parameters = MakeParametersTrainable(module);
    if (trainee.parameters.empty()) return InvalidArgumentError("the module has no parameters to train");
    trainee.device = trainee.parameters.front().device();

    ClassifierTrainingResult result;
    result.full = true;
    for (const auto& p : trainee.parameters) result.numbers_trained += p.numel();
    result.parameters_warped = result.numbers_trained;
    return RunTraining(trainee, data, options, options.linear_head_, std::move(result), start);
  });
}

StatusOr<ClassifierTrainingResult> TrainLinearClassifier(const FeatureExtractor& extractor,
                                                         const ClassifierSplits& data,
                                                         const ClassifierTrainingOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckOptions(options, Mode::kLinear));
  DWARP_RETURN_IF_ERROR(CheckSplits(data));
  return CatchLibTorchErrors<ClassifierTrainingResult>("linear classifier", [&]() -> StatusOr<ClassifierTrainingResult> {
    const auto start = Clock::now();
    // The frozen model runs once per example; every epoch after that reads the cache.
    const FeatureCacheOptions cache =
        FeatureCacheOptions().batch_size(options.eval_batch_size_).device(options.feature_device_);
    ClassifierSplits features = data;
    const std::pair<ClassificationData*, const char*> splits[] = {
        {&features.train, "training split"}, {&features.validation, "validation split"}, {&features.test, "test split"}};
    for (const auto& [split, name] : splits) {
      auto computed = ComputeFeatures(extractor, split->inputs, cache);
      if (!computed.ok()) return Status(computed.status().code(), std::string(name) + ": " + computed.status().message());
      split->inputs = *std::move(computed);
    }
    DWARP_RETURN_IF_ERROR(CheckSplits(features));  // the same feature count in every split

    Trainee trainee;
    trainee.forward = [](const at::Tensor& cached) { return cached; };
    trainee.set_training = [](bool) {};  // nothing in the model trains
    trainee.device = features.train.inputs.device();
    return RunTraining(trainee, features, options, /*head=*/true, ClassifierTrainingResult(), start);
  });
}

}  // namespace dwarp::engine
