#include "worker/engine/fastfood_projection.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <utility>

#include "worker/engine/buffer_pool.h"
#include "worker/engine/fwht.h"
#include "worker/engine/fwht_cpu.h"
#include "worker/engine/seeded_random.h"
#if defined(DWARP_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "worker/engine/fwht_cuda.h"
#endif

namespace dwarp::engine {
namespace {

int64_t NextPowerOfTwo(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

// Elements per parallel task of the streaming passes: large enough that hand-off is noise.
constexpr int64_t kStreamGrain = int64_t{1} << 15;

// Scratch for the forward and transpose: the fused hooks read and write through it.
template <typename T>
struct StreamingContext {
  const int32_t* perm;
  const float* gauss;
  int32_t mask;       // dp - 1
  const T* small;     // forward: the length-dp transform gathered from
  const T* grad;      // transpose: the incoming gradient, length target_size
  int64_t target_size;
  T* partial;         // transpose: consume_chunks accumulators of length dp
  int64_t dp;
};

// out[0, L) = H (G * small[perm & mask]) where small = scale * H_dp (B * theta) padded to dp.
template <typename T>
void ForwardCpu(const T* theta, int64_t d, const int8_t* signs, const int32_t* perm, const float* gauss,
                double scale, int64_t padded, T* out) {
  const int64_t dp = NextPowerOfTwo(d);
  // Temporaries come from the tensor allocator, so that memory accounting (the benchmark) sees them.
  at::Tensor small_buffer = at::zeros({dp}, c10::CppTypeToScalarType<T>::value);
  T* small = small_buffer.data_ptr<T>();
  for (int64_t j = 0; j < d; ++j) small[j] = static_cast<T>(scale) * static_cast<T>(signs[j]) * theta[j];
  internal::FwhtCpu(small, 1, dp);
  // H_L applied to a vector supported on [0, dp) is H_dp of that prefix repeated L / dp times, so the
  // permutation only ever reads the small, cache-resident transform. The gather fills each block of the
  // output right before the final transform works on it, in cache.
  StreamingContext<T> ctx{perm, gauss, static_cast<int32_t>(dp - 1), small, nullptr, 0, nullptr, dp};
  internal::FwhtFusion<T> fusion;
  fusion.context = &ctx;
  fusion.fill = [](void* c, T* block, int64_t begin, int64_t len) {
    const auto& x = *static_cast<const StreamingContext<T>*>(c);
    const int32_t* p = x.perm + begin;
    const float* g = x.gauss + begin;
    for (int64_t i = 0; i < len; ++i) block[i] = x.small[p[i] & x.mask] * static_cast<T>(g[i]);
  };
  internal::FwhtCpuFused(out, padded, fusion);
}

// grad[0, d) = scale * B * (H_dp fold)[0, d), fold[j] = sum_{perm[i] & mask == j} G[i] (H pad_L(g))[i].
// `work` is a length-L buffer.
template <typename T>
void TransposeCpu(const T* g, int64_t target_size, int64_t d, const int8_t* signs, const int32_t* perm,
                  const float* gauss, double scale, int64_t padded, T* work, T* grad) {
  // The last H only matters on [0, d), which is H_dp of the length-L vector folded modulo dp: a
  // scatter-add into a small vector, the mirror of the forward gather. It consumes each tile of the
  // final sweep while the tile is in cache. A fixed number of chunks (not one per thread) keeps the
  // summation order, and so the result, independent of the thread count.
  const int64_t dp = NextPowerOfTwo(d);
  const int64_t chunks = std::clamp<int64_t>(padded / (4 * dp), 1, 64);
  at::Tensor partial_buffer = at::zeros({chunks * dp}, c10::CppTypeToScalarType<T>::value);
  T* partial = partial_buffer.data_ptr<T>();
  StreamingContext<T> ctx{perm, gauss, static_cast<int32_t>(dp - 1), nullptr, g, target_size, partial, dp};
  internal::FwhtFusion<T> fusion;
  fusion.context = &ctx;
  fusion.consume_chunks = chunks;
  fusion.fill = [](void* c, T* block, int64_t begin, int64_t len) {
    const auto& x = *static_cast<const StreamingContext<T>*>(c);
    const int64_t copy = std::clamp<int64_t>(x.target_size - begin, 0, len);
    if (copy > 0) std::memcpy(block, x.grad + begin, static_cast<size_t>(copy) * sizeof(T));
    if (copy < len) std::memset(block + copy, 0, static_cast<size_t>(len - copy) * sizeof(T));
  };
  fusion.consume = [](void* c, int64_t chunk, const T* data, int64_t first, int64_t rows, int64_t stride,
                      int64_t width) {
    const auto& x = *static_cast<const StreamingContext<T>*>(c);
    T* acc = x.partial + chunk * x.dp;
    for (int64_t m = 0; m < rows; ++m) {
      const int64_t base = first + m * stride;
      const int32_t* p = x.perm + base;
      const float* gs = x.gauss + base;
      const T* u = data + base;
      for (int64_t i = 0; i < width; ++i) acc[p[i] & x.mask] += static_cast<T>(gs[i]) * u[i];
    }
  };
  internal::FwhtCpuFused(work, padded, fusion);
  for (int64_t c = 1; c < chunks; ++c) {
    const T* src = partial + c * dp;
    for (int64_t j = 0; j < dp; ++j) partial[j] += src[j];
  }
  internal::FwhtCpu(partial, 1, dp);
  for (int64_t j = 0; j < d; ++j) grad[j] = static_cast<T>(scale) * static_cast<T>(signs[j]) * partial[j];
}

std::string Describe(const at::Tensor& t) {
  std::ostringstream os;
  if (!t.defined()) return "an undefined tensor";
  os << t.scalar_type() << " tensor of shape " << t.sizes() << " on " << t.device();
  return os.str();
}

}  // namespace

// The autograd node: forward P theta, backward P^T g. The projection's compact tensors are saved in
// the context (reference-counted), so the graph stays valid even if the FastfoodProjection that built it
// is destroyed first.
class FastfoodFunction : public torch::autograd::Function<FastfoodFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& theta,
                            const FastfoodProjection& projection) {
    ctx->saved_data["signs"] = projection.signs_;
    ctx->saved_data["permutation"] = projection.permutation_;
    ctx->saved_data["gaussians"] = projection.gaussians_;
    ctx->saved_data["target_size"] = projection.target_size_;
    ctx->saved_data["subspace_dim"] = projection.subspace_dim_;
    ctx->saved_data["scale"] = projection.scale_;
    return projection.Forward(theta);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const FastfoodProjection projection(
        ctx->saved_data["target_size"].toInt(), ctx->saved_data["subspace_dim"].toInt(),
        ctx->saved_data["scale"].toDouble(), ctx->saved_data["signs"].toTensor(),
        ctx->saved_data["permutation"].toTensor(), ctx->saved_data["gaussians"].toTensor());
    return {projection.Transpose(grads[0]), at::Tensor()};
  }
};

