// Image-folder classification datasets: one sub-folder per class (ImageFolder layout), as the seed's
// few-shot ImageNet-21k set.
//
//   root/<class a>/<image files>, root/<class b>/..., ...
//
// Classes are the sub-folders of root sorted by name (byte order); with limit_classes > 0 only the first
// limit_classes of them. Label i is the i-th class. Per class, the image files (image_io.h's IsImageFile:
// png, jpg, jpeg, bmp, gif, case-insensitive; other files are ignored) are sorted by name, shuffled with a
// SeededStream (the same on every machine for a seed), and with limit_samples > 0 only the first
// limit_samples kept. Each class is then split, in shuffled order, into train / val / test by the fractions:
//   n_val = floor(n * val), n_test = floor(n * test), each raised to 1 when its fraction is > 0, and then
//   lowered (the larger one first) until at least one image is left for train; n_train = the rest.
// So a class with >= 3 images is present in every split whose fraction is > 0. A class with 1 image goes to
// train only; one with 2 images gives 1 to train and 1 to val (val > 0), else 2 to train; test gets none.
// Images are decoded with image_io (LoadImages, in parallel): float32 [N, 3, S, S], normalised as options.
// Rows of a split are ordered by class, then by shuffled order.
//
// Errors name the folder or file: NotFound (missing root, root not a folder), InvalidArgument (no class
// folders, a class folder with no images, bad options), and image_io's errors for an unreadable image.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/engine/datasets/classification_data.h"
#include "worker/engine/datasets/image_io.h"

namespace dwarp::engine {

struct ImageFolderOptions {
  int64_t limit_classes = 0;  // 0: all classes
  int64_t limit_samples = 0;  // per class, 0: all images
  double train = 0.6;         // split fractions: each in [0, 1], train > 0, summing to 1 (within 1e-6)
  double val = 0.2;
  double test = 0.2;
  uint64_t seed = 0;          // shuffle seed (train.seed in a job)
  ImageOptions image;         // size, mean, std
};

struct ImageFolderData {
  ClassificationData train, validation, test;  // num_classes = class_names.size() in each
  std::vector<std::string> class_names;
  // File paths of each split's rows, in row order (for reports and tests).
  std::vector<std::string> train_files, validation_files, test_files;
};

// The file lists and labels only (no decoding): the same selection LoadImageFolder uses.
struct ImageFolderListing {
  std::vector<std::string> class_names;
  std::vector<std::string> train_files, validation_files, test_files;
  std::vector<int64_t> train_labels, validation_labels, test_labels;
};
StatusOr<ImageFolderListing> ListImageFolder(const std::string& root, const ImageFolderOptions& options);

StatusOr<ImageFolderData> LoadImageFolder(const std::string& root, const ImageFolderOptions& options);

}  // namespace dwarp::engine
