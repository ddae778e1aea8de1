// FWHT kernels for any CPU, compiled with the project's baseline flags.
#include "worker/engine/fwht_cpu_kernels.h"

namespace dwarp::engine::internal {

const FwhtKernelTable<float>& GenericFloatKernels() {
  static const FwhtKernelTable<float> table = MakeKernelTable<float>("generic");
  return table;
}

const FwhtKernelTable<double>& GenericDoubleKernels() {
  static const FwhtKernelTable<double> table = MakeKernelTable<double>("generic");
  return table;
}

}  // namespace dwarp::engine::internal