FastfoodProjection::FastfoodProjection(int64_t target_size, int64_t subspace_dim, double scale, at::Tensor signs,
                                       at::Tensor permutation, at::Tensor gaussians)
    : target_size_(target_size),
      subspace_dim_(subspace_dim),
      scale_(scale),
      signs_(std::move(signs)),
      permutation_(std::move(permutation)),
      gaussians_(std::move(gaussians)) {}

StatusOr<FastfoodProjection> FastfoodProjection::Create(int64_t target_size, int64_t subspace_dim, uint64_t seed,
                                                        const std::string& name, at::Device device) {
  if (target_size < 1) {
    return InvalidArgumentError("Fastfood target '" + name + "': size must be >= 1, got " +
                                std::to_string(target_size));
  }
  if (subspace_dim < 1) {
    return InvalidArgumentError("Fastfood target '" + name + "': subspace dimension d must be >= 1, got " +
                                std::to_string(subspace_dim));
  }
  const int64_t padded = NextPowerOfTwo(std::max(target_size, subspace_dim));
  if (padded > (int64_t{1} << 30)) {
    return InvalidArgumentError("Fastfood target '" + name + "': padded length " + std::to_string(padded) +
                                " (from D_t = " + std::to_string(target_size) + ", d = " +
                                std::to_string(subspace_dim) + ") exceeds the supported 2^30");
  }
  if (!device.is_cpu() && !device.is_cuda()) {
    std::ostringstream os;
    os << "Fastfood target '" << name << "': unsupported device " << device << " (expected cpu or cuda)";
    return InvalidArgumentError(os.str());
  }

  // Three independent streams, so that each of B, Pi and G is defined on its own.
  at::Tensor signs = at::empty({padded}, at::kChar);
  at::Tensor permutation = at::empty({padded}, at::kInt);
  at::Tensor gaussians = at::empty({padded}, at::kFloat);
  {
    SeededStream stream(seed, name + "/signs");
    int8_t* b = signs.data_ptr<int8_t>();
    for (int64_t i = 0; i < padded; i += 64) {
      const uint64_t bits = stream.NextU64();
      for (int64_t k = 0; k < 64 && i + k < padded; ++k) b[i + k] = ((bits >> k) & 1) ? int8_t{1} : int8_t{-1};
    }
  }
  {
    SeededStream stream(seed, name + "/permutation");
    int32_t* p = permutation.data_ptr<int32_t>();
    for (int64_t i = 0; i < padded; ++i) p[i] = static_cast<int32_t>(i);
    for (int64_t i = padded - 1; i > 0; --i) {
      const int64_t j = static_cast<int64_t>(stream.Below(static_cast<uint64_t>(i) + 1));
      std::swap(p[i], p[j]);
    }
  }
  double sum_squares = 0.0;
  {
    SeededStream stream(seed, name + "/gaussians");
    float* gp = gaussians.data_ptr<float>();
    for (int64_t i = 0; i < padded; ++i) {
      gp[i] = static_cast<float>(stream.Normal());
      sum_squares += static_cast<double>(gp[i]) * static_cast<double>(gp[i]);
    }
  }
  // sqrt(L * sum G^2) * sqrt(D_t / L) = sqrt(sum G^2 * D_t).
  const double scale = 1.0 / std::sqrt(sum_squares * static_cast<double>(target_size));
  if (!device.is_cpu()) {
    signs = signs.to(device);
    permutation = permutation.to(device);
    gaussians = gaussians.to(device);
  }
  return FastfoodProjection(target_size, subspace_dim, scale, std::move(signs), std::move(permutation),
                            std::move(gaussians));
}

