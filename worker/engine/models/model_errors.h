// Internal to worker/engine/models: the one wording of "unknown arch/layer" errors.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace dwarp::engine::models_internal {

// "a, b, c"
inline std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// InvalidArgument: "unknown read-out layer 'x' for resnet18; valid layers: maxpool, layer1, ..."
inline Status UnknownLayerError(const std::string& model, const std::string& layer,
                                const std::vector<std::string>& valid) {
  return InvalidArgumentError("unknown read-out layer '" + layer + "' for " + model + "; valid layers: " +
                              JoinNames(valid));
}

}  // namespace dwarp::engine::models_internal
