// ClassificationData: labelled examples held in memory, the form every classification dataset loader
// returns and the classifier trainer consumes.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

struct ClassificationData {
  at::Tensor inputs;        // floating point [N, ...], e.g. images float32 [N, C, H, W] in [0, 1]
  at::Tensor labels;        // int64 [N], each in [0, num_classes)
  int64_t num_classes = 0;  // >= 1

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
};

// Rows [begin, begin + count) of `data` as views (no copy). Requires 0 <= begin, count >= 0 and
// begin + count <= data.size() (programmer error otherwise: checked with TORCH_CHECK, which throws).
ClassificationData SliceRows(const ClassificationData& data, int64_t begin, int64_t count);

// OK when `data` satisfies the contract above; otherwise InvalidArgument whose message starts with `what`
// (e.g. "validation split") and names the bad shape, dtype or label.
Status CheckClassificationData(const ClassificationData& data, const std::string& what);

// How a class of n examples splits in order: n_validation = floor(n * validation), n_test = floor(n * test),
// each raised to 1 when its fraction is > 0, then lowered (test first on ties) until train keeps >= 1 row
// (or nothing is left to lower). The image-folder loader and SelectFewShotRows split each class this way.
struct ClassSplitCounts {
  int64_t train = 0, validation = 0, test = 0;
};
ClassSplitCounts SplitClass(int64_t n, double validation, double test);

// A few-shot subset of labelled rows, drawn as the image-folder loader draws its classes and files (the
// seed's few-shot ImageNet-21k set): the first `limit_classes` labels (0: all), at most `limit_samples`
// rows of each (0: all) after a shuffle seeded by (seed, "<stream>/<label>") per class, so one class's
// draw does not depend on the others; then each class split in order into train / validation / test by
// the fractions (a fraction > 0 gets at least one row while the class has rows to spare for train).
struct FewShotOptions {
  int64_t limit_classes = 0;  // >= 0
  int64_t limit_samples = 0;  // >= 0, per class
  double validation = 0.2;    // fractions in [0, 1), validation + test < 1
  double test = 0.2;
  uint64_t seed = 0;
  std::string stream = "few_shot";
};

// Row indices (int64, ascending) into `labels` (int64 [N]) per split.
struct FewShotRows {
  at::Tensor train, validation, test;
  int64_t num_classes = 0;  // the classes kept: labels 0 .. num_classes - 1
};

// InvalidArgument naming the value for negative limits, fractions outside [0, 1) or summing to >= 1, or
// labels that are not int64 [N] >= 0.
StatusOr<FewShotRows> SelectFewShotRows(const at::Tensor& labels, const FewShotOptions& options);

// The three splits a classifier trains on, chooses its best epoch on, and is scored on
// (train/classifier_training.h).
struct ClassifierSplits {
  ClassificationData train;       // non-empty
  ClassificationData validation;  // non-empty; chooses the best epoch
  ClassificationData test;        // non-empty; scored once, with the best state
};

// How SplitLabelledRows turns one file of labelled rows (and an optional test file) into splits.
struct LabelledSplitOptions {
  // In order: the first `train` fraction of the rows, then the next `validation` fraction, the rest
  // test; with a test file, train and the rest validation.
  double train = 0.6;
  double validation = 0.2;
  double test = 0.2;
  // When either is > 0: the few-shot subset of SelectFewShotRows (these limits, the validation and test
  // fractions, `seed`, `stream`) instead of the ordered cut; a test file then keeps all its rows of the
  // classes kept.
  int64_t limit_classes = 0;
  int64_t limit_samples = 0;
  uint64_t seed = 0;
  std::string stream = "idx";
};

// The splits of `all` (and of `test_file` when it is not null: it is then the test split); every split's
// num_classes is the classes kept (few-shot) or the larger of the two files' counts. InvalidArgument naming
// the limits when the few-shot subset leaves a split empty, and SelectFewShotRows's errors.
StatusOr<ClassifierSplits> SplitLabelledRows(const ClassificationData& all, const ClassificationData* test_file,
                                             const LabelledSplitOptions& options);

}  // namespace dwarp::engine
