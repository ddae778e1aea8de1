#include "worker/engine/datasets/image_io.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

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

#include "common/file_io.h"
#include "common/quote.h"

namespace dwarp::engine {
namespace {

namespace fs = std::filesystem;


struct StbFree {
  void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

// PIL's separable resampling (libImaging/Resample.c) for 8-bit images, reproduced so that the pixels equal
// PIL's: per output pixel a window of input pixels weighted by the bilinear (triangle) filter widened by the
// downscale factor, the weights normalised to sum 1 and converted to fixed point with 22 fractional bits, the
// sums rounded and clipped to 0..255 after each pass (horizontal first, then vertical).
constexpr int kPilPrecisionBits = 32 - 8 - 2;

struct PilCoefficients {
  int64_t window = 0;            // coefficients per output pixel
  std::vector<int64_t> first;    // first input pixel of each output pixel's window
  std::vector<int64_t> count;    // pixels in the window
  std::vector<int32_t> weights;  // [out, window], fixed point
};

double PilBilinear(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

PilCoefficients PilPrecompute(int64_t in_size, int64_t out_size) {
  constexpr double kSupport = 1.0;  // the bilinear filter's
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filter_scale = scale < 1.0 ? 1.0 : scale;
  const double support = kSupport * filter_scale;
  PilCoefficients c;
  c.window = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<size_t>(out_size));
  c.count.resize(static_cast<size_t>(out_size));
  c.weights.assign(static_cast<size_t>(out_size * c.window), 0);
  std::vector<double> k(static_cast<size_t>(c.window));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (static_cast<double>(xx) + 0.5) * scale;
    const double ss = 1.0 / filter_scale;
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);  // truncation, as C's (int)
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int64_t x = 0; x < xmax; ++x) {
      const double w = PilBilinear((static_cast<double>(x + xmin) - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int64_t x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[x] / ww : k[x];
      const double fixed = w * static_cast<double>(1 << kPilPrecisionBits);
      c.weights[xx * c.window + x] = static_cast<int32_t>(w < 0 ? -0.5 + fixed : 0.5 + fixed);
    }
    c.first[xx] = xmin;
    c.count[xx] = xmax;
  }
  return c;
}

inline uint8_t PilClip8(int64_t sum) {
  const int64_t v = sum >> kPilPrecisionBits;  // arithmetic shift, as PIL's lookup index
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// One output pixel of an interleaved RGB image: the weighted sum of `count` input pixels, `stride` bytes
// apart from `first`, with PIL's fixed-point weights `k`, rounded and clipped as PIL does.
inline void PilWeightedPixel(const uint8_t* first, int64_t stride, const int32_t* k, int64_t count, uint8_t* out) {
  int64_t s0 = 1 << (kPilPrecisionBits - 1), s1 = s0, s2 = s0;
  for (int64_t i = 0; i < count; ++i) {
    const uint8_t* px = first + i * stride;
    s0 += static_cast<int64_t>(px[0]) * k[i];
    s1 += static_cast<int64_t>(px[1]) * k[i];
    s2 += static_cast<int64_t>(px[2]) * k[i];
  }
  out[0] = PilClip8(s0);
  out[1] = PilClip8(s1);
  out[2] = PilClip8(s2);
}

// One pass along rows (horizontal) or columns (vertical) of an interleaved RGB image [rows, cols, 3].
void PilResampleHorizontal(const uint8_t* in, int64_t rows, int64_t in_cols, uint8_t* out, int64_t out_cols,
                           const PilCoefficients& c) {
  for (int64_t y = 0; y < rows; ++y) {
    const uint8_t* row = in + y * in_cols * 3;
    for (int64_t xx = 0; xx < out_cols; ++xx) {
      PilWeightedPixel(row + c.first[xx] * 3, 3, &c.weights[xx * c.window], c.count[xx],
                       out + (y * out_cols + xx) * 3);
    }
  }
}

void PilResampleVertical(const uint8_t* in, int64_t cols, uint8_t* out, int64_t out_rows, const PilCoefficients& c) {
  for (int64_t yy = 0; yy < out_rows; ++yy) {
    for (int64_t x = 0; x < cols; ++x) {
      PilWeightedPixel(in + (c.first[yy] * cols + x) * 3, cols * 3, &c.weights[yy * c.window], c.count[yy],
                       out + (yy * cols + x) * 3);
    }
  }
}

// uint8 [H, W, 3] -> the central crop [crop, crop, 3] after torchvision's Resize(resize) on a PIL image.
at::Tensor ResizeShorterSideAndCrop(const at::Tensor& rgb, int64_t resize, int64_t crop) {
  const int64_t h = rgb.size(0), w = rgb.size(1);
  // torchvision's _compute_resized_output_size: the shorter side becomes `resize`, the longer
  // int(resize * long / short).
  const int64_t shorter = std::min(h, w), longer = std::max(h, w);
  const auto scaled = static_cast<int64_t>(static_cast<double>(resize) * static_cast<double>(longer) /
                                           static_cast<double>(shorter));
  const int64_t out_h = h <= w ? resize : scaled;
  const int64_t out_w = h <= w ? scaled : resize;
  at::Tensor resized = out_h == h && out_w == w ? rgb : ResizeBilinearLikePil(rgb, out_h, out_w);
  // torchvision's center_crop: offsets int(round((size - crop) / 2.0)), Python's round (half to even), which
  // std::nearbyint follows in the default rounding mode. resize >= crop, so no padding is needed.
  const auto top = static_cast<int64_t>(std::nearbyint(static_cast<double>(out_h - crop) / 2.0));
  const auto left = static_cast<int64_t>(std::nearbyint(static_cast<double>(out_w - crop) / 2.0));
  return resized.slice(0, top, top + crop).slice(1, left, left + crop);
}

// [3, S, S] float32 from uint8 [H, W, 3]. Runs ATen ops; inside at::parallel_for they run single-threaded.
at::Tensor Transform(const at::Tensor& rgb, const ImageOptions& options) {
  at::Tensor x;
  if (options.transform_ == ImageTransform::kWeights) {
    const int64_t resize = options.resize_size_ > 0 ? options.resize_size_ : WeightsResizeSize(options.size_);
    x = ResizeShorterSideAndCrop(rgb, resize, options.size_).permute({2, 0, 1}).to(at::kFloat);  // [3, S, S]
  } else {
    x = rgb.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);  // [1, 3, H, W], 0..255
    if (x.size(2) != options.size_ || x.size(3) != options.size_) {
      x = at::_upsample_bilinear2d_aa(x, {options.size_, options.size_}, /*align_corners=*/false);
    }
    x = x.squeeze(0);
  }
  x = x.div(255.0f);
  if (options.normalize_) {
    const auto mean = at::tensor(at::ArrayRef<float>(options.mean_.data(), 3)).view({3, 1, 1});
    const auto stddev = at::tensor(at::ArrayRef<float>(options.stddev_.data(), 3)).view({3, 1, 1});
    x.sub_(mean).div_(stddev);
  }
  return x.contiguous();
}

}  // namespace

int64_t WeightsResizeSize(int64_t crop) { return (crop * 256 + 112) / 224; }

at::Tensor ResizeBilinearLikePil(const at::Tensor& rgb, int64_t height, int64_t width) {
  TORCH_CHECK(rgb.dim() == 3 && rgb.size(2) == 3 && rgb.scalar_type() == at::kByte, "expected uint8 [H, W, 3]");
  TORCH_CHECK(height >= 1 && width >= 1, "expected an output size >= 1");
  const at::Tensor in = rgb.contiguous();
  const int64_t h = in.size(0), w = in.size(1);
  const PilCoefficients horizontal = PilPrecompute(w, width);
  const PilCoefficients vertical = PilPrecompute(h, height);
  // As PIL, a pass runs only when its size changes; the horizontal one over every input row (PIL restricts it
  // to the rows the vertical pass reads, which gives the same pixels).
  at::Tensor wide = in;
  if (width != w) {
    wide = at::empty({h, width, 3}, at::kByte);
    PilResampleHorizontal(in.data_ptr<uint8_t>(), h, w, wide.data_ptr<uint8_t>(), width, horizontal);
  }
  if (height == h) return wide;
  at::Tensor out = at::empty({height, width, 3}, at::kByte);
  PilResampleVertical(wide.data_ptr<uint8_t>(), width, out.data_ptr<uint8_t>(), height, vertical);
  return out;
}

Status CheckImageOptions(const ImageOptions& options) {
  if (options.size_ < 1) {
    return InvalidArgumentError("image size = " + std::to_string(options.size_) + "; expected >= 1 pixel");
  }
  if (options.resize_size_ != 0 && options.resize_size_ < options.size_) {
    return InvalidArgumentError("image resize size = " + std::to_string(options.resize_size_) +
                                "; expected 0 (the weights' default) or >= the crop size " +
                                std::to_string(options.size_));
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
  auto read = ReadWholeFile(path, "image file");
  if (!read.ok()) return read.status();
  const std::string& bytes = *read;
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

bool IsImageFile(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".gif";
}

StatusOr<std::vector<std::string>> ListImageFiles(const std::string& dir, int64_t limit) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return NotFoundError("image folder " + Quote(dir) + " does not exist");
  std::vector<std::string> paths;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && IsImageFile(it->path().string())) paths.push_back(it->path().string());
  }
  if (ec) return UnavailableError("image folder " + Quote(dir) + ": cannot list: " + ec.message());
  std::sort(paths.begin(), paths.end());
  if (limit > 0 && static_cast<int64_t>(paths.size()) > limit) paths.resize(static_cast<size_t>(limit));
  return paths;
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
