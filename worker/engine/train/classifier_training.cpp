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
  std::function<at::Tensor(const at::Tensor&)> forward;  // [B, ...] -> logits [B, classes]
  std::function<void(bool)> set_training;
  std::vector<at::Tensor> parameters;  // leaf tensors Adam updates
  at::Device device = at::kCPU;
};

TrainingLoopOptions LoopOptions(const ClassifierTrainingOptions& o) {
  return TrainingLoopOptions()
      .epochs(o.epochs_)
      .batch_size(o.batch_size_)
      .patience(o.patience_)
      .min_delta(o.min_delta_)
      .schedule(o.schedule_)
      .seed(o.seed_)
      .on_epoch(o.on_epoch_)
      .should_stop(o.should_stop_);
}

// The loop's own options are checked by the loop's check; these are the classifier's additions.
Status CheckOptions(const ClassifierTrainingOptions& o) {
  DWARP_RETURN_IF_ERROR(CheckTrainingLoopOptions(LoopOptions(o)));
  if (o.eval_batch_size_ < 1) {
    return InvalidArgumentError("eval_batch_size = " + std::to_string(o.eval_batch_size_) + "; expected >= 1");
  }
  if (!std::isfinite(o.learning_rate_) || o.learning_rate_ <= 0.0) {
    std::ostringstream os;
    os << "learning_rate = " << o.learning_rate_ << "; expected a finite number > 0";
    return InvalidArgumentError(os.str());
  }
  return OkStatus();
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
     << batch << ", " << num_classes << "] (one column per class)";
  return InvalidArgumentError(os.str());
}

// Fraction of `data` whose argmax logit is the label; the trainee must already be in eval mode.
StatusOr<double> Accuracy(Trainee& trainee, const ClassificationData& data, int64_t batch_size) {
  at::NoGradGuard no_grad;
  int64_t correct = 0;
  for (int64_t begin = 0; begin < data.size(); begin += batch_size) {
    const int64_t count = std::min(batch_size, data.size() - begin);
    const at::Tensor logits = trainee.forward(data.inputs.narrow(0, begin, count).to(trainee.device));
    DWARP_RETURN_IF_ERROR(CheckLogits(logits, count, data.num_classes));
    const at::Tensor labels = data.labels.narrow(0, begin, count).to(trainee.device);
    correct += logits.argmax(1).eq(labels).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(data.size());
}

StatusOr<ClassifierTrainingResult> RunTraining(Trainee& trainee, const ClassifierSplits& data,
                                               const ClassifierTrainingOptions& options,
                                               ClassifierTrainingResult result) {
  const auto start = Clock::now();
  const ClassificationData& train = data.train;
  TrainingProblem problem;
  problem.train_size = train.size();
  problem.groups.push_back(ParameterGroup{trainee.parameters, options.learning_rate_, 0.0});
  problem.shuffle_name = "classifier-training/minibatch-order";
  problem.set_training = trainee.set_training;
  problem.batch_loss = [&](const at::Tensor& rows) -> StatusOr<at::Tensor> {
    const at::Tensor logits = trainee.forward(train.inputs.index_select(0, rows).to(trainee.device));
    DWARP_RETURN_IF_ERROR(CheckLogits(logits, rows.numel(), train.num_classes));
    return at::cross_entropy_loss(logits, train.labels.index_select(0, rows).to(trainee.device));
  };
  problem.validation_score = [&]() { return Accuracy(trainee, data.validation, options.eval_batch_size_); };
  auto loop = RunTrainingLoop(problem, LoopOptions(options));
  if (!loop.ok()) return loop.status();

  auto test_accuracy = Accuracy(trainee, data.test, options.eval_batch_size_);
  if (!test_accuracy.ok()) return test_accuracy.status();
  result.test_accuracy = *test_accuracy;
  result.best_validation_accuracy = loop->best_validation_score;
  result.best_epoch = loop->best_epoch;
  result.epochs_run = loop->epochs_run;
  result.history = std::move(loop->history);
  result.seconds = SecondsSince(start);
  return result;
}

}  // namespace

StatusOr<ClassifierTrainingResult> TrainClassifierInSubspace(SubspaceModel& model, const ClassifierSplits& data,
                                                             const ClassifierTrainingOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckOptions(options));
  DWARP_RETURN_IF_ERROR(CheckSplits(data));
  return CatchLibTorchErrors<ClassifierTrainingResult>("subspace training", [&]() -> StatusOr<ClassifierTrainingResult> {
    Trainee trainee;
    trainee.forward = [&model](const at::Tensor& x) { return model.Forward(x); };
    trainee.set_training = [&model](bool on) { model.train(on); };
    trainee.parameters = model.parameters();
    trainee.device = model.theta_d().device();

    ClassifierTrainingResult result;
    result.full = false;
    result.trained_parameter_count = model.subspace_dim();
    result.model_parameter_count = model.warped_parameter_count();
    return RunTraining(trainee, data, options, std::move(result));
  });
}

StatusOr<ClassifierTrainingResult> TrainClassifierFull(torch::jit::Module& module, const ClassifierSplits& data,
                                                       const ClassifierTrainingOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckOptions(options));
  DWARP_RETURN_IF_ERROR(CheckSplits(data));
  return CatchLibTorchErrors<ClassifierTrainingResult>("full training", [&]() -> StatusOr<ClassifierTrainingResult> {
    Trainee trainee;
    trainee.forward = [&module](const at::Tensor& x) { return module.forward({x}).toTensor(); };
    trainee.set_training = [&module](bool on) { module.train(on); };
    trainee.parameters = MakeParametersTrainable(module);
    if (trainee.parameters.empty()) return InvalidArgumentError("the module has no parameters to train");
    trainee.device = trainee.parameters.front().device();

    ClassifierTrainingResult result;
    result.full = true;
    for (const auto& p : trainee.parameters) result.trained_parameter_count += p.numel();
    result.model_parameter_count = result.trained_parameter_count;
    return RunTraining(trainee, data, options, std::move(result));
  });
}

}  // namespace dwarp::engine
