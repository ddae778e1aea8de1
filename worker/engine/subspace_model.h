// SubspaceModel: trains any TorchScript module through a random d-dimensional subspace of its parameters
// (DESIGN.md). Each warped parameter tensor t is replaced, on every forward, by
//
//   theta_t = theta_0,t + lambda_g(t) * P_t theta_d
//
// where theta_0 are the module's parameters at construction, P_t the tensor's share of a random linear map
// built from FastfoodProjections (ProjectionMode below says how), theta_d a trainable vector that starts
// at zero, and lambda_g one trainable scalar per SAID layer group (Aghajanyan et al. 2020; initialised
// to 1, absent when no groups are given). d counts every trainable number: theta_d has d - n_groups
// entries (n below). theta_d = 0 reproduces the wrapped module bit for bit.
//
// The module always stays in eval mode (BatchNorm statistics frozen, dropout off), as in the research
// code; only theta_d and the lambdas are trainable. Models defined in C++ use this too by being built as
// torch::jit::Module objects (see models/mlp.h).
//
// Thread-safety: none; one SubspaceModel belongs to one job thread.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "worker/engine/fastfood_projection.h"

namespace dwarp::engine {

// How theta_d (n entries) reaches the warped tensors (D_t entries each, D in all). F(D_t, k) is a
// FastfoodProjection from k to D_t entries: L = 2^ceil(log2 max(D_t, k)), columns of expected unit norm.
enum class ProjectionMode {
  // P_t = F(D_t, n), one per tensor: every tensor, however small, moves by about |theta_d|.
  kPerTensor,
  // One F(D, n) over all warped tensors concatenated (Li et al. 2018): tensor t moves by about
  // |theta_d| sqrt(D_t / D), every entry alike; the network as a whole by about |theta_d|.
  kGlobal,
  // The research code's per-tensor map: L_t = 2^ceil(log2 D_t); theta_d is truncated to its first L_t
  // entries when L_t < n (zero-padded when L_t > n): P_t theta = F(D_t, min(n, L_t)) theta[:min(n, L_t)].
  // A tensor smaller than n moves by about |theta_d| sqrt(L_t / n); larger ones as kPerTensor.
  kReference,
  // P_t = sqrt(D_t / D) F(D_t, n): each tensor's share of the movement is its share of the parameters,
  // as kGlobal, with one projection per tensor (independent draws, shorter transforms).
  kSizeWeighted,
};

struct SubspaceOptions {
  explicit SubspaceOptions(int64_t d) : d_(d) {}

  // Trainable numbers in all: theta_d entries plus one lambda per layer group. Must be >= 1 and
  // greater than the number of groups.
  SubspaceOptions& d(int64_t v) { d_ = v; return *this; }
  // Seed of every projection (combined with each target's name).
  SubspaceOptions& seed(uint64_t v) { seed_ = v; return *this; }
  // Warp only parameters whose name equals a prefix or starts with prefix + "."; empty: all parameters.
  SubspaceOptions& warp_prefixes(std::vector<std::string> v) { warp_prefixes_ = std::move(v); return *this; }
  // SAID layer groups, each a list of name prefixes (same matching rule). When given, every warped
  // parameter must belong to exactly one group.
  SubspaceOptions& layer_groups(std::vector<std::vector<std::string>> v) { layer_groups_ = std::move(v); return *this; }
  SubspaceOptions& projection(ProjectionMode v) { projection_ = v; return *this; }
  // Whether the per-tensor modes (all but kGlobal) run every target's projection as one BatchedFastfood
  // (one autograd node, a few launches for all targets) rather than one FastfoodProjection::Apply per
  // target. Same numbers either way (theta_d's gradient up to float reassociation). Unset: batched on the
  // CPU; on CUDA only when the environment variable DWARP_BATCHED_FASTFOOD_CUDA is 1, until the CUDA
  // kernels have been checked on a GPU (tests/gpu/check.sh sets it). A value other than 0 or 1 (on any
  // device) makes Create fail, naming it.
  SubspaceOptions& batched(bool v) { batched_ = v; return *this; }
  // Whether theta_0 + lambda * P theta_d is formed for all warped tensors at once (fused_install.h): theta_0
  // kept as one flat buffer, the projection's output as one flat buffer, one autograd node however many
  // tensors (on a GPU also a constant number of operations), the tensors installed as views of the result.
  // Otherwise one view, multiply and add per tensor, each its own autograd nodes. Same numbers either way
  // (the lambdas' gradients up to float reassociation). Needs the batched projection in the per-tensor
  // modes; kGlobal always has one flat buffer. Unset: the environment variable DWARP_FUSED_INSTALL (0 or 1;
  // 1 only where the projection allows it) when set, else on wherever the batched projection is on by
  // default (see batched).
  SubspaceOptions& fused_install(bool v) { fused_install_ = v; return *this; }

