// Internal helpers shared by the neural dataset loaders (nsd_dataset, majaj_hong_dataset,
// generic_neural_dataset). Not part of the engine's public interface.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/quote.h"
#include "common/status.h"
#include "worker/engine/datasets/image_io.h"
#include "worker/engine/datasets/netcdf_file.h"
#include "worker/engine/datasets/neural_data.h"

namespace dwarp::engine::internal {

// InvalidArgument naming the first non-finite entry of `responses` [rows, targets] by row, stimulus id and
// target name, prefixed by `where` (e.g. "voxels.nc '/data/voxels.nc'"); OK when all are finite.
Status CheckFiniteResponses(const at::Tensor& responses, const std::vector<std::string>& row_ids,
                            const std::vector<std::string>& target_names, const std::string& where);

// Rows of `responses` [P, T] that share an id averaged into one row per distinct id, in order of first
// appearance: unique_ids and float32 [U, T]; first_row[u] is the first row of unique id u.
struct AveragedResponses {
  std::vector<std::string> unique_ids;
  std::vector<int64_t> first_row;
  at::Tensor responses;
};
AveragedResponses AverageRepeats(const at::Tensor& responses, const std::vector<std::string>& ids);

// One split's rows before the stimuli are loaded: indices into the dataset's (averaged) rows.
struct SplitRows {
  std::vector<int64_t> rows;
};

// A split's rows as a NeuralSplit whose stimuli come from image files: stimuli = LoadImages(image_paths[rows]),
// responses[rows], ids[rows].
StatusOr<NeuralSplit> MakeImageSplit(const SplitRows& split, const at::Tensor& responses,
                                     const std::vector<std::string>& ids, const std::vector<std::string>& image_paths,
                                     const ImageOptions& options);

// The three splits (train, validation, test), each required non-empty (InvalidArgument "<dataset>: the <name>
// split is empty (<why>)") and then cut to `limit` rows (limit >= 0), loaded as image splits into `data`.
Status LoadImageSplits(std::array<SplitRows, 3> splits, const at::Tensor& responses,
                       const std::vector<std::string>& ids, const std::vector<std::string>& image_paths,
                       const ImageOptions& options, int64_t limit, const std::string& dataset,
                       const std::string& why, NeuralData* data);

// Checks each of the three splits is non-empty (as LoadImageSplits) and cuts it to `limit` rows.
Status RequireAndLimitSplits(std::array<SplitRows, 3>* splits, int64_t limit, const std::string& dataset,
                             const std::string& why);

// "'a', 'b', 'c' and 7 more" for messages.
std::string ListForMessage(const std::vector<std::string>& items, size_t max_items = 5);

// The xarray DataArray in `file` as float64 [stimuli, targets] over dimensions `stimulus_dim` and `target_dim`
// (transposed when stored the other way round; extra dimensions of size 1, e.g. BrainIO's time_bin, dropped).
// InvalidArgument naming the file and the array's dimensions otherwise.
struct StimulusByTarget {
  std::string variable;
  at::Tensor values;  // float64 [stimuli, targets]
};
StatusOr<StimulusByTarget> ReadStimulusByTarget(const NetcdfFile& file, const std::string& stimulus_dim,
                                                const std::string& target_dim);

// The dimension a one-dimensional coordinate lies on (char arrays of strings included); InvalidArgument naming
// the file and the array's coordinates when the file has no such variable.
StatusOr<std::string> CoordinateDimension(const NetcdfFile& file, const std::string& coordinate);

// The targets of one or more regions of interest (Majaj-Hong's `region`, NSD's `roi` coordinate or `roi_<name>`
// masks): the columns on the neuroid dimension that belong to one of `rois`, grouped by roi in roi order, each
// group in the file's neuroid order (rois [V4, IT] on regions IT V4 IT V4 gives columns 1 3 0 2).
struct RegionSelection {
  std::vector<int64_t> columns;           // indices into the neuroid dimension
  std::vector<std::string> target_names;  // neuroid_names[columns]
  std::string label;                      // the rois joined by '+', e.g. "V4+IT"
};
// The regions a file defines, in file order, each with its neuroids' columns in file order.
struct RegionMembers {
  std::string name;
  std::vector<int64_t> columns;
};
// The regions of a per-neuroid label (`labels[i]` is neuroid i's region), in order of first appearance.
std::vector<RegionMembers> GroupByLabel(const std::vector<std::string>& labels);
// The regions defined by boolean masks: every one-dimensional variable on `dim` named `prefix`<name> (e.g.
// roi_V1v), in file order, is region <name> holding the columns where it is true (xarray writes bools as
// NC_BYTE 0/1). A voxel may be in several masks. InvalidArgument naming the mask and value for a mask holding
// anything but 0 and 1; empty when there are no such masks.
StatusOr<std::vector<RegionMembers>> ReadRegionMasks(const NetcdfFile& file, const std::string& prefix,
                                                     const std::string& dim);
// `regions` as GroupByLabel or ReadRegionMasks; `neuroid_names[i]` names neuroid i. Messages begin with `dataset`
// (e.g. "Majaj-Hong") and name `path` and `source` (what defines the regions, e.g. "coordinate 'region'");
// `target_noun` is what a column is ("neuroid", "voxel"). InvalidArgument for an empty `rois` or a roi listed
// twice or matching no neuroid (the available regions, in file order, listed).
StatusOr<RegionSelection> SelectRegions(const std::vector<RegionMembers>& regions,
                                        const std::vector<std::string>& neuroid_names,
                                        const std::vector<std::string>& rois, const std::string& dataset,
                                        const std::string& path, const std::string& source,
                                        const std::string& target_noun);

// The targets whose responses are all finite, for NanResponses::kDropTargets: `responses` [rows, targets]
// without the columns holding a non-finite value, their names, and the dropped columns' names. InvalidArgument
// prefixed by `where` when every target would be dropped.
struct FiniteTargets {
  at::Tensor responses;
  std::vector<std::string> target_names;
  std::vector<std::string> dropped;
};
StatusOr<FiniteTargets> DropNonFiniteTargets(const at::Tensor& responses, const std::vector<std::string>& target_names,
                                             const std::string& where);

// The responses as `policy` asks: kRefuse checks them (CheckFiniteResponses), kDropTargets drops the targets
// with a non-finite response (their count and names are appended to *note, e.g. "; 2 of 5 neuroids dropped
// for NaN responses: 'a', 'b'"). `target_noun` names a column in the note.
Status ApplyNanPolicy(NanResponses policy, const std::vector<std::string>& row_ids, const std::string& where,
                      const std::string& target_noun, at::Tensor* responses, std::vector<std::string>* target_names,
                      std::string* note);

// Names of the entries of dimension `dim` of size n: its dimension coordinate, else a `neuroid_id` coordinate
// on it, else "0".."n-1" (the row positions, as xarray indexes a dimension without coordinate values).
StatusOr<std::vector<std::string>> DimensionLabels(const NetcdfFile& file, const std::string& dim, int64_t n);

}  // namespace dwarp::engine::internal
