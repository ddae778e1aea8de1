#include "worker/engine/datasets/classification_data.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <sstream>

namespace dwarp::engine {

ClassificationData SliceRows(const ClassificationData& data, int64_t begin, int64_t count) {
  TORCH_CHECK(begin >= 0 && count >= 0 && begin + count <= data.size(), "SliceRows: rows [", begin, ", ",
              begin + count, ") outside the ", data.size(), " examples");
  return {data.inputs.narrow(0, begin, count), data.labels.narrow(0, begin, count), data.num_classes};
}

Status CheckClassificationData(const ClassificationData& data, const std::string& what) {
  std::ostringstream os;
  os << what << ": ";
  if (!data.inputs.defined() || !data.labels.defined()) {
    os << "inputs or labels are missing";
    return InvalidArgumentError(os.str());
  }
  if (!at::isFloatingType(data.inputs.scalar_type()) || data.inputs.dim() < 2) {
    os << "inputs are " << data.inputs.scalar_type() << " " << data.inputs.sizes()
       << "; expected a floating-point tensor [N, ...] with at least 2 dimensions";
    return InvalidArgumentError(os.str());
  }
  if (data.labels.scalar_type() != at::kLong || data.labels.dim() != 1) {
    os << "labels are " << data.labels.scalar_type() << " " << data.labels.sizes() << "; expected int64 [N]";
    return InvalidArgumentError(os.str());
  }
  if (data.inputs.size(0) != data.labels.size(0)) {
    os << data.inputs.size(0) << " inputs but " << data.labels.size(0) << " labels; expected equal counts";
    return InvalidArgumentError(os.str());
  }
  if (data.num_classes < 1) {
    os << "num_classes = " << data.num_classes << "; expected >= 1";
    return InvalidArgumentError(os.str());
  }
  if (data.size() == 0) return OkStatus();
  const int64_t min_label = data.labels.min().item<int64_t>();
  const int64_t max_label = data.labels.max().item<int64_t>();
  if (min_label < 0 || max_label >= data.num_classes) {
    const int64_t bad = min_label < 0 ? min_label : max_label;
    const int64_t index = (data.labels == bad).nonzero().select(1, 0).select(0, 0).item<int64_t>();
    os << "label " << bad << " at index " << index << " is outside [0, " << data.num_classes << ")";
    return InvalidArgumentError(os.str());
  }
  return OkStatus();
}

}  // namespace dwarp::engine
