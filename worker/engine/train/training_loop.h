// The epoch loop every dwarp job trains with, whatever its objective (classification, encoding):
// minibatches from a seeded shuffle (SeededStream: the same order on every machine), one Adam optimiser
// per parameter group (each its own learning rate and weight decay, as the research code trains theta_d
// and the readout head), an optional cosine schedule, a validation score after every epoch (higher is
// better), early stopping with patience and min_delta, and the best state restored at the end.
//
// The loop knows nothing about models or data: the caller supplies the minibatch loss and the validation
// score as functions. Exceptions from those functions are the caller's to catch (at its job boundary).
// Thread-safety: one loop per set of parameters at a time.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

enum class LearningRateSchedule {
  kConstant,  // the learning rate throughout
  kCosine,    // lr * (1 + cos(pi * step / total_steps)) / 2, per minibatch step, over all `epochs`
  // lr * (step + 1) / steps_per_epoch through the first epoch, then the cosine over the remaining steps:
  // the first Adam steps (each coordinate moves by about the full rate, whatever its gradient) cannot
  // throw a well-started model (a ridge-fitted head) far from its start.
  kWarmupCosine,
};

struct EpochRecord {
  int64_t epoch = 0;               // 1-based
  double train_loss = 0.0;         // mean minibatch loss over the epoch
  double validation_score = 0.0;   // accuracy (classification) or R^2 (encoding)
  bool improved = false;           // a new best validation score (by more than min_delta)
  double seconds = 0.0;            // wall time of this epoch, evaluation included
};

struct ParameterGroup {
  std::vector<at::Tensor> parameters;  // leaf tensors that require grad
  double learning_rate = 1e-3;         // > 0
  double weight_decay = 0.0;           // >= 0, Adam's L2 term (as torch.optim.Adam)
};

struct TrainingProblem {
  int64_t train_size = 0;              // rows of the training split, >= 1
  std::vector<ParameterGroup> groups;  // at least one non-empty group
  // Mean loss over the training rows `rows` (int64 [B], on the CPU), differentiable in the groups'
  // parameters; index tensors on another device with SelectRows or RowIndexOn. Called in training mode with
  // gradients enabled. A non-finite loss stops training with an error.
  std::function<StatusOr<at::Tensor>(const at::Tensor& rows)> batch_loss;
  // Score of the current state on the validation split (higher is better). Called in eval mode.
  std::function<StatusOr<double>()> validation_score;
  // Switches what trains between training and eval behaviour.
  std::function<void(bool training)> set_training;
  // Names the minibatch-order stream (with the seed), so different jobs draw different orders.
  std::string shuffle_name = "training-loop/minibatch-order";
};

struct TrainingLoopOptions {
  TrainingLoopOptions& epochs(int64_t v) { epochs_ = v; return *this; }
  TrainingLoopOptions& batch_size(int64_t v) { batch_size_ = v; return *this; }
  // Stop after this many epochs without improvement; 0: always run every epoch.
  TrainingLoopOptions& patience(int64_t v) { patience_ = v; return *this; }
  // An epoch improves when its score beats the best by more than this (>= 0).
  TrainingLoopOptions& min_delta(double v) { min_delta_ = v; return *this; }
  // Applies to every group's learning rate; total_steps counts every epoch even if training stops early.
  TrainingLoopOptions& schedule(LearningRateSchedule v) { schedule_ = v; return *this; }
  TrainingLoopOptions& seed(uint64_t v) { seed_ = v; return *this; }
  // Called after every epoch on the calling thread (progress reporting, metric streaming).
  TrainingLoopOptions& on_epoch(std::function<void(const EpochRecord&)> v) { on_epoch_ = std::move(v); return *this; }
  // Polled on the calling thread before every minibatch (cooperative cancellation: a worker whose job was
  // cancelled or whose lease was lost). Returning true ends the loop with a Cancelled status. Must be cheap.
  TrainingLoopOptions& should_stop(std::function<bool()> v) { should_stop_ = std::move(v); return *this; }

  int64_t epochs_ = 5;
  int64_t batch_size_ = 128;
  int64_t patience_ = 0;
  double min_delta_ = 0.0;
  LearningRateSchedule schedule_ = LearningRateSchedule::kConstant;
  uint64_t seed_ = 0;
  std::function<void(const EpochRecord&)> on_epoch_;
  std::function<bool()> should_stop_;
};

struct TrainingLoopResult {
  int64_t best_epoch = 0;  // 1-based
  int64_t epochs_run = 0;
  double best_validation_score = 0.0;
  std::vector<EpochRecord> history;
};

