// Internal to worker/engine/train: argument checks shared by the metrics and the readouts, so that every
// one of them names a bad tensor the same way. Not part of the engine's public surface.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "common/status.h"

namespace dwarp::engine::internal {

// "[3, 4] float" style description of a tensor, for messages.
std::string DescribeTensor(const at::Tensor& t);

// OK when `t` is a defined floating-point 2-D tensor; otherwise InvalidArgument naming `name`, the
// shape/dtype found and what was expected.
Status CheckFloatingMatrix(const at::Tensor& t, const std::string& name);

// OK when every element of `t` (any shape) is finite; otherwise InvalidArgument naming `name`, the value
// and the index of the first non-finite element ("row 3, column 7" for a matrix).
Status CheckFinite(const at::Tensor& t, const std::string& name);

}  // namespace dwarp::engine::internal
