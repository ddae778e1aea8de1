#include "worker/engine/simulate/dim_complexity.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <sstream>

#include "worker/engine/models/mlp.h"
#include "worker/engine/subspace_model.h"
#include "worker/engine/train/metrics.h"
#include "worker/engine/train/training_loop.h"

namespace dwarp::engine {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kPi = 3.14159265358979323846;

std::string KnownNames() {
  std::string names;
  for (const char* name : kDimComplexityFunctionNames) names += std::string(names.empty() ? "" : ", ") + name;
  return names + ", " + kDimComplexityTargetName;
}

// f evaluated on `x` (float64 [N]) as a float32 column [N, 1], the MLP's dtype and shape.
StatusOr<at::Tensor> Column(const std::string& name, const std::vector<double>& x) {
  std::vector<float> values;
  values.reserve(x.size());
  for (double v : x) {
    auto y = DimComplexityFunction(name, v);
    if (!y.ok()) return y.status();
    values.push_back(static_cast<float>(*y));
  }
  return at::tensor(values, at::kFloat).reshape({-1, 1});
}

at::Tensor AsColumn(const std::vector<double>& x) {
  std::vector<float> values(x.begin(), x.end());
  return at::tensor(values, at::kFloat).reshape({-1, 1});
}

std::vector<double> ToVector(const at::Tensor& t) {
  const at::Tensor flat = t.detach().to(at::kDouble).contiguous().flatten();
  return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
}

// Full-batch Adam on `parameters`, minimising the MSE of `predict(x)` against y; the best epoch (by R² on
// the training points) is restored. Returns the best epoch.
StatusOr<int64_t> FitFullBatch(const std::function<at::Tensor(const at::Tensor&)>& predict,
                               const std::function<void(bool)>& set_training, std::vector<at::Tensor> parameters,
                               const at::Tensor& x, const at::Tensor& y, int64_t epochs, double lr, uint64_t seed,
                               const std::string& name) {
  TrainingProblem problem;
  problem.train_size = x.size(0);
  problem.groups.push_back(ParameterGroup{std::move(parameters), lr, 0.0});
  problem.shuffle_name = "dim-complexity/" + name;
  problem.set_training = set_training;
  problem.batch_loss = [&](const at::Tensor& rows) -> StatusOr<at::Tensor> {
    return at::mse_loss(predict(SelectRows(x, rows)), SelectRows(y, rows));
  };
  // Selecting the best epoch on the training points keeps the held-out grid out of training entirely.
  problem.validation_score = [&]() -> StatusOr<double> {
    at::NoGradGuard no_grad;
    return R2Score(predict(x), y);
  };
  auto loop = RunTrainingLoop(problem, TrainingLoopOptions().epochs(epochs).batch_size(x.size(0)).seed(seed));
  if (!loop.ok()) return Status(loop.status().code(), name + ": " + loop.status().message());
  return loop->best_epoch;
}

StatusOr<DimComplexityResult> Run(DimComplexityOptions options,
                                  const std::function<void(const std::string&)>& progress) {
  const auto start = Clock::now();
  std::sort(options.dims_.begin(), options.dims_.end());
  DimComplexityResult result;
  result.options = options;

  // Training x: evenly spaced with both ends; held-out x: the midpoints between them.
  const int64_t n = options.train_points_;
  std::vector<double> train_x(n);
  for (int64_t i = 0; i < n; ++i) train_x[i] = -1.0 + 2.0 * static_cast<double>(i) / static_cast<double>(n - 1);
  for (int64_t i = 0; i + 1 < n; ++i) result.grid.push_back((train_x[i] + train_x[i + 1]) / 2);
  const at::Tensor x = AsColumn(train_x);
  const at::Tensor grid = AsColumn(result.grid);
  auto target_train = Column(kDimComplexityTargetName, train_x);
  if (!target_train.ok()) return target_train.status();
  auto target_grid = Column(kDimComplexityTargetName, result.grid);
  if (!target_grid.ok()) return target_grid.status();
  result.target = ToVector(*target_grid);

  const auto mlp_options = MlpOptions(1, 1).hidden(options.hidden_).seed(options.seed_);
  auto initial = CreateMlp(mlp_options);
  if (!initial.ok()) return initial.status();
  result.parameter_count = MlpParameterCount(mlp_options);

  for (const std::string& name : options.functions_) {
    DimComplexityFunctionResult fr;
    fr.name = name;
    auto f_train = Column(name, train_x);
    if (!f_train.ok()) return f_train.status();
    auto f_grid = Column(name, result.grid);
    if (!f_grid.ok()) return f_grid.status();

    // 1. Pre-fit all parameters of a copy of the shared initial MLP to f.
    torch::jit::Module prefit = initial->deepcopy();
    auto forward = [&prefit](const at::Tensor& in) { return prefit.forward({in}).toTensor(); };
    auto epoch = FitFullBatch(forward, [&prefit](bool on) { prefit.train(on); }, MakeParametersTrainable(prefit),
                              x, *f_train, options.pretrain_epochs_, options.pretrain_lr_, options.seed_,
                              name + " pre-fit");
    if (!epoch.ok()) return epoch.status();
    prefit.eval();
    {
      at::NoGradGuard no_grad;
      const at::Tensor out = forward(grid);
      fr.initial_curve = ToVector(out);
      auto own = R2Score(out, *f_grid);
      if (!own.ok()) return own.status();
      fr.pretrain_r2 = *own;
      auto to_target = R2Score(out, *target_grid);
      if (!to_target.ok()) return to_target.status();
      fr.initial_target_r2 = *to_target;
    }
    if (progress) {
      std::ostringstream os;
      os << name << " pre-fit: R2 " << fr.pretrain_r2 << " to " << DimComplexityFormula(name) << ", "
         << fr.initial_target_r2 << " to the target";
      progress(os.str());
    }

    // 2. Warp the pre-fit toward the target at every d, then with all parameters.
    std::vector<DimScore> points;
    for (int64_t d : options.dims_) {
      auto model = SubspaceModel::Create(prefit, SubspaceOptions(d).seed(options.seed_));
      if (!model.ok()) return model.status();
      const std::string label = name + " d=" + std::to_string(d);
      auto best = FitFullBatch([&model](const at::Tensor& in) { return model->Forward(in); },
                               [&model](bool on) { model->train(on); }, model->parameters(), x, *target_train,
                               options.epochs_, options.lr_, options.seed_, label);
      if (!best.ok()) return best.status();
      model->eval();
      at::NoGradGuard no_grad;
      const at::Tensor out = model->Forward(grid);
      auto r2 = R2Score(out, *target_grid);
      if (!r2.ok()) return r2.status();
      fr.fits.push_back({d, *r2, ToVector(out), *best});
      points.push_back({d, *r2});
      if (progress) progress(label + ": R2 " + std::to_string(*r2));
    }
    if (options.full_) {
      torch::jit::Module full = prefit.deepcopy();
      auto full_forward = [&full](const at::Tensor& in) { return full.forward({in}).toTensor(); };
      auto best = FitFullBatch(full_forward, [&full](bool on) { full.train(on); }, MakeParametersTrainable(full), x,
                               *target_train, options.epochs_, options.pretrain_lr_, options.seed_, name + " full");
      if (!best.ok()) return best.status();
      full.eval();
      at::NoGradGuard no_grad;
      const at::Tensor out = full_forward(grid);
      auto r2 = R2Score(out, *target_grid);
      if (!r2.ok()) return r2.status();
      fr.fits.push_back({std::nullopt, *r2, ToVector(out), *best});
      if (progress) progress(name + " full: R2 " + std::to_string(*r2));
    }

    // 3. Where R²(d) first reaches the threshold.
    if (!points.empty()) {
      auto crossing = FindThresholdCrossing(points, options.threshold_);
      if (!crossing.ok()) return crossing.status();
      fr.crossing = *crossing;
    } else {
      fr.crossing.threshold = options.threshold_;
    }
    result.functions.push_back(std::move(fr));
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

}  // namespace

StatusOr<double> DimComplexityFunction(const std::string& name, double x) {
  if (name == "square") return x * x;
  if (name == "cube") return x * x * x;
  if (name == "sine") return std::sin(kPi * x / 2);
  if (name == kDimComplexityTargetName) return std::sin(1.5 * kPi * x / 2);
  return InvalidArgumentError("unknown function '" + name + "'; expected one of " + KnownNames());
}

std::string DimComplexityFormula(const std::string& name) {
  if (name == "square") return "x^2";
  if (name == "cube") return "x^3";
  if (name == "sine") return "sin(pi*x/2)";
  if (name == kDimComplexityTargetName) return "sin(1.5*pi*x/2)";
  return "";
}

Status CheckDimComplexityOptions(const DimComplexityOptions& o) {
  if (o.functions_.empty()) return InvalidArgumentError("functions is empty; expected at least one of " + KnownNames());
  std::set<std::string> seen;
  for (const std::string& name : o.functions_) {
    if (DimComplexityFormula(name).empty() || name == kDimComplexityTargetName) {
      std::string known;
      for (const char* k : kDimComplexityFunctionNames) known += std::string(known.empty() ? "" : ", ") + k;
      return InvalidArgumentError("unknown initial function '" + name + "'; expected one of " + known);
    }
    if (!seen.insert(name).second) return InvalidArgumentError("function '" + name + "' is listed twice");
  }
  if (o.dims_.empty() && !o.full_) return InvalidArgumentError("nothing to run: no dims and full is off");
  std::set<int64_t> dims;
  for (int64_t d : o.dims_) {
    if (d < 1) return InvalidArgumentError("dims contains d = " + std::to_string(d) + "; expected every d >= 1");
    if (!dims.insert(d).second) return InvalidArgumentError("dims lists d = " + std::to_string(d) + " twice");
  }
  for (int64_t w : o.hidden_) {
    if (w < 1) return InvalidArgumentError("hidden width " + std::to_string(w) + "; expected every width >= 1");
  }
  if (o.pretrain_epochs_ < 1) {
    return InvalidArgumentError("pretrain_epochs = " + std::to_string(o.pretrain_epochs_) + "; expected >= 1");
  }
  if (o.epochs_ < 1) return InvalidArgumentError("epochs = " + std::to_string(o.epochs_) + "; expected >= 1");
  const std::pair<double, const char*> rates[] = {{o.pretrain_lr_, "pretrain_lr"}, {o.lr_, "lr"}};
  for (const auto& [rate, name] : rates) {
    if (!std::isfinite(rate) || rate <= 0.0) {
      std::ostringstream os;
      os << name << " = " << rate << "; expected a finite number > 0";
      return InvalidArgumentError(os.str());
    }
  }
  if (o.train_points_ < 4) {
    return InvalidArgumentError("train_points = " + std::to_string(o.train_points_) + "; expected >= 4");
  }
  if (!std::isfinite(o.threshold_)) {
    std::ostringstream os;
    os << "threshold = " << o.threshold_ << "; expected a finite R2";
    return InvalidArgumentError(os.str());
  }
  return OkStatus();
}

StatusOr<DimComplexityResult> RunDimComplexity(const DimComplexityOptions& options,
                                               const std::function<void(const std::string&)>& progress) {
  DWARP_RETURN_IF_ERROR(CheckDimComplexityOptions(options));
  return CatchLibTorchErrors<DimComplexityResult>("dim-complexity simulation",
                                                  [&]() { return Run(options, progress); });
}

}  // namespace dwarp::engine
