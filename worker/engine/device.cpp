#include "worker/engine/device.h"

#include <torch/cuda.h>

#include <algorithm>
#include <cctype>

namespace dwarp::engine {

bool EngineHasCudaKernels() {
#if defined(DWARP_WITH_CUDA)
  return true;
#else
  return false;
#endif
}

bool IsDeviceName(const std::string& text) {
  if (text == "cpu" || text == "cuda") return true;
  const std::string digits = text.rfind("cuda:", 0) == 0 ? text.substr(5) : std::string();
  return !digits.empty() && digits.size() <= 3 &&
         std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); });
}

StatusOr<c10::Device> ResolveDevice(const std::string& text, const std::string& what) {
  const std::string prefix = what + " = '" + text + "'";
  if (!IsDeviceName(text)) return InvalidArgumentError(prefix + ": expected cpu, cuda or cuda:N (N a device index)");
  if (text == "cpu") return c10::Device(c10::kCPU);
  const int index = text == "cuda" ? -1 : std::stoi(text.substr(5));
  if (!EngineHasCudaKernels()) {
    return FailedPreconditionError(prefix + ": this dwarp was built without CUDA (its LibTorch is a CPU build, or "
                                   "DWARP_CUDA=OFF), so expected cpu; build against a CUDA LibTorch to use a GPU");
  }
  const auto count = static_cast<int>(torch::cuda::device_count());
  if (!torch::cuda::is_available() || count == 0) {
    return FailedPreconditionError(prefix + ": LibTorch sees no CUDA device (no driver or no GPU, or "
                                   "CUDA_VISIBLE_DEVICES is empty); expected cpu on this machine");
  }
  if (index >= count) {
    return FailedPreconditionError(prefix + ": this process sees " + std::to_string(count) + " CUDA device" +
                                   (count == 1 ? "" : "s") + ", so expected cuda or cuda:0 .. cuda:" +
                                   std::to_string(count - 1));
  }
  return index < 0 ? c10::Device(c10::kCUDA) : c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace dwarp::engine
