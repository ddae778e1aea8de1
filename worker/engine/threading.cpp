#include "worker/engine/threading.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <dlfcn.h>

namespace dwarp::engine {

bool SetComputeThreads(int threads) {
  TORCH_CHECK(threads >= 1, "SetComputeThreads: threads must be >= 1, got ", threads);
  at::set_num_threads(threads);
  // Looked up at run time: the LibTorch in use may link another BLAS (MKL, a CUDA build's), or none.
  using SetBlasThreads = void (*)(int);
  auto set_blas_threads = reinterpret_cast<SetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (set_blas_threads == nullptr) return false;
  set_blas_threads(1);
  return true;
}

}  // namespace dwarp::engine
