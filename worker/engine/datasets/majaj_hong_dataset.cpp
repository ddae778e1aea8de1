#include "worker/engine/datasets/majaj_hong_dataset.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <unordered_map>

#include "worker/engine/datasets/csv_table.h"
#include "worker/engine/datasets/netcdf_file.h"
#include "worker/engine/datasets/neural_loading.h"

namespace dwarp::engine {

using internal::ListForMessage;

StatusOr<NeuralData> LoadMajajHong(const std::string& netcdf_path, const std::string& stimuli_dir,
                                   const MajajHongOptions& options) {
  namespace fs = std::filesystem;
  DWARP_RETURN_IF_ERROR(CheckImageOptions(options.image_));
  std::error_code ec;
  if (!fs::is_directory(stimuli_dir, ec)) {
    return NotFoundError("Majaj-Hong stimuli directory " + Quote(stimuli_dir) + " does not exist");
  }
  auto file = NetcdfFile::Open(netcdf_path);
  if (!file.ok()) return file.status();
  auto neuroid_dim = internal::CoordinateDimension(*file, options.region_coord_);
  if (!neuroid_dim.ok()) return neuroid_dim.status();
  // The stimulus dimension: the id coordinate's, or a dimension named like it that has no values (xarray
  // indexes such a dimension by position, and so do the ids here).
  auto data_name = FindDataArrayVariable(*file);
  if (!data_name.ok()) return data_name.status();
  const NetcdfVariable* data_var = file->FindVariable(*data_name);
  const bool positional_ids = file->FindVariable(options.stimulus_id_coord_) == nullptr &&
                              std::find(data_var->dims.begin(), data_var->dims.end(), options.stimulus_id_coord_) !=
                                  data_var->dims.end();
  auto stimulus_dim = positional_ids ? StatusOr<std::string>(options.stimulus_id_coord_)
                                     : internal::CoordinateDimension(*file, options.stimulus_id_coord_);
  if (!stimulus_dim.ok()) return stimulus_dim.status();
  if (*neuroid_dim == *stimulus_dim) {
    return InvalidArgumentError("netCDF file " + Quote(netcdf_path) + ": coordinates " + Quote(options.region_coord_) +
                                " and " + Quote(options.stimulus_id_coord_) + " both lie on dimension " +
                                Quote(*neuroid_dim) + "; expected the region on the neuroid dimension and the id "
                                "on the stimulus dimension");
  }
  auto responses = internal::ReadStimulusByTarget(*file, *stimulus_dim, *neuroid_dim);
  if (!responses.ok()) return responses.status();
  auto regions = file->ReadStrings(options.region_coord_);
  if (!regions.ok()) return regions.status();
  std::vector<std::string> ids;
  if (positional_ids) {
    if (file->FindVariable(options.filename_coord_) == nullptr) {
      return InvalidArgumentError("netCDF file " + Quote(netcdf_path) + ": dimension " +
                                  Quote(options.stimulus_id_coord_) + " has no coordinate values and there is no " +
                                  "file-name coordinate " + Quote(options.filename_coord_) +
                                  "; expected one of them to name each stimulus's image file");
    }
    for (int64_t i = 0; i < responses->values.size(0); ++i) ids.push_back(std::to_string(i));
  } else {
    auto read = file->ReadStrings(options.stimulus_id_coord_);
    if (!read.ok()) return read.status();
    ids = std::move(*read);
  }
  auto neuroid_names = internal::DimensionLabels(*file, *neuroid_dim, responses->values.size(1));
  if (!neuroid_names.ok()) return neuroid_names.status();

  // The roi filter: the neuroids of each region in roi order, each region's in file order; the regions are
  // whatever the file's region coordinate holds.
  auto selection = internal::SelectRegions(internal::GroupByLabel(*regions), *neuroid_names, options.rois_,
                                           "Majaj-Hong", netcdf_path,
                                           "coordinate " + Quote(options.region_coord_), "neuroid");
  if (!selection.ok()) return selection.status();
  at::Tensor roi_values = responses->values.index_select(1, at::tensor(selection->columns, at::kLong));
  std::string nan_note;
  DWARP_RETURN_IF_ERROR(internal::ApplyNanPolicy(options.nan_responses_, ids,
                                                 "Majaj-Hong netCDF file " + Quote(netcdf_path), "neuroid",
                                                 &roi_values, &selection->target_names, &nan_note));
  const internal::AveragedResponses averaged = internal::AverageRepeats(roi_values, ids);
  const auto n = static_cast<int64_t>(averaged.unique_ids.size());

  // Image file names.
  std::vector<std::string> image_paths(static_cast<size_t>(n));
  if (!options.metadata_csv_.empty()) {
    auto metadata = ReadCsvFile(options.metadata_csv_);
    if (!metadata.ok()) return metadata.status();
    auto meta_ids = metadata->Column(options.stimulus_id_coord_);
    if (!meta_ids.ok()) return meta_ids.status();
    auto meta_files = metadata->Column("filename");
    if (!meta_files.ok()) return meta_files.status();
    std::unordered_map<std::string, std::string> file_of;
    for (size_t r = 0; r < meta_ids->size(); ++r) file_of.emplace((*meta_ids)[r], (*meta_files)[r]);
    std::vector<std::string> missing;
    for (int64_t i = 0; i < n; ++i) {
      auto it = file_of.find(averaged.unique_ids[i]);
      if (it == file_of.end()) missing.push_back(averaged.unique_ids[i]);
      else image_paths[i] = (fs::path(stimuli_dir) / it->second).string();
    }
    if (!missing.empty()) {
      return InvalidArgumentError("Majaj-Hong: " + std::to_string(missing.size()) + " image ids of " +
                                  Quote(netcdf_path) + " are missing from metadata CSV " +
                                  Quote(options.metadata_csv_) + ": " + ListForMessage(missing));
    }
  } else if (file->FindVariable(options.filename_coord_) != nullptr) {
    auto coord_dim = internal::CoordinateDimension(*file, options.filename_coord_);
    if (!coord_dim.ok()) return coord_dim.status();
    if (*coord_dim != *stimulus_dim) {
      return InvalidArgumentError("netCDF file " + Quote(netcdf_path) + ": file-name coordinate " +
                                  Quote(options.filename_coord_) + " lies on dimension " + Quote(*coord_dim) +
                                  "; expected the stimulus dimension " + Quote(*stimulus_dim));
    }
    auto names = file->ReadStrings(options.filename_coord_);
    if (!names.ok()) return names.status();
    for (int64_t i = 0; i < n; ++i) {
      image_paths[i] = (fs::path(stimuli_dir) / (*names)[averaged.first_row[i]]).string();
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      image_paths[i] = (fs::path(stimuli_dir) / (averaged.unique_ids[i] + options.image_extension_)).string();
    }
  }

  // Splits by order over the first limit_stimuli stimuli.
  const int64_t used = options.limit_stimuli_ > 0 ? std::min(n, options.limit_stimuli_) : n;
  const auto n_train = static_cast<int64_t>(static_cast<double>(used) * options.train_);
  const auto n_train_val = static_cast<int64_t>(static_cast<double>(used) * (1.0 - options.test_));
  std::array<internal::SplitRows, 3> splits;
  for (int64_t i = 0; i < used; ++i) splits[i < n_train ? 0 : i < n_train_val ? 1 : 2].rows.push_back(i);
  std::ostringstream why;
  why << used << (used < n ? " (limit_stimuli) of " + std::to_string(n) : std::string()) << " distinct images split "
      << options.train_ << " / " << options.val_ << " / " << options.test_;
  NeuralData data;
  DWARP_RETURN_IF_ERROR(internal::LoadImageSplits(std::move(splits), averaged.responses, averaged.unique_ids,
                                                  image_paths, options.image_, options.max_stimuli_per_split_,
                                                  "Majaj-Hong " + Quote(netcdf_path), why.str(), &data));
  data.target_names = std::move(selection->target_names);
  data.description = "majaj_hong " + selection->label + ": " + std::to_string(used) + " images (" +
                     std::to_string(ids.size()) + " presentations) x " + std::to_string(data.num_targets()) +
                     " neuroids" + nan_note;
  DWARP_RETURN_IF_ERROR(CheckNeuralData(data));
  return data;
}

}  // namespace dwarp::engine