double FastfoodProjection::bytes_per_padded_element() const {
  const double bytes = static_cast<double>(signs_.nbytes() + permutation_.nbytes() + gaussians_.nbytes());
  return bytes / static_cast<double>(padded_size());
}

at::Tensor FastfoodProjection::Apply(const at::Tensor& theta) const { return FastfoodFunction::apply(theta, *this); }

at::Tensor FastfoodProjection::Forward(const at::Tensor& theta_in) const {
  TORCH_CHECK(theta_in.defined() && theta_in.dim() == 1 && theta_in.size(0) == subspace_dim_,
              "FastfoodProjection: expected theta of shape [", subspace_dim_, "], got ", Describe(theta_in));
  TORCH_CHECK(theta_in.device() == device(), "FastfoodProjection: theta is on ", theta_in.device(),
              " but the projection is on ", device());
  const at::Tensor theta = theta_in.contiguous();
  const int64_t padded = padded_size();
  at::Tensor out;
  if (theta.is_cpu()) {
    // The padded transform runs in the result's own storage; the result shows its first D_t elements.
    out = PooledEmpty({target_size_}, padded, theta.scalar_type());
    if (theta.scalar_type() == at::kFloat) {
      ForwardCpu(theta.data_ptr<float>(), subspace_dim_, signs_.data_ptr<int8_t>(), permutation_.data_ptr<int32_t>(),
                 gaussians_.data_ptr<float>(), scale_, padded, out.data_ptr<float>());
    } else if (theta.scalar_type() == at::kDouble) {
      ForwardCpu(theta.data_ptr<double>(), subspace_dim_, signs_.data_ptr<int8_t>(), permutation_.data_ptr<int32_t>(),
                 gaussians_.data_ptr<float>(), scale_, padded, out.data_ptr<double>());
    } else {
      TORCH_CHECK(false, "FastfoodProjection: expected float32 or float64 theta on CPU, got ", theta.scalar_type());
    }
  } else {
#if defined(DWARP_WITH_CUDA)
    TORCH_CHECK(theta.scalar_type() == at::kFloat, "FastfoodProjection: expected float32 theta on CUDA, got ",
                theta.scalar_type());
    const c10::cuda::CUDAGuard device_guard(theta.device());  // the launchers use the current device
    // The LibTorch ops here and the launchers all run on the device's current stream, in program order.
    const int64_t dp = NextPowerOfTwo(subspace_dim_);
    out = at::empty({padded}, theta.options());
    at::Tensor small = at::zeros({dp}, theta.options());
    small.narrow(0, 0, subspace_dim_).copy_(theta * signs_.narrow(0, 0, subspace_dim_).to(at::kFloat) * scale_);
    FwhtInPlace(small);
    internal::FastfoodGatherCuda(small.data_ptr<float>(), dp, permutation_.data_ptr<int32_t>(),
                                 gaussians_.data_ptr<float>(), out.data_ptr<float>(), padded,
                                 c10::cuda::getCurrentCUDAStream(theta.get_device()).stream());
    FwhtInPlace(out);
    // Shrink in place rather than narrow: the result is a plain tensor, not a view of a hidden buffer.
    if (target_size_ < padded) out.resize_({target_size_});
#else
    TORCH_CHECK(false, "FastfoodProjection: device ", theta.device(), " needs a CUDA build");
#endif
  }
  return out;
}

