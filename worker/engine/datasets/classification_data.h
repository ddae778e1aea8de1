// ClassificationData: labelled examples held in memory, the form every classification dataset loader
// returns and the classifier trainer consumes.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "common/status.h"

namespace dwarp::engine {

struct ClassificationData {
  at::Tensor inputs;        // floating point [N, ...], e.g. images float32 [N, C, H, W] in [0, 1]
  at::Tensor labels;        // int64 [N], each in [0, num_classes)
  int64_t num_classes = 0;  // >= 1

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// Rows [begin, begin + count) of `data` as views (no copy). Requires 0 <= begin, count >= 0 and
// begin + count <= data.size() (programmer error otherwise: checked with TORCH_CHECK, which throws).
ClassificationData SliceRows(const ClassificationData& data, int64_t begin, int64_t count);

// OK when `data` satisfies the contract above; otherwise InvalidArgument whose message starts with `what`
// (e.g. "validation split") and names the bad shape, dtype or label.
Status CheckClassificationData(const ClassificationData& data, const std::string& what);

}  // namespace dwarp::engine
