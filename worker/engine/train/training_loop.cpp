#include "worker/engine/train/training_loop.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/optim/adam.h>

#include <chrono>
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <sstream>

#include "worker/engine/seeded_random.h"

namespace dwarp::engine {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kPi = 3.14159265358979323846;

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

void CopyInto(const std::vector<at::Tensor>& from, std::vector<at::Tensor>& to) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
}

}  // namespace

Status CheckTrainingLoopOptions(const TrainingLoopOptions& o) {
  if (o.epochs_ < 1) return InvalidArgumentError("epochs = " + std::to_string(o.epochs_) + "; expected >= 1");
  if (o.batch_size_ < 1) return InvalidArgumentError("batch_size = " + std::to_string(o.batch_size_) + "; expected >= 1");
  if (o.patience_ < 0) {
    return InvalidArgumentError("patience = " + std::to_string(o.patience_) + "; expected >= 0 (0: no early stop)");
  }
  if (!(o.min_delta_ >= 0.0) || !std::isfinite(o.min_delta_)) {
    std::ostringstream os;
    os << "min_delta = " << o.min_delta_ << "; expected a finite number >= 0";
    return InvalidArgumentError(os.str());
  }
  return OkStatus();
}

StatusOr<TrainingLoopResult> RunTrainingLoop(const TrainingProblem& problem, const TrainingLoopOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckTrainingLoopOptions(options));
  if (problem.train_size < 1) {
    return InvalidArgumentError("the training split has " + std::to_string(problem.train_size) + " rows; expected >= 1");
  }
  std::vector<at::Tensor> trained;
  std::vector<std::unique_ptr<torch::optim::Adam>> optimisers;
  for (size_t g = 0; g < problem.groups.size(); ++g) {
    const ParameterGroup& group = problem.groups[g];
    if (!std::isfinite(group.learning_rate) || group.learning_rate <= 0.0 || !(group.weight_decay >= 0.0)) {
      std::ostringstream os;
      os << "parameter group " << g << ": learning rate " << group.learning_rate << ", weight decay "
         << group.weight_decay << "; expected a learning rate > 0 and a weight decay >= 0";
      return InvalidArgumentError(os.str());
    }
    if (group.parameters.empty()) continue;
    optimisers.push_back(std::make_unique<torch::optim::Adam>(
        group.parameters, torch::optim::AdamOptions(group.learning_rate).weight_decay(group.weight_decay)));
    trained.insert(trained.end(), group.parameters.begin(), group.parameters.end());
  }
  if (optimisers.empty()) return InvalidArgumentError("nothing to train: every parameter group is empty");

  std::vector<at::Tensor> best;
  for (const auto& p : trained) best.push_back(p.detach().clone());
  TrainingLoopResult result;
  double best_score = -std::numeric_limits<double>::infinity();
  int64_t epochs_since_best = 0;

  const int64_t n = problem.train_size;
  const int64_t steps_per_epoch = (n + options.batch_size_ - 1) / options.batch_size_;
  const double total_steps = static_cast<double>(steps_per_epoch * options.epochs_);
  int64_t global_step = 0;

  SeededStream order_stream(options.seed_, problem.shuffle_name);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});

  for (int64_t epoch = 1; epoch <= options.epochs_; ++epoch) {
    const auto epoch_start = Clock::now();
    // Fisher–Yates, continuing the previous epoch's order.
    for (int64_t i = n - 1; i > 0; --i) {
      std::swap(order[static_cast<size_t>(i)], order[order_stream.Below(static_cast<uint64_t>(i) + 1)]);
    }
    const at::Tensor order_tensor = at::from_blob(order.data(), {n}, at::kLong);

    problem.set_training(true);
    double loss_sum = 0.0;
    int64_t steps = 0;
    for (int64_t begin = 0; begin < n; begin += options.batch_size_) {
      if (options.should_stop_ && options.should_stop_()) {
        return CancelledError("cancelled: training stopped on request at epoch " + std::to_string(epoch) +
                              ", step " + std::to_string(steps + 1));
      }
      const int64_t count = std::min(options.batch_size_, n - begin);
      double factor = 1.0;
      if (options.schedule_ == LearningRateSchedule::kCosine) {
        factor = 0.5 * (1.0 + std::cos(kPi * static_cast<double>(global_step) / total_steps));
      } else if (options.schedule_ == LearningRateSchedule::kWarmupCosine) {
        const double warmup = static_cast<double>(steps_per_epoch);
        const double step = static_cast<double>(global_step);
        factor = step < warmup ? (step + 1.0) / warmup
                               : 0.5 * (1.0 + std::cos(kPi * (step - warmup) / std::max(1.0, total_steps - warmup)));
      }
      for (size_t g = 0, o = 0; g < problem.groups.size(); ++g) {
        if (problem.groups[g].parameters.empty()) continue;
        static_cast<torch::optim::AdamOptions&>(optimisers[o++]->param_groups().front().options())
            .lr(problem.groups[g].learning_rate * factor);
      }
      ++global_step;
      for (auto& adam : optimisers) adam->zero_grad();
      auto loss = problem.batch_loss(order_tensor.narrow(0, begin, count));
      if (!loss.ok()) return loss.status();
      const double loss_value = loss->item<double>();
      if (!std::isfinite(loss_value)) {
        std::ostringstream os;
        os << "training diverged: the loss is " << loss_value << " at epoch " << epoch << ", step " << steps + 1
           << " (learning rates";
        for (const auto& group : problem.groups) os << " " << group.learning_rate;
        os << "); expected a finite loss, try a smaller learning rate";
        return InvalidArgumentError(os.str());
      }
      loss->backward();
      for (auto& adam : optimisers) adam->step();
      loss_sum += loss_value;
      ++steps;
    }

    problem.set_training(false);
    auto score = problem.validation_score();
    if (!score.ok()) return score.status();

    EpochRecord record;
    record.epoch = epoch;
    record.train_loss = loss_sum / static_cast<double>(steps);
    record.validation_score = *score;
    record.improved = *score > best_score + options.min_delta_;
    if (record.improved) {
      best_score = *score;
      result.best_epoch = epoch;
      CopyInto(trained, best);
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

  CopyInto(best, trained);
  problem.set_training(false);
  result.best_validation_score = best_score;
  return result;
}

at::Tensor RowIndexOn(const at::Tensor& source, const at::Tensor& rows) {
  return rows.device() == source.device() ? rows : rows.to(source.device());
}

at::Tensor SelectRows(const at::Tensor& source, const at::Tensor& rows) {
  return source.index_select(0, RowIndexOn(source, rows));
}

std::pair<at::Tensor, at::Tensor> InitLinearHead(int64_t in, int64_t out, uint64_t seed, at::ScalarType dtype) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  at::Tensor weight = at::empty({out, in}, dtype).uniform_(-bound, bound, generator);
  at::Tensor bias = at::empty({out}, dtype).uniform_(-bound, bound, generator);
  return {weight, bias};
}

std::vector<at::Tensor> MakeParametersTrainable(torch::jit::Module& module) {
  std::vector<at::Tensor> parameters;
  for (torch::jit::Module owner : module.modules()) {
    for (const auto& slot : owner.named_parameters(/*recurse=*/false)) {
      at::Tensor leaf = slot.value.is_leaf() ? slot.value : slot.value.detach();
      leaf.set_requires_grad(true);
      if (!leaf.is_same(slot.value)) owner.setattr(slot.name, leaf);
      parameters.push_back(leaf);
    }
  }
  return parameters;
}

}  // namespace dwarp::engine