  int64_t d_;
  uint64_t seed_ = 0;
  std::vector<std::string> warp_prefixes_;
  std::vector<std::vector<std::string>> layer_groups_;
  ProjectionMode projection_ = ProjectionMode::kPerTensor;
  std::optional<bool> batched_;
  std::optional<bool> fused_install_;
};

namespace internal {
class FusedInstall;  // fused_install.h
}

// "per_tensor", "global", "reference", "size_weighted": the spelling of job files (common/job_spec.h).
const char* ProjectionModeName(ProjectionMode mode);
// The mode of that name; InvalidArgument naming `name` and listing the four otherwise.
StatusOr<ProjectionMode> ProjectionModeNamed(const std::string& name);

// True when `name` is `prefix` or lies under it ("layer1" matches "layer1.0.conv1.weight", not "layer10.w").
bool NameHasPrefix(const std::string& name, const std::string& prefix);

class SubspaceModel {
 public:
  // Wraps a deep copy of `module` (the caller's module is left untouched). Fails with InvalidArgument,
  // naming the bad value, for d < 1 or d <= number of groups, a prefix that matches no parameter, a
  // parameter in two groups, a warped parameter in no group, non-floating or mixed-dtype/device warped
  // parameters, or nothing to warp.
  static StatusOr<SubspaceModel> Create(const torch::jit::Module& module, const SubspaceOptions& options);

  // Installs the current warped parameters (see Materialize) and runs the module's forward.
  at::Tensor Forward(const at::Tensor& input);
  c10::IValue Forward(std::vector<c10::IValue> inputs);

  // Writes theta_0 + lambda * P theta_d into the module's parameter slots, so any method or submodule of
  // module() can then be run. In training mode this builds the autograd graph every call; in eval mode
  // (and under NoGradGuard) it reuses the previous values until theta_d or the lambdas change.
  void Materialize();

  // Training mode only decides whether Materialize records gradients; the module itself stays in eval.
  void train(bool on = true) { training_ = on; }
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // The trainable tensors: theta_d, then the lambdas when there are layer groups.
  std::vector<at::Tensor> parameters() const;
  const at::Tensor& theta_d() const { return theta_d_; }   // [d - n_groups]
  const at::Tensor& lambdas() const { return lambdas_; }   // [n_groups] (undefined without groups)

  int64_t subspace_dim() const { return options_.d_; }
  int64_t group_count() const { return static_cast<int64_t>(options_.layer_groups_.size()); }
  // D: number of warped numbers.
  int64_t warped_parameter_count() const { return warped_count_; }
  // Names of the warped parameters, in module order.
  std::vector<std::string> warped_parameter_names() const;
  // The wrapped (copied) module, whose warped slots hold the last materialised values.
  torch::jit::Module& module() { return module_; }
  // One per target in module order (kGlobal: one in all), each with its mode's scale folded in; the k of
  // kReference's truncated ones is their subspace_dim().
  const std::vector<FastfoodProjection>& projections() const { return projections_; }
  // Whether the projections run as one BatchedFastfood (SubspaceOptions::batched).
  bool uses_batched_projection() const { return batched_.has_value(); }
  // Whether Materialize installs every warped tensor at once (SubspaceOptions::fused_install).
  bool uses_fused_install() const { return fused_ != nullptr; }
  // P theta for the current theta_d and lambdas, as the flat concatenation of every warped tensor's delta
  // in module order ([D]; no gradient). For tests and studies of how a mode shares the movement.
  at::Tensor WarpDelta() const;

 private:
  struct Target {
    std::string name;
    torch::jit::Module owner;   // the submodule holding the slot
    std::string attribute;      // the slot's name within owner
    at::Tensor theta0;          // original values, requires_grad = false (a view of the flat buffer when fused)
    int64_t group = -1;         // index into lambdas, or -1
    int64_t offset = 0;         // start in the concatenation of all warped tensors
  };

  SubspaceModel(torch::jit::Module module, SubspaceOptions options) : module_(std::move(module)), options_(std::move(options)) {}
  void Install(bool record_grad);  // writes theta_0 + lambda * P theta_d into the slots
  // lambda * P_t theta_d for every target, shaped as it (differentiable when grad mode is on).
  std::vector<at::Tensor> Deltas() const;

  torch::jit::Module module_;
  SubspaceOptions options_;
  std::vector<Target> targets_;
  std::vector<FastfoodProjection> projections_;  // one per target, or one (kGlobal)
  std::optional<BatchedFastfood> batched_;        // all of projections_ at once, when batched
  std::shared_ptr<const internal::FusedInstall> fused_;  // when the install is fused
  at::Tensor theta_d_;
  at::Tensor lambdas_;
  int64_t warped_count_ = 0;
  bool training_ = true;
  // Versions of theta_d and lambdas when the cached eval-mode values were installed; -1: none cached.
  int64_t cached_theta_version_ = -1;
  int64_t cached_lambda_version_ = -1;
};

}  // namespace dwarp::engine
