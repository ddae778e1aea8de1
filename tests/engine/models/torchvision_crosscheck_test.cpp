// clients/export_torchvision.py and dwarp against torchvision itself (Debian's python3-torchvision):
// the script exports resnet18 with a local weights file (random values, non-trivial BatchNorm statistics)
// plus torchvision's create_feature_extractor outputs on
// one 64x64 image; dwarp's read-out of every layer must equal them, both from the exported TorchScript
// file (arch "torchscript") and from dwarp's C++ resnet18 given the file's weights by name (which also
// proves that the C++ resnet18 has exactly torchvision's parameter and buffer names).
// Skipped, with the reason, when /usr/bin/python3 (or $DWARP_TEST_PYTHON) cannot import torchvision.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/serialization/import.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "worker/engine/models/model_registry.h"
#include "worker/engine/models/resnet18.h"

#ifndef DWARP_EXPORT_SCRIPT
#error "DWARP_EXPORT_SCRIPT must name clients/export_torchvision.py"
#endif

namespace dwarp::engine {
namespace {

// Debian's python3 (python3-torch, python3-torchvision); DWARP_TEST_PYTHON overrides it.
std::string Python() {
  const char* python = std::getenv("DWARP_TEST_PYTHON");
  return python != nullptr && *python != '\0' ? python : "/usr/bin/python3";
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}
const std::vector<std::string> kLayers{"maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"};

class TorchvisionCrossCheckTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string python = Python();
    char dir[] = "/tmp/dwarp_torchvision_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    // A local weights file (the --weights path) with non-trivial BatchNorm statistics, so that the
    // running-stat buffers are checked too (torchvision's fresh ones are 0 and 1).
    std::ofstream(dir_ + "/make_weights.py") << R"(import sys
try:
    import torch, torchvision
except ImportError:
    sys.exit(77)
torch.manual_seed(2)
model = torchvision.models.resnet18()
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2); m.running_var.uniform_(0.5, 2.0)
            m.weight.uniform_(0.5, 1.5); m.bias.normal_(0, 0.2); m.num_batches_tracked.fill_(7)
torch.save(model.state_dict(), sys.argv[1])
)";
    std::string layers;
    for (const auto& l : kLayers) layers += (layers.empty() ? "" : ",") + l;
    const int status = std::system((python + " " + dir_ + "/make_weights.py " + dir_ +
                                    "/weights.pth > " + dir_ + "/export.log 2>&1").c_str());
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
      skip_reason_ = python + " cannot import torch and torchvision (Debian: apt-get install "
                     "python3-torchvision)";
      return;
    }
    if (status != 0) {
      export_error_ = "writing the weights file failed (see the log below)\n" + ReadFile(dir_ + "/export.log");
      return;
    }
    const std::string command = python + " " DWARP_EXPORT_SCRIPT " resnet18 " + dir_ +
                                "/resnet18.pt --weights " + dir_ + "/weights.pth --seed 1 --image-size 64 64 " +
                                "--reference " + dir_ + " --layers " + layers + " > " + dir_ + "/export.log 2>&1";
    if (std::system(command.c_str()) != 0) {
      export_error_ = "export failed: " + command + "\n" + ReadFile(dir_ + "/export.log");
    }
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(export_error_.empty()) << export_error_;
    reference_ = torch::jit::load(dir_ + "/reference.pt");
  }

  at::Tensor Reference(const std::string& name) { return reference_.attr(name).toTensor(); }

  // Checks a read-out against torchvision's feature for `layer` and prints the largest difference.
  void ExpectMatches(const std::string& arch, const std::string& layer) {
    auto model = CreateModel(arch, ModelOptions().weights(dir_ + "/resnet18.pt").layer(layer).image_size(64, 64));
    ASSERT_TRUE(model.ok()) << model.status();
    at::Tensor out;
    {
      at::NoGradGuard no_grad;
      out = model->module.forward({Reference("image")}).toTensor();
    }
    const at::Tensor expected = Reference("features_" + layer);
    ASSERT_EQ(out.sizes(), expected.sizes()) << arch << " " << layer;
    EXPECT_EQ(model->feature_count, expected.size(1));
    const double diff = (out - expected).abs().max().item<double>();
    const double scale = expected.abs().max().item<double>();
    std::printf("%-11s %-8s features %6ld  max |dwarp - torchvision| = %.3g (max |feature| %.3g)\n", arch.c_str(),
                layer.c_str(), static_cast<long>(expected.size(1)), diff, scale);
    EXPECT_LE(diff, 1e-5 * std::max(1.0, scale)) << arch << " " << layer;
  }

  static std::string skip_reason_;
  static std::string export_error_;
  static std::string dir_;
  torch::jit::Module reference_;
};
std::string TorchvisionCrossCheckTest::skip_reason_;
std::string TorchvisionCrossCheckTest::export_error_;
std::string TorchvisionCrossCheckTest::dir_;

TEST_F(TorchvisionCrossCheckTest, ExportedModelReadOutEqualsCreateFeatureExtractorAtEveryLayer) {
  for (const auto& layer : kLayers) ExpectMatches("torchscript", layer);
}

TEST_F(TorchvisionCrossCheckTest, BuiltinResNet18HasTorchvisionsNamesAndReadOuts) {
  torch::jit::Module exported = torch::jit::load(dir_ + "/resnet18.pt");
  auto built = CreateResNet18(ResNet18Options().layer("fc"));
  ASSERT_TRUE(built.ok()) << built.status();
  auto state = [](const torch::jit::Module& m) {
    std::set<std::string> names;
    for (const auto& p : m.named_parameters()) names.insert("parameter " + p.name);
    for (const auto& b : m.named_buffers()) names.insert("buffer " + b.name);
    return names;
  };
  EXPECT_EQ(state(*built), state(exported));  // both ways: nothing missing, nothing extra
  for (const auto& layer : kLayers) ExpectMatches("resnet18", layer);
}

}  // namespace
}  // namespace dwarp::engine
