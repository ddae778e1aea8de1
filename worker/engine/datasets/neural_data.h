// NeuralData: stimuli and the neural responses they evoked, split into train / validation / test, the
// form every encoding (regression) dataset loader returns and the regression trainer consumes.
//
// Stimuli are decoded once per job and held in memory (not re-read every epoch): images as float32
// [N, 3, H, W] after resize and normalisation, or any floating tensor [N, ...] for datasets that ship
// stimuli as arrays. Responses are float32 [N, targets] (voxels or neuroids), finite.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

// What a loader does when a response is NaN or infinite: refuse the data (naming the stimulus and target),
// or drop every target (neuroid / voxel) that has one, saying how many in NeuralData::description.
enum class NanResponses { kRefuse, kDropTargets };

struct NeuralSplit {
  at::Tensor stimuli;                     // floating [N, ...]
  at::Tensor responses;                   // float32 [N, targets]
  std::vector<std::string> stimulus_ids;  // N entries (image names or ids, as the dataset calls them)

  int64_t size() const { return responses.defined() ? responses.size(0) : 0; }
};

struct NeuralData {
  NeuralSplit train;
  NeuralSplit validation;
  NeuralSplit test;
  std::vector<std::string> target_names;  // one per response column (neuroid / voxel ids)
  at::Tensor noise_ceiling;               // optional float32 [targets]; undefined when the data has none
  std::string description;                // e.g. "majaj_hong IT: 5760 images x 168 neuroids"

  int64_t num_targets() const { return static_cast<int64_t>(target_names.size()); }
};

// OK when every split satisfies the contract above, splits agree on the stimulus shape and the number of
// targets, and the noise ceiling (if any) has one entry per target; otherwise InvalidArgument naming the
// split and the bad shape, dtype, count or the first non-finite response (row and column).
Status CheckNeuralData(const NeuralData& data);

}  // namespace dwarp::engine
