// A multilayer perceptron built in C++ as a torch::jit::Module, so that SubspaceModel (and anything else
// that takes a TorchScript module) can wrap it like a model exported from Python.
//
//   forward(x): x = flatten(x, 1); x = relu(fc1(x)); ...; return fcN(x)      ([N, ...] -> [N, out])
//
// Layers are submodules fc1..fcN, each with parameters weight [out, in] and bias [out], so parameter
// names are "fc1.weight", "fc1.bias", ... exactly as an nn.Sequential-free PyTorch MLP would name them.
//
// How it is built (LibTorch 1.13): every module of one MLP shares a single CompilationUnit and is created
// with a mangled class name (so the class names stay unique and the module can be saved with
// torch::jit::ExportModule and loaded in Python). Methods come from TorchScript source via define().
// Calling a submodule must be spelled `self.fc1.forward(x)`: in C++-defined methods `self.fc1(x)` fails
// to compile ("object has no attribute or method '__call__'"), because only the Python frontend turns a
// module call into a forward call.
//
// Initialisation matches torch.nn.Linear's default: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)), drawn
// layer by layer (fc1.weight, fc1.bias, fc2.weight, ...) from a CPU generator seeded with `seed`, never
// from LibTorch's global generator, so two MLPs with the same options are identical. Checked against
// Debian's PyTorch 1.13: CreateMlp(MlpOptions(784, 10).hidden({200, 200}).seed(s)) has bit for bit the
// parameters of torch.manual_seed(s); nn.Linear(784, 200); nn.Linear(200, 200); nn.Linear(200, 10), and
// the same outputs as the matching nn.Sequential (it can be saved with ExportModule and loaded in Python).
#pragma once

#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

struct MlpOptions {
  MlpOptions(int64_t in_features, int64_t out_features) : in_features_(in_features), out_features_(out_features) {}

  MlpOptions& in_features(int64_t v) { in_features_ = v; return *this; }
  MlpOptions& out_features(int64_t v) { out_features_ = v; return *this; }
  // Widths of the hidden layers, input side first; empty: a single linear layer (logistic regression).
  MlpOptions& hidden(std::vector<int64_t> v) { hidden_ = std::move(v); return *this; }
  MlpOptions& seed(uint64_t v) { seed_ = v; return *this; }

  int64_t in_features_;
  int64_t out_features_;
  std::vector<int64_t> hidden_;
  uint64_t seed_ = 0;
};

// A float32 CPU MLP in eval mode whose parameters require grad (as torch.nn.Linear's).
// InvalidArgument, naming the bad width, when any width is < 1.
StatusOr<torch::jit::Module> CreateMlp(const MlpOptions& options);

// Number of parameters CreateMlp(options) would have (sum of (in + 1) * out over the layers).
int64_t MlpParameterCount(const MlpOptions& options);

}  // namespace dwarp::engine
