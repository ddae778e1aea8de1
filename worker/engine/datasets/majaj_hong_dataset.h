// Majaj, Hong et al. 2015 (IT and V4 multi-unit responses to 5760 object images) as a BrainIO / xarray
// netCDF assembly, in the form the seed's research code reads (datasets/majaj.py), loaded into NeuralData.
//
// The file: an xarray DataArray (DataArray.to_netcdf) with a stimulus dimension and a neuroid dimension, in
// either order; extra dimensions of size 1 (BrainIO's time_bin) are dropped. Coordinates (names are options):
//   region     on the neuroid dimension, e.g. "IT" / "V4" (any labels: the regions are the file's); the
//              neuroids whose region is one of `rois` are kept (see "Regions" below)
//   image_id   on the stimulus dimension: the stimulus id (BrainIO's assemblies name the dimension
//              `presentation`; the seed's files make image_id the dimension itself). A dimension named
//              image_id without coordinate values is the stimulus dimension and the ids are the row
//              positions "0".."n-1", as xarray indexes it; image_name is then required.
//   image_name on the stimulus dimension (optional): the image file name inside `stimuli_dir`
// Strings may be variable-length (netCDF4) or fixed-width characters (netCDF3, or an `S1` encoding).
// The file name of each stimulus comes from, in order: `metadata_csv` when set (a CSV with the id column and
// `filename`, as the seed's neural.nc + metadata.csv variant), else the `image_name` coordinate when the file
// has one, else "<image_id><image_extension>" (BrainIO stimulus sets store <image_id>.png).
//
// Regions: `rois` lists one or more regions, each at most once. The targets (response columns, target_names)
// are in roi order, and within one region in the file's neuroid order: rois [V4, IT] on neuroids
// IT0 V4a IT1 V4b gives V4a V4b IT0 IT1, so a job's columns are the single-region loads' columns side by side.
// The description names the regions joined by '+' ("majaj_hong IT+V4: ...").
//
// Repeated presentations (BrainIO keeps one row per repetition): all rows with the same image id are averaged
// into one, in order of first appearance. With limit_stimuli N > 0 only the first N of them are kept. Splits by
// that order, as the seed: first floor(train * n) train, up to floor((1 - test) * n) validation, the rest test
// (defaults 0.6 and 0.2: the seed's int(0.6 n) and int(0.8 n)).
//
// Non-finite responses of the selected neuroids: refused (NanResponses::kRefuse, default), or with
// kDropTargets every neuroid that has one is dropped and the description ends "; <k> of <n> neuroids dropped
// for NaN responses: '<name>', ...".
//
// Errors (each naming the file and value): NotFound (file, stimuli folder, image), InvalidArgument for a
// missing coordinate (the coordinates present are listed), an image_id dimension with neither id values nor
// image_name, an empty roi list, a roi listed twice, a roi that matches no neuroid (it and the file's regions
// are listed), a wrong shape, a non-finite response (stimulus and neuroid named) or every neuroid dropped, an
// empty split, an undecodable image. Thread-safety: no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/engine/datasets/image_io.h"
#include "worker/engine/datasets/neural_data.h"

namespace dwarp::engine {

struct MajajHongOptions {
  // The regions whose neuroids are the targets, in target order (see "Regions" above); default [IT], as the seed.
  MajajHongOptions& rois(std::vector<std::string> v) { rois_ = std::move(v); return *this; }
  // One region: rois({v}).
  MajajHongOptions& roi(std::string v) { rois_ = {std::move(v)}; return *this; }
  MajajHongOptions& region_coord(std::string v) { region_coord_ = std::move(v); return *this; }
  MajajHongOptions& stimulus_id_coord(std::string v) { stimulus_id_coord_ = std::move(v); return *this; }
  MajajHongOptions& filename_coord(std::string v) { filename_coord_ = std::move(v); return *this; }
  MajajHongOptions& metadata_csv(std::string v) { metadata_csv_ = std::move(v); return *this; }
  MajajHongOptions& image_extension(std::string v) { image_extension_ = std::move(v); return *this; }
  MajajHongOptions& image(ImageOptions v) { image_ = v; return *this; }
  // The split fractions (train, val, test), each in (0, 1), summing to 1; see above.
  MajajHongOptions& split(double train, double val, double test) {
    train_ = train; val_ = val; test_ = test; return *this;
  }
  // Keep only the first `v` distinct stimuli in file order, before splitting; 0: all.
  MajajHongOptions& limit_stimuli(int64_t v) { limit_stimuli_ = v; return *this; }
  // Keep only the first `v` stimuli of each split (after splitting); -1: all.
  MajajHongOptions& max_stimuli_per_split(int64_t v) { max_stimuli_per_split_ = v; return *this; }
  MajajHongOptions& nan_responses(NanResponses v) { nan_responses_ = v; return *this; }

  std::vector<std::string> rois_ = {"IT"};
  std::string region_coord_ = "region";
  std::string stimulus_id_coord_ = "image_id";
  std::string filename_coord_ = "image_name";
  std::string metadata_csv_;
  std::string image_extension_ = ".png";
  ImageOptions image_;
  int64_t max_stimuli_per_split_ = -1;
  NanResponses nan_responses_ = NanResponses::kRefuse;
  double train_ = 0.6, val_ = 0.2, test_ = 0.2;
  int64_t limit_stimuli_ = 0;
};

// `netcdf_path`: the assembly file; `stimuli_dir`: the folder of its images.
StatusOr<NeuralData> LoadMajajHong(const std::string& netcdf_path, const std::string& stimuli_dir,
                                   const MajajHongOptions& options = {});

}  // namespace dwarp::engine
