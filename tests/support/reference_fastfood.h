// Reference implementations written the way the Python research code does it: one torch op per FWHT
// stage, a dense gather for the permutation, autograd for the backward. Slow on purpose; tests use them
// as an independent oracle and the benchmark as the baseline to beat.
#pragma once

#include <ATen/ATen.h>

#include "worker/engine/fastfood_projection.h"

namespace dwarp::testing {

// Unnormalised FWHT along the last dimension, one stage at a time with torch ops (differentiable).
inline at::Tensor PerStageFwht(const at::Tensor& input) {
  const int64_t n = input.size(-1);
  at::Tensor x = input.reshape({-1, n});
  for (int64_t h = 1; h < n; h *= 2) {
    const at::Tensor pairs = x.view({-1, n / (2 * h), 2, h});
    const at::Tensor a = pairs.select(2, 0);
    const at::Tensor b = pairs.select(2, 1);
    x = at::stack({a + b, a - b}, 2).view({-1, n});
  }
  return x.view(input.sizes());
}

// P theta of `projection`, stage by stage over the full padded length (differentiable in theta).
inline at::Tensor PerStageFastfood(const engine::FastfoodProjection& projection, const at::Tensor& theta) {
  const int64_t padded = projection.padded_size();
  const auto options = theta.options();
  at::Tensor x = at::cat({theta, at::zeros({padded - theta.numel()}, options)});
  x = x * projection.signs().to(options);
  x = PerStageFwht(x);
  x = x.index_select(0, projection.permutation().to(at::kLong));
  x = x * projection.gaussians().to(options);
  x = PerStageFwht(x);
  return x.narrow(0, 0, projection.target_size()) * projection.scale();
}

// The Walsh–Hadamard matrix H_n[i][j] = (-1)^popcount(i & j), dense.
inline at::Tensor DenseHadamard(int64_t n, at::ScalarType dtype) {
  at::Tensor h = at::empty({n, n}, at::kDouble);
  double* p = h.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) p[i * n + j] = (__builtin_popcountll(static_cast<uint64_t>(i & j)) & 1) ? -1.0 : 1.0;
  }
  return h.to(dtype);
}

}  // namespace dwarp::testing