at::Tensor FastfoodProjection::Transpose(const at::Tensor& grad_in) const {
  TORCH_CHECK(grad_in.defined() && grad_in.numel() == target_size_,
              "FastfoodProjection: expected a gradient of ", target_size_, " elements, got ", Describe(grad_in));
  TORCH_CHECK(grad_in.device() == device(), "FastfoodProjection: gradient is on ", grad_in.device(),
              " but the projection is on ", device());
  const at::Tensor g = grad_in.contiguous().view({target_size_});
  const int64_t padded = padded_size();
  at::Tensor grad = at::empty({subspace_dim_}, g.options());
  if (g.is_cpu()) {
    at::Tensor work = PooledEmpty({padded}, padded, g.scalar_type());
    if (g.scalar_type() == at::kFloat) {
      TransposeCpu(g.data_ptr<float>(), target_size_, subspace_dim_, signs_.data_ptr<int8_t>(),
                   permutation_.data_ptr<int32_t>(), gaussians_.data_ptr<float>(), scale_, padded,
                   work.data_ptr<float>(), grad.data_ptr<float>());
    } else if (g.scalar_type() == at::kDouble) {
      TransposeCpu(g.data_ptr<double>(), target_size_, subspace_dim_, signs_.data_ptr<int8_t>(),
                   permutation_.data_ptr<int32_t>(), gaussians_.data_ptr<float>(), scale_, padded,
                   work.data_ptr<double>(), grad.data_ptr<double>());
    } else {
      TORCH_CHECK(false, "FastfoodProjection: expected a float32 or float64 gradient on CPU, got ", g.scalar_type());
    }
  } else {
#if defined(DWARP_WITH_CUDA)
    TORCH_CHECK(g.scalar_type() == at::kFloat, "FastfoodProjection: expected a float32 gradient on CUDA, got ",
                g.scalar_type());
    const c10::cuda::CUDAGuard device_guard(g.device());  // the launchers use the current device
    at::Tensor work = at::zeros({padded}, g.options());
    work.narrow(0, 0, target_size_).copy_(g);
    FwhtInPlace(work);
    const int64_t dp = NextPowerOfTwo(subspace_dim_);
    at::Tensor fold = at::empty({dp}, g.options());
    internal::FastfoodFoldCuda(work.data_ptr<float>(), permutation_.data_ptr<int32_t>(), gaussians_.data_ptr<float>(),
                               padded, fold.data_ptr<float>(), dp,
                               c10::cuda::getCurrentCUDAStream(g.get_device()).stream());
    FwhtInPlace(fold);
    grad.copy_(fold.narrow(0, 0, subspace_dim_) * signs_.narrow(0, 0, subspace_dim_).to(at::kFloat) * scale_);
#else
    TORCH_CHECK(false, "FastfoodProjection: device ", g.device(), " needs a CUDA build");
#endif
  }
  return grad;
}

