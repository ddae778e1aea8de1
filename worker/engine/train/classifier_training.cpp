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

#include "worker/engine/seeded_random.h"

namespace dwarp::engine {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kPi = 3.14159265358979323846;

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

Status CheckOptions(const ClassifierTrainingOptions& o) {
  if (o.epochs_ < 1) return InvalidArgumentError("epochs = " + std::to_string(o.epochs_) + "; expected >= 1");
  if (o.batch_size_ < 1) {
    return InvalidArgumentError("batch_size = " + std::to_string(o.batch_size_) + "; expected >= 1");
  }
  if (o.eval_batch_size_ < 1) {
    return InvalidArgumentError("eval_batch_size = " + std::to_string(o.eval_batch_size_) + "; expected >= 1");
  }
  if (o.patience_ < 0) {
    return InvalidArgumentError("patience = " + std::to_string(o.patience_) + "; expected >= 0 (0: no early stop)");
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

void CopyInto(const std::vector<at::Tensor>& from, std::vector<at::Tensor>& to) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
}

StatusOr<ClassifierTrainingResult> RunTraining(Trainee& trainee, const ClassifierSplits& data,
                                               const ClassifierTrainingOptions& options,
                                               ClassifierTrainingResult result) {
  const auto start = Clock::now();
  const ClassificationData& train = data.train;
  const int64_t n = train.size();

  torch::optim::Adam adam(trainee.parameters, torch::optim::AdamOptions(options.learning_rate_));
  std::vector<at::Tensor> best;
  for (const auto& p : trainee.parameters) best.push_back(p.detach().clone());
  double best_accuracy = -1.0;
  int64_t epochs_since_best = 0;

  const int64_t steps_per_epoch = (n + options.batch_size_ - 1) / options.batch_size_;
  const double total_steps = static_cast<double>(steps_per_epoch * options.epochs_);
  int64_t global_step = 0;
  auto& adam_options = static_cast<torch::optim::AdamOptions&>(adam.param_groups().front().options());

  SeededStream order_stream(options.seed_, "classifier-training/minibatch-order");
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});

  for (int64_t epoch = 1; epoch <= options.epochs_; ++epoch) {
    const auto epoch_start = Clock::now();
    // Fisher–Yates, continuing the previous epoch's order.
    for (int64_t i = n - 1; i > 0; --i) {
      std::swap(order[static_cast<size_t>(i)], order[order_stream.Below(static_cast<uint64_t>(i) + 1)]);
    }
    const at::Tensor order_tensor = at::from_blob(order.data(), {n}, at::kLong);

    trainee.set_training(true);
    double loss_sum = 0.0;
    int64_t steps = 0;
    for (int64_t begin = 0; begin < n; begin += options.batch_size_) {
      const int64_t count = std::min(options.batch_size_, n - begin);
      const at::Tensor rows = order_tensor.narrow(0, begin, count);
      const at::Tensor inputs = train.inputs.index_select(0, rows).to(trainee.device);
      const at::Tensor labels = train.labels.index_select(0, rows).to(trainee.device);

      if (options.schedule_ == LearningRateSchedule::kCosine) {
        const double progress = static_cast<double>(global_step) / total_steps;
        adam_options.lr(options.learning_rate_ * 0.5 * (1.0 + std::cos(kPi * progress)));
      }
      ++global_step;
      adam.zero_grad();
      const at::Tensor logits = trainee.forward(inputs);
      DWARP_RETURN_IF_ERROR(CheckLogits(logits, count, train.num_classes));
      const at::Tensor loss = at::cross_entropy_loss(logits, labels);
      const double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value)) {
        std::ostringstream os;
        os << "training diverged: the cross-entropy loss is " << loss_value << " at epoch " << epoch << ", step "
           << steps + 1 << " (learning rate " << options.learning_rate_ << "); expected a finite loss, try a "
           << "smaller learning rate";
        return InvalidArgumentError(os.str());
      }
      loss.backward();
      adam.step();
      loss_sum += loss_value;
      ++steps;
    }

    trainee.set_training(false);
    auto accuracy = Accuracy(trainee, data.validation, options.eval_batch_size_);
    if (!accuracy.ok()) return accuracy.status();

    EpochRecord record;
    record.epoch = epoch;
    record.train_loss = loss_sum / static_cast<double>(steps);
    record.validation_accuracy = *accuracy;
    record.improved = *accuracy > best_accuracy;
    if (record.improved) {
      best_accuracy = *accuracy;
      result.best_epoch = epoch;
      CopyInto(trainee.parameters, best);
      epochs_since_best = 0;
    } else {
      ++epochs_since_best;
    }
    record.seconds = SecondsSince(epoch_start);
    result.history.push_back(record);
    result.epochs_run = epoch;
    if (options.on_epoch_) options.on_epoch_(record);
    if (options.patience_ > 0 && epochs_since_best >= options.patience_) break;
  }

  CopyInto(best, trainee.parameters);
  trainee.set_training(false);
  auto test_accuracy = Accuracy(trainee, data.test, options.eval_batch_size_);
  if (!test_accuracy.ok()) return test_accuracy.status();
  result.test_accuracy = *test_accuracy;
  result.best_validation_accuracy = best_accuracy;
  result.seconds = SecondsSince(start);
  return result;
}

// Runs `body`, turning anything LibTorch throws into an Internal status (STYLE.md rule 4).
template <typename Body>
StatusOr<ClassifierTrainingResult> CatchingLibTorchErrors(const char* mode, Body&& body) {
  try {
    return body();
  } catch (const c10::Error& e) {
    return InternalError(std::string(mode) + " training failed in LibTorch: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return InternalError(std::string(mode) + " training failed in LibTorch: " + e.what());
  }
}

}  // namespace

StatusOr<ClassifierTrainingResult> TrainClassifierInSubspace(SubspaceModel& model, const ClassifierSplits& data,
                                                             const ClassifierTrainingOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckOptions(options));
  DWARP_RETURN_IF_ERROR(CheckSplits(data));
  return CatchingLibTorchErrors("subspace", [&]() -> StatusOr<ClassifierTrainingResult> {
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
  return CatchingLibTorchErrors("full", [&]() -> StatusOr<ClassifierTrainingResult> {
    Trainee trainee;
    trainee.forward = [&module](const at::Tensor& x) { return module.forward({x}).toTensor(); };
    trainee.set_training = [&module](bool on) { module.train(on); };
    // Module::deepcopy() and clone() give parameters that are clones of the originals, i.e. non-leaf
    // tensors with grad history when the originals require grad, which Adam refuses. Every slot gets a
    // detached leaf (same values, own autograd identity) before training.
    for (torch::jit::Module owner : module.modules()) {
      for (const auto& slot : owner.named_parameters(/*recurse=*/false)) {
        at::Tensor leaf = slot.value.is_leaf() ? slot.value : slot.value.detach();
        leaf.set_requires_grad(true);
        if (!leaf.is_same(slot.value)) owner.setattr(slot.name, leaf);
        trainee.parameters.push_back(leaf);
      }
    }
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
