// Encoding training: the job for one (model, layer, dataset, d, seed) point of a d_warp curve when the
// objective is regression (DESIGN.md "Jobs").
//
//   representation  the model maps stimuli [B, ...] to its read-out layer, flattened to [B, F]
//   head            a linear map [F -> T] (Y = X W + b), initialised as torch.nn.Linear from the seed
//   loss            mean squared error over the batch and all targets
//   subspace, d > 0 TrainEncoderInSubspace: Adam on theta_d and the lambdas at low_dim_lr, and a second
//                   Adam on the head at lr with weight_decay; the wrapped module stays in eval mode
//   full, d = full  TrainEncoderFull: Adam on every module parameter at lr (no weight decay) and on the
//                   head at lr with weight_decay; the module in train mode while training
//   freeze_head     the head keeps its initialisation and only the model moves
// After every epoch the validation R^2 (uniform over targets) decides: an improvement by more than
// min_delta is kept, training stops after `patience` epochs without one, and the best state (theta_d,
// lambdas and head, or all parameters and head) is restored before the final scores.
// The d = 0 job (frozen model, cached features) is readout_training.h.
//
// Errors: InvalidArgument for bad options or data (naming the value) and for a diverging run; Internal
// for any exception LibTorch throws. Nothing throws out of these functions (STYLE.md rule 4).
// Deterministic for a given seed, model, data and intra-op thread count.
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "worker/engine/datasets/neural_data.h"
#include "worker/engine/subspace_model.h"
#include "worker/engine/train/metrics.h"
#include "worker/engine/train/training_loop.h"

namespace dwarp::engine {

struct EncodingTrainingOptions {
  EncodingTrainingOptions& lr(double v) { lr_ = v; return *this; }
  EncodingTrainingOptions& low_dim_lr(double v) { low_dim_lr_ = v; return *this; }
  EncodingTrainingOptions& weight_decay(double v) { weight_decay_ = v; return *this; }
  EncodingTrainingOptions& batch_size(int64_t v) { batch_size_ = v; return *this; }
  EncodingTrainingOptions& max_epochs(int64_t v) { max_epochs_ = v; return *this; }
  EncodingTrainingOptions& patience(int64_t v) { patience_ = v; return *this; }
  EncodingTrainingOptions& min_delta(double v) { min_delta_ = v; return *this; }
  EncodingTrainingOptions& freeze_head(bool v) { freeze_head_ = v; return *this; }
  EncodingTrainingOptions& schedule(LearningRateSchedule v) { schedule_ = v; return *this; }
  // Seed of the head's initialisation and of the minibatch order.
  EncodingTrainingOptions& seed(uint64_t v) { seed_ = v; return *this; }
  // Stimuli per forward pass while scoring (memory, not results).
  EncodingTrainingOptions& eval_batch_size(int64_t v) { eval_batch_size_ = v; return *this; }
  EncodingTrainingOptions& on_epoch(std::function<void(const EpochRecord&)> v) { on_epoch_ = std::move(v); return *this; }
  // Polled before every minibatch; true stops training with a Cancelled status (training_loop.h).
  EncodingTrainingOptions& should_stop(std::function<bool()> v) { should_stop_ = std::move(v); return *this; }

  double lr_ = 1e-3;          // head (and, for full training, the module)
  double low_dim_lr_ = 1e-2;  // theta_d and the lambdas
  double weight_decay_ = 0.0; // head only
  int64_t batch_size_ = 64;
  int64_t max_epochs_ = 20;
  int64_t patience_ = 5;      // 0: run every epoch
  double min_delta_ = 0.0;
  bool freeze_head_ = false;
  LearningRateSchedule schedule_ = LearningRateSchedule::kConstant;
  uint64_t seed_ = 0;
  int64_t eval_batch_size_ = 256;
  std::function<void(const EpochRecord&)> on_epoch_;  // validation_score is R^2
  std::function<bool()> should_stop_;
};

struct EncodingTrainingResult {
  bool full = false;                    // all parameters trained (no subspace)
  int64_t trained_parameter_count = 0;  // d for a subspace run, D for a full run (the head not counted)
  int64_t model_parameter_count = 0;    // D: the warped parameters (subspace) or all parameters (full)
  int64_t representation_size = 0;      // F
  RegressionScores train;
  RegressionScores validation;
  RegressionScores test;
  int64_t best_epoch = 0;               // 1-based
  int64_t epochs_run = 0;
  double seconds = 0.0;                 // wall time of the whole call
  std::vector<EpochRecord> history;
  at::Tensor head_weight;               // float32 [T, F] of the restored head, CPU
  at::Tensor head_bias;                 // float32 [T]
};

// Trains `model` through its subspace; on success its best theta_d / lambdas are left installed.
StatusOr<EncodingTrainingResult> TrainEncoderInSubspace(SubspaceModel& model, const NeuralData& data,
                                                        const EncodingTrainingOptions& options);

// Trains every parameter of `module` in place; on success the best parameters are left in the module,
// which is left in eval mode.
StatusOr<EncodingTrainingResult> TrainEncoderFull(torch::jit::Module& module, const NeuralData& data,
                                                  const EncodingTrainingOptions& options);

}  // namespace dwarp::engine
