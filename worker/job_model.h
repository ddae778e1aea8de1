// The model of a job and the subspace it trains in, built from the spec's model block (common/job_spec.h):
// the one place that turns a ModelSpec into engine options, for the job's own model and for a synthetic
// brain's teacher alike.
// Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>

#include "common/job_spec.h"
#include "common/status.h"
#include "worker/engine/models/model_registry.h"
#include "worker/engine/subspace_model.h"

namespace dwarp::worker {

// CreateModel (models/model_registry.h) with the block's arch, layer, weights, input size, hidden widths
// and model.seed, else `seed`; num_classes > 0 sizes a built-in classifier's output. On the CPU, in the
// state CreateModel leaves it. Errors are CreateModel's, prefixed with the arch and layer.
StatusOr<engine::ReadoutModel> BuildJobModel(const ModelSpec& model, uint64_t seed, int64_t num_classes = 0);

// model.projection as the engine's mode.
engine::ProjectionMode ProjectionModeOf(const ModelSpec& model);

// The subspace of a d > 0 job: d, train.seed, the model's warped parameters, the layer groups (the
// spec's, else the model's) and the projection.
engine::SubspaceOptions SubspaceOptionsOf(const JobSpec& spec, const engine::ReadoutModel& model);

}  // namespace dwarp::worker
