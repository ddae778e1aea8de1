#include "worker/engine/datasets/image_folder_dataset.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>
#include <utility>

#include "worker/engine/datasets/classification_data.h"
#include "worker/engine/seeded_random.h"

namespace dwarp::engine {
namespace {

namespace fs = std::filesystem;

Status CheckOptions(const ImageFolderOptions& o) {
  if (o.limit_classes < 0) return InvalidArgumentError("limit_classes = " + std::to_string(o.limit_classes) + ": expected >= 0");
  if (o.limit_samples < 0) return InvalidArgumentError("limit_samples = " + std::to_string(o.limit_samples) + ": expected >= 0");
  for (double f : {o.train, o.val, o.test}) {
    if (!(f >= 0.0 && f <= 1.0)) return InvalidArgumentError("split fraction " + std::to_string(f) + ": expected in [0, 1]");
  }
  if (!(o.train > 0.0)) return InvalidArgumentError("split train fraction must be > 0");
  if (std::abs(o.train + o.val + o.test - 1.0) > 1e-6) {
    return InvalidArgumentError("split fractions " + std::to_string(o.train) + " / " + std::to_string(o.val) + " / " +
                                std::to_string(o.test) + ": expected to sum to 1");
  }
  return CheckImageOptions(o.image);
}

StatusOr<ClassificationData> Load(const std::vector<std::string>& files, const std::vector<int64_t>& labels,
                                  int64_t num_classes, const ImageOptions& image) {
  ClassificationData d;
  d.num_classes = num_classes;
  d.labels = at::tensor(labels, at::kLong);
  if (files.empty()) {
    d.inputs = at::empty({0, 3, image.size_, image.size_}, at::kFloat);
    d.labels = at::empty({0}, at::kLong);
    return d;
  }
  auto inputs = LoadImages(files, image);
  if (!inputs.ok()) return inputs.status();
  d.inputs = *inputs;
  return d;
}

}  // namespace

StatusOr<ImageFolderListing> ListImageFolder(const std::string& root, const ImageFolderOptions& options) {
  if (Status s = CheckOptions(options); !s.ok()) return s;
  std::error_code ec;
  if (!fs::exists(root, ec)) return NotFoundError("image folder " + root + ": no such folder");
  if (!fs::is_directory(root, ec)) return NotFoundError("image folder " + root + ": not a folder");
  std::vector<std::string> classes;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) classes.push_back(it->path().filename().string());
  }
  if (ec) return UnavailableError("image folder " + root + ": cannot list: " + ec.message());
  if (classes.empty()) return InvalidArgumentError("image folder " + root + ": no class sub-folders");
  std::sort(classes.begin(), classes.end());
  if (options.limit_classes > 0 && static_cast<int64_t>(classes.size()) > options.limit_classes) {
    classes.resize(static_cast<size_t>(options.limit_classes));
  }
  ImageFolderListing out;
  out.class_names = classes;
  for (size_t c = 0; c < classes.size(); ++c) {
    const fs::path dir = fs::path(root) / classes[c];
    auto listed = ListImageFiles(dir.string());
    if (!listed.ok()) return Status(listed.status().code(), "image folder class: " + listed.status().message());
    std::vector<std::string> files = std::move(*listed);
    if (files.empty()) {
      return InvalidArgumentError("image folder class " + dir.string() + ": no image files (png, jpg, jpeg, bmp, gif)");
    }
    // Fisher-Yates with a stream per class, so a class's sample does not depend on the other classes.
    SeededStream rng(options.seed, "image_folder/" + classes[c]);
    SeededShuffle(files, rng);
    if (options.limit_samples > 0 && static_cast<int64_t>(files.size()) > options.limit_samples) {
      files.resize(static_cast<size_t>(options.limit_samples));
    }
    const int64_t n = static_cast<int64_t>(files.size());
    const ClassSplitCounts counts = SplitClass(n, options.val, options.test);
    const int64_t n_train = counts.train, n_val = counts.validation;
    for (int64_t i = 0; i < n; ++i) {
      auto& f = i < n_train ? out.train_files : i < n_train + n_val ? out.validation_files : out.test_files;
      auto& l = i < n_train ? out.train_labels : i < n_train + n_val ? out.validation_labels : out.test_labels;
      f.push_back(files[static_cast<size_t>(i)]);
      l.push_back(static_cast<int64_t>(c));
    }
  }
  return out;
}

StatusOr<ImageFolderData> LoadImageFolder(const std::string& root, const ImageFolderOptions& options) {
  auto listing = ListImageFolder(root, options);
  if (!listing.ok()) return listing.status();
  ImageFolderData out;
  const int64_t k = static_cast<int64_t>(listing->class_names.size());
  auto train = Load(listing->train_files, listing->train_labels, k, options.image);
  if (!train.ok()) return train.status();
  auto val = Load(listing->validation_files, listing->validation_labels, k, options.image);
  if (!val.ok()) return val.status();
  auto test = Load(listing->test_files, listing->test_labels, k, options.image);
  if (!test.ok()) return test.status();
  out.train = std::move(*train);
  out.validation = std::move(*val);
  out.test = std::move(*test);
  out.class_names = std::move(listing->class_names);
  out.train_files = std::move(listing->train_files);
  out.validation_files = std::move(listing->validation_files);
  out.test_files = std::move(listing->test_files);
  return out;
}

}  // namespace dwarp::engine
