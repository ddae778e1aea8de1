#include "worker/engine/datasets/neural_loading.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <sstream>
#include <unordered_map>

#include "common/quote.h"

namespace dwarp::engine::internal {

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

std::vector<RegionMembers> GroupByLabel(const std::vector<std::string>& labels) {
  std::vector<RegionMembers> out;
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < labels.size(); ++i) {
    auto [it, inserted] = index.emplace(labels[i], out.size());
    if (inserted) out.push_back(RegionMembers{labels[i], {}});
    out[it->second].columns.push_back(static_cast<int64_t>(i));
  }
  return out;
}

StatusOr<RegionSelection> SelectRegions(const std::vector<RegionMembers>& regions,
                                        const std::vector<std::string>& neuroid_names,
                                        const std::vector<std::string>& rois, const std::string& dataset,
                                        const std::string& path, const std::string& source,
                                        const std::string& target_noun) {
  std::vector<std::string> available;
  for (const RegionMembers& region : regions) available.push_back(region.name);
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
    const auto region = std::find_if(regions.begin(), regions.end(),
                                     [&](const RegionMembers& m) { return m.name == roi; });
    if (region == regions.end() || region->columns.empty()) {
      return InvalidArgumentError(dataset + ": roi " + Quote(roi) + " matches no " + target_noun + " in " +
                                  Quote(path) + "; the available regions (" + source + ") are " +
                                  ListForMessage(available, 50));
    }
    for (int64_t c : region->columns) {
      out.columns.push_back(c);
      out.target_names.push_back(neuroid_names[static_cast<size_t>(c)]);
    }
    out.label += (out.label.empty() ? "" : "+") + roi;
  }
  return out;
}

StatusOr<FiniteTargets> DropNonFiniteTargets(const at::Tensor& responses, const std::vector<std::string>& target_names,
                                             const std::string& where) {
  FiniteTargets out;
  const at::Tensor finite = at::isfinite(responses).all(0);  // [targets]
  std::vector<int64_t> keep;
  for (int64_t j = 0; j < responses.size(1); ++j) {
    const std::string name = j < static_cast<int64_t>(target_names.size()) ? target_names[j] : std::to_string(j);
    if (finite[j].item<bool>()) {
      keep.push_back(j);
      out.target_names.push_back(name);
    } else {
      out.dropped.push_back(name);
    }
  }
  if (keep.empty()) {
    return InvalidArgumentError(where + ": every one of the " + std::to_string(responses.size(1)) +
                                " targets has a non-finite response; expected at least one target with finite "
                                "responses for every stimulus");
  }
  out.responses = out.dropped.empty() ? responses : responses.index_select(1, at::tensor(keep, at::kLong));
  return out;
}

Status ApplyNanPolicy(NanResponses policy, const std::vector<std::string>& row_ids, const std::string& where,
                      const std::string& target_noun, at::Tensor* responses, std::vector<std::string>* target_names,
                      std::string* note) {
  if (policy == NanResponses::kRefuse) {
    return CheckFiniteResponses(*responses, row_ids, *target_names, where);
  }
  const int64_t before = responses->size(1);
  auto kept = DropNonFiniteTargets(*responses, *target_names, where);
  if (!kept.ok()) return kept.status();
  if (!kept->dropped.empty()) {
    *note += "; " + std::to_string(kept->dropped.size()) + " of " + std::to_string(before) + " " + target_noun +
             "s dropped for NaN responses: " + ListForMessage(kept->dropped, 10);
  }
  *responses = std::move(kept->responses);
  *target_names = std::move(kept->target_names);
  return OkStatus();
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
  if (var == nullptr || !var->IsOneDimensional()) {
    std::vector<std::string> names;
    for (const auto& v : file.variables()) {
      if (v.IsOneDimensional()) names.push_back(v.name);
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

StatusOr<std::vector<RegionMembers>> ReadRegionMasks(const NetcdfFile& file, const std::string& prefix,
                                                     const std::string& dim) {
  std::vector<RegionMembers> out;
  for (const NetcdfVariable& v : file.variables()) {
    if (v.name.size() <= prefix.size() || v.name.compare(0, prefix.size(), prefix) != 0) continue;
    if (!v.IsOneDimensional() || v.dims[0] != dim || v.IsCharArray()) continue;
    auto values = file.ReadNumeric(v.name);
    if (!values.ok()) return values.status();
    const at::Tensor mask = values->to(at::kDouble);
    const at::Tensor bad = at::logical_and(mask != 0, mask != 1).nonzero();
    if (bad.size(0) > 0) {
      const int64_t i = bad[0][0].item<int64_t>();
      std::ostringstream os;
      os << "netCDF file " << Quote(file.path()) << ": ROI mask " << Quote(v.name) << " is "
         << mask[i].item<double>() << " at " << dim << " " << i << "; expected a boolean mask (True/False)";
      return InvalidArgumentError(os.str());
    }
    RegionMembers region{v.name.substr(prefix.size()), {}};
    const at::Tensor members = mask.nonzero().view({-1}).contiguous();
    const int64_t* p = members.data_ptr<int64_t>();
    region.columns.assign(p, p + members.numel());
    out.push_back(std::move(region));
  }
  return out;
}

StatusOr<std::vector<std::string>> DimensionLabels(const NetcdfFile& file, const std::string& dim, int64_t n) {
  for (const std::string& candidate : {dim, std::string("neuroid_id")}) {
    const NetcdfVariable* var = file.FindVariable(candidate);
    if (var != nullptr && var->IsOneDimensional() && var->dims[0] == dim) {
      auto labels = file.ReadStrings(candidate);
      if (labels.ok() && static_cast<int64_t>(labels->size()) == n) return labels;
    }
  }
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(std::to_string(i));
  return out;
}

}  // namespace dwarp::engine::internal
