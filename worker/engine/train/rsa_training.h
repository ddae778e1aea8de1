// Representational similarity as the training objective: no readout head; theta_d (and the lambdas) move
// so that the model's representational dissimilarity matrix (RDM) over the stimuli matches the brain's, and
// d counts every parameter that changes.
//
//   RDM     correlation distance between stimuli: rdm[i][j] = 1 - r(x_i, x_j), r the Pearson correlation
//           of two stimuli's F features (the model) or T responses (the brain); a stimulus whose values
//           are all equal correlates 0 with every other
//   loss    1 - r(upper triangle of the model's RDM, upper triangle of the brain's), over each minibatch
//           (batch_size >= 3): differentiable in the model's representation, 0 when the two RDMs are
//           equal up to a positive scale and offset (e.g. the same representation)
//   score   r of the two upper triangles over a split's stimuli, higher is better; at most
//           max_rdm_stimuli stimuli of a split (its first ones, in order) so that its RDM stays in memory
//
// TrainRsaInSubspace runs the training loop (training_loop.h) with Adam on theta_d and the lambdas at
// learning_rate, scored on the validation split after every epoch; the starting state (theta_d = 0: the
// unwarped model) is scored first and kept when no epoch beats it by more than min_delta, so training
// never ends below the d = 0 score. ScoreRsa is the d = 0 job: the frozen model's scores.
//
// Errors: InvalidArgument naming the value for bad options, too few stimuli (a split needs 3) or a
// diverging run; Internal for any exception LibTorch throws. Nothing throws out of these functions.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <functional>

#include "common/status.h"
#include "worker/engine/datasets/neural_data.h"
#include "worker/engine/subspace_model.h"
#include "worker/engine/train/training_loop.h"

namespace dwarp::engine {

// [B, B] correlation distances between the rows of `x` [B, K] (B >= 2), in x's dtype and on its device;
// differentiable.
at::Tensor CorrelationDistanceRdm(const at::Tensor& x);

// 1 - r(upper triangles of the RDMs of `representation` [B, F] and `responses` [B, T]) as a scalar
// tensor, differentiable in `representation`. B >= 3.
at::Tensor RsaLoss(const at::Tensor& representation, const at::Tensor& responses);

// The score: r(upper triangles) for N >= 3 stimuli, in double precision.
StatusOr<double> RsaScore(const at::Tensor& representation, const at::Tensor& responses);

// The loop settings (WithLoopSettings, training_loop.h) default to 20 epochs of 64 (>= 3: the RDM of a
// minibatch needs three stimuli), patience 5; the validation_score on_epoch sees is the RSA score.
struct RsaTrainingOptions : WithLoopSettings<RsaTrainingOptions> {
  RsaTrainingOptions() : WithLoopSettings(TrainingLoopOptions().epochs(20).batch_size(64).patience(5)) {}

  // Adam's rate for theta_d and the lambdas (> 0).
  RsaTrainingOptions& learning_rate(double v) { learning_rate_ = v; return *this; }
  RsaTrainingOptions& eval_batch_size(int64_t v) { eval_batch_size_ = v; return *this; }
  RsaTrainingOptions& max_rdm_stimuli(int64_t v) { max_rdm_stimuli_ = v; return *this; }

  double learning_rate_ = 1e-2;
  int64_t eval_batch_size_ = 256;   // >= 1: stimuli per forward pass when scoring
  int64_t max_rdm_stimuli_ = 2000;  // >= 3: stimuli per split in a score's RDM
};

struct RsaScores {
  double train = 0.0;
  double validation = 0.0;
  double test = 0.0;
};

// The summary (training_loop.h; no head) with the RSA score of every split; best_epoch 0: the unwarped
// starting state was kept.
struct RsaTrainingResult : TrainingSummary {
  RsaScores scores;
};

// Trains `model` through its subspace; on success its best theta_d / lambdas are left installed.
StatusOr<RsaTrainingResult> TrainRsaInSubspace(SubspaceModel& model, const NeuralData& data,
                                               const RsaTrainingOptions& options);

// The d = 0 job: the scores of `module` as it is (eval mode, no gradients).
StatusOr<RsaTrainingResult> ScoreRsa(const torch::jit::Module& module, const NeuralData& data,
                                     const RsaTrainingOptions& options);

// InvalidArgument naming the field when an option is out of range.
Status CheckRsaTrainingOptions(const RsaTrainingOptions& options);

}  // namespace dwarp::engine