// ---- BatchedFastfood --------------------------------------------------------------------------------------

struct BatchedFastfood::Plan {
  at::Device device = at::kCPU;
  int64_t theta_size = 0;
  std::vector<FastfoodProjection> projections;  // target order
  std::vector<int64_t> offsets;                 // each target's start in the padded buffer
  int64_t padded_total = 0;
#if defined(DWARP_WITH_CUDA)
  // Device layout: targets sorted by L_t, longest first (stable), so that targets of one L_t lie side by side
  // and each run is one batched FWHT; its segments (host copy), runs and the fold's block split.
  internal::FastfoodBatchLayout layout;
  at::Tensor segments_device;  // uint8 bytes of layout.segments
  at::Tensor fold_block_prefix;
  at::Tensor signs;            // every target's B, Pi, G concatenated in layout order
  at::Tensor permutation;
  at::Tensor gaussians;
  internal::FastfoodBatchTable table{};
#endif
};

namespace {

// The autograd node's handle on the plan (saved_data holds IValues; a capsule carries the shared plan).
struct PlanHolder : torch::CustomClassHolder {
  explicit PlanHolder(std::shared_ptr<const BatchedFastfood::Plan> p) : plan(std::move(p)) {}
  std::shared_ptr<const BatchedFastfood::Plan> plan;
};

// Calls fn(t) for every target in order, each using the whole intra-op pool inside its kernels: the
// threading of one FastfoodProjection call per target, so the batched path costs the per-tensor path's
// arithmetic exactly, less its per-target autograd nodes. (Running short targets side by side, one per
// thread, measured no faster on this project's 2-core machine, and its barrier waits on a loaded machine.)
template <typename Fn>
void ForEachTarget(const BatchedFastfood::Plan& plan, const Fn& fn) {
  for (size_t t = 0; t < plan.projections.size(); ++t) fn(static_cast<int64_t>(t));
}

}  // namespace

class BatchedFastfoodFunction : public torch::autograd::Function<BatchedFastfoodFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& theta,
                                                const BatchedFastfood& batched) {
    ctx->saved_data["plan"] = c10::IValue::make_capsule(c10::make_intrusive<PlanHolder>(batched.plan_));
    return batched.Forward(theta);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto holder = c10::static_intrusive_pointer_cast<PlanHolder>(ctx->saved_data["plan"].toCapsule());
    const BatchedFastfood batched(holder->plan);
    return {batched.Transpose(grads), at::Tensor()};
  }
};

