// Image files (PNG, JPEG, BMP, GIF's first frame, ...; decoded by stb_image) as normalised float32 tensors,
// the form image models consume.
//
// Pipeline per file, as torchvision's Resize((S, S)) + ToTensor() + Normalize(mean, std) on a PIL image:
//   decode to 8-bit RGB (grayscale is replicated to 3 channels, an alpha channel is dropped)
//   -> resize to S x S with antialiased bilinear interpolation (ATen's, the same filter torchvision uses to
//      match PIL; aspect ratio is not kept) -> scale to [0, 1] -> (x - mean[c]) / std[c] per channel.
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

struct ImageOptions {
  // Output height and width in pixels (>= 1). Default 224, as the seed and ImageNet models.
  ImageOptions& size(int64_t v) { size_ = v; return *this; }
  // Per-channel (R, G, B) mean and standard deviation applied after scaling to [0, 1]; defaults are
  // ImageNet's. The seed's research code used mean = std = 0.5.
  ImageOptions& mean(std::array<float, 3> v) { mean_ = v; return *this; }
  ImageOptions& stddev(std::array<float, 3> v) { stddev_ = v; return *this; }
  // false: keep values in [0, 1] (mean and stddev ignored).
  ImageOptions& normalize(bool v) { normalize_ = v; return *this; }

  int64_t size_ = 224;
  std::array<float, 3> mean_ = {0.485f, 0.456f, 0.406f};
  std::array<float, 3> stddev_ = {0.229f, 0.224f, 0.225f};
  bool normalize_ = true;
};

// InvalidArgument naming the bad value when size < 1 or a stddev entry is not > 0.
Status CheckImageOptions(const ImageOptions& options);

// The decoded file as uint8 [H, W, 3] (RGB, no resize). Errors as above.
StatusOr<at::Tensor> DecodeImageRgb(const std::string& path);

// One file through the whole pipeline: float32 [3, size, size].
StatusOr<at::Tensor> LoadImage(const std::string& path, const ImageOptions& options = {});

// Many files, decoded in parallel with at::parallel_for: float32 [N, 3, size, size], row i from paths[i].
// On failure the error of the first failing file (in list order) is returned.
StatusOr<at::Tensor> LoadImages(const std::vector<std::string>& paths, const ImageOptions& options = {});

}  // namespace dwarp::engine
