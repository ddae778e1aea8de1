// Classifier training: the job the engine runs for one (model, layer, dataset, d, seed) point of an
// intrinsic-dimension or d_warp curve when the objective is classification (DESIGN.md "Jobs").
//
// What classifies:
//   logits      without linear_head, the model's own output is read as the logits [B, classes] (the
//               read-out layer is the network's output layer: the intrinsic-dimension paper's setup);
//   linear head with linear_head, a linear map [F -> classes] on the read-out layer flattened to [B, F],
//               initialised as torch.nn.Linear from the seed (InitLinearHead, the same draw as the
//               encoding head's for the same seed) and trained by its own Adam at head_learning_rate with
//               head_weight_decay; freeze_head keeps it at its initialisation (only the model moves).
// Three modes, one loop (training_loop.h's RunTrainingLoop):
//   subspace  TrainClassifierInSubspace: Adam on SubspaceModel::parameters() (theta_d and the lambdas) at
//             learning_rate, and the head's Adam; the wrapped module stays in eval mode (DESIGN.md).
//   full      TrainClassifierFull: Adam on every parameter of the module at learning_rate ("d = full", the
//             reference that "90% of full" thresholds use), and the head's Adam; the module is in train
//             mode while training, eval mode while evaluating, as in ordinary fine-tuning.
//   d = 0     TrainLinearClassifier: the model is frozen; its features of every split are computed once
//             (feature_cache.h's ComputeFeatures, in eval_batch_size batches) and cached, and only the
//             linear head trains, on those cached features (the head is implied: linear_head is ignored).
// Each epoch visits the training split once in minibatches drawn from a seeded shuffle (SeededStream, so
// the order is the same on every machine), minimising mean cross-entropy (constant or cosine-annealed
// learning rates); then the validation accuracy is measured. The state with the best validation accuracy
// (earliest on ties: theta_d and lambdas, or all parameters, and the head) is restored at the end, and its
// train and test accuracy reported; training stops early after `patience` epochs without improvement.
//
// Deterministic for a given seed, model, data and intra-op thread count (LibTorch's CPU reductions depend
// on how work is split across threads).
//
// Errors: InvalidArgument for bad options or data (naming the value) and for a non-finite loss (training
// diverged: naming the epoch, step and learning rate); Internal for any exception LibTorch throws, with
// its message. Nothing throws out of these functions (STYLE.md rule 4).
// Thread-safety: one call per model at a time; the functions keep no state of their own.
#pragma once

#include <c10/core/Device.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "common/status.h"
#include "worker/engine/datasets/classification_data.h"
#include "worker/engine/subspace_model.h"
#include "worker/engine/train/feature_cache.h"
#include "worker/engine/train/training_loop.h"

namespace dwarp::engine {

// The loop settings (WithLoopSettings, training_loop.h) default to 5 epochs of 128, patience 0 (every
// epoch runs); the validation_score on_epoch sees is the accuracy.
struct ClassifierTrainingOptions : WithLoopSettings<ClassifierTrainingOptions> {
  ClassifierTrainingOptions() : WithLoopSettings(TrainingLoopOptions().epochs(5).batch_size(128).patience(0)) {}

  // Adam's learning rate for what trains in the model (theta_d and lambdas, or all parameters).
  ClassifierTrainingOptions& learning_rate(double v) { learning_rate_ = v; return *this; }
  // Classify through a linear head on the read-out layer rather than the model's own logits (see above).
  ClassifierTrainingOptions& linear_head(bool v) { linear_head_ = v; return *this; }
  // The head's Adam: learning rate (> 0) and weight decay (>= 0, Adam's L2 term as torch.optim.Adam).
  ClassifierTrainingOptions& head_learning_rate(double v) { head_learning_rate_ = v; return *this; }
  ClassifierTrainingOptions& head_weight_decay(double v) { head_weight_decay_ = v; return *this; }
  // The head keeps its initialisation; only the model trains (needs linear_head; not for d = 0).
  ClassifierTrainingOptions& freeze_head(bool v) { freeze_head_ = v; return *this; }
  // Minibatch size for evaluation only (memory, not results).
  ClassifierTrainingOptions& eval_batch_size(int64_t v) { eval_batch_size_ = v; return *this; }
  // d = 0 only: where TrainLinearClassifier sends input batches for the extractor and keeps the cached
  // features (the device the frozen model is on); the head trains there too.
  ClassifierTrainingOptions& feature_device(c10::Device v) { feature_device_ = v; return *this; }

  double learning_rate_ = 1e-3;
  bool linear_head_ = false;
  double head_learning_rate_ = 1e-3;
  double head_weight_decay_ = 0.0;
  bool freeze_head_ = false;
  int64_t eval_batch_size_ = 1000;
  c10::Device feature_device_ = c10::Device(c10::kCPU);
};

// The summary (training_loop.h): at d = 0 numbers_trained and parameters_warped are 0;
// representation_size is the logit count without a head; the head, when there is one, is float32
// [classes, F] / [classes].
struct ClassifierTrainingResult : TrainingSummary {
  double train_accuracy = 0.0;            // of the restored best state, in [0, 1]
  double test_accuracy = 0.0;             // of the restored best state, in [0, 1]
  double best_validation_accuracy = 0.0;  // in [0, 1]; history's validation_score is accuracy too
};

// Trains `model` through its subspace; on success its best theta_d / lambdas are left installed.
StatusOr<ClassifierTrainingResult> TrainClassifierInSubspace(SubspaceModel& model, const ClassifierSplits& data,
                                                             const ClassifierTrainingOptions& options);

// Trains every parameter of `module` in place; on success the best parameters are left in the module,
// which is left in eval mode. Each parameter slot ends up holding a leaf tensor that requires grad: a
// non-leaf slot (as Module::deepcopy() produces from parameters that require grad) is replaced by its
// detached value first.
StatusOr<ClassifierTrainingResult> TrainClassifierFull(torch::jit::Module& module, const ClassifierSplits& data,
                                                       const ClassifierTrainingOptions& options);

// d = 0: trains a linear head on `extractor`'s features of `data` (the frozen model read out at its layer,
// already in eval mode). The extractor sees every example of every split exactly once, in eval_batch_size
// batches, under at::NoGradGuard; the training and scoring that follow use only the cached features.
// numbers_trained and parameters_warped are 0. InvalidArgument for freeze_head (the head is
// all that trains) and as ComputeFeatures for features that are not finite or not the same size.
StatusOr<ClassifierTrainingResult> TrainLinearClassifier(const FeatureExtractor& extractor,
                                                         const ClassifierSplits& data,
                                                         const ClassifierTrainingOptions& options);

}  // namespace dwarp::engine
