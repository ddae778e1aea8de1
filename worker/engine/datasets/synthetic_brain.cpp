#include "worker/engine/datasets/synthetic_brain.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <sstream>

#include "worker/engine/seeded_random.h"
#include "worker/engine/subspace_model.h"
#include "worker/engine/train/classifier_training.h"

namespace dwarp::engine {
namespace {

Status CheckOptions(const SyntheticBrainOptions& o) {
  if (o.targets_ < 1) return InvalidArgumentError("synthetic brain targets = " + std::to_string(o.targets_) + "; expected >= 1");
  if (o.warp_dim_ < 1) {
    return InvalidArgumentError("synthetic brain warp_dim = " + std::to_string(o.warp_dim_) + "; expected >= 1");
  }
  if (!(o.warp_scale_ >= 0.0) || !std::isfinite(o.warp_scale_)) {
    return InvalidArgumentError("synthetic brain warp_scale = " + std::to_string(o.warp_scale_) + "; expected a finite value >= 0");
  }
  if (!(o.noise_ >= 0.0) || !std::isfinite(o.noise_)) {
    return InvalidArgumentError("synthetic brain noise = " + std::to_string(o.noise_) + "; expected a finite value >= 0");
  }
  if (!(o.train_fraction_ > 0.0 && o.val_fraction_ > 0.0 && o.train_fraction_ + o.val_fraction_ < 1.0)) {
    return InvalidArgumentError("synthetic brain fractions train = " + std::to_string(o.train_fraction_) + ", val = " +
                                std::to_string(o.val_fraction_) + "; expected both > 0 with a sum < 1 (the rest is test)");
  }
  if (o.warp_epochs_ < 1) {
    return InvalidArgumentError("synthetic brain warp_epochs = " + std::to_string(o.warp_epochs_) + "; expected >= 1");
  }
  if (!(o.warp_lr_ > 0.0) || !std::isfinite(o.warp_lr_)) {
    return InvalidArgumentError("synthetic brain warp_lr = " + std::to_string(o.warp_lr_) + "; expected a finite value > 0");
  }
  if (!(o.category_weight_ >= 0.0 && o.category_weight_ <= 1.0)) {
    return InvalidArgumentError("synthetic brain categories = " + std::to_string(o.category_weight_) +
                                "; expected a fraction of the signal variance in [0, 1]");
  }
  if (o.category_weight_ > 0.0 && !o.category_labels_.defined()) {
    return InvalidArgumentError("synthetic brain categories = " + std::to_string(o.category_weight_) +
                                " without labels; expected one category per stimulus");
  }
  if (o.batch_size_ < 1) {
    return InvalidArgumentError("synthetic brain batch_size = " + std::to_string(o.batch_size_) + "; expected >= 1");
  }
  return OkStatus();
}

// Labels that name one class in [0, C), C >= 2, for each of n stimuli; returns C. `what` names them.
StatusOr<int64_t> CheckLabels(const at::Tensor& labels, int64_t n, const std::string& what) {
  if (labels.dim() != 1 || labels.size(0) != n || labels.scalar_type() != at::kLong) {
    std::ostringstream os;
    os << "synthetic brain: " << what << " of shape " << labels.sizes() << " and dtype " << labels.scalar_type()
       << "; expected int64 [" << n << "], one class per stimulus";
    return InvalidArgumentError(os.str());
  }
  const int64_t classes = labels.max().item<int64_t>() + 1;
  if (labels.min().item<int64_t>() < 0 || classes < 2) {
    return InvalidArgumentError("synthetic brain: " + what + " span [" + std::to_string(labels.min().item<int64_t>()) +
                                ", " + std::to_string(classes - 1) + "]; expected classes 0 .. C-1 with C >= 2");
  }
  return classes;
}

// Per column: mean 0, std 1 over the rows.
at::Tensor Standardised(const at::Tensor& x) {
  return (x - x.mean(0, /*keepdim=*/true)) / x.std(0, /*unbiased=*/true, /*keepdim=*/true).clamp_min(1e-12);
}

NeuralSplit Slice(const at::Tensor& stimuli, const at::Tensor& responses, const std::vector<std::string>& ids,
                  int64_t begin, int64_t count) {
  NeuralSplit split;
  split.stimuli = stimuli.narrow(0, begin, count);
  split.responses = responses.narrow(0, begin, count);
  split.stimulus_ids.assign(ids.begin() + begin, ids.begin() + begin + count);
  return split;
}

}  // namespace

StatusOr<NeuralData> MakeSyntheticBrain(const torch::jit::Module& teacher, const at::Tensor& stimuli,
                                        std::vector<std::string> stimulus_ids, const SyntheticBrainOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckOptions(options));
  if (!stimuli.defined() || stimuli.dim() < 1 || !at::isFloatingType(stimuli.scalar_type())) {
    return InvalidArgumentError("synthetic brain stimuli must be a floating tensor [N, ...]");
  }
  const int64_t n = stimuli.size(0);
  const int64_t train = static_cast<int64_t>(std::floor(options.train_fraction_ * static_cast<double>(n)));
  const int64_t val = static_cast<int64_t>(std::floor(options.val_fraction_ * static_cast<double>(n)));
  if (train < 1 || val < 1 || n - train - val < 1) {
    return InvalidArgumentError("synthetic brain: " + std::to_string(n) + " stimuli give splits of " +
                                std::to_string(train) + " / " + std::to_string(val) + " / " +
                                std::to_string(n - train - val) + "; expected every split non-empty");
  }
  if (stimulus_ids.empty()) {
    for (int64_t i = 0; i < n; ++i) stimulus_ids.push_back("stimulus_" + std::to_string(i));
  }
  if (static_cast<int64_t>(stimulus_ids.size()) != n) {
    return InvalidArgumentError("synthetic brain: " + std::to_string(stimulus_ids.size()) + " stimulus ids for " +
                                std::to_string(n) + " stimuli; expected one per stimulus");
  }

