#include "worker/engine/fwht_cpu.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <algorithm>

#include "worker/engine/fwht.h"
#include "worker/engine/fwht_cpu_kernel_table.h"
#if defined(DWARP_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "worker/engine/fwht_cuda.h"
#endif

namespace dwarp::engine {
namespace internal {
namespace {

bool CpuHasAvx2() {
#if defined(DWARP_HAVE_AVX2_KERNELS)
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
#else
  return false;
#endif
}

template <typename T>
const FwhtKernelTable<T>& Kernels(FwhtIsa isa);

template <>
const FwhtKernelTable<float>& Kernels<float>(FwhtIsa isa) {
#if defined(DWARP_HAVE_AVX2_KERNELS)
  if (isa == FwhtIsa::kBest && CpuHasAvx2()) return Avx2FloatKernels();
#endif
  (void)isa;
  return GenericFloatKernels();
}

template <>
const FwhtKernelTable<double>& Kernels<double>(FwhtIsa isa) {
#if defined(DWARP_HAVE_AVX2_KERNELS)
  if (isa == FwhtIsa::kBest && CpuHasAvx2()) return Avx2DoubleKernels();
#endif
  (void)isa;
  return GenericDoubleKernels();
}

// Below this many elements per task, thread hand-off costs more than the work.
constexpr int64_t kMinElementsPerTask = int64_t{1} << 15;

template <typename T>
void FwhtDriver(T* data, int64_t batch, int64_t n, FwhtIsa isa, const FwhtFusion<T>* fusion) {
  if (batch <= 0 || (n <= 1 && fusion == nullptr)) return;
  const FwhtKernelTable<T>& kernels = Kernels<T>(isa);
  const bool fill = fusion != nullptr && fusion->fill != nullptr;
  const bool consume = fusion != nullptr && fusion->consume != nullptr;
  const int64_t block = std::min<int64_t>(n, kBlockBytes / static_cast<int64_t>(sizeof(T)));
  const int64_t blocks = batch * (n / block);
  const auto run_block = [&](int64_t i) {
    T* p = data + i * block;
    if (fill) fusion->fill(fusion->context, p, i * block, block);
    kernels.transform_block(p, block);
  };
  if (consume && block == n) {
    // The block sweep is the last one: consume each block as soon as it is final.
    const int64_t chunks = std::min(fusion->consume_chunks, blocks);
    at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        for (int64_t i = blocks * c / chunks; i < blocks * (c + 1) / chunks; ++i) {
          run_block(i);
          fusion->consume(fusion->context, c, data, i * block, 1, block, block);
        }
      }
    });
    return;
  }
  at::parallel_for(0, blocks, std::max<int64_t>(1, kMinElementsPerTask / block), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) run_block(i);
  });
  // Stages of stride >= block, in tile passes over the whole vector; tiles are independent within a pass.
  for (int64_t h = block; h < n;) {
    const int r = StagesThisPass(Log2(n / h));
    const int64_t width = TileWidth(sizeof(T), h, r);
    const int64_t rows = int64_t{1} << r;
    const int64_t tiles_per_vector = n / (width << r);
    const int64_t total = batch * tiles_per_vector;
    if (consume && (h << r) >= n) {
      const int64_t tiles_per_span = h / width;
      const int64_t chunks = std::min(fusion->consume_chunks, total);
      at::parallel_for(0, chunks, 1, [&](int64_t cb, int64_t ce) {
        for (int64_t c = cb; c < ce; ++c) {
          for (int64_t t = total * c / chunks; t < total * (c + 1) / chunks; ++t) {
            const int64_t vector = t / tiles_per_vector;
            const int64_t tile = t % tiles_per_vector;
            kernels.tile_pass(data + vector * n, n, h, r, tile, tile + 1);
            const int64_t first = vector * n + (tile / tiles_per_span) * h * rows + (tile % tiles_per_span) * width;
            fusion->consume(fusion->context, c, data, first, rows, h, width);
          }
        }
      });
    } else {
      const int64_t grain = std::max<int64_t>(1, kMinElementsPerTask / (width << r));
      at::parallel_for(0, total, grain, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e;) {
          const int64_t vector = t / tiles_per_vector;
          const int64_t first = t % tiles_per_vector;
          const int64_t last = std::min(tiles_per_vector, first + (e - t));
          kernels.tile_pass(data + vector * n, n, h, r, first, last);
          t += last - first;
        }
      });
    }
    h <<= r;
  }
}

}  // namespace

void FwhtCpu(float* data, int64_t batch, int64_t n, FwhtIsa isa) { FwhtDriver<float>(data, batch, n, isa, nullptr); }
void FwhtCpu(double* data, int64_t batch, int64_t n, FwhtIsa isa) { FwhtDriver<double>(data, batch, n, isa, nullptr); }
void FwhtCpuFused(float* data, int64_t n, const FwhtFusion<float>& fusion) {
  FwhtDriver(data, 1, n, FwhtIsa::kBest, &fusion);
}
void FwhtCpuFused(double* data, int64_t n, const FwhtFusion<double>& fusion) {
  FwhtDriver(data, 1, n, FwhtIsa::kBest, &fusion);
}
const char* FwhtCpuIsa() { return Kernels<float>(FwhtIsa::kBest).isa; }

}  // namespace internal

void FwhtInPlace(const at::Tensor& x) {
  TORCH_CHECK(x.defined(), "FwhtInPlace: got an undefined tensor");
  TORCH_CHECK(x.dim() >= 1, "FwhtInPlace: expected a tensor with at least one dimension, got a scalar");
  TORCH_CHECK(x.is_contiguous(), "FwhtInPlace: expected a contiguous tensor, got strides ", x.strides());
  const int64_t n = x.size(-1);
  TORCH_CHECK(n >= 1 && (n & (n - 1)) == 0, "FwhtInPlace: the last dimension must be a power of two, got ", n,
              " (shape ", x.sizes(), ")");
  const int64_t batch = n == 0 ? 0 : x.numel() / n;
  if (x.is_cpu()) {
    if (x.scalar_type() == at::kFloat) return internal::FwhtCpu(x.data_ptr<float>(), batch, n);
    if (x.scalar_type() == at::kDouble) return internal::FwhtCpu(x.data_ptr<double>(), batch, n);
    TORCH_CHECK(false, "FwhtInPlace: expected float32 or float64 on CPU, got ", x.scalar_type());
  }
#if defined(DWARP_WITH_CUDA)
  if (x.is_cuda()) {
    TORCH_CHECK(x.scalar_type() == at::kFloat, "FwhtInPlace: expected float32 on CUDA, got ", x.scalar_type());
    const c10::cuda::CUDAGuard device_guard(x.device());  // the launchers use the current device
    return internal::FwhtCuda(x.data_ptr<float>(), batch, n, c10::cuda::getCurrentCUDAStream(x.get_device()).stream());
  }
#endif
  TORCH_CHECK(false, "FwhtInPlace: unsupported device ", x.device(),
              "; this build has CPU kernels only (configure against a CUDA LibTorch for CUDA kernels)");
}

}  // namespace dwarp::engine
