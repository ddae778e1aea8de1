#include "worker/engine/train/tensor_checks.h"

#include <ATen/ATen.h>

#include <cmath>
#include <sstream>

namespace dwarp::engine::internal {

std::string DescribeTensor(const at::Tensor& t) {
  if (!t.defined()) return "an undefined tensor";
  std::ostringstream os;
  os << t.sizes() << " " << t.scalar_type();
  return os.str();
}

Status CheckFloatingMatrix(const at::Tensor& t, const std::string& name) {
  if (t.defined() && t.dim() == 2 && at::isFloatingType(t.scalar_type())) return OkStatus();
  return InvalidArgumentError(name + " is " + DescribeTensor(t) + "; expected a floating-point matrix [rows, columns]");
}

Status CheckFinite(const at::Tensor& t, const std::string& name) {
  if (!t.defined() || t.numel() == 0) return OkStatus();
  // Fast path without a mask the size of `t` (feature caches run to gigabytes): a non-finite element
  // makes the float64 sum non-finite, and a float64 sum of finite float32 values cannot overflow.
  if (std::isfinite(t.sum(at::kDouble).item<double>())) return OkStatus();
  const at::Tensor finite = at::isfinite(t);
  if (finite.all().item<bool>()) return OkStatus();  // finite float64 values whose sum overflowed
  // The first non-finite element in row-major order.
  const at::Tensor flat_index = finite.reshape({-1}).logical_not().nonzero().select(1, 0)[0];
  int64_t index = flat_index.item<int64_t>();
  const double value = t.reshape({-1})[index].item<double>();
  std::ostringstream os;
  os << name << " has the non-finite value " << value << " at ";
  if (t.dim() == 2) {
    os << "row " << index / t.size(1) << ", column " << index % t.size(1);
  } else {
    os << "flat index " << index;
  }
  os << " (0-based); expected finite numbers";
  return InvalidArgumentError(os.str());
}

}  // namespace dwarp::engine::internal
