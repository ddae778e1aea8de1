#include "worker/engine/datasets/neural_data.h"

#include <ATen/ATen.h>

#include <sstream>

namespace dwarp::engine {
namespace {

std::string ShapeString(const at::Tensor& t) {
  std::ostringstream os;
  os << t.sizes();
  return os.str();
}

Status CheckSplit(const NeuralSplit& split, const std::string& name, int64_t num_targets) {
  if (!split.stimuli.defined() || !split.responses.defined()) {
    return InvalidArgumentError(name + " split: stimuli and responses must both be defined tensors");
  }
  if (split.stimuli.dim() < 1 || !at::isFloatingType(split.stimuli.scalar_type())) {
    return InvalidArgumentError(name + " split: stimuli have shape " + ShapeString(split.stimuli) + " and dtype " +
                                std::string(c10::toString(split.stimuli.scalar_type())) +
                                "; expected a floating tensor [N, ...]");
  }
  if (split.responses.dim() != 2 || split.responses.scalar_type() != at::kFloat) {
    return InvalidArgumentError(name + " split: responses have shape " + ShapeString(split.responses) +
                                " and dtype " + std::string(c10::toString(split.responses.scalar_type())) +
                                "; expected float32 [N, targets]");
  }
  const int64_t n = split.responses.size(0);
  if (split.stimuli.size(0) != n) {
    return InvalidArgumentError(name + " split: " + std::to_string(split.stimuli.size(0)) + " stimuli but " +
                                std::to_string(n) + " response rows; expected equal counts");
  }
  if (static_cast<int64_t>(split.stimulus_ids.size()) != n) {
    return InvalidArgumentError(name + " split: " + std::to_string(split.stimulus_ids.size()) +
                                " stimulus ids for " + std::to_string(n) + " stimuli; expected one id per stimulus");
  }
  if (split.responses.size(1) != num_targets) {
    return InvalidArgumentError(name + " split: responses have " + std::to_string(split.responses.size(1)) +
                                " columns but the data names " + std::to_string(num_targets) + " targets");
  }
  if (n > 0) {
    const at::Tensor bad = at::logical_not(at::isfinite(split.responses)).nonzero();
    if (bad.size(0) > 0) {
      const int64_t row = bad[0][0].item<int64_t>();
      const int64_t col = bad[0][1].item<int64_t>();
      std::ostringstream os;
      os << name << " split: response at row " << row << " (stimulus '" << split.stimulus_ids[row] << "'), column "
         << col << " is " << split.responses[row][col].item<float>() << "; expected finite values";
      return InvalidArgumentError(os.str());
    }
  }
  return OkStatus();
}

}  // namespace

Status CheckNeuralData(const NeuralData& data) {
  const int64_t targets = data.num_targets();
  DWARP_RETURN_IF_ERROR(CheckSplit(data.train, "train", targets));
  DWARP_RETURN_IF_ERROR(CheckSplit(data.validation, "validation", targets));
  DWARP_RETURN_IF_ERROR(CheckSplit(data.test, "test", targets));
  const at::IntArrayRef shape = data.train.stimuli.sizes().slice(1);
  for (const auto* split : {&data.validation, &data.test}) {
    if (split->stimuli.sizes().slice(1) != shape) {
      return InvalidArgumentError(std::string(split == &data.validation ? "validation" : "test") +
                                  " split: stimuli have shape " + ShapeString(split->stimuli) +
                                  " but the train split's are " + ShapeString(data.train.stimuli) +
                                  "; expected the same shape after the first dimension");
    }
  }
  if (data.noise_ceiling.defined()) {
    if (data.noise_ceiling.dim() != 1 || data.noise_ceiling.size(0) != targets ||
        data.noise_ceiling.scalar_type() != at::kFloat) {
      return InvalidArgumentError("noise ceiling has shape " + ShapeString(data.noise_ceiling) + " and dtype " +
                                  std::string(c10::toString(data.noise_ceiling.scalar_type())) +
                                  "; expected float32 [" + std::to_string(targets) + "] (one entry per target)");
    }
  }
  return OkStatus();
}

}  // namespace dwarp::engine
