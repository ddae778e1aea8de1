#include "worker/engine/datasets/neural_loading.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <sstream>
#include <unordered_map>

namespace dwarp::engine::internal {

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string ListForMessage(const std::vector<std::string>& items, size_t max_items) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < max_items; ++i) out += (i == 0 ? "" : ", ") + Quote(items[i]);
  if (items.size() > max_items) out += " and " + std::to_string(items.size() - max_items) + " more";
  return out;
}

Status CheckFiniteResponses(const at::Tensor& responses, const std::vector<std::string>& row_ids,
                            const std::vector<std::string>& target_names, const std::string& where) {
  if (responses.numel() == 0) return OkStatus();
  const at::Tensor bad = at::logical_not(at::isfinite(responses)).nonzero();
  if (bad.size(0) == 0) return OkStatus();
  const int64_t row = bad[0][0].item<int64_t>();
  const int64_t col = bad[0][1].item<int64_t>();
  std::ostringstream os;
  os << where << ": response at row " << row;
  if (row < static_cast<int64_t>(row_ids.size())) os << " (stimulus " << Quote(row_ids[row]) << ")";
  os << ", column " << col;
  if (col < static_cast<int64_t>(target_names.size())) os << " (target " << Quote(target_names[col]) << ")";
  os << " is " << responses[row][col].item<double>() << "; expected finite values (" << bad.size(0)
     << " non-finite in all)";
  return InvalidArgumentError(os.str());
}

AveragedResponses AverageRepeats(const at::Tensor& responses, const std::vector<std::string>& ids) {
  AveragedResponses out;
  std::unordered_map<std::string, int64_t> index;
  std::vector<int64_t> group(ids.size());
  for (size_t r = 0; r < ids.size(); ++r) {
    auto [it, inserted] = index.emplace(ids[r], static_cast<int64_t>(out.unique_ids.size()));
    if (inserted) {
      out.unique_ids.push_back(ids[r]);
      out.first_row.push_back(static_cast<int64_t>(r));
    }
    group[r] = it->second;
  }
  const auto u = static_cast<int64_t>(out.unique_ids.size());
  const at::Tensor values = responses.to(at::kDouble);
  if (u == static_cast<int64_t>(ids.size())) {
    out.responses = values.to(at::kFloat).contiguous();
    return out;
  }
  const at::Tensor g = at::tensor(group, at::kLong);
  at::Tensor sums = at::zeros({u, values.size(1)}, at::kDouble).index_add_(0, g, values);
  at::Tensor counts = at::zeros({u}, at::kDouble).index_add_(0, g, at::ones({values.size(0)}, at::kDouble));
  out.responses = sums.div_(counts.unsqueeze(1)).to(at::kFloat).contiguous();
  return out;
}

StatusOr<RegionSelection> SelectRegions(const std::vector<std::string>& regions,
                                        const std::vector<std::string>& neuroid_names,
                                        const std::vector<std::string>& rois, const std::string& dataset,
                                        const std::string& path, const std::string& region_coord,
                                        const std::string& target_noun) {
  std::vector<std::string> available;
  for (const std::string& region : regions) {
    if (std::find(available.begin(), available.end(), region) == available.end()) available.push_back(region);
  }
  if (rois.empty()) {
    return InvalidArgumentError(dataset + ": no roi given for " + Quote(path) +
                                "; expected one or more of the regions " + ListForMessage(available, 50));
  }
  RegionSelection out;
  for (size_t r = 0; r < rois.size(); ++r) {
    const std::string& roi = rois[r];
    const auto first = std::find(rois.begin(), rois.begin() + static_cast<std::ptrdiff_t>(r), roi);
    if (first != rois.begin() + static_cast<std::ptrdiff_t>(r)) {
      return InvalidArgumentError(dataset + ": roi " + Quote(roi) + " is listed twice (entries " +
                                  std::to_string(first - rois.begin()) + " and " + std::to_string(r) + " of " +
                                  ListForMessage(rois, 50) + "); expected each region once");
    }
    const size_t before = out.columns.size();
    for (size_t i = 0; i < regions.size(); ++i) {
      if (regions[i] != roi) continue;
      out.columns.push_back(static_cast<int64_t>(i));
      out.target_names.push_back(neuroid_names[i]);
    }
    if (out.columns.size() == before) {
      return InvalidArgumentError(dataset + ": roi " + Quote(roi) + " matches no " + target_noun + " in " +
                                  Quote(path) + "; the available regions (coordinate " + Quote(region_coord) +
                                  ") are " + ListForMessage(available, 50));
    }
    out.label += (out.label.empty() ? "" : "+") + roi;
  }
  return out;
}

StatusOr<NeuralSplit> MakeImageSplit(const SplitRows& split, const at::Tensor& responses,
                                     const std::vector<std::string>& ids, const std::vector<std::string>& image_paths,
                                     const ImageOptions& options) {
  std::vector<std::string> paths;
  NeuralSplit out;
  for (int64_t r : split.rows) {
    paths.push_back(image_paths[r]);
    out.stimulus_ids.push_back(ids[r]);
  }
  auto images = LoadImages(paths, options);
  if (!images.ok()) return images.status();
  out.stimuli = std::move(*images);
  out.responses = responses.index_select(0, at::tensor(split.rows, at::kLong)).contiguous();
  return out;
}

