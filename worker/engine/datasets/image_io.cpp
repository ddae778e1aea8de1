#include "worker/engine/datasets/image_io.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

// stb_image compiled into this translation unit with internal linkage (STB_IMAGE_STATIC), so the engine needs
// only the header and cannot clash with another copy of stb (Debian also ships it as libstb.a).
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace dwarp::engine {
namespace {

namespace fs = std::filesystem;

std::string Quote(const std::string& s) { return "'" + s + "'"; }

struct StbFree {
  void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

// [3, S, S] float32 from uint8 [H, W, 3]. Runs ATen ops; inside at::parallel_for they run single-threaded.
at::Tensor Transform(const at::Tensor& rgb, const ImageOptions& options) {
  at::Tensor x = rgb.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);  // [1, 3, H, W], 0..255
  if (x.size(2) != options.size_ || x.size(3) != options.size_) {
    x = at::_upsample_bilinear2d_aa(x, {options.size_, options.size_}, /*align_corners=*/false);
  }
  x = x.squeeze(0).div_(255.0f);
  if (options.normalize_) {
    const auto mean = at::tensor(at::ArrayRef<float>(options.mean_.data(), 3)).view({3, 1, 1});
    const auto stddev = at::tensor(at::ArrayRef<float>(options.stddev_.data(), 3)).view({3, 1, 1});
    x.sub_(mean).div_(stddev);
  }
  return x.contiguous();
}

}  // namespace

Status CheckImageOptions(const ImageOptions& options) {
  if (options.size_ < 1) {
    return InvalidArgumentError("image size = " + std::to_string(options.size_) + "; expected >= 1 pixel");
  }
  for (int c = 0; c < 3; ++c) {
    if (!(options.stddev_[c] > 0.0f)) {
      return InvalidArgumentError("image normalisation stddev[" + std::to_string(c) + "] = " +
                                  std::to_string(options.stddev_[c]) + "; expected > 0");
    }
  }
  return OkStatus();
}

StatusOr<at::Tensor> DecodeImageRgb(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFoundError("image file " + Quote(path) + " does not exist");
  if (!fs::is_regular_file(path, ec)) {
    return InvalidArgumentError("image path " + Quote(path) + " is not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return UnavailableError("cannot open image file " + Quote(path) + ": " + std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return UnavailableError("cannot read image file " + Quote(path));
  if (bytes.empty()) {
    return InvalidArgumentError("image file " + Quote(path) + " is empty; expected a PNG or JPEG image");
  }
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) {
    return InvalidArgumentError("image file " + Quote(path) + " is larger than 2 GiB; expected an image file");
  }
  int width = 0, height = 0, channels = 0;
  std::unique_ptr<stbi_uc, StbFree> pixels(
      stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()), &width,
                            &height, &channels, /*desired_channels=*/3));
  if (pixels == nullptr) {
    return InvalidArgumentError("cannot decode image file " + Quote(path) + ": " + stbi_failure_reason() +
                                "; expected a PNG, JPEG, BMP, GIF, TGA or PNM image");
  }
  at::Tensor out = at::empty({height, width, 3}, at::kByte);
  std::memcpy(out.data_ptr(), pixels.get(), static_cast<size_t>(height) * width * 3);
  return out;
}

StatusOr<at::Tensor> LoadImage(const std::string& path, const ImageOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckImageOptions(options));
  auto rgb = DecodeImageRgb(path);
  if (!rgb.ok()) return rgb.status();
  return Transform(*rgb, options);
}

StatusOr<at::Tensor> LoadImages(const std::vector<std::string>& paths, const ImageOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckImageOptions(options));
  const auto n = static_cast<int64_t>(paths.size());
  at::Tensor out = at::empty({n, 3, options.size_, options.size_}, at::kFloat);
  std::vector<Status> errors(paths.size());
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      try {
        auto rgb = DecodeImageRgb(paths[i]);
        if (!rgb.ok()) {
          errors[i] = rgb.status();
          continue;
        }
        out[i].copy_(Transform(*rgb, options));
      } catch (const std::exception& e) {  // LibTorch throws (e.g. out of memory); keep it per file.
        errors[i] = InternalError("processing image file " + Quote(paths[i]) + " failed: " + e.what());
      }
    }
  });
  for (const Status& s : errors) {
    if (!s.ok()) return s;
  }
  return out;
}

}  // namespace dwarp::engine
