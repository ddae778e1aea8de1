// The Natural Scenes Dataset (Allen et al. 2022) in the layout the seed's research code reads
// (datasets/nsd.py: NSDDataPipe), loaded into NeuralData.
//
// Layout of `nsd_dir`:
//   voxels.nc     an xarray DataArray (DataArray.to_netcdf) with dimensions (presentation, neuroid), either
//                 order, and a coordinate `stimulus_id` on presentation (integers or strings); responses
//                 float32/float64, all finite. The neuroid labels come from a `neuroid` or `neuroid_id`
//                 coordinate when there is one, else "0".."T-1".
//   metadata.csv  columns stimulus_id, filename, shared1000 (True/False, as pandas writes bools); other
//                 columns (e.g. pandas' index) are ignored. One row per stimulus.
//   stimuli/      the image files named in `filename` (any other folder: NsdOptions::stimuli_dir).
//
// Repeated presentations: all presentations of one stimulus_id are averaged into one row (NSD shows each image
// up to 3 times; the seed's files hold one row per stimulus, for which this changes nothing).
// Splits, as the seed: stimuli not in shared1000, in voxels.nc order (first appearance), first
// floor(0.8 * n) train, the rest validation; the shared1000 stimuli (voxels.nc order) are the test split.
// Images go through image_io's pipeline (resize to a square, [0, 1], mean/std normalisation).
//
// Errors (each naming the file and the value): NotFound for a missing voxels.nc, metadata.csv or image;
// InvalidArgument for a voxels.nc without stimulus_id or of the wrong shape, metadata without the three
// columns or with a bad shared1000 value or a repeated stimulus_id, stimulus ids of voxels.nc missing from
// metadata.csv (and, unless allow_unused_metadata, ids of metadata.csv missing from voxels.nc), a non-finite
// response (stimulus and neuroid named), an empty split, an undecodable image.
// Thread-safety: no shared state (netCDF access is serialised inside NetcdfFile).
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "worker/engine/datasets/image_io.h"
#include "worker/engine/datasets/neural_data.h"

namespace dwarp::engine {

struct NsdOptions {
  // Folder of the image files; empty: `nsd_dir`/stimuli.
  NsdOptions& stimuli_dir(std::string v) { stimuli_dir_ = std::move(v); return *this; }
  NsdOptions& image(ImageOptions v) { image_ = v; return *this; }
  // Keep only the first `v` stimuli of each split (after splitting, so splits stay as defined); -1: all.
  NsdOptions& max_stimuli_per_split(int64_t v) { max_stimuli_per_split_ = v; return *this; }
  // true: metadata.csv may list stimuli voxels.nc does not hold (e.g. NSD's full 73k-image table for one
  // subject's voxels); false (default): that is an error, since it usually means mismatched files.
  NsdOptions& allow_unused_metadata(bool v) { allow_unused_metadata_ = v; return *this; }

  std::string stimuli_dir_;
  ImageOptions image_;
  int64_t max_stimuli_per_split_ = -1;
  bool allow_unused_metadata_ = false;
};

StatusOr<NeuralData> LoadNsd(const std::string& nsd_dir, const NsdOptions& options = {});

}  // namespace dwarp::engine
