// The data of a job, loaded by data.kind through one entry point (LoadJobData): the spec's data block
// (common/job_spec.h) turned into the options of the engine's dataset loaders (worker/engine/datasets/).
// Lives beside the job runner, not in the engine, because it reads the job spec; everything it calls that
// does not need the spec (image files, IDX images, splits, synthetic brains) is in the engine.
//
//   kind          objective               loader
//   synthetic     regression, rsa         MakeSyntheticBrain on the images of data.images (IDX) or
//                                         data.stimuli (an image folder), the teacher data.synthetic.teacher
//                                         (initialised from its model.seed, else data.synthetic.seed) or
//                                         the job's own model (built as the job builds it), seeded by
//                                         data.synthetic.seed: one brain for every train.seed
//   majaj_hong    regression, rsa         LoadMajajHong (data.file, data.stimuli, data.roi: the neuroids of
//                                         every listed region, in roi order; data.limit_stimuli, data.split)
//   nsd           regression, rsa         LoadNsd (data.root, data.stimuli, data.limit_stimuli,
//                                         data.split.train, data.roi: empty = every voxel of voxels.nc, else
//                                         the voxels of every listed ROI, in roi order)
//   generic       regression, rsa         LoadGenericNeuralData (data.root; data.split.column names the
//                                         stimuli.csv column that holds the split)
//   idx           classification          LoadIdxClassification (data.images/labels, optional test files),
//                                         split by SplitLabelledRows (few-shot with data.limit_classes /
//                                         limit_samples, drawn with train.seed)
//   image_folder  classification          LoadImageFolder (data.root; RGB, so model.input_channels = 3)
//
// Images: image files are decoded and prepared as data.transform, image_size (else model.input_size),
// mean and std say (ImageOptionsFor); IDX images [N, 1, H, W] in [0, 1] are resized to that size, repeated
// to model.input_channels and normalised with data.mean / data.std (PrepareIdxImages); RGB stimuli shown to
// a one-channel model become their channel mean (grayscale). Data stay on the CPU.
//
// Errors name the data field and value: InvalidArgument for a kind the objective cannot use or bad data,
// NotFound for missing files, and the loaders' errors.
// Thread-safety: LoadJobData may run on several threads at once (the synthetic brain cache is locked).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "common/job_spec.h"
#include "common/status.h"
#include "worker/engine/datasets/classification_data.h"
#include "worker/engine/datasets/image_io.h"
#include "worker/engine/datasets/neural_data.h"

namespace dwarp::worker {

struct JobData {
  // Regression and rsa: the neural data, checked (CheckNeuralData).
  engine::NeuralData neural;
  // Classification: the three splits, every one with num_classes classes.
  engine::ClassifierSplits classes;
  int64_t num_classes = 0;  // classification: the classes; 0 for neural data
  std::string description;  // what was loaded, for the log and the result
  int64_t train_size = 0, val_size = 0, test_size = 0;
  int64_t num_targets = 0;  // neuroids / voxels, or classes
};

// Loads the job's data by data.kind (table above).
StatusOr<JobData> LoadJobData(const JobSpec& spec);

// The image files of the folder `dir` (image_io.h's ListImageFiles: sorted, the first data.limit_stimuli),
// decoded as the job's stimuli: float32 [N, 3, S, S], or [N, 1, S, S] (grayscale) for a one-channel model.
// NotFound for a missing folder, InvalidArgument for a folder without images.
StatusOr<at::Tensor> LoadJobStimulusFolder(const JobSpec& spec, const std::string& dir);

// Synthetic brains this process has built so far (the cache above: a brain is built once per data block
// and teacher and shared by the jobs that need it; the last four are kept; a failed build is not kept).
int64_t SyntheticBrainsBuilt();

}  // namespace dwarp::worker
