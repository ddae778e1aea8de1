#include "worker/engine/datasets/classification_data.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "worker/engine/seeded_random.h"

namespace dwarp::engine {

ClassificationData SliceRows(const ClassificationData& data, int64_t begin, int64_t count) {
  TORCH_CHECK(begin >= 0 && count >= 0 && begin + count <= data.size(), "SliceRows: rows [", begin, ", ",
              begin + count, ") outside the ", data.size(), " examples");
  return {data.inputs.narrow(0, begin, count), data.labels.narrow(0, begin, count), data.num_classes};
}

Status CheckClassificationData(const ClassificationData& data, const std::string& what) {
  std::ostringstream os;
  os << what << ": ";
  if (!data.inputs.defined() || !data.labels.defined()) {
    os << "inputs or labels are missing";
    return InvalidArgumentError(os.str());
  }
  if (!at::isFloatingType(data.inputs.scalar_type()) || data.inputs.dim() < 2) {
    os << "inputs are " << data.inputs.scalar_type() << " " << data.inputs.sizes()
       << "; expected a floating-point tensor [N, ...] with at least 2 dimensions";
    return InvalidArgumentError(os.str());
  }
  if (data.labels.scalar_type() != at::kLong || data.labels.dim() != 1) {
    os << "labels are " << data.labels.scalar_type() << " " << data.labels.sizes() << "; expected int64 [N]";
    return InvalidArgumentError(os.str());
  }
  if (data.inputs.size(0) != data.labels.size(0)) {
    os << data.inputs.size(0) << " inputs but " << data.labels.size(0) << " labels; expected equal counts";
    return InvalidArgumentError(os.str());
  }
  if (data.num_classes < 1) {
    os << "num_classes = " << data.num_classes << "; expected >= 1";
    return InvalidArgumentError(os.str());
  }
  if (data.size() == 0) return OkStatus();
  const int64_t min_label = data.labels.min().item<int64_t>();
  const int64_t max_label = data.labels.max().item<int64_t>();
  if (min_label < 0 || max_label >= data.num_classes) {
    const int64_t bad = min_label < 0 ? min_label : max_label;
    const int64_t index = (data.labels == bad).nonzero().select(1, 0).select(0, 0).item<int64_t>();
    os << "label " << bad << " at index " << index << " is outside [0, " << data.num_classes << ")";
    return InvalidArgumentError(os.str());
  }
  return OkStatus();
}

ClassSplitCounts SplitClass(int64_t n, double validation, double test) {
  int64_t n_val = static_cast<int64_t>(std::floor(n * validation + 1e-9));
  int64_t n_test = static_cast<int64_t>(std::floor(n * test + 1e-9));
  if (validation > 0 && n_val < 1) n_val = 1;
  if (test > 0 && n_test < 1) n_test = 1;
  while (n - n_val - n_test < 1 && n_val + n_test > 0) {
    if (n_test >= n_val && n_test > 0) --n_test; else --n_val;
  }
  return {n - n_val - n_test, n_val, n_test};
}

StatusOr<FewShotRows> SelectFewShotRows(const at::Tensor& labels, const FewShotOptions& options) {
  if (options.limit_classes < 0 || options.limit_samples < 0) {
    return InvalidArgumentError("limit_classes = " + std::to_string(options.limit_classes) + ", limit_samples = " +
                                std::to_string(options.limit_samples) + "; expected both >= 0 (0: no limit)");
  }
  if (!(options.validation >= 0 && options.test >= 0 && options.validation + options.test < 1)) {
    std::ostringstream os;
    os << "validation fraction " << options.validation << " and test fraction " << options.test
       << "; expected each >= 0 and together < 1";
    return InvalidArgumentError(os.str());
  }
  if (!labels.defined() || labels.scalar_type() != at::kLong || labels.dim() != 1) {
    return InvalidArgumentError("few-shot labels must be int64 [N]");
  }
  const at::Tensor cpu = labels.contiguous().to(at::kCPU);
  const int64_t* label = cpu.data_ptr<int64_t>();
  const int64_t n = cpu.size(0);
  int64_t max_label = -1;
  for (int64_t i = 0; i < n; ++i) {
    if (label[i] < 0) return InvalidArgumentError("label " + std::to_string(label[i]) + " at row " + std::to_string(i) + "; expected >= 0");
    max_label = std::max(max_label, label[i]);
  }
  const int64_t classes = options.limit_classes > 0 ? std::min(options.limit_classes, max_label + 1) : max_label + 1;
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(std::max<int64_t>(classes, 0)));
  for (int64_t i = 0; i < n; ++i)
    if (label[i] < classes) rows[static_cast<size_t>(label[i])].push_back(i);
  std::vector<int64_t> train, validation, test;
  for (int64_t c = 0; c < classes; ++c) {
    std::vector<int64_t>& r = rows[static_cast<size_t>(c)];
    SeededStream rng(options.seed, options.stream + "/" + std::to_string(c));
    SeededShuffle(r, rng);
    if (options.limit_samples > 0 && static_cast<int64_t>(r.size()) > options.limit_samples)
      r.resize(static_cast<size_t>(options.limit_samples));
    const ClassSplitCounts counts = SplitClass(static_cast<int64_t>(r.size()), options.validation, options.test);
    const int64_t n_train = counts.train, n_val = counts.validation;
    train.insert(train.end(), r.begin(), r.begin() + n_train);
    validation.insert(validation.end(), r.begin() + n_train, r.begin() + n_train + n_val);
    test.insert(test.end(), r.begin() + n_train + n_val, r.end());
  }
  auto as_tensor = [](std::vector<int64_t> v) {
    std::sort(v.begin(), v.end());
    return at::tensor(v, at::kLong);
  };
  FewShotRows out;
  out.train = as_tensor(std::move(train));
  out.validation = as_tensor(std::move(validation));
  out.test = as_tensor(std::move(test));
  out.num_classes = std::max<int64_t>(classes, 0);
  return out;
}