Status RequireAndLimitSplits(std::array<SplitRows, 3>* splits, int64_t limit, const std::string& dataset,
                             const std::string& why) {
  static const char* kNames[3] = {"train", "validation", "test"};
  for (size_t s = 0; s < 3; ++s) {
    std::vector<int64_t>& rows = (*splits)[s].rows;
    if (rows.empty()) return InvalidArgumentError(dataset + ": the " + kNames[s] + " split is empty (" + why + ")");
    if (limit >= 0 && static_cast<int64_t>(rows.size()) > limit) rows.resize(static_cast<size_t>(limit));
  }
  return OkStatus();
}

Status LoadImageSplits(std::array<SplitRows, 3> splits, const at::Tensor& responses,
                       const std::vector<std::string>& ids, const std::vector<std::string>& image_paths,
                       const ImageOptions& options, int64_t limit, const std::string& dataset,
                       const std::string& why, NeuralData* data) {
  DWARP_RETURN_IF_ERROR(RequireAndLimitSplits(&splits, limit, dataset, why));
  NeuralSplit* outs[3] = {&data->train, &data->validation, &data->test};
  for (size_t s = 0; s < 3; ++s) {
    auto split = MakeImageSplit(splits[s], responses, ids, image_paths, options);
    if (!split.ok()) return split.status();
    *outs[s] = std::move(*split);
  }
  return OkStatus();
}

}  // namespace dwarp::engine::internal

namespace dwarp::engine::internal {

StatusOr<std::string> CoordinateDimension(const NetcdfFile& file, const std::string& coordinate) {
  const NetcdfVariable* var = file.FindVariable(coordinate);
  const bool is_1d = var != nullptr && (var->dims.size() == 1 || var->IsCharArray());
  if (!is_1d) {
    std::vector<std::string> names;
    for (const auto& v : file.variables()) {
      if (v.dims.size() == 1 || v.IsCharArray()) names.push_back(v.name);
    }
    return InvalidArgumentError("netCDF file " + Quote(file.path()) + " has no 1-D coordinate " + Quote(coordinate) +
                                "; its coordinates are " + ListForMessage(names, 40));
  }
  return var->dims[0];
}

StatusOr<StimulusByTarget> ReadStimulusByTarget(const NetcdfFile& file, const std::string& stimulus_dim,
                                                const std::string& target_dim) {
  auto name = FindDataArrayVariable(file);
  if (!name.ok()) return name.status();
  const NetcdfVariable* var = file.FindVariable(*name);
  std::string dims_text;
  for (size_t i = 0; i < var->dims.size(); ++i) {
    dims_text += (i == 0 ? "" : ", ") + var->dims[i] + ": " + std::to_string(var->shape[i]);
  }
  auto fail = [&](const std::string& why) {
    return InvalidArgumentError("netCDF file " + Quote(file.path()) + ": data variable " + Quote(*name) +
                                " has dimensions (" + dims_text + "); " + why);
  };
  int stim_axis = -1, target_axis = -1;
  for (size_t i = 0; i < var->dims.size(); ++i) {
    if (var->dims[i] == stimulus_dim) {
      stim_axis = static_cast<int>(i);
    } else if (var->dims[i] == target_dim) {
      target_axis = static_cast<int>(i);
    } else if (var->shape[i] != 1) {
      return fail("expected (" + stimulus_dim + ", " + target_dim + ") only, besides dimensions of size 1");
    }
  }
  if (stim_axis < 0 || target_axis < 0) {
    return fail("expected dimensions " + Quote(stimulus_dim) + " and " + Quote(target_dim));
  }
  auto values = file.ReadNumeric(*name);
  if (!values.ok()) return values.status();
  // Move the two named axes to the front, drop the size-1 rest.
  std::vector<int64_t> order = {stim_axis, target_axis};
  for (int64_t i = 0; i < static_cast<int64_t>(var->dims.size()); ++i) {
    if (i != stim_axis && i != target_axis) order.push_back(i);
  }
  at::Tensor out = values->to(at::kDouble).permute(order).reshape({var->shape[stim_axis], var->shape[target_axis]});
  return StimulusByTarget{*name, out.contiguous()};
}

StatusOr<std::vector<std::string>> DimensionLabels(const NetcdfFile& file, const std::string& dim, int64_t n) {
  for (const std::string& candidate : {dim, std::string("neuroid_id")}) {
    const NetcdfVariable* var = file.FindVariable(candidate);
    if (var != nullptr && !var->dims.empty() && var->dims[0] == dim) {
      auto labels = file.ReadStrings(candidate);
      if (labels.ok() && static_cast<int64_t>(labels->size()) == n) return labels;
    }
  }
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(std::to_string(i));
  return out;
}

}  // namespace dwarp::engine::internal