StatusOr<BatchedFastfood> BatchedFastfood::Create(const std::vector<FastfoodProjection>& projections,
                                                  int64_t theta_size) {
  if (projections.empty()) return InvalidArgumentError("batched Fastfood: expected at least one projection, got none");
  if (theta_size < 1) {
    return InvalidArgumentError("batched Fastfood: theta size must be >= 1, got " + std::to_string(theta_size));
  }
  auto plan = std::make_shared<Plan>();
  plan->device = projections.front().device();
  plan->theta_size = theta_size;
  plan->projections = projections;
  for (size_t t = 0; t < projections.size(); ++t) {
    const FastfoodProjection& p = projections[t];
    if (p.device() != plan->device) {
      std::ostringstream os;
      os << "batched Fastfood: projection " << t << " is on " << p.device() << ", projection 0 on " << plan->device
         << "; expected one device";
      return InvalidArgumentError(os.str());
    }
    if (p.subspace_dim() > theta_size) {
      return InvalidArgumentError("batched Fastfood: projection " + std::to_string(t) + " reads " +
                                  std::to_string(p.subspace_dim()) + " entries of theta, which has " +
                                  std::to_string(theta_size));
    }
  }
  plan->offsets.assign(projections.size(), 0);
  if (plan->device.is_cpu()) {
    for (size_t t = 0; t < projections.size(); ++t) {
      plan->offsets[t] = plan->padded_total;
      plan->padded_total += projections[t].padded_size();
    }
    return BatchedFastfood(std::move(plan));
  }
#if defined(DWARP_WITH_CUDA)
  Plan& p = *plan;
  if (projections.size() > 65535) {
    return InvalidArgumentError("batched Fastfood on CUDA: at most 65535 targets, got " +
                                std::to_string(projections.size()));
  }
  const c10::cuda::CUDAGuard device_guard(p.device);
  std::vector<internal::FastfoodTargetShape> shapes;
  for (const FastfoodProjection& proj : projections) {
    shapes.push_back({proj.padded_size(), proj.subspace_dim(), proj.target_size(), static_cast<float>(proj.scale())});
  }
  p.layout = internal::LayOutFastfoodBatch(shapes, internal::CurrentMultiprocessorCount(), /*longest_first=*/true);
  p.offsets = p.layout.offsets;
  p.padded_total = p.layout.padded_total;
  const int64_t fold_blocks = p.layout.fold_block_prefix.back();
  if (fold_blocks > std::numeric_limits<int32_t>::max()) {
    return InvalidArgumentError("batched Fastfood on CUDA: the fold needs " + std::to_string(fold_blocks) +
                                " blocks, more than a launch holds");
  }
  std::vector<at::Tensor> signs, permutations, gaussians;
  for (const int64_t t : p.layout.order) {
    signs.push_back(projections[t].signs());
    permutations.push_back(projections[t].permutation());
    gaussians.push_back(projections[t].gaussians());
  }
  p.signs = at::cat(signs);
  p.permutation = at::cat(permutations);
  p.gaussians = at::cat(gaussians);
  const auto bytes = static_cast<int64_t>(p.layout.segments.size() * sizeof(internal::FastfoodSegment));
  p.segments_device = at::empty({bytes}, at::kByte);
  std::memcpy(p.segments_device.data_ptr(), p.layout.segments.data(), static_cast<size_t>(bytes));
  p.segments_device = p.segments_device.to(p.device);
  p.fold_block_prefix = at::tensor(p.layout.fold_block_prefix, at::kLong).to(p.device);
  // The copies above are queued on the current stream; the plan is used on streams that may not wait for
  // it, so finish them here, once.
  c10::cuda::getCurrentCUDAStream(p.device.index()).synchronize();
  internal::FastfoodBatchTable& table = p.table;
  table.segments = reinterpret_cast<const internal::FastfoodSegment*>(p.segments_device.data_ptr());
  table.host_segments = p.layout.segments.data();
  table.count = static_cast<int>(p.layout.segments.size());
  table.padded_total = p.layout.padded_total;
  table.small_total = p.layout.small_total;
  table.max_small_n = p.layout.max_small_n;
  table.theta_size = theta_size;
  table.signs = p.signs.data_ptr<int8_t>();
  table.permutation = p.permutation.data_ptr<int32_t>();
  table.gaussians = p.gaussians.data_ptr<float>();
  table.fold_block_prefix = p.fold_block_prefix.data_ptr<int64_t>();
  table.fold_blocks = static_cast<int>(fold_blocks);
  table.fold_shared_floats = static_cast<int>(p.layout.fold_shared_floats);
  return BatchedFastfood(std::move(plan));
#else
  std::ostringstream os;
  os << "batched Fastfood: device " << plan->device << " needs a CUDA build";
  return InvalidArgumentError(os.str());
#endif
}

int64_t BatchedFastfood::target_count() const { return static_cast<int64_t>(plan_->projections.size()); }
int64_t BatchedFastfood::theta_size() const { return plan_->theta_size; }
at::Device BatchedFastfood::device() const { return plan_->device; }

std::vector<at::Tensor> BatchedFastfood::Apply(const at::Tensor& theta) const {
  return BatchedFastfoodFunction::apply(theta, *this);
}

