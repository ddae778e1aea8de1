// The feature cache of the d = 0 path: a frozen model's representation of every stimulus, computed once
// per job and reused by every readout epoch (or by the closed-form ridge), instead of running the model
// again each epoch as the research code's SGD loop does.
//
// A FeatureExtractor maps a stimulus batch [B, ...] to features [B, ...] (flattened here to [B, F]); it is
// the frozen model read out at one layer, already in eval mode. It runs under at::NoGradGuard, in batches,
// in stimulus order, exactly once per stimulus.
//
// Errors (InvalidArgument, naming the value): a batch size < 1, stimuli that are not [N, ...] floating, an
// extractor that returns a different number of rows than it was given or a different feature count for
// different batches, non-finite features (naming the split, row and column), responses that do not match
// their split's stimuli. LibTorch exceptions (from the extractor too) are caught and returned as Internal.
// Thread-safety: one call at a time per extractor; the functions keep no state.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <functional>

#include "common/status.h"
#include "worker/engine/datasets/neural_data.h"

namespace dwarp::engine {

using FeatureExtractor = std::function<at::Tensor(const at::Tensor&)>;

// The frozen model as an extractor: `module` (a handle sharing its parameters) switched to eval mode, its
// forward output as the features. The one way a job reads a model out at d = 0.
FeatureExtractor FrozenModelExtractor(torch::jit::Module module);

struct FeatureCacheOptions {
  // Stimuli per forward call (memory, not results).
  FeatureCacheOptions& batch_size(int64_t v) { batch_size_ = v; return *this; }
  // Where stimulus batches are sent before the forward; the features stay on this device.
  FeatureCacheOptions& device(c10::Device v) { device_ = v; return *this; }

  int64_t batch_size_ = 256;
  c10::Device device_ = c10::Device(c10::kCPU);
};

// One split's cached features and its responses (row i of both is stimulus i).
struct FeatureSplit {
  at::Tensor features;   // float32 [N, F] on the cache device
  at::Tensor responses;  // float32 [N, T] on the cache device

  int64_t size() const { return features.defined() ? features.size(0) : 0; }
};

struct CachedFeatures {
  FeatureSplit train;
  FeatureSplit validation;
  FeatureSplit test;
  double seconds = 0.0;  // wall time spent computing the features

  int64_t num_features() const { return train.features.defined() ? train.features.size(1) : 0; }
  int64_t num_targets() const { return train.responses.defined() ? train.responses.size(1) : 0; }
};

// The extractor applied to every row of `stimuli` [N, ...]: float32 [N, F] on options.device().
StatusOr<at::Tensor> ComputeFeatures(const FeatureExtractor& extractor, const at::Tensor& stimuli,
                                     const FeatureCacheOptions& options = FeatureCacheOptions());

// Features of the three splits of `data`, with the responses alongside.
StatusOr<CachedFeatures> CacheFeatures(const FeatureExtractor& extractor, const NeuralData& data,
                                       const FeatureCacheOptions& options = FeatureCacheOptions());

}  // namespace dwarp::engine
