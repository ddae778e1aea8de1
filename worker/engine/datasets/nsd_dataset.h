// The Natural Scenes Dataset (Allen et al. 2022) in the layout the seed's research code reads
// (datasets/nsd.py: NSDDataPipe), loaded into NeuralData.
//
// Layout of `nsd_dir`:
//   voxels.nc     an xarray DataArray (DataArray.to_netcdf) with dimensions (presentation, neuroid), either
//                 order, and a coordinate `stimulus_id` on presentation (integers or strings, variable-length
//                 or fixed-width characters; name: NsdOptions::stimulus_id_coord); responses float32/float64,
//                 all finite (or see NanResponses). The neuroid labels come from a `neuroid` or `neuroid_id`
//                 coordinate when there is one, else "0".."T-1". Optional: a coordinate `roi` on neuroid
//                 (name: NsdOptions::roi_coord) labelling each voxel's ROI, e.g. "V1v", "LOC", "FFA-1", as
//                 NSD's voxel tables do; without it, boolean coordinates `roi_<name>` on neuroid (True for
//                 the voxels of ROI <name>, e.g. roi_V1v) define the ROIs. Either is read only when rois are
//                 selected.
//   metadata.csv  columns stimulus_id, filename, shared1000 (True/False, as pandas writes bools); other
//                 columns (e.g. pandas' index) are ignored. One row per stimulus.
//   stimuli/      the image files named in `filename` (any other folder: NsdOptions::stimuli_dir).
//
// ROIs: with NsdOptions::rois empty (default) every voxel of voxels.nc is a target. Otherwise the targets are
// the voxels whose ROI label is one of `rois`, in roi order, each ROI's in voxels.nc order (rois [LOC, V1v] on
// voxels labelled V1v LOC V1v gives voxels 1, 0, 2), so a job's columns are the single-ROI loads' columns side by side
// (the same helper as Majaj-Hong's regions: neural_loading's SelectRegions). Only the selected voxels must be
// finite. The description names the ROIs joined by '+' ("nsd LOC+V1v: ..."). With masks a voxel in two
// selected ROIs is a target twice, once in each ROI's group.
// NanResponses::kDropTargets drops every selected voxel with a non-finite response instead of refusing, and the
// description ends "; <k> of <n> voxels dropped for NaN responses: '<name>', ...".
//
// Repeated presentations: all presentations of one stimulus_id are averaged into one row (NSD shows each image
// up to 3 times; the seed's files hold one row per stimulus, for which this changes nothing).
// Splits, as the seed: stimuli not in shared1000, in voxels.nc order (first appearance), first
// floor(train_fraction * n) train (default 0.8), the rest validation; the shared1000 stimuli (voxels.nc
// order) are the test split. With limit_stimuli N > 0 only the first N stimuli of voxels.nc are split.
// Images go through image_io's pipeline (resize to a square, [0, 1], mean/std normalisation).
//
// Errors (each naming the file and the value): NotFound for a missing voxels.nc, metadata.csv or image;
// InvalidArgument for a voxels.nc without stimulus_id or of the wrong shape, metadata without the three
// columns or with a bad shared1000 value or a repeated stimulus_id, stimulus ids of voxels.nc missing from
// metadata.csv (and, unless allow_unused_metadata, ids of metadata.csv missing from voxels.nc), a non-finite
// response (stimulus and neuroid named), an empty split, an undecodable image; with rois: a voxels.nc without
// the ROI coordinate (the coordinates present listed; a voxels.nc already holding one ROI needs no rois) or
// with it on the presentation dimension, a mask holding other values than 0/1, a roi listed twice, a roi
// matching no voxel (the available ROIs listed).
// Thread-safety: no shared state (netCDF access is serialised inside NetcdfFile).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/engine/datasets/image_io.h"
#include "worker/engine/datasets/neural_data.h"

namespace dwarp::engine {

struct NsdOptions {
  // Folder of the image files; empty: `nsd_dir`/stimuli.
  NsdOptions& stimuli_dir(std::string v) { stimuli_dir_ = std::move(v); return *this; }
  NsdOptions& image(ImageOptions v) { image_ = v; return *this; }
  // The fraction of the non-shared1000 stimuli that trains, in (0, 1); the rest validate.
  NsdOptions& train_fraction(double v) { train_fraction_ = v; return *this; }
  // Keep only the first `v` stimuli in voxels.nc order, before splitting; 0: all.
  NsdOptions& limit_stimuli(int64_t v) { limit_stimuli_ = v; return *this; }
  // Keep only the first `v` stimuli of each split (after splitting, so splits stay as defined); -1: all.
  NsdOptions& max_stimuli_per_split(int64_t v) { max_stimuli_per_split_ = v; return *this; }
  // true: metadata.csv may list stimuli voxels.nc does not hold (e.g. NSD's full 73k-image table for one
  // subject's voxels); false (default): that is an error, since it usually means mismatched files.
  NsdOptions& allow_unused_metadata(bool v) { allow_unused_metadata_ = v; return *this; }
  // The ROIs whose voxels are the targets, in target order (see "ROIs" above); empty (default): every voxel.
  NsdOptions& rois(std::vector<std::string> v) { rois_ = std::move(v); return *this; }
  // One ROI: rois({v}).
  NsdOptions& roi(std::string v) { rois_ = {std::move(v)}; return *this; }
  // The coordinate on the voxel dimension that holds each voxel's ROI label; without it, the boolean masks
  // named `<roi_coord>_<name>` (roi_V1v, ...) define the ROIs.
  NsdOptions& roi_coord(std::string v) { roi_coord_ = std::move(v); return *this; }
  // The coordinate on the presentation dimension that holds each presentation's stimulus id.
  NsdOptions& stimulus_id_coord(std::string v) { stimulus_id_coord_ = std::move(v); return *this; }
  NsdOptions& nan_responses(NanResponses v) { nan_responses_ = v; return *this; }

  std::string stimuli_dir_;
  ImageOptions image_;
  int64_t max_stimuli_per_split_ = -1;
  double train_fraction_ = 0.8;
  int64_t limit_stimuli_ = 0;
  bool allow_unused_metadata_ = false;
  std::vector<std::string> rois_;
  std::string roi_coord_ = "roi";
  std::string stimulus_id_coord_ = "stimulus_id";
  NanResponses nan_responses_ = NanResponses::kRefuse;
};

StatusOr<NeuralData> LoadNsd(const std::string& nsd_dir, const NsdOptions& options = {});

}  // namespace dwarp::engine
