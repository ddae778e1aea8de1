// FWHT kernels compiled with -mavx2 -mfma (see CMakeLists.txt); fwht_cpu.cpp calls them only when
// the CPU reports AVX2.
#include "worker/engine/fwht_cpu_kernels.h"

#if !defined(__AVX2__)
#error "fwht_cpu_avx2.cpp must be compiled with AVX2 enabled"
#endif

namespace dwarp::engine::internal {

const FwhtKernelTable<float>& Avx2FloatKernels() {
  static const FwhtKernelTable<float> table = MakeKernelTable<float>("avx2");
  return table;
}

const FwhtKernelTable<double>& Avx2DoubleKernels() {
  static const FwhtKernelTable<double> table = MakeKernelTable<double>("avx2");
  return table;
}

}  // namespace dwarp::engine::internal
