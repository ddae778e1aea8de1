#include "worker/engine/train/feature_cache.h"

#include <ATen/ATen.h>

#include <chrono>
#include <sstream>
#include <string>

#include "worker/engine/train/tensor_checks.h"
#include "worker/engine/train/training_loop.h"

namespace dwarp::engine {

FeatureExtractor FrozenModelExtractor(torch::jit::Module module) {
  module.eval();
  return [module](const at::Tensor& x) mutable { return module.forward({x}).toTensor(); };
}

namespace {

using internal::CheckFinite;
using internal::DescribeTensor;

StatusOr<at::Tensor> ComputeFeaturesOf(const FeatureExtractor& extractor, const at::Tensor& stimuli,
                                       const FeatureCacheOptions& options, const std::string& split) {
  if (options.batch_size_ < 1) {
    return InvalidArgumentError("feature batch_size = " + std::to_string(options.batch_size_) + "; expected >= 1");
  }
  if (!stimuli.defined() || stimuli.dim() < 1 || !at::isFloatingType(stimuli.scalar_type())) {
    return InvalidArgumentError(split + " stimuli are " + DescribeTensor(stimuli) + "; expected floating [N, ...]");
  }
  at::NoGradGuard no_grad;
  const int64_t n = stimuli.size(0);
  at::Tensor features;
  for (int64_t begin = 0; begin < n; begin += options.batch_size_) {
    const int64_t count = std::min(options.batch_size_, n - begin);
    const at::Tensor out = extractor(stimuli.narrow(0, begin, count).to(options.device_));
    if (!out.defined() || out.dim() < 1 || out.size(0) != count || out.numel() == 0) {
      return InvalidArgumentError("the feature extractor maps a batch of " + std::to_string(count) + " " + split +
                                  " stimuli to " + DescribeTensor(out) + "; expected [" + std::to_string(count) +
                                  ", ...] with at least one feature");
    }
    const at::Tensor flat = out.reshape({count, -1});
    if (!features.defined()) {
      features = at::empty({n, flat.size(1)}, flat.options().dtype(at::kFloat));
    } else if (flat.size(1) != features.size(1)) {
      return InvalidArgumentError("the feature extractor gives " + std::to_string(flat.size(1)) + " features for " +
                                  split + " rows " + std::to_string(begin) + ".." + std::to_string(begin + count - 1) +
                                  " but " + std::to_string(features.size(1)) + " for earlier rows");
    }
    features.narrow(0, begin, count).copy_(flat);
  }
  if (!features.defined()) return InvalidArgumentError(split + " split has no stimuli; expected >= 1");
  DWARP_RETURN_IF_ERROR(CheckFinite(features, split + " features"));
  return features;
}

}  // namespace

StatusOr<at::Tensor> ComputeFeatures(const FeatureExtractor& extractor, const at::Tensor& stimuli,
                                     const FeatureCacheOptions& options) {
  return CatchLibTorchErrors<at::Tensor>("computing features",
                                         [&] { return ComputeFeaturesOf(extractor, stimuli, options, "the"); });
}

StatusOr<CachedFeatures> CacheFeatures(const FeatureExtractor& extractor, const NeuralData& data,
                                       const FeatureCacheOptions& options) {
  return CatchLibTorchErrors<CachedFeatures>("computing features", [&]() -> StatusOr<CachedFeatures> {
    const auto start = std::chrono::steady_clock::now();
    CachedFeatures cache;
    const std::tuple<const NeuralSplit*, FeatureSplit*, const char*> splits[] = {
        {&data.train, &cache.train, "training"},
        {&data.validation, &cache.validation, "validation"},
        {&data.test, &cache.test, "test"}};
    for (const auto& [in, out, name] : splits) {
      if (!in->responses.defined() || in->responses.dim() != 2 || !in->stimuli.defined() || in->stimuli.dim() < 1 ||
          in->responses.size(0) != in->stimuli.size(0)) {
        return InvalidArgumentError(std::string(name) + " split has stimuli " + DescribeTensor(in->stimuli) +
                                    " and responses " + DescribeTensor(in->responses) +
                                    "; expected [N, ...] and [N, targets] with the same N");
      }
      auto features = ComputeFeaturesOf(extractor, in->stimuli, options, name);
      if (!features.ok()) return features.status();
      out->features = *features;
      out->responses = in->responses.to(options.device_, at::kFloat);
    }
    cache.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return cache;
  });
}

}  // namespace dwarp::engine
