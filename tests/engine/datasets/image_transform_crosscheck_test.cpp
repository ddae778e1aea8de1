// image_io's transforms against torchvision's own (Debian's python3-torchvision and python3-pil) on real
// photographs that ship in Debian (python3-skimage's data: chelsea, coffee, astronaut, motorcycle_left,
// and the grayscale camera, coins and cell; PNG, so both sides decode the same pixels):
//   kWeights  == ResNet18_Weights.IMAGENET1K_V1.transforms() (Resize(256) + CenterCrop(224) + ToTensor +
//                Normalize) on the PIL image, to within uint8 rounding (printed, in 8-bit levels)
//   kSquash   == Resize((224, 224)) + ToTensor + Normalize on the PIL image, to within uint8 rounding (dwarp
//                resizes in float with ATen's antialiased filter, PIL in 8 bits; printed)
//   ResizeBilinearLikePil == PIL's Image.resize(BILINEAR) exactly, on sizes that up- and downscale.
// Skipped, with the reason, when /usr/bin/python3 (or $DWARP_TEST_PYTHON) cannot import torchvision or the
// photographs are not installed (Debian: apt-get install python3-torchvision python3-skimage).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include "worker/engine/datasets/image_io.h"
#include "worker/engine/datasets/npy_file.h"

namespace dwarp::engine {
namespace {

namespace fs = std::filesystem;

std::string Python() {
  const char* python = std::getenv("DWARP_TEST_PYTHON");
  return python != nullptr && *python != '\0' ? python : "/usr/bin/python3";
}

const char* kPhotoDir = "/usr/lib/python3/dist-packages/skimage/data";
const std::vector<std::string> kPhotos = {"chelsea.png", "coffee.png",  "astronaut.png", "motorcycle_left.png",
                                          "camera.png",  "coins.png",   "cell.png"};

// Writes, per photo, torchvision's weights transform and squash transform outputs and PIL resizes to .npy.
const char* kReferenceScript = R"(import os, sys
try:
    import numpy as np, torch
    from PIL import Image
    from torchvision import transforms
    from torchvision.models import ResNet18_Weights
except ImportError:
    sys.exit(77)
photo_dir, out = sys.argv[1], sys.argv[2]
weights = ResNet18_Weights.IMAGENET1K_V1.transforms()
assert list(weights.resize_size) == [256] and list(weights.crop_size) == [224], weights
squash = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                             transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
for name in sys.argv[3:]:
    image = Image.open(os.path.join(photo_dir, name)).convert("RGB")
    np.save(os.path.join(out, name + ".weights.npy"), weights(image).numpy().astype(np.float32))
    np.save(os.path.join(out, name + ".squash.npy"), squash(image).numpy().astype(np.float32))
    np.save(os.path.join(out, name + ".rgb.npy"), np.asarray(image))
    for h, w in ((97, 131), (300, 700)):
        np.save(os.path.join(out, f"{name}.pil_{h}x{w}.npy"),
                np.asarray(image.resize((w, h), Image.BILINEAR)))
)";

class ImageTransformCrossCheckTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    for (const auto& photo : kPhotos) {
      if (!fs::exists(fs::path(kPhotoDir) / photo)) {
        skip_reason_ = (fs::path(kPhotoDir) / photo).string() + " not installed (Debian: python3-skimage)";
        return;
      }
    }
    char dir[] = "/tmp/dwarp_image_transform_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    std::ofstream(dir_ + "/reference.py") << kReferenceScript;
    std::string command = Python() + " " + dir_ + "/reference.py " + kPhotoDir + " " + dir_;
    for (const auto& photo : kPhotos) command += " " + photo;
    const int status = std::system((command + " > " + dir_ + "/reference.log 2>&1").c_str());
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
      skip_reason_ = Python() + " cannot import torch, torchvision and PIL (Debian: python3-torchvision)";
    } else if (status != 0) {
      std::ifstream log(dir_ + "/reference.log");
      std::stringstream text;
      text << log.rdbuf();
      error_ = "the reference script failed: " + command + "\n" + text.str();
    }
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(error_.empty()) << error_;
  }
  static at::Tensor Reference(const std::string& file) {
    auto t = ReadNpyFile(dir_ + "/" + file);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : at::Tensor();
  }
  // The largest difference of two normalised images [3, S, S] in 8-bit levels (the difference times std x 255).
  static double MaxLevels(const at::Tensor& a, const at::Tensor& b) {
    const at::Tensor stddev = at::tensor({0.229f, 0.224f, 0.225f}).view({3, 1, 1});
    return ((a - b).abs() * stddev * 255.0f).max().item<double>();
  }

  static std::string dir_, skip_reason_, error_;
};
std::string ImageTransformCrossCheckTest::dir_, ImageTransformCrossCheckTest::skip_reason_,
    ImageTransformCrossCheckTest::error_;