  // The warped teacher: a SubspaceModel whose theta_d is drawn once and never trained.
  // The warp's projection has a seed of its own, derived from the brain's, so that no candidate trained
  // with SubspaceOptions().seed(s) (a job's seed) draws the very subspace the warp lies in.
  const uint64_t projection_seed = SeededStream(options.seed_, "synthetic-brain/warp-projection").NextU64();
  auto warped = SubspaceModel::Create(
      teacher, SubspaceOptions(options.warp_dim_).seed(projection_seed).warp_prefixes(options.warp_prefixes_)
                   .projection(options.projection_));
  if (!warped.ok()) return warped.status();
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(options.seed_);
  std::string warp_description = "random";
  if (options.warp_labels_.defined()) {
    const at::Tensor& labels = options.warp_labels_;
    auto counted = CheckLabels(labels, n, "warp labels");
    if (!counted.ok()) return counted.status();
    const int64_t classes = *counted;
    auto split = [&](int64_t begin, int64_t count) {
      return ClassificationData{stimuli.narrow(0, begin, count), labels.narrow(0, begin, count), classes};
    };
    const ClassifierSplits splits{split(0, train), split(train, val), split(train + val, n - train - val)};
    const auto cls = ClassifierTrainingOptions()
                         .epochs(options.warp_epochs_)
                         .batch_size(64)
                         .learning_rate(options.warp_lr_)
                         .linear_head(true)
                         .head_learning_rate(1e-2)
                         .seed(projection_seed);
    warped->train();
    auto trained = TrainClassifierInSubspace(*warped, splits, cls);
    if (!trained.ok()) {
      return Status(trained.status().code(), "synthetic brain: training the warp: " + trained.status().message());
    }
    at::NoGradGuard no_grad;
    warped->theta_d().mul_(options.warp_scale_);
    std::ostringstream os;
    os << "trained to classify " << classes << " classes (validation accuracy " << trained->best_validation_accuracy
       << " at epoch " << trained->best_epoch << ")";
    warp_description = os.str();
  } else {
    at::NoGradGuard no_grad;
    warped->theta_d().normal_(0.0, options.warp_scale_, generator);
  }
  at::NoGradGuard no_grad;
  warped->eval();

  std::vector<at::Tensor> batches;
  try {
    for (int64_t begin = 0; begin < n; begin += options.batch_size_) {
      const int64_t count = std::min(options.batch_size_, n - begin);
      batches.push_back(warped->Forward(stimuli.narrow(0, begin, count)).flatten(1).to(at::kDouble));
    }
  } catch (const c10::Error& e) {
    return InvalidArgumentError(std::string("synthetic brain: the teacher failed on the stimuli: ") + e.what_without_backtrace());
  }
  const at::Tensor features = at::cat(batches);
  if (!at::isfinite(features).all().item<bool>()) {
    return InvalidArgumentError("synthetic brain: the warped teacher's representation is not finite; expected a "
                                "smaller warp_scale (got " + std::to_string(options.warp_scale_) + ")");
  }
  const int64_t f = features.size(1);
  const at::Tensor readout =
      at::randn({f, options.targets_}, generator, at::kDouble) / std::sqrt(static_cast<double>(f));
  // Each neuroid's signal is standardised (mean 0, std 1 over the stimuli), as recorded responses usually
  // are, so that training's learning rates mean the same whatever the teacher's scale; R^2 does not change.
  at::Tensor signal = Standardised(at::matmul(features, readout));
  std::string category_description;
  if (options.category_weight_ > 0.0) {
    auto counted = CheckLabels(options.category_labels_, n, "category labels");
    if (!counted.ok()) return counted.status();
    // Drawn after the teacher's readout, so a brain without categories stays what it was.
    const at::Tensor responses_per_class = at::randn({*counted, options.targets_}, generator, at::kDouble);
    const at::Tensor category = Standardised(responses_per_class.index_select(0, options.category_labels_));
    const double w = options.category_weight_;
    signal = Standardised(std::sqrt(1.0 - w) * signal + std::sqrt(w) * category);
    std::ostringstream os;
    os << ", " << w << " of the signal from " << *counted << " categories";
    category_description = os.str();
  }
  const at::Tensor noise = at::randn(signal.sizes(), generator, at::kDouble) * options.noise_;
  const at::Tensor responses = (signal + noise).to(at::kFloat);

  NeuralData data;
  data.train = Slice(stimuli, responses, stimulus_ids, 0, train);
  data.validation = Slice(stimuli, responses, stimulus_ids, train, val);
  data.test = Slice(stimuli, responses, stimulus_ids, train + val, n - train - val);
  for (int64_t t = 0; t < options.targets_; ++t) data.target_names.push_back("neuroid_" + std::to_string(t));
  data.noise_ceiling = at::full({options.targets_}, 1.0 / (1.0 + options.noise_ * options.noise_), at::kFloat);
  std::ostringstream os;
  os << "synthetic brain: " << n << " stimuli x " << options.targets_ << " neuroids, teacher warped at d = "
     << options.warp_dim_ << " (" << warp_description << ", scale " << options.warp_scale_
     << ", " << ProjectionModeName(options.projection_) << " projection)" << category_description << ", noise "
     << options.noise_ << ", seed "
     << options.seed_;
  data.description = os.str();
  DWARP_RETURN_IF_ERROR(CheckNeuralData(data));
  return data;
}

}  // namespace dwarp::engine
