// Image files (PNG, JPEG, BMP, GIF's first frame, ...; decoded by stb_image) as normalised float32 tensors,
// the form image models consume.
//
// Every file is decoded to 8-bit RGB (grayscale is replicated to 3 channels, an alpha channel is dropped), then
// prepared by one of two transforms (ImageTransform), each ending in: scale to [0, 1] -> (x - mean[c]) / std[c].
//   kSquash   as torchvision's Resize((S, S)) + ToTensor() + Normalize on a PIL image: the whole image resized
//             to S x S (aspect ratio not kept) with ATen's antialiased bilinear filter, in float.
//   kWeights  as the transforms of torchvision's pretrained weights (ResNet18_Weights.IMAGENET1K_V1.transforms():
//             Resize(256) + CenterCrop(224) + ToTensor() + Normalize) on a PIL image, which the research code
//             uses: the shorter side resized to R = resize_size (the longer to int(R * long / short), as
//             torchvision computes it) with PIL's antialiased bilinear resampling reproduced exactly (its
//             fixed-point coefficients and its 8-bit rounding after each pass), then the central S x S crop
//             (offsets rounded half to even, as Python's round), so the pixels equal PIL's.
// The result is float32 [3, S, S] (one file) or [N, 3, S, S] (many, decoded in parallel).
//
// Errors name the file: NotFound (no such file), Unavailable (cannot be read), InvalidArgument (not a
// decodable image, with stb's reason). Thread-safety: free functions without shared state.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

enum class ImageTransform { kSquash, kWeights };

// torchvision's resize size for a crop of `crop` pixels: its ImageNet classification weights resize to 256
// and crop 224, so other crops scale the resize by 256 / 224 (rounded to the nearest pixel): 224 -> 256.
int64_t WeightsResizeSize(int64_t crop);

struct ImageOptions {
  // Output height and width in pixels (>= 1): the squash size or the crop size. Default 224, as the seed and
  // ImageNet models.
  ImageOptions& size(int64_t v) { size_ = v; return *this; }
  // How the image becomes size x size (see above). Default kSquash.
  ImageOptions& transform(ImageTransform v) { transform_ = v; return *this; }
  // kWeights: the shorter side's length before the crop (>= size); 0 (default): WeightsResizeSize(size).
  ImageOptions& resize_size(int64_t v) { resize_size_ = v; return *this; }
  // Per-channel (R, G, B) mean and standard deviation applied after scaling to [0, 1]; defaults are
  // ImageNet's. The seed's research code used mean = std = 0.5.
  ImageOptions& mean(std::array<float, 3> v) { mean_ = v; return *this; }
  ImageOptions& stddev(std::array<float, 3> v) { stddev_ = v; return *this; }
  // false: keep values in [0, 1] (mean and stddev ignored).
  ImageOptions& normalize(bool v) { normalize_ = v; return *this; }

  int64_t size_ = 224;
  ImageTransform transform_ = ImageTransform::kSquash;
  int64_t resize_size_ = 0;
  std::array<float, 3> mean_ = {0.485f, 0.456f, 0.406f};
  std::array<float, 3> stddev_ = {0.229f, 0.224f, 0.225f};
  bool normalize_ = true;
};

// InvalidArgument naming the bad value when size < 1, resize_size is neither 0 nor >= size, or a stddev entry
// is not > 0.
Status CheckImageOptions(const ImageOptions& options);

// The decoded file as uint8 [H, W, 3] (RGB, no resize). Errors as above.
StatusOr<at::Tensor> DecodeImageRgb(const std::string& path);

// uint8 [H, W, 3] resized to [height, width, 3] as PIL's Image.resize(..., BILINEAR) on an RGB image (the
// same 8-bit result). Both sizes >= 1.
at::Tensor ResizeBilinearLikePil(const at::Tensor& rgb, int64_t height, int64_t width);

// One file through the whole pipeline: float32 [3, size, size].
StatusOr<at::Tensor> LoadImage(const std::string& path, const ImageOptions& options = {});

// Whether `path` names an image file by its extension: png, jpg, jpeg, bmp or gif, in any case (the
// formats stb_image decodes that image datasets ship). The one rule every loader of image folders uses.
bool IsImageFile(const std::string& path);

// The image files (IsImageFile) directly in the folder `dir`, sorted by path (byte order); with
// limit > 0 only the first `limit` of them. NotFound when `dir` is not a folder, Unavailable when it
// cannot be listed; an empty list when it holds no image file.
StatusOr<std::vector<std::string>> ListImageFiles(const std::string& dir, int64_t limit = 0);

// Many files, decoded in parallel with at::parallel_for: float32 [N, 3, size, size], row i from paths[i].
// On failure the error of the first failing file (in list order) is returned.
StatusOr<at::Tensor> LoadImages(const std::vector<std::string>& paths, const ImageOptions& options = {});

}  // namespace dwarp::engine
