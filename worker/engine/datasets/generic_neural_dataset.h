// The generic layout: how any lab brings its own stimuli and responses to dwarp without writing a loader.
//
// A folder `root` with:
//   responses.npy       float32 or float64 [N, targets], C order, all finite: row i is the response to stimulus i
//                       (one row per stimulus: average repeated presentations before saving).
//   stimuli, either
//     stimuli.npy       float32, float64 or uint8 [N, ...] (e.g. [N, 3, H, W] images, or any feature array);
//                       used as is, uint8 scaled by 1/255; no resize or normalisation,
//   or
//     stimuli.csv       a `filename` column naming image files in `root`/stimuli/ (another folder:
//                       GenericNeuralOptions::images_dir), decoded, resized and normalised by image_io.
//   the split, either
//     a `split` column in stimuli.csv with values train, val (or validation) and test,
//   or
//     split.npy         [N]: strings (np.array(["train", "val", ...])) or integers 0 = train, 1 = val, 2 = test,
//   or, when GenericNeuralOptions::split_column names one (e.g. "fold_a"),
//     that column of stimuli.csv, with the values of `split`; it alone decides the split (a `split` column or
//     split.npy is then ignored, so one folder can carry several splits).
//   noise_ceiling.npy   optional, float32/float64 [targets]: per-target noise ceiling, kept in NeuralData.
// stimuli.csv may also carry a `stimulus_id` column (ids for results; must be unique); without it the file
// name, else the row number, is the id. stimuli.csv is optional with stimuli.npy + split.npy. The rows of each
// split keep file order. Every .npy file is read by npy_file (little-endian, C order).
//
// Errors (each naming the file and value): NotFound for a missing responses.npy, stimuli or split source, or
// image; InvalidArgument for a named split column stimuli.csv lacks (the columns present are listed), both
// stimuli.npy and a filename column, both split.npy and a split column (no column named), count
// mismatches between files, a bad split value (row named), a repeated stimulus_id, a non-finite response
// (row and column named), a noise ceiling of the wrong length, an empty split.
// Thread-safety: no shared state.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "worker/engine/datasets/image_io.h"
#include "worker/engine/datasets/neural_data.h"

namespace dwarp::engine {

struct GenericNeuralOptions {
  // Folder of the image files named in stimuli.csv; empty: `root`/stimuli.
  GenericNeuralOptions& images_dir(std::string v) { images_dir_ = std::move(v); return *this; }
  GenericNeuralOptions& image(ImageOptions v) { image_ = v; return *this; }
  // The stimuli.csv column that holds the split (values as the `split` column's); empty (default): a `split`
  // column or split.npy.
  GenericNeuralOptions& split_column(std::string v) { split_column_ = std::move(v); return *this; }
  // Keep only the first `v` stimuli of each split; -1: all.
  GenericNeuralOptions& max_stimuli_per_split(int64_t v) { max_stimuli_per_split_ = v; return *this; }

  std::string images_dir_;
  ImageOptions image_;
  std::string split_column_;
  int64_t max_stimuli_per_split_ = -1;
};

StatusOr<NeuralData> LoadGenericNeuralData(const std::string& root, const GenericNeuralOptions& options = {});

}  // namespace dwarp::engine
