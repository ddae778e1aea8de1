// FastfoodProjection: the random linear map P: R^d -> R^D_t of DESIGN.md ("The Fastfood projection"),
//
//   L       = 2^ceil(log2(max(D_t, d)))
//   P theta = (H G Pi H B pad_L(theta))[:D_t] / (sqrt(L * sum(G^2)) * sqrt(D_t / L))
//
// with H the unnormalised Walsh–Hadamard matrix, B in {-1,+1}^L, Pi a permutation of L ((Pi y)[i] =
// y[perm[i]]) and G ~ N(0,1)^L, all drawn from SeededStream(seed, target name). Every column of the
// untruncated L x d map has norm sqrt(L / D_t); after keeping D_t rows the expected squared norm is 1.
//
// No dense D_t x d matrix exists at any point. B, Pi and G are kept compact: int8 signs, int32 permutation,
// float32 gaussians (9 bytes per padded element). Forward and transpose each cost one length-L FWHT plus
// one streaming pass; both exploit that theta has only d <= L non-zeros, so H B pad(theta) is a length-d'
// (d' = 2^ceil(log2 d)) transform repeated L / d' times, and the transpose's last H is a fold to d'.
//
// Thread-safety: const methods may be called concurrently; the object is immutable after Create().
// Copies share the (immutable) B, Pi, G tensors.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

class FastfoodProjection {
 public:
  // target_size D_t >= 1, subspace_dim d >= 1; `name` identifies the target (a parameter name, or the
  // global target) so that every target of one seed gets an independent projection. B, Pi, G are placed
  // on `device` (CPU, or CUDA in CUDA builds).
  static StatusOr<FastfoodProjection> Create(int64_t target_size, int64_t subspace_dim, uint64_t seed,
                                             const std::string& name, at::Device device = at::kCPU);

  int64_t target_size() const { return target_size_; }
  int64_t subspace_dim() const { return subspace_dim_; }
  int64_t padded_size() const { return signs_.numel(); }
  // 1 / (sqrt(L * sum(G^2)) * sqrt(D_t / L)), computed in double from the stored float32 G (times the
  // factor of Scaled, when made by it).
  double scale() const { return scale_; }
  const at::Tensor& signs() const { return signs_; }              // int8 [L], entries -1 or +1
  const at::Tensor& permutation() const { return permutation_; }  // int32 [L]
  const at::Tensor& gaussians() const { return gaussians_; }      // float32 [L]
  at::Device device() const { return signs_.device(); }
  // Bytes held for B, Pi and G divided by L.
  double bytes_per_padded_element() const;

  // The same projection times `factor` (> 0), sharing B, Pi and G: a subspace mode's per-tensor scale
  // costs nothing at run time.
  FastfoodProjection Scaled(double factor) const {
    FastfoodProjection out = *this;
    out.scale_ *= factor;
    return out;
  }

  // P theta, differentiable with respect to theta: theta [d] -> [D_t], same dtype and device as theta
  // (float32 or float64 on CPU, float32 on CUDA). Backward computes P^T g with the same kernels.
  at::Tensor Apply(const at::Tensor& theta) const;

  // The same maps without autograd (tests, benchmarks, and the autograd function itself).
  at::Tensor Forward(const at::Tensor& theta) const;    // [d] -> [D_t]
  at::Tensor Transpose(const at::Tensor& grad) const;   // [D_t] -> [d]

 private:
  FastfoodProjection(int64_t target_size, int64_t subspace_dim, double scale, at::Tensor signs,
                     at::Tensor permutation, at::Tensor gaussians);
  friend class FastfoodFunction;
  friend class BatchedFastfood;

  int64_t target_size_ = 0;
  int64_t subspace_dim_ = 0;
  double scale_ = 0.0;
  at::Tensor signs_;
  at::Tensor permutation_;
  at::Tensor gaussians_;
};

// Many FastfoodProjections applied to one theta as one operation: target t gets P_t theta[0, d_t), with its
// own L_t, B, Pi, G, scale and d_t (<= theta's length: the reference mode's truncated targets read a
// prefix). Forward writes every target into one buffer and returns views of it; backward sums every
// transpose into one gradient of theta. One autograd node for all targets, whatever their number.
//
// The numbers equal those of each projection's own Apply (the same kernels per target); the gradient
// of theta sums the targets in a fixed order, so it differs from the per-target autograd sum only by
// float reassociation.
//
// CPU: the targets run one after another, each with the projection's own fused kernels on the intra-op
// thread pool, as one Apply per target would. CUDA: the B, Pi, G of all targets
// are concatenated on the device at Create, with a segment table (offsets, L_t, d_t, scales) and a fixed
// launch plan, so a call issues a few launches per stage for all targets together (the streaming steps
// one each, the FWHTs one per distinct L_t), no device queries and no host synchronisation; everything
// runs on the current CUDA stream.
//
// Memory: the forward's buffer holds sum_t L_t elements (the views keep it alive); backward uses one of
// the same size. CUDA copies add 9 bytes per padded element for the concatenated B, Pi, G.
// Thread-safety: const methods may be called concurrently; the object is immutable after Create().
class BatchedFastfood {
 public:
  // `projections`: at least one, all on one device, each subspace_dim() <= theta_size. The projections'
  // tensors are shared (CPU) or copied into concatenated device buffers (CUDA).
  static StatusOr<BatchedFastfood> Create(const std::vector<FastfoodProjection>& projections, int64_t theta_size);

  int64_t target_count() const;
  int64_t theta_size() const;
  at::Device device() const;

  // P_t theta[0, d_t) for every target t, each [D_t], differentiable with respect to theta ([theta_size];
  // float32 or float64 on CPU, float32 on CUDA). The results are views of one buffer: do not modify them
  // in place.
  std::vector<at::Tensor> Apply(const at::Tensor& theta) const;

  // The same maps without autograd. Transpose returns sum_t P_t^T grads[t] padded to [theta_size]; an
  // undefined grads[t] counts as zero.
  std::vector<at::Tensor> Forward(const at::Tensor& theta) const;
  at::Tensor Transpose(const std::vector<at::Tensor>& grads) const;

  struct Plan;  // the segment table and launch plan (fastfood_projection.cpp)

 private:
  explicit BatchedFastfood(std::shared_ptr<const Plan> plan) : plan_(std::move(plan)) {}
  friend class BatchedFastfoodFunction;
  std::shared_ptr<const Plan> plan_;
};

}  // namespace dwarp::engine
