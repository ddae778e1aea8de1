#include "worker/engine/fastfood_projection.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

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

}  // namespace dwarp::engine
