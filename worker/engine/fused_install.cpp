#include "worker/engine/fused_install.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <utility>

#include "worker/engine/buffer_pool.h"

namespace dwarp::engine::internal {

FusedInstall::FusedInstall(at::Tensor theta0, std::vector<Target> targets, int64_t group_count,
                           std::optional<BatchedFastfood> batched, std::optional<FastfoodProjection> global, Ops ops)
    : theta0_(std::move(theta0)), targets_(std::move(targets)), group_count_(group_count),
      batched_(std::move(batched)), global_(std::move(global)), ops_(ops) {
  TORCH_CHECK(batched_.has_value() != global_.has_value(), "FusedInstall: expected a batched or a global projection");
  TORCH_CHECK(!targets_.empty(), "FusedInstall: expected at least one target");
  for (const Target& t : targets_) {
    TORCH_CHECK(t.offset == total_, "FusedInstall: target offsets must be consecutive");
    sizes_.push_back(c10::multiply_integers(t.shape));
    total_ += sizes_.back();
    TORCH_CHECK(group_count_ == 0 ? t.group == -1 : (t.group >= 0 && t.group < group_count_),
                "FusedInstall: target group ", t.group, " outside [0, ", group_count_, ")");
  }
  TORCH_CHECK(theta0_.dim() == 1 && theta0_.size(0) == total_, "FusedInstall: theta0 must be [", total_, "]");
  TORCH_CHECK(!batched_.has_value() || batched_->target_count() == target_count(),
              "FusedInstall: the batched projection has ", batched_->target_count(), " targets, expected ",
              target_count());
  if (group_count_ == 0) return;
  const int64_t count = target_count();
  std::vector<int64_t> groups, ends;
  for (int64_t t = 0; t < count; ++t) {
    groups.push_back(targets_[t].group);
    ends.push_back(targets_[t].offset + sizes_[t] - 1);
  }
  const at::Tensor groups_cpu = at::tensor(groups, at::kLong);
  const at::Device device = theta0_.device();
  if (ops_ == Ops::kPerTarget) {
    target_group_ = groups_cpu.to(device);
    return;
  }
  element_group_ = at::repeat_interleave(groups_cpu, at::tensor(sizes_, at::kLong)).to(device);
  segment_ends_ = at::tensor(ends, at::kLong).to(device);
  at::Tensor member = at::zeros({count, group_count_}, at::kDouble);
  for (int64_t t = 0; t < count; ++t) member[t][groups[t]] = 1.0;
  group_of_segment_ = member.to(device);
}

at::Tensor FusedInstall::FlatEmpty(at::ScalarType dtype) const {
  // On the CPU from the pool: fresh buffers of this size would be page-faulted in on every step.
  if (theta0_.is_cpu()) return PooledEmpty({total_}, total_, dtype);
  return at::empty({total_}, theta0_.options().dtype(dtype));
}

at::Tensor FusedInstall::Part(const at::Tensor& flat, int64_t t) const {
  return flat.narrow(0, targets_[t].offset, SizeOf(t)).view(targets_[t].shape);
}

at::Tensor FusedInstall::ProjectFlat(const at::Tensor& theta) const {
  if (global_.has_value()) return global_->Forward(theta);
  return at::cat(batched_->Forward(theta));
}

std::vector<at::Tensor> FusedInstall::ProjectParts(const at::Tensor& theta) const {
  if (batched_.has_value()) return batched_->Forward(theta);
  const at::Tensor flat = global_->Forward(theta);
  std::vector<at::Tensor> parts;
  for (int64_t t = 0; t < target_count(); ++t) parts.push_back(flat.narrow(0, targets_[t].offset, SizeOf(t)));
  return parts;
}

at::Tensor FusedInstall::TransposeFlat(const at::Tensor& flat) const {
  if (global_.has_value()) return global_->Transpose(flat);
  std::vector<at::Tensor> parts;
  for (int64_t t = 0; t < target_count(); ++t) parts.push_back(flat.narrow(0, targets_[t].offset, SizeOf(t)));
  return batched_->Transpose(parts);
}

at::Tensor FusedInstall::Forward(const at::Tensor& theta, const at::Tensor& lambdas,
                                 std::vector<at::Tensor>& saved) const {
  const bool grouped = group_count_ > 0;
  TORCH_CHECK(!grouped || (lambdas.dim() == 1 && lambdas.size(0) == group_count_), "FusedInstall: expected ",
              group_count_, " lambdas, got ", lambdas.sizes());
  saved.clear();
  if (ops_ == Ops::kFlat) {
    const at::Tensor delta = ProjectFlat(theta);
    if (!grouped) return theta0_ + delta;
    const at::Tensor scales = lambdas.index_select(0, element_group_);
    saved = {delta, scales};
    // lambda * delta, then theta_0 + that: the per-tensor path's two roundings (no fused multiply-add).
    return theta0_ + scales * delta;
  }
  const std::vector<at::Tensor> deltas = ProjectParts(theta);
  at::Tensor params = FlatEmpty(theta0_.scalar_type());
  for (int64_t t = 0; t < target_count(); ++t) {
    at::Tensor out = params.narrow(0, targets_[t].offset, SizeOf(t));
    const at::Tensor base = theta0_.narrow(0, targets_[t].offset, SizeOf(t));
    if (grouped) {
      at::mul_out(out, lambdas.select(0, targets_[t].group), deltas[t]);
      at::add_out(out, base, out);
    } else {
      at::add_out(out, base, deltas[t]);
    }
  }
  if (grouped) saved = deltas;
  return params;
}

std::vector<at::Tensor> FusedInstall::Backward(const std::vector<at::Tensor>& grads, const at::Tensor& lambdas,
                                               const std::vector<at::Tensor>& saved) const {
  TORCH_CHECK(static_cast<int64_t>(grads.size()) == target_count(), "FusedInstall: expected ", target_count(),
              " gradients, got ", grads.size());
  const bool grouped = group_count_ > 0;
  std::vector<at::Tensor> flat_grads;
  flat_grads.reserve(grads.size());
  for (const auto& g : grads) flat_grads.push_back(g.reshape({-1}));
  if (ops_ == Ops::kFlat) {
    const at::Tensor grad = at::cat(flat_grads);
    if (!grouped) return {TransposeFlat(grad), at::Tensor()};
    const at::Tensor& delta = saved[0];
    const at::Tensor& scales = saved[1];
    // Each target's sum of grad * delta as a difference of float64 prefix sums at the targets' ends, then
    // added into its group by a product with the membership matrix: no atomics. (LibTorch's CUDA cumsum is
    // a scan whose grouping may vary from run to run: in float64 that stays far below the float32 result's
    // last bit, but is not guaranteed bit for bit.)
    const at::Tensor prefix = at::cumsum(grad * delta, 0, at::kDouble);
    const at::Tensor at_ends = prefix.index_select(0, segment_ends_);
    const at::Tensor per_target = at::diff(at_ends, 1, 0, at::zeros({1}, at_ends.options()));
    const at::Tensor grad_lambdas = per_target.unsqueeze(0).mm(group_of_segment_).squeeze(0).to(grad.scalar_type());
    return {TransposeFlat(grad * scales), grad_lambdas};
  }
  if (!grouped) {
    if (batched_.has_value()) return {batched_->Transpose(flat_grads), at::Tensor()};
    at::Tensor grad = FlatEmpty(flat_grads.front().scalar_type());
    at::cat_out(grad, flat_grads);
    return {global_->Transpose(grad), at::Tensor()};
  }
  const at::ScalarType dtype = flat_grads.front().scalar_type();
  at::Tensor scaled = FlatEmpty(dtype);
  at::Tensor products = FlatEmpty(dtype);
  std::vector<at::Tensor> scaled_parts;
  std::vector<at::Tensor> sums;
  for (int64_t t = 0; t < target_count(); ++t) {
    const at::Tensor lambda = lambdas.select(0, targets_[t].group);
    // As the per-tensor path's multiply node: grad * lambda to the projection, sum(grad * delta) to lambda.
    at::Tensor part = scaled.narrow(0, targets_[t].offset, SizeOf(t));
    at::mul_out(part, flat_grads[t], lambda);
    scaled_parts.push_back(part);
    at::Tensor product = products.narrow(0, targets_[t].offset, SizeOf(t));
    at::mul_out(product, flat_grads[t], saved[t].reshape({-1}));
    sums.push_back(product.sum());
  }
  // Into each group, on the CPU in target order (its index_add_ adds in index order).
  at::Tensor grad_lambdas = at::zeros({group_count_}, lambdas.options());
  grad_lambdas.index_add_(0, target_group_, at::stack(sums));
  return {batched_.has_value() ? batched_->Transpose(scaled_parts) : global_->Transpose(scaled), grad_lambdas};
}

at::Tensor FusedInstall::Delta(const at::Tensor& theta, const at::Tensor& lambdas) const {
  at::NoGradGuard no_grad;
  const at::Tensor delta = ProjectFlat(theta);
  if (group_count_ == 0) return delta;
  if (ops_ == Ops::kFlat) return lambdas.index_select(0, element_group_) * delta;
  at::Tensor out = at::empty_like(delta);
  for (int64_t t = 0; t < target_count(); ++t) {
    at::Tensor part = out.narrow(0, targets_[t].offset, SizeOf(t));
    at::mul_out(part, lambdas.select(0, targets_[t].group), delta.narrow(0, targets_[t].offset, SizeOf(t)));
  }
  return out;
}

namespace {

struct InstallHolder : torch::CustomClassHolder {
  explicit InstallHolder(std::shared_ptr<const FusedInstall> p) : install(std::move(p)) {}
  std::shared_ptr<const FusedInstall> install;
};

class FusedInstallFunction : public torch::autograd::Function<FusedInstallFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& theta,
                                                const at::Tensor& lambdas,
                                                const std::shared_ptr<const FusedInstall>& install) {
    ctx->saved_data["install"] = c10::IValue::make_capsule(c10::make_intrusive<InstallHolder>(install));
    std::vector<at::Tensor> saved;
    const at::Tensor params = install->Forward(theta, lambdas, saved);
    ctx->saved_data["saved"] = saved;
    // The forward's values (backward scales by them), not the optimiser's later ones.
    ctx->saved_data["lambdas"] = lambdas.clone();
    torch::autograd::variable_list parts;
    parts.reserve(static_cast<size_t>(install->target_count()));
    for (int64_t t = 0; t < install->target_count(); ++t) parts.push_back(install->Part(params, t));
    return parts;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto install =
        c10::static_intrusive_pointer_cast<InstallHolder>(ctx->saved_data["install"].toCapsule())->install;
    // Unused targets' gradients arrive as zeros (autograd materialises them).
    std::vector<at::Tensor> result =
        install->Backward(grads, ctx->saved_data["lambdas"].toTensor(), ctx->saved_data["saved"].toTensorVector());
    return {result[0], result[1], at::Tensor()};
  }
};

}  // namespace

std::vector<at::Tensor> ApplyFusedInstall(const std::shared_ptr<const FusedInstall>& install, const at::Tensor& theta,
                                          const at::Tensor& lambdas) {
  return FusedInstallFunction::apply(theta, lambdas, install);
}

}  // namespace dwarp::engine::internal
