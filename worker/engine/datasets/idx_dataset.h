// IDX files (the MNIST format, also used by Fashion-MNIST, KMNIST, EMNIST), plain or gzip-compressed.
//
// Layout: magic 0x00 0x00 <type> <ndim>, then ndim big-endian uint32 sizes, then the elements in
// row-major order, big-endian. Types: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
// 0x0E float64. gzip is detected from the data, not from the file name (zlib reads plain files as is).
//
// Every failure is a Status whose message names the file, the bad value and what was expected.
// Thread-safety: free functions without shared state; safe to call concurrently.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/engine/datasets/classification_data.h"

namespace dwarp::engine {

struct IdxReadOptions {
  // Read only the first `v` entries along the first dimension (fewer if the file has fewer); -1: all.
  IdxReadOptions& max_items(int64_t v) { max_items_ = v; return *this; }

  int64_t max_items_ = -1;
};

// The file's elements as a CPU tensor of the file's shape (first dimension cut to max_items) and the
// matching dtype: uint8, int8, int16, int32, float32 or float64.
// Errors: NotFound (no such file), InvalidArgument (not a regular file, bad magic, unknown type code,
// zero dimensions, truncated or corrupt data, bytes after the declared elements, implausibly large
// header), Unavailable (the file cannot be opened or read).
StatusOr<at::Tensor> ReadIdxFile(const std::string& path, const IdxReadOptions& options = {});

struct IdxClassificationOptions {
  // Keep only the first `v` examples; -1: all.
  IdxClassificationOptions& max_items(int64_t v) { max_items_ = v; return *this; }
  // Labels must lie in [0, v). 0: infer num_classes as max label + 1 (labels must still be >= 0).
  IdxClassificationOptions& num_classes(int64_t v) { num_classes_ = v; return *this; }

  int64_t max_items_ = -1;
  int64_t num_classes_ = 10;
};

// An images file ([N, H, W]; uint8 is scaled by 1/255, float32/float64 kept as they are) and a labels
// file ([N], any integer type) as ClassificationData: inputs float32 [N, 1, H, W], labels int64 [N].
// Besides ReadIdxFile's errors: InvalidArgument when the two files declare different counts, the images
// are not 3-D or not uint8/floating, the labels are not 1-D integers, or a label is out of range.
StatusOr<ClassificationData> LoadIdxClassification(const std::string& images_path, const std::string& labels_path,
                                                   const IdxClassificationOptions& options = {});

// One split of an MNIST-style directory: `dir`/<split>-images-idx3-ubyte and `dir`/<split>-labels-idx1-ubyte,
// each with or without a ".gz" suffix (the uncompressed name wins when both exist). `split` is e.g.
// "train" or "t10k". NotFound names the directory and the file names tried.
StatusOr<ClassificationData> LoadMnistStyleSplit(const std::string& dir, const std::string& split,
                                                 const IdxClassificationOptions& options = {});

// How PrepareIdxImages shows one-channel images to a model.
struct IdxImageOptions {
  int64_t size = 0;      // > 0: resized (bilinear, no antialiasing) to size x size; 0: kept
  int64_t channels = 0;  // > 0: the one channel repeated to this many; 0: kept
  // (x - mean[c]) / stddev[c]: one value for every channel, or one per channel (the last repeats for
  // more channels); empty: 0 and 1.
  std::vector<double> mean, stddev;
};

// IDX images [N, H, W] or [N, 1, H, W] (float, e.g. in [0, 1]) as a model's input: float32
// [N, channels, size, size], normalised. InvalidArgument naming the counts when the images have more
// than one channel and `channels` asks for another count.
StatusOr<at::Tensor> PrepareIdxImages(at::Tensor images, const IdxImageOptions& options);

}  // namespace dwarp::engine