std::vector<at::Tensor> BatchedFastfood::Forward(const at::Tensor& theta_in) const {
  const Plan& plan = *plan_;
  TORCH_CHECK(theta_in.defined() && theta_in.dim() == 1 && theta_in.size(0) == plan.theta_size,
              "BatchedFastfood: expected theta of shape [", plan.theta_size, "], got ", Describe(theta_in));
  TORCH_CHECK(theta_in.device() == plan.device, "BatchedFastfood: theta is on ", theta_in.device(),
              " but the projections are on ", plan.device);
  const at::Tensor theta = theta_in.contiguous();
  at::Tensor flat;
  if (theta.is_cpu()) {
    TORCH_CHECK(theta.scalar_type() == at::kFloat || theta.scalar_type() == at::kDouble,
                "BatchedFastfood: expected float32 or float64 theta on CPU, got ", theta.scalar_type());
    flat = PooledEmpty({plan.padded_total}, plan.padded_total, theta.scalar_type());
    AT_DISPATCH_FLOATING_TYPES(theta.scalar_type(), "BatchedFastfood::Forward", [&] {
      const scalar_t* x = theta.data_ptr<scalar_t>();
      scalar_t* out = flat.data_ptr<scalar_t>();
      ForEachTarget(plan, [&](int64_t t) {
        const FastfoodProjection& p = plan.projections[t];
        ForwardCpu(x, p.subspace_dim(), p.signs_.data_ptr<int8_t>(), p.permutation_.data_ptr<int32_t>(),
                   p.gaussians_.data_ptr<float>(), p.scale_, p.padded_size(), out + plan.offsets[t]);
      });
    });
  } else {
#if defined(DWARP_WITH_CUDA)
    TORCH_CHECK(theta.scalar_type() == at::kFloat, "BatchedFastfood: expected float32 theta on CUDA, got ",
                theta.scalar_type());
    const c10::cuda::CUDAGuard device_guard(theta.device());
    // Everything on the current stream, in program order with the LibTorch ops around it.
    void* stream = c10::cuda::getCurrentCUDAStream(theta.get_device()).stream();
    flat = at::empty({plan.padded_total}, theta.options());
    at::Tensor small = at::empty({plan.table.small_total}, theta.options());
    internal::BatchedFastfoodScaleInCuda(plan.table, theta.data_ptr<float>(), small.data_ptr<float>(), stream);
    for (const auto& run : plan.layout.small_runs) {
      internal::FwhtCuda(small.data_ptr<float>() + run[0], run[1], run[2], stream);
    }
    internal::BatchedFastfoodGatherCuda(plan.table, small.data_ptr<float>(), flat.data_ptr<float>(), stream);
    for (const auto& run : plan.layout.padded_runs) {
      internal::FwhtCuda(flat.data_ptr<float>() + run[0], run[1], run[2], stream);
    }
#else
    TORCH_CHECK(false, "BatchedFastfood: device ", theta.device(), " needs a CUDA build");
#endif
  }
  std::vector<at::Tensor> outputs;
  outputs.reserve(plan.projections.size());
  for (size_t t = 0; t < plan.projections.size(); ++t) {
    outputs.push_back(flat.narrow(0, plan.offsets[t], plan.projections[t].target_size()));
  }
  return outputs;
}

