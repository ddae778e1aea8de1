#include "worker/engine/datasets/generic_neural_dataset.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "worker/engine/datasets/csv_table.h"
#include "worker/engine/datasets/neural_loading.h"
#include "worker/engine/datasets/npy_file.h"

namespace dwarp::engine {


namespace {

namespace fs = std::filesystem;

bool Exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

// 0 train, 1 validation, 2 test, or an error naming `what`.
StatusOr<int> ParseSplitName(const std::string& value, const std::string& what) {
  if (value == "train") return 0;
  if (value == "val" || value == "validation") return 1;
  if (value == "test") return 2;
  return InvalidArgumentError(what + " is " + Quote(value) + "; expected train, val (or validation) or test");
}

StatusOr<std::vector<int>> ReadSplitNpy(const std::string& path, int64_t n) {
  std::vector<int> out;
  auto strings = ReadNpyStrings(path);
  if (strings.ok()) {
    for (size_t i = 0; i < strings->size(); ++i) {
      auto s = ParseSplitName((*strings)[i], "split.npy " + Quote(path) + " entry " + std::to_string(i));
      if (!s.ok()) return s.status();
      out.push_back(*s);
    }
  } else {
    auto codes = ReadNpyFile(path);
    if (!codes.ok()) return codes.status();
    if (codes->dim() != 1 || at::isFloatingType(codes->scalar_type()) || codes->scalar_type() == at::kBool) {
      return InvalidArgumentError("split.npy " + Quote(path) + " has shape " + std::to_string(codes->dim()) +
                                  "-D and dtype " + std::string(c10::toString(codes->scalar_type())) +
                                  "; expected [N] strings (train/val/test) or integers 0/1/2");
    }
    const at::Tensor c = codes->to(at::kLong);
    for (int64_t i = 0; i < c.size(0); ++i) {
      const int64_t v = c[i].item<int64_t>();
      if (v < 0 || v > 2) {
        return InvalidArgumentError("split.npy " + Quote(path) + " entry " + std::to_string(i) + " is " +
                                    std::to_string(v) + "; expected 0 (train), 1 (val) or 2 (test)");
      }
      out.push_back(static_cast<int>(v));
    }
  }
  if (static_cast<int64_t>(out.size()) != n) {
    return InvalidArgumentError("split.npy " + Quote(path) + " has " + std::to_string(out.size()) +
                                " entries but responses.npy has " + std::to_string(n) + " rows; expected equal counts");
  }
  return out;
}

}  // namespace

StatusOr<NeuralData> LoadGenericNeuralData(const std::string& root, const GenericNeuralOptions& options) {
  DWARP_RETURN_IF_ERROR(CheckImageOptions(options.image_));
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return NotFoundError("dataset directory " + Quote(root) + " does not exist");
  const fs::path dir(root);
  const std::string responses_path = (dir / "responses.npy").string();
  const std::string stimuli_npy = (dir / "stimuli.npy").string();
  const std::string stimuli_csv = (dir / "stimuli.csv").string();
  const std::string split_npy = (dir / "split.npy").string();
  const std::string ceiling_npy = (dir / "noise_ceiling.npy").string();
  const std::string images_dir = options.images_dir_.empty() ? (dir / "stimuli").string() : options.images_dir_;

  // Responses.
  auto raw = ReadNpyFile(responses_path);
  if (!raw.ok()) return raw.status();
  if (raw->dim() != 2 || !at::isFloatingType(raw->scalar_type())) {
    std::ostringstream shape;
    shape << raw->sizes();
    return InvalidArgumentError("responses.npy " + Quote(responses_path) + " has shape " + shape.str() +
                                " and dtype " + std::string(c10::toString(raw->scalar_type())) +
                                "; expected float32 or float64 [stimuli, targets]");
  }
  const int64_t n = raw->size(0);
  const at::Tensor responses = raw->to(at::kFloat).contiguous();
  std::vector<std::string> target_names;
  for (int64_t t = 0; t < raw->size(1); ++t) target_names.push_back(std::to_string(t));

  // The CSV (optional with stimuli.npy + split.npy).
  std::optional<CsvTable> csv;
  if (Exists(stimuli_csv)) {
    auto table = ReadCsvFile(stimuli_csv);
    if (!table.ok()) return table.status();
    if (static_cast<int64_t>(table->num_rows()) != n) {
      return InvalidArgumentError("stimuli.csv " + Quote(stimuli_csv) + " has " + std::to_string(table->num_rows()) +
                                  " rows but responses.npy " + Quote(responses_path) + " has " + std::to_string(n) +
                                  "; expected one row per stimulus in both");
    }
    csv = std::move(*table);
  }
  const bool has_npy_stimuli = Exists(stimuli_npy);
  const bool has_filename = csv.has_value() && csv->HasColumn("filename");
  if (has_npy_stimuli && has_filename) {
    return InvalidArgumentError("dataset " + Quote(root) + " has both stimuli.npy and a 'filename' column in " +
                                "stimuli.csv; expected one source of stimuli");
  }
  if (!has_npy_stimuli && !has_filename) {
    return NotFoundError("dataset " + Quote(root) + " has no stimuli: expected stimuli.npy, or stimuli.csv with a " +
                         "'filename' column naming images in " + Quote(images_dir));
  }

  // Ids.
  std::vector<std::string> ids;
  if (csv && csv->HasColumn("stimulus_id")) {
    ids = *csv->Column("stimulus_id");
  } else if (has_filename) {
    ids = *csv->Column("filename");
  } else {
    for (int64_t i = 0; i < n; ++i) ids.push_back(std::to_string(i));
  }
  {
    std::unordered_map<std::string, size_t> seen;
    for (size_t i = 0; i < ids.size(); ++i) {
      auto [it, inserted] = seen.emplace(ids[i], i);
      if (!inserted) {
        return InvalidArgumentError("stimuli.csv " + Quote(stimuli_csv) + " names stimulus " + Quote(ids[i]) +
                                    " twice (rows " + std::to_string(it->second + 1) + " and " +
                                    std::to_string(i + 1) + "); expected one row per stimulus (average repeats)");
      }
    }
  }
  DWARP_RETURN_IF_ERROR(
      internal::CheckFiniteResponses(responses, ids, target_names, "responses.npy " + Quote(responses_path)));

  // Splits: a named column (options.split_column_), else split.npy or the `split` column, exactly one.
  std::vector<int> split_of;
  std::string split_column;
  if (!options.split_column_.empty()) {
    split_column = options.split_column_;
    if (!csv) {
      return NotFoundError("dataset " + Quote(root) + " has no stimuli.csv " + Quote(stimuli_csv) +
                           ", so no split column " + Quote(split_column) + "; expected stimuli.csv with that column");
    }
    if (!csv->HasColumn(split_column)) {
      return InvalidArgumentError("stimuli.csv " + Quote(stimuli_csv) + " has no split column " + Quote(split_column) +
                                  "; the columns present are " + internal::ListForMessage(csv->header(), 50));
    }
  } else {
    const bool has_split_column = csv.has_value() && csv->HasColumn("split");
    const bool has_split_npy = Exists(split_npy);
    if (has_split_column && has_split_npy) {
      return InvalidArgumentError("dataset " + Quote(root) +
                                  " has both split.npy and a 'split' column in stimuli.csv; expected one");
    }
    if (has_split_npy) {
      auto s = ReadSplitNpy(split_npy, n);
      if (!s.ok()) return s.status();
      split_of = std::move(*s);
    } else if (has_split_column) {
      split_column = "split";
    } else {
      return NotFoundError("dataset " + Quote(root) + " has no split: expected split.npy or a 'split' column in " +
                           "stimuli.csv (values train, val, test)");
    }
  }
  if (!split_column.empty()) {
    const auto column = *csv->Column(split_column);
    for (size_t i = 0; i < column.size(); ++i) {
      auto s = ParseSplitName(column[i], "stimuli.csv " + Quote(stimuli_csv) + " row " + std::to_string(i + 1) +
                                             ", column " + Quote(split_column));
      if (!s.ok()) return s.status();
      split_of.push_back(*s);
    }
  }
  std::array<internal::SplitRows, 3> splits;
  for (int64_t i = 0; i < n; ++i) splits[static_cast<size_t>(split_of[i])].rows.push_back(i);
  const std::string dataset = "dataset " + Quote(root);
  const std::string why = "no stimulus is marked for it";

  NeuralData data;
  if (has_filename) {
    const std::vector<std::string> filenames = *csv->Column("filename");
    std::vector<std::string> paths;
    for (const auto& f : filenames) paths.push_back((fs::path(images_dir) / f).string());
    DWARP_RETURN_IF_ERROR(internal::LoadImageSplits(std::move(splits), responses, ids, paths, options.image_,
                                                    options.max_stimuli_per_split_, dataset, why, &data));
  } else {
    DWARP_RETURN_IF_ERROR(internal::RequireAndLimitSplits(&splits, options.max_stimuli_per_split_, dataset, why));
    auto stimuli = ReadNpyFile(stimuli_npy);
    if (!stimuli.ok()) return stimuli.status();
    const at::ScalarType t = stimuli->scalar_type();
    if (stimuli->dim() < 1 || !(t == at::kFloat || t == at::kDouble || t == at::kByte)) {
      return InvalidArgumentError("stimuli.npy " + Quote(stimuli_npy) + " has dtype " +
                                  std::string(c10::toString(t)) + "; expected float32, float64 or uint8 [N, ...]");
    }
    if (stimuli->size(0) != n) {
      return InvalidArgumentError("stimuli.npy " + Quote(stimuli_npy) + " holds " + std::to_string(stimuli->size(0)) +
                                  " stimuli but responses.npy " + Quote(responses_path) + " has " + std::to_string(n) +
                                  " rows; expected equal counts");
    }
    const at::Tensor values = t == at::kByte ? stimuli->to(at::kFloat).div_(255.0f) : stimuli->to(at::kFloat);
    NeuralSplit* outs[3] = {&data.train, &data.validation, &data.test};
    for (size_t s = 0; s < 3; ++s) {
      const at::Tensor rows = at::tensor(splits[s].rows, at::kLong);
      outs[s]->stimuli = values.index_select(0, rows).contiguous();
      outs[s]->responses = responses.index_select(0, rows).contiguous();
      for (int64_t r : splits[s].rows) outs[s]->stimulus_ids.push_back(ids[r]);
    }
  }

  if (Exists(ceiling_npy)) {
    auto ceiling = ReadNpyFile(ceiling_npy);
    if (!ceiling.ok()) return ceiling.status();
    if (ceiling->dim() != 1 || ceiling->size(0) != static_cast<int64_t>(target_names.size()) ||
        !at::isFloatingType(ceiling->scalar_type())) {
      std::ostringstream shape;
      shape << ceiling->sizes();
      return InvalidArgumentError("noise_ceiling.npy " + Quote(ceiling_npy) + " has shape " + shape.str() +
                                  " and dtype " + std::string(c10::toString(ceiling->scalar_type())) +
                                  "; expected float32/float64 [" + std::to_string(target_names.size()) +
                                  "] (one entry per response column)");
    }
    data.noise_ceiling = ceiling->to(at::kFloat).contiguous();
  }
  data.target_names = std::move(target_names);
  data.description = "generic " + Quote(root) + ": " + std::to_string(n) + " stimuli x " +
                     std::to_string(data.num_targets()) + " targets";
  DWARP_RETURN_IF_ERROR(CheckNeuralData(data));
  return data;
}

}  // namespace dwarp::engine