// What every trainer reports about its run, whatever the objective or readout: the results of
// encoding_training.h, classifier_training.h and readout_training.h extend it with their scores, so that a
// job (worker/job_runner.cpp) copies one summary from whichever trainer ran.
struct TrainingSummary {
  bool full = false;                    // all model parameters trained (d = full)
  int64_t numbers_trained = 0;          // d (subspace), D (full), 0 (d = 0); the readout head is not counted
  int64_t parameters_warped = 0;        // D: the warped parameters (subspace) or all (full); 0 at d = 0,
                                        // where the trainer sees features only (the caller knows its model)
  int64_t representation_size = 0;     // F: the read-out layer's size
  int64_t best_epoch = 0;               // 1-based epoch of the restored state; 0 when no epoch was kept
                                        // (a closed-form ridge fit, or a ridge-initialised start no epoch beat)
  int64_t epochs_run = 0;               // 0 for a closed-form fit
  double seconds = 0.0;                 // wall time of the trainer call
  std::vector<EpochRecord> history;     // one record per epoch run
  // The restored readout head as torch.nn.Linear holds it, on the CPU: W [outputs, F] and b [outputs]
  // (float32; float64 for a ridge fit). Undefined when there is no head (a classifier reading its logits).
  at::Tensor head_weight;
  at::Tensor head_bias;

  // Takes the loop's best epoch, epochs run and history.
  void RecordLoop(TrainingLoopResult loop) {
    best_epoch = loop.best_epoch;
    epochs_run = loop.epochs_run;
    history = std::move(loop.history);
  }
};

// InvalidArgument naming the value for bad options or an empty problem, and for a non-finite loss
// (naming the epoch, step and learning rates); Cancelled ("cancelled: ...") when should_stop returned true,
// with the parameters left wherever training stopped. On success the best state is left in the groups'
// parameters and set_training(false) has been called.
StatusOr<TrainingLoopResult> RunTrainingLoop(const TrainingProblem& problem, const TrainingLoopOptions& options);

// InvalidArgument naming the field when the loop's options are out of range.
Status CheckTrainingLoopOptions(const TrainingLoopOptions& options);

// The loop settings a trainer's options embed (`loop_`, one TrainingLoopOptions), with chained setters
// declared once for every trainer: the encoding, classifier, SGD readout and RSA trainers' options derive
// from WithLoopSettings<TheirOptions> and pass their own defaults. The trainer hands `loop_` to
// RunTrainingLoop as it is.
template <typename Derived>
struct WithLoopSettings {
  Derived& epochs(int64_t v) { loop_.epochs(v); return self(); }
  Derived& batch_size(int64_t v) { loop_.batch_size(v); return self(); }
  Derived& patience(int64_t v) { loop_.patience(v); return self(); }
  Derived& min_delta(double v) { loop_.min_delta(v); return self(); }
  Derived& schedule(LearningRateSchedule v) { loop_.schedule(v); return self(); }
  // Seed of the minibatch order (and of the trainer's head initialisation).
  Derived& seed(uint64_t v) { loop_.seed(v); return self(); }
  Derived& on_epoch(std::function<void(const EpochRecord&)> v) { loop_.on_epoch(std::move(v)); return self(); }
  Derived& should_stop(std::function<bool()> v) { loop_.should_stop(std::move(v)); return self(); }
  // All of them at once.
  Derived& loop(TrainingLoopOptions v) { loop_ = std::move(v); return self(); }

  TrainingLoopOptions loop_;

 protected:
  explicit WithLoopSettings(TrainingLoopOptions defaults) : loop_(std::move(defaults)) {}

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
};

// Prepares every parameter of `module` for direct ("d = full") training and returns them: each slot ends
// up holding a leaf tensor that requires grad. Module::deepcopy() gives parameters that are clones of the
// originals (non-leaf tensors with grad history when the originals require grad), which Adam refuses, so
// such a slot is replaced by its detached value (same values, own autograd identity).
std::vector<at::Tensor> MakeParametersTrainable(torch::jit::Module& module);

// A linear head [in -> out] initialised as torch.nn.Linear (weight [out, in] then bias [out], both
// U(-1/sqrt(in), 1/sqrt(in))) from a CPU generator seeded with `seed`; CPU tensors of `dtype`.
std::pair<at::Tensor, at::Tensor> InitLinearHead(int64_t in, int64_t out, uint64_t seed,
                                                 at::ScalarType dtype = at::kFloat);

// `rows` (an int64 index, e.g. the loop's minibatch rows, which live on the CPU) on `source`'s device, for
// indexing `source`: a CUDA tensor refuses a CPU index ("Expected all tensors to be on the same device").
// `rows` itself when it is there already, otherwise a copy (synchronous when it comes from the CPU).
at::Tensor RowIndexOn(const at::Tensor& source, const at::Tensor& rows);

// source.index_select(0, rows) with `rows` moved to `source`'s device first (RowIndexOn): the rows of
// `source` wherever it lives. Index several tensors on one device with one RowIndexOn instead.
at::Tensor SelectRows(const at::Tensor& source, const at::Tensor& rows);

// Runs `body` (returning StatusOr<T>), turning anything LibTorch throws into an Internal status naming
// `what` (STYLE.md rule 4: catch at the job boundary).
template <typename T, typename Body>
StatusOr<T> CatchLibTorchErrors(const std::string& what, Body&& body) {
  try {
    return body();
  } catch (const c10::Error& e) {
    return InternalError(what + " failed in LibTorch: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return InternalError(what + " failed in LibTorch: " + e.what());
  }
}

}  // namespace dwarp::engine
