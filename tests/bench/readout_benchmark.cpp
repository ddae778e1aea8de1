// The d = 0 path of one encoding job two ways, in the same run:
//   cached     the frozen model's features are computed once (CacheFeatures) and the SGD readout trains
//              on them (TrainSgdReadout): the engine's d = 0 path
//   recompute  the frozen model runs again on every minibatch, every epoch, and on the validation split
//              after every epoch, as the research code's d = 0 training loop does
// Same stimuli, responses, head initialisation, Adam settings, minibatch order and epoch count (no early
// stopping), so both runs train the same head; the printed test R² of both shows it. The frozen model is
// a small CNN written with ATen ops (3x32x32 images -> 3 conv layers -> 2048 features;
// far cheaper per image than a ResNet-18, so the ratios here understate a real job's).
//
// Prints the ratio recompute / cached for the whole job (caching included) and per epoch (caching
// excluded), and how many stimuli each runs through the model: caching is one forward pass over every
// stimulus, recomputing E (N_train + N_val) + N_test, so when the model's forward dominates, the
// whole-job ratio approaches that count's ratio (about 0.8 E here) and grows with the epoch count.
//
//   readout_benchmark [--threads N] [--epochs E] [--stimuli N] [--lr LR] [google benchmark flags]
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/optim/adam.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include <unistd.h>

#include "tests/bench/ratio_reporter.h"
#include "worker/engine/seeded_random.h"
#include "worker/engine/threading.h"
#include "worker/engine/train/feature_cache.h"
#include "worker/engine/train/metrics.h"
#include "worker/engine/train/readout_training.h"

namespace {

using namespace dwarp::engine;

int g_epochs = 30;
int64_t g_stimuli = 400;
constexpr int64_t kTargets = 50;
constexpr int64_t kFeatures = 128 * 4 * 4;  // the CNN's output
constexpr int64_t kBatch = 64;  // EncodingTrainingOptions' default
double g_learning_rate = 1e-2;
constexpr uint64_t kSeed = 7;

// A small frozen CNN: conv 3->32, pool, conv 32->64, pool, conv 64->128, 4x4 average pool, flatten.
struct SmallCnn {
  std::vector<at::Tensor> weights, biases;
  SmallCnn() {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
    const int64_t channels[] = {3, 32, 64, 128};
    for (int i = 0; i < 3; ++i) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(channels[i] * 9));
      weights.push_back(at::empty({channels[i + 1], channels[i], 3, 3}).uniform_(-bound, bound, gen));
      biases.push_back(at::empty({channels[i + 1]}).uniform_(-bound, bound, gen));
    }
  }
  at::Tensor operator()(const at::Tensor& x) const {
    at::Tensor h = at::relu(at::conv2d(x, weights[0], biases[0], 1, 1));
    h = at::max_pool2d(h, {2, 2});
    h = at::relu(at::conv2d(h, weights[1], biases[1], 1, 1));
    h = at::max_pool2d(h, {2, 2});
    h = at::relu(at::conv2d(h, weights[2], biases[2], 1, 1));
    return at::adaptive_avg_pool2d(h, {4, 4}).flatten(1);
  }
};

struct Job {
  SmallCnn model;
  NeuralData data;
};

