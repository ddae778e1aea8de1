#include "worker/engine/datasets/nsd_dataset.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include "worker/engine/datasets/csv_table.h"
#include "worker/engine/datasets/netcdf_file.h"
#include "worker/engine/datasets/neural_loading.h"

namespace dwarp::engine {

using internal::ListForMessage;

StatusOr<NeuralData> LoadNsd(const std::string& nsd_dir, const NsdOptions& options) {
  namespace fs = std::filesystem;
  DWARP_RETURN_IF_ERROR(CheckImageOptions(options.image_));
  std::error_code ec;
  if (!fs::is_directory(nsd_dir, ec)) return NotFoundError("NSD directory " + Quote(nsd_dir) + " does not exist");
  const std::string voxels_path = (fs::path(nsd_dir) / "voxels.nc").string();
  const std::string metadata_path = (fs::path(nsd_dir) / "metadata.csv").string();
  const std::string stimuli_dir =
      options.stimuli_dir_.empty() ? (fs::path(nsd_dir) / "stimuli").string() : options.stimuli_dir_;

  // voxels.nc: presentation x neuroid, stimulus_id on presentation.
  auto file = NetcdfFile::Open(voxels_path);
  if (!file.ok()) return file.status();
  auto presentation_dim = internal::CoordinateDimension(*file, options.stimulus_id_coord_);
  if (!presentation_dim.ok()) return presentation_dim.status();
  auto data_name = FindDataArrayVariable(*file);
  if (!data_name.ok()) return data_name.status();
  const NetcdfVariable* data_var = file->FindVariable(*data_name);
  std::string neuroid_dim;
  for (const auto& d : data_var->dims) {
    if (d != *presentation_dim) neuroid_dim = d;
  }
  if (data_var->dims.size() != 2 || neuroid_dim.empty()) {
    return InvalidArgumentError("NSD voxels.nc " + Quote(voxels_path) + ": data variable " + Quote(*data_name) +
                                " has " + std::to_string(data_var->dims.size()) +
                                " dimensions; expected 2: (" + *presentation_dim + ", neuroid)");
  }
  auto voxels = internal::ReadStimulusByTarget(*file, *presentation_dim, neuroid_dim);
  if (!voxels.ok()) return voxels.status();
  auto presentation_ids = file->ReadStrings(options.stimulus_id_coord_);
  if (!presentation_ids.ok()) return presentation_ids.status();
  auto all_names = internal::DimensionLabels(*file, neuroid_dim, voxels->values.size(1));
  if (!all_names.ok()) return all_names.status();
  at::Tensor values = voxels->values;
  std::vector<std::string> target_names = std::move(*all_names);
  std::string roi_label;
  if (!options.rois_.empty()) {
    // The voxels of each roi, in roi order (each roi's in file order); only they are checked for finiteness,
    // so NaNs outside the selected ROIs (e.g. voxels a mask left empty) do not matter.
    std::vector<internal::RegionMembers> regions;
    std::string source;
    if (file->FindVariable(options.roi_coord_) != nullptr) {
      auto roi_dim = internal::CoordinateDimension(*file, options.roi_coord_);
      if (!roi_dim.ok()) return roi_dim.status();
      if (*roi_dim != neuroid_dim) {
        return InvalidArgumentError("NSD voxels.nc " + Quote(voxels_path) + ": ROI coordinate " +
                                    Quote(options.roi_coord_) + " lies on dimension " + Quote(*roi_dim) +
                                    "; expected the voxel dimension " + Quote(neuroid_dim));
      }
      auto labels = file->ReadStrings(options.roi_coord_);
      if (!labels.ok()) return labels.status();
      regions = internal::GroupByLabel(*labels);
      source = "coordinate " + Quote(options.roi_coord_);
    } else {
      auto masks = internal::ReadRegionMasks(*file, options.roi_coord_ + "_", neuroid_dim);
      if (!masks.ok()) return masks.status();
      regions = std::move(*masks);
      source = "masks " + Quote(options.roi_coord_ + "_<name>");
    }
    if (regions.empty()) {
      auto missing = internal::CoordinateDimension(*file, options.roi_coord_);
      return InvalidArgumentError("NSD voxels.nc: " + missing.status().message() + " and no boolean masks " +
                                  Quote(options.roi_coord_ + "_<name>") + " on dimension " + Quote(neuroid_dim) +
                                  "; selecting rois " + ListForMessage(options.rois_) + " needs a per-voxel ROI "
                                  "label or mask (a voxels.nc that already holds one ROI's voxels needs no data.roi)");
    }
    auto selection = internal::SelectRegions(regions, target_names, options.rois_, "NSD", voxels_path, source,
                                             "voxel");
    if (!selection.ok()) return selection.status();
    values = values.index_select(1, at::tensor(selection->columns, at::kLong));
    target_names = std::move(selection->target_names);
    roi_label = " " + selection->label;
  }
  std::string nan_note;
  DWARP_RETURN_IF_ERROR(internal::ApplyNanPolicy(options.nan_responses_, *presentation_ids,
                                                 "NSD voxels.nc " + Quote(voxels_path), "voxel", &values,
                                                 &target_names, &nan_note));
  const internal::AveragedResponses averaged = internal::AverageRepeats(values, *presentation_ids);

  // metadata.csv: stimulus_id, filename, shared1000.
  auto metadata = ReadCsvFile(metadata_path);
  if (!metadata.ok()) return metadata.status();
  auto meta_ids = metadata->Column("stimulus_id");
  if (!meta_ids.ok()) return meta_ids.status();
  auto meta_files = metadata->Column("filename");
  if (!meta_files.ok()) return meta_files.status();
  auto meta_shared = metadata->Column("shared1000");
  if (!meta_shared.ok()) return meta_shared.status();
  std::unordered_map<std::string, size_t> meta_row;
  for (size_t r = 0; r < meta_ids->size(); ++r) {
    if (!meta_row.emplace((*meta_ids)[r], r).second) {
      return InvalidArgumentError("NSD metadata.csv " + Quote(metadata_path) + " lists stimulus_id " +
                                  Quote((*meta_ids)[r]) + " twice (rows " + std::to_string(meta_row[(*meta_ids)[r]]) +
                                  " and " + std::to_string(r) + "); expected one row per stimulus");
    }
  }
  std::vector<std::string> missing_from_metadata;
  for (const auto& id : averaged.unique_ids) {
    if (meta_row.count(id) == 0) missing_from_metadata.push_back(id);
  }
  if (!missing_from_metadata.empty()) {
    return InvalidArgumentError("NSD: " + std::to_string(missing_from_metadata.size()) + " stimulus ids of voxels.nc " +
                                Quote(voxels_path) + " are missing from metadata.csv " + Quote(metadata_path) + ": " +
                                ListForMessage(missing_from_metadata) + "; expected a metadata row for every stimulus");
  }
  if (!options.allow_unused_metadata_) {
    const std::unordered_set<std::string> in_voxels(averaged.unique_ids.begin(), averaged.unique_ids.end());
    std::vector<std::string> missing_from_voxels;
    for (const auto& id : *meta_ids) {
      if (in_voxels.count(id) == 0) missing_from_voxels.push_back(id);
    }
    if (!missing_from_voxels.empty()) {
      return InvalidArgumentError("NSD: " + std::to_string(missing_from_voxels.size()) +
                                  " stimulus ids of metadata.csv " + Quote(metadata_path) +
                                  " are missing from voxels.nc " + Quote(voxels_path) + ": " +
                                  ListForMessage(missing_from_voxels) +
                                  "; expected the same stimuli in both (allow_unused_metadata accepts extra rows)");
    }
  }

  // Splits over the averaged rows, in voxels.nc order (the first limit_stimuli of them).
  const auto all = static_cast<int64_t>(averaged.unique_ids.size());
  const int64_t n = options.limit_stimuli_ > 0 ? std::min(all, options.limit_stimuli_) : all;
  std::vector<std::string> image_paths(static_cast<size_t>(n));
  internal::SplitRows non_shared, test;
  for (int64_t i = 0; i < n; ++i) {
    const size_t r = meta_row.at(averaged.unique_ids[i]);
    image_paths[i] = (fs::path(stimuli_dir) / (*meta_files)[r]).string();
    auto shared = ParseCsvBool((*meta_shared)[r], "NSD metadata.csv " + Quote(metadata_path) + " row " +
                                                      std::to_string(r + 1) + ", column 'shared1000'");
    if (!shared.ok()) return shared.status();
    (*shared ? test : non_shared).rows.push_back(i);
  }
  const auto n_train =
      static_cast<std::ptrdiff_t>(static_cast<double>(non_shared.rows.size()) * options.train_fraction_);
  std::array<internal::SplitRows, 3> splits;
  splits[0].rows.assign(non_shared.rows.begin(), non_shared.rows.begin() + n_train);
  splits[1].rows.assign(non_shared.rows.begin() + n_train, non_shared.rows.end());
  splits[2] = std::move(test);
  const std::string counts = std::to_string(non_shared.rows.size()) + " non-shared and " +
                             std::to_string(splits[2].rows.size()) + " shared1000 stimuli";
  NeuralData data;
  DWARP_RETURN_IF_ERROR(internal::LoadImageSplits(std::move(splits), averaged.responses, averaged.unique_ids,
                                                  image_paths, options.image_, options.max_stimuli_per_split_,
                                                  "NSD " + Quote(nsd_dir), counts, &data));
  data.target_names = std::move(target_names);
  data.description = "nsd" + roi_label + ": " + std::to_string(n) + " stimuli (" + std::to_string(presentation_ids->size()) +
                     " presentations) x " + std::to_string(data.num_targets()) + " voxels" +
                     nan_note;
  DWARP_RETURN_IF_ERROR(CheckNeuralData(data));
  return data;
}

}  // namespace dwarp::engine
