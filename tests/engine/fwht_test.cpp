// Contract of fwht.h / fwht_cpu.h: the unnormalised Walsh–Hadamard transform, in place, any batch.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/support/expect_c10_error.h"
#include "tests/support/reference_fastfood.h"
#include "worker/engine/fwht.h"
#include "worker/engine/fwht_cpu.h"

namespace dwarp::engine {
namespace {

using dwarp::testing::DenseHadamard;
using dwarp::testing::PerStageFwht;

double Tolerance(at::ScalarType dtype, int64_t n) {
  // Each output is a sum of n terms of magnitude <= 1 (inputs are uniform in [-1, 1]).
  const double eps = dtype == at::kFloat ? 1.2e-7 : 2.3e-16;
  return 4.0 * eps * static_cast<double>(n) + 1e-12;
}

class FwhtDenseTest : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(FwhtDenseTest, MatchesDenseHadamardForEveryPowerOfTwoUpTo4096) {
  const at::ScalarType dtype = GetParam();
  at::manual_seed(1);
  for (int k = 0; k <= 12; ++k) {
    const int64_t n = int64_t{1} << k;
    const at::Tensor h = DenseHadamard(n, at::kDouble);
    for (const int64_t batch : {int64_t{1}, int64_t{3}}) {
      const at::Tensor x = at::rand({batch, n}, at::kDouble) * 2 - 1;
      const at::Tensor expected = at::matmul(x, h);  // H is symmetric
      at::Tensor got = x.to(dtype, /*non_blocking=*/false, /*copy=*/true);
      FwhtInPlace(got);
      const double err = (got.to(at::kDouble) - expected).abs().max().item<double>();
      EXPECT_LE(err, Tolerance(dtype, n)) << "n = " << n << ", batch = " << batch << ", dtype " << dtype;
    }
  }
}

TEST_P(FwhtDenseTest, SingleVectorWithoutBatchDimension) {
  const at::ScalarType dtype = GetParam();
  const at::Tensor x = at::rand({64}, at::kDouble) * 2 - 1;
  const at::Tensor expected = at::matmul(DenseHadamard(64, at::kDouble), x);
  at::Tensor got = x.to(dtype, /*non_blocking=*/false, /*copy=*/true);
  FwhtInPlace(got);
  EXPECT_LE((got.to(at::kDouble) - expected).abs().max().item<double>(), Tolerance(dtype, 64));
}

INSTANTIATE_TEST_SUITE_P(FloatAndDouble, FwhtDenseTest, ::testing::Values(at::kFloat, at::kDouble),
                         [](const auto& info) { return std::string(c10::toString(info.param)); });

// Sizes past one L2 block exercise the tile passes (1, 2 and 3 of them) that a 4096-point check never reaches.
TEST(FwhtTest, LargeSizesMatchPerStageReferenceAndInvertUpToN) {
  at::manual_seed(2);
  for (const int k : {13, 15, 16, 17, 18, 20, 22}) {
    const int64_t n = int64_t{1} << k;
    const int64_t batch = k <= 17 ? 3 : 1;
    const at::Tensor x = at::rand({batch, n}, at::kDouble) * 2 - 1;
    const at::Tensor expected = PerStageFwht(x);
    at::Tensor got = x.clone();
    FwhtInPlace(got);
    EXPECT_LE((got - expected).abs().max().item<double>(), 1e-9 * n) << "n = 2^" << k;
    FwhtInPlace(got);  // H (H x) = n x
    EXPECT_LE((got / static_cast<double>(n) - x).abs().max().item<double>(), 1e-12 * k) << "n = 2^" << k;

    at::Tensor got_float = x.to(at::kFloat);
    FwhtInPlace(got_float);
    const double scale = expected.abs().max().item<double>();
    EXPECT_LE((got_float.to(at::kDouble) - expected).abs().max().item<double>(), 1e-5 * scale) << "n = 2^" << k;
  }
}

TEST(FwhtTest, GenericKernelsAgreeWithDispatchedKernels) {
  at::manual_seed(3);
  for (const int k : {0, 1, 3, 4, 9, 12, 14, 19}) {
    const int64_t n = int64_t{1} << k;
    const at::Tensor x = at::rand({2, n}, at::kFloat) * 2 - 1;
    at::Tensor best = x.clone();
    at::Tensor generic = x.clone();
    internal::FwhtCpu(best.data_ptr<float>(), 2, n, internal::FwhtIsa::kBest);
    internal::FwhtCpu(generic.data_ptr<float>(), 2, n, internal::FwhtIsa::kGeneric);
    EXPECT_LE((best - generic).abs().max().item<float>(), 1e-5f * n) << "n = 2^" << k << ", ISA " << internal::FwhtCpuIsa();
  }
}

TEST(FwhtTest, ManyShortVectorsInOneBatch) {
  const at::Tensor x = at::rand({1000, 16}, at::kDouble);
  at::Tensor got = x.clone();
  FwhtInPlace(got);
  EXPECT_TRUE(at::allclose(got, at::matmul(x, DenseHadamard(16, at::kDouble))));
}

TEST(FwhtTest, RejectsLengthThatIsNotAPowerOfTwo) {
  at::Tensor x = at::zeros({2, 12});
  dwarp::testing::ExpectC10ErrorContaining([&] { FwhtInPlace(x); }, "power of two, got 12");
}

TEST(FwhtTest, RejectsNonContiguousAndIntegerTensors) {
  at::Tensor strided = at::zeros({8, 8}).t();
  EXPECT_THROW(FwhtInPlace(strided), c10::Error);
  at::Tensor ints = at::zeros({8}, at::kInt);
  dwarp::testing::ExpectC10ErrorContaining([&] { FwhtInPlace(ints); }, "Int");
}

TEST(FwhtTest, MatchesCpu_CUDA) {
  at::manual_seed(4);
  for (const int k : {0, 3, 10, 12, 13, 16, 20, 24}) {
    const int64_t n = int64_t{1} << k;
    const int64_t batch = k <= 16 ? 5 : 1;
    const at::Tensor x = at::rand({batch, n}, at::kFloat) * 2 - 1;
    at::Tensor cpu = x.clone();
    FwhtInPlace(cpu);
    at::Tensor gpu = x.to(at::kCUDA);
    FwhtInPlace(gpu);
    const double scale = cpu.abs().max().item<double>();
    EXPECT_LE((gpu.cpu() - cpu).abs().max().item<double>(), 1e-5 * scale) << "n = 2^" << k;
  }
}

}  // namespace
}  // namespace dwarp::engine