const Job& GetJob() {
  static const Job job = [] {
    Job j;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(2);
    const at::Tensor stimuli = at::empty({g_stimuli, 3, 32, 32}).normal_(0.0, 1.0, gen);
    at::Tensor features;
    {
      at::NoGradGuard no_grad;
      features = j.model(stimuli);
    }
    // Each target reads a random mix of the model's 8 leading principal components, plus noise: a
    // readout that a few hundred stimuli can learn.
    const at::Tensor centred = features - features.mean(0);
    const at::Tensor leading = std::get<2>(at::linalg_svd(centred, /*full_matrices=*/false)).narrow(0, 0, 8);
    const at::Tensor mix = at::empty({8, kTargets}).normal_(0.0, 1.0, gen);
    at::Tensor responses = at::matmul(at::matmul(centred, leading.t()), mix);
    responses = (responses - responses.mean(0)) / responses.std(0);
    responses = responses + at::empty({g_stimuli, kTargets}).normal_(0.0, 0.5, gen);
    const int64_t n_train = g_stimuli * 6 / 10, n_val = g_stimuli * 2 / 10;
    const auto split = [&](int64_t begin, int64_t count) {
      return NeuralSplit{stimuli.narrow(0, begin, count), responses.narrow(0, begin, count), {}};
    };
    j.data.train = split(0, n_train);
    j.data.validation = split(n_train, n_val);
    j.data.test = split(n_train + n_val, g_stimuli - n_train - n_val);
    return j;
  }();
  return job;
}

SgdReadoutOptions Options() {
  return SgdReadoutOptions()
      .head_learning_rate(g_learning_rate)
      .batch_size(kBatch)
      .epochs(g_epochs)
      .patience(0)  // every epoch in both runs
      .seed(kSeed);
}

std::map<std::string, double>& TestR2() {
  static std::map<std::string, double> r2;
  return r2;
}
double g_cache_seconds = 0.0;

void Fail(const dwarp::Status& status) {
  std::fprintf(stderr, "%s\n", status.ToString().c_str());
  std::exit(1);
}

void BM_CachedFeatures(benchmark::State& state) {
  const Job& job = GetJob();
  const FeatureExtractor extractor = [&job](const at::Tensor& x) { return job.model(x); };
  for (auto _ : state) {
    auto cache = CacheFeatures(extractor, job.data, FeatureCacheOptions().batch_size(kBatch));
    if (!cache.ok()) Fail(cache.status());
    auto result = TrainSgdReadout(*cache, Options());
    if (!result.ok()) Fail(result.status());
    g_cache_seconds = cache->seconds;
    TestR2()["cached"] = result->test.r2;
    state.PauseTiming();
    auto ridge = TrainRidgeReadout(*cache);  // context for the printout, not timed
    if (!ridge.ok()) Fail(ridge.status());
    TestR2()["ridge"] = ridge->test.r2;
    state.ResumeTiming();
  }
}

