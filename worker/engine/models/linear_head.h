// AttachLinearHead: one module made of a network read out at a layer and a linear head on its
// representation, so that a SubspaceModel can warp both through the same theta_d (readout prefit_warped,
// common/job_spec.h):
//
//   forward(x) = flatten(body(x), 1) W^T + b        x [N, ...] -> [N, T]
//
// The result has two submodules: "body", a deep copy of the caller's module (its parameter names gain the
// prefix "body."), and "head", whose parameters are weight [T, F] and bias [T] (nn.Linear's layout),
// copies of the given tensors with requires_grad set as the body's parameters (so SubspaceModel warps
// them like any other). The result is in eval mode; the caller's module and tensors are left untouched.
//
// Errors: InvalidArgument, naming the shapes, when weight is not [T, F] or bias not [T], or when they
// differ in dtype or device from the body's first parameter.
// Thread-safety: builds a new module each call; safe to call concurrently.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include "common/status.h"

namespace dwarp::engine {

// The prefix AttachLinearHead gives the body's parameter names, and the head's submodule name.
inline constexpr char kAttachedBodyName[] = "body";
inline constexpr char kAttachedHeadName[] = "head";

StatusOr<torch::jit::Module> AttachLinearHead(const torch::jit::Module& body, const at::Tensor& weight,
                                              const at::Tensor& bias);

}  // namespace dwarp::engine
