#include "worker/job_model.h"

#include <string>

namespace dwarp::worker {

StatusOr<engine::ReadoutModel> BuildJobModel(const ModelSpec& m, uint64_t seed, int64_t num_classes) {
  engine::ModelOptions options;
  options.layer(m.layer).seed(m.seed.value_or(seed)).weights(m.weights).hidden(m.hidden);
  if (m.input_channels > 0) options.in_channels(m.input_channels);
  if (m.input_size > 0) options.image_size(m.input_size, m.input_size);
  if (num_classes > 0) options.num_classes(num_classes);
  auto model = engine::CreateModel(ModelArchName(m.arch), options);
  if (!model.ok()) {
    return Status(model.status().code(), "model (arch " + std::string(ModelArchName(m.arch)) + ", layer '" +
                                             m.layer + "'): " + model.status().message());
  }
  return model;
}

engine::ProjectionMode ProjectionModeOf(const ModelSpec& m) {
  switch (m.projection) {
    case Projection::kPerTensor: return engine::ProjectionMode::kPerTensor;
    case Projection::kGlobal: return engine::ProjectionMode::kGlobal;
    case Projection::kReference: return engine::ProjectionMode::kReference;
    case Projection::kSizeWeighted: return engine::ProjectionMode::kSizeWeighted;
  }
  return engine::ProjectionMode::kPerTensor;
}

engine::SubspaceOptions SubspaceOptionsOf(const JobSpec& spec, const engine::ReadoutModel& model) {
  engine::SubspaceOptions sub(spec.d.value);
  sub.seed(spec.train.seed)
      .warp_prefixes(model.warp_prefixes)
      .projection(ProjectionModeOf(spec.model))
      .layer_groups(spec.model.layer_groups.value_or(model.layer_groups));
  return sub;
}

}  // namespace dwarp::worker
