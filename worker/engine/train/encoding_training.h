// Encoding training: the job for one (model, layer, dataset, d, seed) point of a d_warp curve when the
// objective is regression (DESIGN.md "Jobs").
//
//   representation  the model maps stimuli [B, ...] to its read-out layer, flattened to [B, F]
//   head            a linear map [F -> T] (Y = X W + b), initialised as torch.nn.Linear from the seed
//   loss            mean squared error over the batch and all targets
//   subspace, d > 0 TrainEncoderInSubspace: Adam on theta_d and the lambdas at learning_rate, and a second
//                   Adam on the head at head_learning_rate with head_weight_decay; the wrapped module stays
//                   in eval mode
//   full, d = full  TrainEncoderFull: Adam on every module parameter at learning_rate (no weight decay)
//                   and on the head as above; the module in train mode while training
//   prefit_warped   TrainPrefitWarpedEncoder: the head is fitted first (as head_init kRidge), then network
//                   and head are one module (models/linear_head.h) warped through one subspace: theta_d
//                   moves the head's entries too (they count in D), and the head has no optimiser of its
//                   own (head_learning_rate, head_weight_decay unused). With layer groups the head is a
//                   group of its own. The ridge start competes with the epochs as with head_init kRidge.
//   freeze_head     the head keeps its initialisation and only the model moves
//   head_init       kDefault: the head starts as torch.nn.Linear from the seed (the research code).
//                   kRidge: before the first epoch the head is set to the closed-form ridge readout
//                   (ridge_readout.h's FitRidgeCV, default alpha grid, one alpha for all targets chosen on
//                   the validation split) of the features the model gives in its initial state, computed
//                   in eval mode without gradients in eval_batch_size batches. With theta_d = 0 (or the
//                   untouched module, for full) these are the unwarped model's features, so the job starts
//                   exactly where the d = 0 ridge readout ends (W [F, T] is stored transposed, as the head's
//                   [T, F] weight, in the model's dtype). With freeze_head the head stays there.
//                   The initial state then also competes with the epochs for "best": the training loop
//                   scores only after each epoch, so it is scored here before the first epoch, and when no
//                   epoch beats it by more than min_delta it is restored (best_epoch 0), so training can only
//                   improve on the d = 0 ridge readout's validation R^2. (The history's `improved` flags
//                   still compare epochs with each other only. Keeping the start costs one more copy of
//                   what trains: theta_d and lambdas, or, for full training, every module parameter.)
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
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "worker/engine/datasets/neural_data.h"
#include "worker/engine/subspace_model.h"
#include "worker/engine/train/metrics.h"
#include "worker/engine/train/ridge_readout.h"
#include "worker/engine/train/training_loop.h"

namespace dwarp::engine {

enum class HeadInit {
  kDefault,  // torch.nn.Linear's initialisation from the seed
  kRidge,    // the closed-form ridge readout of the initial model's features (see above)
};

// The loop settings (WithLoopSettings, training_loop.h) default to 20 epochs of 64, patience 5; the
// validation_score on_epoch sees is R^2.
struct EncodingTrainingOptions : WithLoopSettings<EncodingTrainingOptions> {
  EncodingTrainingOptions() : WithLoopSettings(TrainingLoopOptions().epochs(20).batch_size(64).patience(5)) {}

  // Adam's rate for what trains in the model: theta_d and the lambdas, or (full) every module parameter.
  EncodingTrainingOptions& learning_rate(double v) { learning_rate_ = v; return *this; }
  // The head's Adam: learning rate and weight decay (Adam's L2 term, as torch.optim.Adam).
  EncodingTrainingOptions& head_learning_rate(double v) { head_learning_rate_ = v; return *this; }
  EncodingTrainingOptions& head_weight_decay(double v) { head_weight_decay_ = v; return *this; }
  EncodingTrainingOptions& freeze_head(bool v) { freeze_head_ = v; return *this; }
  EncodingTrainingOptions& head_init(HeadInit v) { head_init_ = v; return *this; }
  // The ridge fit of head_init kRidge and of TrainPrefitWarpedEncoder (alphas, per target, folds).
  EncodingTrainingOptions& head_ridge(RidgeOptions v) { head_ridge_ = std::move(v); return *this; }
  // Stimuli per forward pass while scoring (memory, not results).
  EncodingTrainingOptions& eval_batch_size(int64_t v) { eval_batch_size_ = v; return *this; }

  double learning_rate_ = 1e-2;
  double head_learning_rate_ = 1e-3;
  double head_weight_decay_ = 0.0;
  bool freeze_head_ = false;
  HeadInit head_init_ = HeadInit::kDefault;
  RidgeOptions head_ridge_;
  int64_t eval_batch_size_ = 256;
};

// The summary (training_loop.h) with the head float32 [T, F] / [T]; best_epoch 0: the ridge-initialised
// starting state was kept.
struct EncodingTrainingResult : TrainingSummary {
  RegressionScores train;
  RegressionScores validation;
  RegressionScores test;
  // head_init kRidge only (NaN otherwise): the ridge alpha the head started from, and the validation R^2
  // of the starting state (the ridge head on the initial model's features, as the loop scores it).
  double head_init_alpha = std::numeric_limits<double>::quiet_NaN();
  double head_init_validation_r2 = std::numeric_limits<double>::quiet_NaN();
};

// Trains `model` through its subspace; on success its best theta_d / lambdas are left installed.
StatusOr<EncodingTrainingResult> TrainEncoderInSubspace(SubspaceModel& model, const NeuralData& data,
                                                        const EncodingTrainingOptions& options);

// readout prefit_warped: fits the ridge head on `module`'s features, then trains module + head through a
// subspace made by `subspace` (its warp prefixes and layer groups name `module`'s parameters; the head is
// added). The result's head_weight / head_bias are the head as it ends (theta_d's share included), and
// parameters_warped (D) counts the head. `module` itself is left untouched.
StatusOr<EncodingTrainingResult> TrainPrefitWarpedEncoder(const torch::jit::Module& module,
                                                          const SubspaceOptions& subspace, const NeuralData& data,
                                                          const EncodingTrainingOptions& options);

// Trains every parameter of `module` in place; on success the best parameters are left in the module,
// which is left in eval mode.
StatusOr<EncodingTrainingResult> TrainEncoderFull(torch::jit::Module& module, const NeuralData& data,
                                                  const EncodingTrainingOptions& options);

}  // namespace dwarp::engine