namespace {

ClassificationData TakeRows(const ClassificationData& data, const at::Tensor& rows, int64_t num_classes) {
  return {data.inputs.index_select(0, rows), data.labels.index_select(0, rows), num_classes};
}

}  // namespace

StatusOr<ClassifierSplits> SplitLabelledRows(const ClassificationData& all, const ClassificationData* test_file,
                                             const LabelledSplitOptions& options) {
  ClassifierSplits splits;
  const int64_t n = all.size();
  const int64_t n_train = static_cast<int64_t>(n * options.train);
  if (options.limit_classes > 0 || options.limit_samples > 0) {
    FewShotOptions subset;
    subset.limit_classes = options.limit_classes;
    subset.limit_samples = options.limit_samples;
    subset.validation = options.validation;
    subset.test = test_file != nullptr ? 0.0 : options.test;
    subset.seed = options.seed;
    subset.stream = options.stream;
    auto rows = SelectFewShotRows(all.labels, subset);
    if (!rows.ok()) return rows.status();
    splits.train = TakeRows(all, rows->train, rows->num_classes);
    splits.validation = TakeRows(all, rows->validation, rows->num_classes);
    splits.test = test_file == nullptr
                      ? TakeRows(all, rows->test, rows->num_classes)
                      : TakeRows(*test_file, at::nonzero(test_file->labels < rows->num_classes).flatten(),
                                 rows->num_classes);
    for (const ClassificationData* split : {&splits.train, &splits.validation, &splits.test}) {
      if (split->size() == 0) {
        return InvalidArgumentError("limit_classes = " + std::to_string(options.limit_classes) +
                                    ", limit_samples = " + std::to_string(options.limit_samples) +
                                    " leave an empty split; expected more samples per class for the split fractions");
      }
    }
    return splits;
  }
  splits.train = SliceRows(all, 0, n_train);
  if (test_file != nullptr) {
    splits.validation = SliceRows(all, n_train, n - n_train);
    splits.test = *test_file;
  } else {
    const int64_t n_val = static_cast<int64_t>(n * options.validation);
    splits.validation = SliceRows(all, n_train, n_val);
    splits.test = SliceRows(all, n_train + n_val, n - n_train - n_val);
  }
  const int64_t num_classes = std::max(all.num_classes, splits.test.num_classes);
  for (ClassificationData* split : {&splits.train, &splits.validation, &splits.test}) split->num_classes = num_classes;
  return splits;
}

}  // namespace dwarp::engine