// The research code's loop: the frozen model inside every step. Head, optimiser and order as
// TrainSgdReadout's (torch.nn.Linear initialisation from the seed, SeededStream order).
void BM_RecomputeFeatures(benchmark::State& state) {
  const Job& job = GetJob();
  const NeuralSplit& train = job.data.train;
  for (auto _ : state) {
    const int64_t f = kFeatures;
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(kSeed);
    const double bound = 1.0 / std::sqrt(static_cast<double>(f));
    at::Tensor w = at::empty({kTargets, f}).uniform_(-bound, bound, gen).set_requires_grad(true);
    at::Tensor b = at::empty({kTargets}).uniform_(-bound, bound, gen).set_requires_grad(true);
    torch::optim::Adam adam({w, b}, torch::optim::AdamOptions(g_learning_rate));
    const auto predict = [&](const at::Tensor& stimuli) {
      at::NoGradGuard no_grad;
      return at::linear(job.model(stimuli), w, b);
    };
    SeededStream order_stream(kSeed, "sgd-readout/minibatch-order");
    const int64_t n = train.size();
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
    at::Tensor best_w = w.detach().clone(), best_b = b.detach().clone();
    double best = -INFINITY;
    for (int epoch = 0; epoch < g_epochs; ++epoch) {
      for (int64_t i = n - 1; i > 0; --i) {
        std::swap(order[static_cast<size_t>(i)], order[order_stream.Below(static_cast<uint64_t>(i) + 1)]);
      }
      const at::Tensor order_tensor = at::from_blob(order.data(), {n}, at::kLong);
      for (int64_t begin = 0; begin < n; begin += kBatch) {
        const at::Tensor rows = order_tensor.narrow(0, begin, std::min(kBatch, n - begin));
        at::Tensor features;
        {
          at::NoGradGuard no_grad;
          features = job.model(train.stimuli.index_select(0, rows));
        }
        adam.zero_grad();
        const at::Tensor loss = at::mse_loss(at::linear(features, w, b), train.responses.index_select(0, rows));
        loss.backward();
        adam.step();
      }
      auto r2 = R2Score(predict(job.data.validation.stimuli), job.data.validation.responses);
      if (!r2.ok()) Fail(r2.status());
      if (*r2 > best) {
        best = *r2;
        best_w.copy_(w.detach());
        best_b.copy_(b.detach());
      }
    }
    {
      at::NoGradGuard no_grad;
      w.copy_(best_w);
      b.copy_(best_b);
    }
    auto r2 = R2Score(predict(job.data.test.stimuli), job.data.test.responses);
    if (!r2.ok()) Fail(r2.status());
    TestR2()["recompute"] = *r2;
  }
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--epochs") == 0 && i + 1 < argc) {
      g_epochs = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--lr") == 0 && i + 1 < argc) {
      g_learning_rate = std::atof(argv[++i]);
    } else if (std::strcmp(argv[i], "--stimuli") == 0 && i + 1 < argc) {
      g_stimuli = std::atoll(argv[++i]);
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  dwarp::engine::SetComputeThreads(threads);  // LibTorch gets them, OpenBLAS one (threading.h)
  benchmark::RegisterBenchmark("d0_cached_features", BM_CachedFeatures)->Unit(benchmark::kMillisecond)->UseRealTime()
      ->Iterations(3);
  benchmark::RegisterBenchmark("d0_recompute_features", BM_RecomputeFeatures)->Unit(benchmark::kMillisecond)
      ->UseRealTime()->Iterations(1);
  benchmark::Initialize(&rest_argc, rest.data());
  const NeuralData& data = GetJob().data;
  std::printf("threads: %d, stimuli: %lld (train %lld, val %lld, test %lld), features: %lld, targets: %lld, "
              "epochs: %d, batch: %lld, lr: %g\n",
              threads, static_cast<long long>(g_stimuli), static_cast<long long>(data.train.size()),
              static_cast<long long>(data.validation.size()), static_cast<long long>(data.test.size()), static_cast<long long>(kFeatures),
              static_cast<long long>(kTargets), g_epochs, static_cast<long long>(kBatch), g_learning_rate);
  dwarp::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);

  const double cached = reporter.SecondsOf("d0_cached_features");
  const double recompute = reporter.SecondsOf("d0_recompute_features");
  if (cached <= 0.0 || recompute <= 0.0) return 0;  // filtered out
  const Job& job = GetJob();
  const double recompute_forwards =
      g_epochs * static_cast<double>(job.data.train.size() + job.data.validation.size()) + job.data.test.size();
  std::printf("\n%-28s %12s %12s\n", "", "cached", "recompute");
  std::printf("%-28s %12.1f %12.1f\n", "whole job, ms", cached * 1e3, recompute * 1e3);
  std::printf("%-28s %12.2f %12.2f\n", "per epoch, ms (no caching)", (cached - g_cache_seconds) / g_epochs * 1e3,
              recompute / g_epochs * 1e3);
  std::printf("%-28s %12.4f %12.4f\n", "test R2", TestR2()["cached"], TestR2()["recompute"]);
  std::printf("feature caching (once): %.1f ms; ridge on the cached features (not timed): test R2 %.4f\n",
              g_cache_seconds * 1e3, TestR2()["ridge"]);
  std::printf("stimuli through the model: cached %lld, recompute %.0f (ratio %.1f)\n",
              static_cast<long long>(g_stimuli), recompute_forwards, recompute_forwards / g_stimuli);
  std::printf("ratio recompute/cached, whole job: %.1fx (target >= 10)\n", recompute / cached);
  std::printf("ratio recompute/cached, per epoch: %.1fx\n", recompute / (cached - g_cache_seconds));
  return 0;
}