at::Tensor BatchedFastfood::Transpose(const std::vector<at::Tensor>& grads_in) const {
  const Plan& plan = *plan_;
  const size_t count = plan.projections.size();
  TORCH_CHECK(grads_in.size() == count, "BatchedFastfood: expected ", count, " gradients, got ", grads_in.size());
  std::vector<at::Tensor> grads(count);
  at::ScalarType dtype = at::ScalarType::Undefined;
  for (size_t t = 0; t < count; ++t) {
    if (!grads_in[t].defined()) continue;
    const int64_t size = plan.projections[t].target_size();
    TORCH_CHECK(grads_in[t].numel() == size, "BatchedFastfood: expected gradient ", t, " of ", size,
                " elements, got ", Describe(grads_in[t]));
    TORCH_CHECK(grads_in[t].device() == plan.device, "BatchedFastfood: gradient ", t, " is on ", grads_in[t].device(),
                " but the projections are on ", plan.device);
    TORCH_CHECK(dtype == at::ScalarType::Undefined || grads_in[t].scalar_type() == dtype,
                "BatchedFastfood: gradients of mixed dtypes (", dtype, " and ", grads_in[t].scalar_type(), ")");
    dtype = grads_in[t].scalar_type();
    grads[t] = grads_in[t].contiguous().view({size});
  }
  const auto options = at::TensorOptions().device(plan.device).dtype(dtype == at::ScalarType::Undefined ? at::kFloat : dtype);
  if (dtype == at::ScalarType::Undefined) return at::zeros({plan.theta_size}, options);
  if (plan.device.is_cpu()) {
    TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble,
                "BatchedFastfood: expected float32 or float64 gradients on CPU, got ", dtype);
    at::Tensor work = PooledEmpty({plan.padded_total}, plan.padded_total, dtype);
    // Each target's share in its own row, summed in target order below: the result does not depend on
    // which thread ran which target.
    at::Tensor shares = at::zeros({static_cast<int64_t>(count), plan.theta_size}, options);
    AT_DISPATCH_FLOATING_TYPES(dtype, "BatchedFastfood::Transpose", [&] {
      scalar_t* w = work.data_ptr<scalar_t>();
      scalar_t* rows = shares.data_ptr<scalar_t>();
      ForEachTarget(plan, [&](int64_t t) {
        if (!grads[t].defined()) return;
        const FastfoodProjection& p = plan.projections[t];
        TransposeCpu(grads[t].data_ptr<scalar_t>(), p.target_size(), p.subspace_dim(), p.signs_.data_ptr<int8_t>(),
                     p.permutation_.data_ptr<int32_t>(), p.gaussians_.data_ptr<float>(), p.scale_, p.padded_size(),
                     w + plan.offsets[t], rows + t * plan.theta_size);
      });
    });
    at::Tensor grad = at::zeros({plan.theta_size}, options);
    AT_DISPATCH_FLOATING_TYPES(dtype, "BatchedFastfood::Transpose sum", [&] {
      scalar_t* out = grad.data_ptr<scalar_t>();
      const scalar_t* rows = shares.data_ptr<scalar_t>();
      for (size_t t = 0; t < count; ++t) {
        if (!grads[t].defined()) continue;
        const scalar_t* row = rows + static_cast<int64_t>(t) * plan.theta_size;
        for (int64_t j = 0; j < plan.projections[t].subspace_dim(); ++j) out[j] += row[j];
      }
    });
    return grad;
  }
#if defined(DWARP_WITH_CUDA)
  TORCH_CHECK(dtype == at::kFloat, "BatchedFastfood: expected float32 gradients on CUDA, got ", dtype);
  const c10::cuda::CUDAGuard device_guard(plan.device);
  void* stream = c10::cuda::getCurrentCUDAStream(plan.device.index()).stream();
  std::vector<const float*> pointers(count, nullptr);
  for (size_t k = 0; k < count; ++k) {
    const at::Tensor& g = grads[plan.layout.order[k]];
    if (g.defined()) pointers[k] = g.data_ptr<float>();
  }
  at::Tensor work = at::empty({plan.padded_total}, options);
  internal::BatchedFastfoodGradInCuda(plan.table, pointers.data(), work.data_ptr<float>(), stream);
  for (const auto& run : plan.layout.padded_runs) {
    internal::FwhtCuda(work.data_ptr<float>() + run[0], run[1], run[2], stream);
  }
  at::Tensor small = at::empty({plan.table.small_total}, options);
  internal::BatchedFastfoodFoldCuda(plan.table, work.data_ptr<float>(), small.data_ptr<float>(), stream);
  for (const auto& run : plan.layout.small_runs) {
    internal::FwhtCuda(small.data_ptr<float>() + run[0], run[1], run[2], stream);
  }
  at::Tensor grad = at::empty({plan.theta_size}, options);
  internal::BatchedFastfoodScaleOutCuda(plan.table, small.data_ptr<float>(), grad.data_ptr<float>(), stream);
  return grad;
#else
  TORCH_CHECK(false, "BatchedFastfood: device ", plan.device, " needs a CUDA build");
#endif
}

}  // namespace dwarp::engine
