// A synthetic brain with a known answer: neural responses that are a known nonlinear warp of a teacher
// network's representation of real images, plus noise.
//
//   brain(x)  = teacher'(x) R + noise,   teacher' = teacher with theta = theta_0 + P theta_true
//
// where P is a Fastfood projection of dimension `warp_dim` (SubspaceModel, one projection per tensor,
// seeded by a number drawn from the seed's stream "synthetic-brain/warp-projection", so that it is not
// the subspace a candidate trained with the same seed draws) and theta_true ~ N(0, warp_scale^2) is drawn
// from the seed, R ~ N(0, 1/F) maps the teacher's F
// features to `targets` neuroids, each neuroid's signal is standardised (mean 0, std 1 over the stimuli,
// as recorded responses usually are) and gets Gaussian noise of std `noise`. The teacher itself therefore reaches the brain with a warp of dimension about
// warp_dim, while any other candidate needs more (or never gets there): tests and the quickstart know
// which candidate must come out closest. The expected noise ceiling (the R^2 of the noiseless signal)
// is 1 / (1 + noise^2) for every neuroid and is reported as the data's noise ceiling.
//
// Splits are by the order of `stimuli`: the first train_fraction train, the next val_fraction validate,
// the rest test. Deterministic for a given seed.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "worker/engine/datasets/neural_data.h"
#include "worker/engine/subspace_model.h"

namespace dwarp::engine {

struct SyntheticBrainOptions {
  SyntheticBrainOptions& targets(int64_t v) { targets_ = v; return *this; }
  SyntheticBrainOptions& warp_dim(int64_t v) { warp_dim_ = v; return *this; }
  SyntheticBrainOptions& warp_scale(double v) { warp_scale_ = v; return *this; }
  SyntheticBrainOptions& noise(double v) { noise_ = v; return *this; }
  // Teacher parameters the warp may move (name prefixes as SubspaceOptions); empty: all of them.
  SyntheticBrainOptions& warp_prefixes(std::vector<std::string> v) { warp_prefixes_ = std::move(v); return *this; }
  SyntheticBrainOptions& fractions(double train, double val) { train_fraction_ = train; val_fraction_ = val; return *this; }
  SyntheticBrainOptions& seed(uint64_t v) { seed_ = v; return *this; }
  // How the warp's theta reaches the teacher's parameters (SubspaceOptions::projection).
  SyntheticBrainOptions& projection(ProjectionMode v) { projection_ = v; return *this; }
  SyntheticBrainOptions& batch_size(int64_t v) { batch_size_ = v; return *this; }
  // A trained warp instead of a random one: theta_true is what training the teacher, with a linear head
  // on its representation, to classify `labels` (int64 [N], one class per stimulus, in [0, classes))
  // through the warp's own subspace finds (Adam at warp_lr on theta, batch 64, warp_epochs epochs on the
  // training split, the best epoch by the validation split's accuracy), times warp_scale. The warp then
  // moves the teacher along a direction that matters for what the images show, as learning does, rather
  // than along a random one. Undefined labels (the default): the random warp above.
  SyntheticBrainOptions& trained_warp(at::Tensor labels) { warp_labels_ = std::move(labels); return *this; }
  SyntheticBrainOptions& warp_epochs(int64_t v) { warp_epochs_ = v; return *this; }
  SyntheticBrainOptions& warp_lr(double v) { warp_lr_ = v; return *this; }
  // Category-selective neuroids, as in IT: a fraction `weight` (in [0, 1]) of each neuroid's signal variance
  // is a response to the stimulus's category (`labels`, int64 [N] in [0, C), C >= 2; one random response
  // per category and neuroid), the rest the warped teacher's representation as above. A network reaches
  // the category part only as far as its representation separates the categories, which training through
  // a subspace improves the more the larger d is, as for a classifier's intrinsic dimension.
  SyntheticBrainOptions& categories(at::Tensor labels, double weight) {
    category_labels_ = std::move(labels);
    category_weight_ = weight;
    return *this;
  }


  int64_t targets_ = 64;         // neuroids, >= 1
  int64_t warp_dim_ = 20;        // dimension of the warp applied to the teacher, >= 1
  double warp_scale_ = 1.0;      // std of theta_true's entries, >= 0 (0: no warp, the brain is linear in the teacher)
  double noise_ = 0.3;           // noise std relative to each neuroid's signal std, >= 0
  std::vector<std::string> warp_prefixes_;
  double train_fraction_ = 0.6;  // in (0, 1); train + val < 1
  double val_fraction_ = 0.2;
  uint64_t seed_ = 0;
  ProjectionMode projection_ = ProjectionMode::kPerTensor;
  int64_t batch_size_ = 256;     // stimuli per forward pass while generating
  at::Tensor warp_labels_;       // trained warp only
  int64_t warp_epochs_ = 10;     // >= 1
  double warp_lr_ = 0.05;        // > 0
  at::Tensor category_labels_;   // category-selective neuroids only
  double category_weight_ = 0.0; // in [0, 1]; > 0 needs category_labels_

};

// `teacher` maps a batch of stimuli [B, ...] to a representation (flattened to [B, F]); `stimuli` are the
// real images [N, ...] it sees; `stimulus_ids` names them (empty: "stimulus_0", ...). InvalidArgument,
// naming the value, for bad options, too few stimuli for three non-empty splits, or a teacher output
// that is not finite.
StatusOr<NeuralData> MakeSyntheticBrain(const torch::jit::Module& teacher, const at::Tensor& stimuli,
                                        std::vector<std::string> stimulus_ids, const SyntheticBrainOptions& options);

}  // namespace dwarp::engine