TEST_F(ImageTransformCrossCheckTest, WeightsTransformEqualsTorchvisionsWeightsTransforms) {
  for (const auto& photo : kPhotos) {
    auto ours = LoadImage((fs::path(kPhotoDir) / photo).string(), ImageOptions().transform(ImageTransform::kWeights));
    ASSERT_TRUE(ours.ok()) << ours.status();
    const at::Tensor expected = Reference(photo + ".weights.npy");
    ASSERT_EQ(ours->sizes(), expected.sizes()) << photo;
    const double levels = MaxLevels(*ours, expected);
    const double normalised = (*ours - expected).abs().max().item<double>();
    std::printf("weights %-20s max |dwarp - torchvision| = %.3g (normalised), %.3g uint8 levels\n", photo.c_str(),
                normalised, levels);
    EXPECT_LE(levels, 1.0 + 1e-3) << photo;  // within uint8 rounding
  }
}

TEST_F(ImageTransformCrossCheckTest, SquashTransformIsTorchvisionsResizeToASquare) {
  for (const auto& photo : kPhotos) {
    auto ours = LoadImage((fs::path(kPhotoDir) / photo).string(), ImageOptions().transform(ImageTransform::kSquash));
    ASSERT_TRUE(ours.ok()) << ours.status();
    const at::Tensor expected = Reference(photo + ".squash.npy");
    ASSERT_EQ(ours->sizes(), expected.sizes()) << photo;
    const double levels = MaxLevels(*ours, expected);
    const double mean_levels =
        ((*ours - expected).abs() * at::tensor({0.229f, 0.224f, 0.225f}).view({3, 1, 1}) * 255.0f).mean().item<double>();
    std::printf("squash  %-20s max |dwarp - torchvision| = %.3g uint8 levels (mean %.3g)\n", photo.c_str(), levels,
                mean_levels);
    // ATen resizes in float, PIL rounds to 8 bits: less than a level apart.
    EXPECT_LE(levels, 1.0 + 1e-3) << photo;
    EXPECT_LE(mean_levels, 0.4) << photo;
  }
}

TEST_F(ImageTransformCrossCheckTest, ResizeEqualsPilsBilinearResizeExactly) {
  for (const auto& photo : kPhotos) {
    const at::Tensor rgb = Reference(photo + ".rgb.npy");
    auto decoded = DecodeImageRgb((fs::path(kPhotoDir) / photo).string());
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_TRUE(at::equal(*decoded, rgb)) << photo << ": stb and PIL decode different pixels";
    for (const auto& [h, w] : {std::pair<int64_t, int64_t>{97, 131}, {300, 700}}) {
      const at::Tensor expected = Reference(photo + ".pil_" + std::to_string(h) + "x" + std::to_string(w) + ".npy");
      const at::Tensor ours = ResizeBilinearLikePil(rgb, h, w);
      ASSERT_EQ(ours.sizes(), expected.sizes());
      const int64_t differing = (ours != expected).sum().item<int64_t>();
      EXPECT_EQ(differing, 0) << photo << " " << h << "x" << w << ": max level difference "
                              << (ours.to(at::kInt) - expected.to(at::kInt)).abs().max().item<int>();
    }
  }
}

TEST(ImageTransformTest, WeightsResizeScalesWithTheCrop) {
  EXPECT_EQ(WeightsResizeSize(224), 256);
  EXPECT_EQ(WeightsResizeSize(112), 128);
  EXPECT_EQ(WeightsResizeSize(64), 73);  // 64 * 256 / 224 = 73.14
  // A crop larger than the resize is refused, naming both.
  const Status bad = CheckImageOptions(ImageOptions().size(224).transform(ImageTransform::kWeights).resize_size(200));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("resize size = 200"), std::string::npos) << bad;
}

}  // namespace
}  // namespace dwarp::engine
