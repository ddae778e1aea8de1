// Where a job computes: the spec's train.device ("cpu", "cuda", "cuda:N") turned into a LibTorch device that
// this process can really use, or a clear reason why not.
//
//   cpu      always usable.
//   cuda     the current CUDA device (index 0 unless CUDA_VISIBLE_DEVICES says otherwise).
//   cuda:N   CUDA device N of those this process sees.
// A CUDA device needs three things, each refused with its own FailedPrecondition naming the device:
// dwarp's engine built with its CUDA kernels (DWARP_WITH_CUDA: a CUDA LibTorch found at configure time),
// a LibTorch that can reach a driver and at least one GPU, and N below the number of visible GPUs.
// Anything else (a typo such as "gpu" or "cuda:x") is InvalidArgument listing the accepted forms.
//
// Thread-safety: ResolveDevice only queries LibTorch; safe from any thread.
#pragma once

#include <c10/core/Device.h>

#include <string>

#include "common/status.h"

namespace dwarp::engine {

// True when `text` is spelled as a device: cpu, cuda or cuda:N with N of 1 to 3 digits (usable or not).
bool IsDeviceName(const std::string& text);

// `what` names the setting in errors (e.g. "train.device").
StatusOr<c10::Device> ResolveDevice(const std::string& text, const std::string& what = "device");

// True when this engine was built with its CUDA kernels (the Fastfood transform on GPU).
bool EngineHasCudaKernels();

}  // namespace dwarp::engine
