// Contract of device.h (which devices a job may use) and, where this process has a GPU, that the engine's
// training paths give the same answer on CUDA as on the CPU. The CUDA cases skip on machines without one
// (named *_CUDA: the test main filters them out there; an engine-only CUDA build on a GPU box runs them).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <functional>
#include <string>

#include "worker/engine/datasets/synthetic_brain.h"
#include "worker/engine/device.h"
#include "worker/engine/models/mlp.h"
#include "worker/engine/models/model_registry.h"
#include "worker/engine/train/classifier_training.h"
#include "worker/engine/train/encoding_training.h"
#include "worker/engine/train/feature_cache.h"
#include "worker/engine/train/readout_training.h"

namespace dwarp::engine {
namespace {

bool CudaUsable() { return EngineHasCudaKernels() && torch::cuda::is_available() && torch::cuda::device_count() > 0; }

TEST(ResolveDeviceTest, CpuIsAlwaysUsable) {
  auto device = ResolveDevice("cpu", "train.device");
  ASSERT_TRUE(device.ok()) << device.status();
  EXPECT_TRUE(device->is_cpu());
}

TEST(ResolveDeviceTest, MalformedNamesAreInvalidArgumentsListingTheForms) {
  for (const char* bad : {"gpu", "", "CPU", "cuda:", "cuda:x", "cuda:-1", "cuda:1234", "cuda0", "mps"}) {
    auto device = ResolveDevice(bad, "train.device");
    ASSERT_FALSE(device.ok()) << bad;
    EXPECT_EQ(device.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(device.status().message().find("train.device = '" + std::string(bad) + "'"), std::string::npos)
        << device.status().message();
    EXPECT_NE(device.status().message().find("cpu, cuda or cuda:N"), std::string::npos) << device.status().message();
  }
}

TEST(ResolveDeviceTest, CudaIsRefusedWithTheReasonWhereItCannotRun) {
  if (!EngineHasCudaKernels()) {
    for (const char* name : {"cuda", "cuda:0"}) {
      auto device = ResolveDevice(name, "--devices");
      ASSERT_FALSE(device.ok()) << name;
      EXPECT_EQ(device.status().code(), StatusCode::kFailedPrecondition);
      EXPECT_NE(device.status().message().find("--devices = '" + std::string(name) + "'"), std::string::npos);
      EXPECT_NE(device.status().message().find("built without CUDA"), std::string::npos) << device.status().message();
    }
    return;
  }
  if (!CudaUsable()) {
    auto device = ResolveDevice("cuda", "train.device");
    ASSERT_FALSE(device.ok());
    EXPECT_EQ(device.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(device.status().message().find("no CUDA device"), std::string::npos) << device.status().message();
    return;
  }
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  auto first = ResolveDevice("cuda:0", "train.device");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->is_cuda());
  EXPECT_EQ(first->index(), 0);
  auto beyond = ResolveDevice("cuda:" + std::to_string(count), "train.device");
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(beyond.status().message().find("sees " + std::to_string(count) + " CUDA device"), std::string::npos)
      << beyond.status().message();
}

// ---- the engine on a GPU (skipped without one) ---------------------------------------------------------

torch::jit::Module Mlp(uint64_t seed) {
  auto mlp = CreateMlp(MlpOptions(16, 24).hidden({48}).seed(seed));
  EXPECT_TRUE(mlp.ok()) << mlp.status();
  return std::move(mlp).value();
}

NeuralData Brain() {
  const at::Tensor stimuli = at::randn({400, 16}, at::make_generator<at::CPUGeneratorImpl>(5));
  auto data = MakeSyntheticBrain(Mlp(3), stimuli, {},
                                 SyntheticBrainOptions().targets(8).warp_dim(12).warp_scale(1.5).noise(0.1).seed(8));
  EXPECT_TRUE(data.ok()) << data.status();
  return std::move(data).value();
}

// The frozen Mlp(3)'s output features of `data`, computed and cached on `device`.
StatusOr<CachedFeatures> MlpFeaturesOn(const NeuralData& data, const c10::Device& device) {
  torch::jit::Module module = Mlp(3);
  module.to(device);
  module.eval();
  return CacheFeatures([&](const at::Tensor& x) { return module.forward({x}).toTensor(); }, data,
                       FeatureCacheOptions().device(device));
}

EncodingTrainingOptions Options() {
  return EncodingTrainingOptions()
      .epochs(6)
      .batch_size(32)
      .head_learning_rate(1e-2)
      .learning_rate(5e-2)
      .patience(0)
      .seed(1);
}

// The test R^2 that `test_r2` reaches on the CPU and on CUDA device 0, printed as "<what>: cpu .., cuda ..",
// agree: same draws, same data order; only float summation order differs (the CUDA fold uses atomics).
void ExpectTheCpuAndCudaAgree(const std::string& what,
                              const std::function<StatusOr<double>(const c10::Device&)>& test_r2) {
  double r2[2] = {0.0, 0.0};
  const c10::Device devices[2] = {c10::Device(c10::kCPU), c10::Device(c10::kCUDA, 0)};
  for (int i = 0; i < 2; ++i) {
    auto r2_on_device = test_r2(devices[i]);
    ASSERT_TRUE(r2_on_device.ok()) << devices[i] << ": " << r2_on_device.status();
    r2[i] = *r2_on_device;
  }
  std::printf("%s: cpu %.5f, cuda %.5f\n", what.c_str(), r2[0], r2[1]);
  EXPECT_NEAR(r2[0], r2[1], 2e-3);
}

TEST(CudaTrainingTest, SubspaceEncodingMatchesTheCpu_CUDA) {
  if (!CudaUsable()) GTEST_SKIP() << "no usable CUDA device in this process";
  const NeuralData data = Brain();
  ExpectTheCpuAndCudaAgree("test R^2 after 6 epochs at d = 40", [&](const c10::Device& device) -> StatusOr<double> {
    torch::jit::Module module = Mlp(3);
    module.to(device);
    auto model = SubspaceModel::Create(module, SubspaceOptions(40).seed(21));
    if (!model.ok()) return model.status();
    EXPECT_EQ(model->theta_d().device(), device);
    auto result = TrainEncoderInSubspace(*model, data, Options());
    if (!result.ok()) return result.status();
    return result->test.r2;
  });
}

// The batched projection on CUDA (SubspaceOptions::batched) trains as the per-tensor CUDA path and the
// CPU do, in the modes jobs use.
TEST(CudaTrainingTest, BatchedProjectionTrainsAsThePerTensorPath_CUDA) {
  if (!CudaUsable()) GTEST_SKIP() << "no usable CUDA device in this process";
  const NeuralData data = Brain();
  for (auto mode : {ProjectionMode::kSizeWeighted, ProjectionMode::kReference}) {
    double r2[3] = {0.0, 0.0, 0.0};
    const c10::Device devices[3] = {c10::Device(c10::kCPU), c10::Device(c10::kCUDA, 0), c10::Device(c10::kCUDA, 0)};
    const bool batched[3] = {true, false, true};
    for (int i = 0; i < 3; ++i) {
      torch::jit::Module module = Mlp(3);
      module.to(devices[i]);
      auto model = SubspaceModel::Create(module, SubspaceOptions(40).seed(21).projection(mode).batched(batched[i]));
      ASSERT_TRUE(model.ok()) << model.status();
      EXPECT_EQ(model->uses_batched_projection(), batched[i]);
      auto result = TrainEncoderInSubspace(*model, data, Options());
      ASSERT_TRUE(result.ok()) << devices[i] << ": " << result.status();
      r2[i] = result->test.r2;
    }
    std::printf("%s: test R^2 after 6 epochs at d = 40: cpu batched %.5f, cuda per tensor %.5f, cuda batched %.5f\n",
                ProjectionModeName(mode), r2[0], r2[1], r2[2]);
    EXPECT_NEAR(r2[2], r2[1], 2e-3) << ProjectionModeName(mode);
    EXPECT_NEAR(r2[2], r2[0], 2e-3) << ProjectionModeName(mode);
  }
}

TEST(CudaTrainingTest, CachedFeaturesAndSgdReadoutMatchTheCpu_CUDA) {
  if (!CudaUsable()) GTEST_SKIP() << "no usable CUDA device in this process";
  const NeuralData data = Brain();
  ExpectTheCpuAndCudaAgree("d = 0 SGD readout test R^2", [&](const c10::Device& device) -> StatusOr<double> {
    auto cache = MlpFeaturesOn(data, device);
    if (!cache.ok()) return cache.status();
    EXPECT_EQ(cache->train.features.device(), device);
    auto readout = TrainSgdReadout(*cache, SgdReadoutOptions().epochs(5).seed(2));
    if (!readout.ok()) return readout.status();
    return readout->test.r2;
  });
}

// Ridge with k-fold alpha selection indexes the cached features with its fold rows (CPU indices); the
// features may be cached on the GPU.
TEST(CudaTrainingTest, RidgeReadoutWithFoldsOnCachedFeaturesMatchesTheCpu_CUDA) {
  if (!CudaUsable()) GTEST_SKIP() << "no usable CUDA device in this process";
  const NeuralData data = Brain();
  const std::string what = "d = 0 ridge readout (3 folds) test R^2";
  ExpectTheCpuAndCudaAgree(what, [&](const c10::Device& device) -> StatusOr<double> {
    auto cache = MlpFeaturesOn(data, device);
    if (!cache.ok()) return cache.status();
    EXPECT_EQ(cache->train.features.device(), device);
    auto readout = TrainRidgeReadout(*cache, RidgeOptions().folds(3));
    if (!readout.ok()) return readout.status();
    return readout->test.r2;
  });
}

// A frozen MLP's fc1 features of 3 Gaussian blobs, classified by a linear head at d = 0 (features cached on
// the device) and through a 30-dimensional subspace with a head on fc1.
TEST(CudaTrainingTest, ClassifiersWithAHeadMatchTheCpu_CUDA) {
  if (!CudaUsable()) GTEST_SKIP() << "no usable CUDA device in this process";
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  const at::Tensor labels = at::randint(3, {300}, gen, at::kLong);
  const at::Tensor centres = at::randn({3, 16}, gen) * 2.0;
  const at::Tensor inputs = centres.index_select(0, labels) + at::randn({300, 16}, gen);
  auto split = [&](int64_t begin, int64_t count) {
    return ClassificationData{inputs.narrow(0, begin, count).view({count, 1, 4, 4}), labels.narrow(0, begin, count), 3};
  };
  const ClassifierSplits splits{split(0, 180), split(180, 60), split(240, 60)};
  double linear[2] = {0, 0}, subspace[2] = {0, 0};
  const c10::Device devices[2] = {c10::Device(c10::kCPU), c10::Device(c10::kCUDA, 0)};
  for (int i = 0; i < 2; ++i) {
    auto mlp = CreateModel("mlp", ModelOptions().layer("fc1").in_channels(1).image_size(4, 4).hidden({24})
                                      .num_classes(3).seed(4));
    ASSERT_TRUE(mlp.ok()) << mlp.status();
    torch::jit::Module module = mlp->module;
    module.to(devices[i]);
    module.eval();
    const auto options = ClassifierTrainingOptions().epochs(4).batch_size(32).learning_rate(5e-2).seed(1)
                             .linear_head(true).head_learning_rate(1e-2).feature_device(devices[i]);
    auto d0 = TrainLinearClassifier([&](const at::Tensor& x) { return module.forward({x}).toTensor(); }, splits,
                                    options);
    ASSERT_TRUE(d0.ok()) << devices[i] << ": " << d0.status();
    linear[i] = d0->test_accuracy;
    auto model = SubspaceModel::Create(module, SubspaceOptions(30).seed(2).warp_prefixes(mlp->warp_prefixes));
    ASSERT_TRUE(model.ok()) << model.status();
    auto trained = TrainClassifierInSubspace(*model, splits, options);
    ASSERT_TRUE(trained.ok()) << devices[i] << ": " << trained.status();
    subspace[i] = trained->test_accuracy;
  }
  std::printf("test accuracy d = 0: cpu %.4f cuda %.4f; d = 30: cpu %.4f cuda %.4f\n", linear[0], linear[1],
              subspace[0], subspace[1]);
  EXPECT_NEAR(linear[0], linear[1], 2.0 / 60);  // at most one test example may flip
  EXPECT_NEAR(subspace[0], subspace[1], 2.0 / 60);
}

}  // namespace
}  // namespace dwarp::engine
