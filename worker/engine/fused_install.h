// FusedInstall: SubspaceModel's warped tensors formed all at once (internal to the engine; SubspaceModel is
// its one user). For targets t with theta_0,t (D_t entries, one flat buffer [D] in target order) and the
// projection of SubspaceModel (a BatchedFastfood over every target, or one FastfoodProjection over all D),
//
//   theta_t = theta_0,t + lambda_g(t) * P_t theta_d      (no multiply without layer groups)
//
// for every t as ONE autograd node, whatever the number of targets: the results are views of one flat
// buffer [D], shaped as the targets; backward takes every target's gradient and returns theta_d's and the
// lambdas'. Same arithmetic as one view, multiply and add per tensor (lambda * delta, then theta_0 + that;
// the gradient times lambda into the projection's transpose), so the values and theta_d's gradient are that
// path's bit for bit; the lambdas' gradients are summed in another order (within float reassociation).
//
// Two ways to run the node, same numbers (the lambdas' gradients up to reassociation):
//  - kPerTarget (the CPU's): an ATen call per target inside the node, writing into pooled flat buffers (no
//    per-call launches to save on a CPU, and no flat temporaries beyond the result).
//  - kFlat (the GPU's): a constant number of operations on flat buffers whatever the number of targets:
//    forward one cat of the batched projection's outputs, with groups an index_select of the lambdas and a
//    multiply, one add; backward one cat of the gradients, with groups a multiply, the transpose, and for
//    the lambdas a multiply, a prefix sum in float64, a gather of the segment ends, a difference and a
//    [T] x [T, G] product (no atomics; a GPU's scan may group its float64 partial sums differently from run
//    to run, which can reach the float32 result only in its last bit, and rarely).
//
// Memory: theta_0 flat [D] (the targets keep views of it); kFlat with groups adds an int64 group index per
// entry [D] and saves the flat delta and scales for backward.
// Thread-safety: immutable after construction; Apply may be called concurrently.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "worker/engine/fastfood_projection.h"

namespace dwarp::engine::internal {

class FusedInstall {
 public:
  enum class Ops { kPerTarget, kFlat };
  // kPerTarget on the CPU, kFlat elsewhere.
  static Ops DefaultOps(const at::Device& device) { return device.is_cpu() ? Ops::kPerTarget : Ops::kFlat; }

  struct Target {
    int64_t offset = 0;          // start in the flat [D] buffers
    std::vector<int64_t> shape;  // the tensor's shape
    int64_t group = -1;          // index into lambdas; -1 for all targets, or none, when there are no groups
  };

  // theta0: [D], the targets' original values concatenated in target order (offsets consecutive);
  // group_count: 0, or the number of lambdas (then every target has a group). Exactly one of batched
  // (target t = its projection t) and global (one projection to all D) is given. Programmer errors throw.
  FusedInstall(at::Tensor theta0, std::vector<Target> targets, int64_t group_count,
               std::optional<BatchedFastfood> batched, std::optional<FastfoodProjection> global,
               Ops ops);

  int64_t target_count() const { return static_cast<int64_t>(targets_.size()); }
  int64_t group_count() const { return group_count_; }
  Ops ops() const { return ops_; }
  const at::Tensor& theta0() const { return theta0_; }  // [D], no gradient

  // lambda * P theta_d for every target, flat [D], without autograd (SubspaceModel::WarpDelta).
  at::Tensor Delta(const at::Tensor& theta, const at::Tensor& lambdas) const;

  // The forward and backward of the autograd node (fused_install.cpp), without autograd. Forward returns
  // the flat result [D] and stores what backward needs in `saved`; Backward returns {grad theta [n],
  // grad lambdas [G] (undefined without groups)} from the targets' gradients (each shaped as its target).
  at::Tensor Forward(const at::Tensor& theta, const at::Tensor& lambdas, std::vector<at::Tensor>& saved) const;
  std::vector<at::Tensor> Backward(const std::vector<at::Tensor>& grads, const at::Tensor& lambdas,
                                   const std::vector<at::Tensor>& saved) const;
  // Target t of a flat [D] buffer, shaped as its tensor (a view).
  at::Tensor Part(const at::Tensor& flat, int64_t t) const;

 private:
  at::Tensor ProjectFlat(const at::Tensor& theta) const;
  std::vector<at::Tensor> ProjectParts(const at::Tensor& theta) const;  // [D_t] each, views
  at::Tensor TransposeFlat(const at::Tensor& flat) const;               // [D] -> [n]
  at::Tensor FlatEmpty(at::ScalarType dtype) const;
  int64_t SizeOf(int64_t t) const { return sizes_[static_cast<size_t>(t)]; }

  at::Tensor theta0_;
  std::vector<Target> targets_;
  std::vector<int64_t> sizes_;
  int64_t total_ = 0;
  int64_t group_count_ = 0;
  std::optional<BatchedFastfood> batched_;
  std::optional<FastfoodProjection> global_;
  Ops ops_;
  // kFlat with groups only:
  at::Tensor element_group_;     // [D] int64: the group of each flat entry
  at::Tensor segment_ends_;      // [T] int64: each target's last flat index
  at::Tensor group_of_segment_;  // [T, G] float64: 1 where target t is in group g
  // kPerTarget with groups: [T] int64, each target's group.
  at::Tensor target_group_;
};

// Every target's theta_0,t + lambda_g(t) * P_t theta_d, shaped as the targets and views of one flat buffer,
// as one autograd node over theta (requires grad) and lambdas ([G]; [0] without groups). Under no-grad
// mode the same values without a graph.
std::vector<at::Tensor> ApplyFusedInstall(const std::shared_ptr<const FusedInstall>& install, const at::Tensor& theta,
                                          const at::Tensor& lambdas);

}  // namespace dwarp::engine::internal
