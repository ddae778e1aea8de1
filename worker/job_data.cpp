#include "worker/job_data.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <exception>
#include <future>
#include <list>
#include <mutex>
#include <sstream>
#include <utility>
#include <vector>

#include "worker/engine/datasets/generic_neural_dataset.h"
#include "worker/engine/datasets/idx_dataset.h"
#include "worker/engine/datasets/image_folder_dataset.h"
#include "worker/engine/datasets/majaj_hong_dataset.h"
#include "worker/engine/datasets/nsd_dataset.h"
#include "worker/engine/datasets/synthetic_brain.h"
#include "worker/job_model.h"

namespace dwarp::worker {
namespace {

// The size images are prepared at: data.image_size, else the model's input size (0: the loader's default).
int64_t ImageSizeOf(const JobSpec& spec) {
  return spec.data.image_size > 0 ? spec.data.image_size : spec.model.input_size;
}

// How image files become the model's input: data.transform, the size, and data.mean / data.std (one value
// for every channel or one per channel; the engine's ImageNet defaults when unset).
engine::ImageOptions ImageOptionsFor(const JobSpec& spec) {
  engine::ImageOptions image;
  if (ImageSizeOf(spec) > 0) image.size(ImageSizeOf(spec));
  image.transform(spec.data.transform == DataTransform::kWeights ? engine::ImageTransform::kWeights
                                                                 : engine::ImageTransform::kSquash);
  auto pick = [](const std::vector<double>& v, size_t c, float fallback) {
    if (v.empty()) return fallback;
    return static_cast<float>(v[std::min(c, v.size() - 1)]);
  };
  const engine::ImageOptions defaults;
  image.mean({pick(spec.data.mean, 0, defaults.mean_[0]), pick(spec.data.mean, 1, defaults.mean_[1]),
              pick(spec.data.mean, 2, defaults.mean_[2])});
  image.stddev({pick(spec.data.std, 0, defaults.stddev_[0]), pick(spec.data.std, 1, defaults.stddev_[1]),
                pick(spec.data.std, 2, defaults.stddev_[2])});
  return image;
}

// IDX images [N, 1, H, W] in [0, 1] as the model's input (PrepareIdxImages with the spec's size, channels
// and normalisation).
StatusOr<at::Tensor> PrepareIdxImagesFor(const at::Tensor& images, const JobSpec& spec) {
  engine::IdxImageOptions options;
  options.size = ImageSizeOf(spec);
  options.channels = spec.model.input_channels;
  options.mean = spec.data.mean;
  options.stddev = spec.data.std;
  auto prepared = engine::PrepareIdxImages(images, options);
  if (!prepared.ok()) {
    return Status(prepared.status().code(), "data.images with model.input_channels = " +
                                                std::to_string(spec.model.input_channels) + ": " +
                                                prepared.status().message());
  }
  return prepared;
}

// RGB stimuli [N, 3, H, W] as a one-channel model sees them: their channel mean (grayscale).
at::Tensor AsModelChannels(const at::Tensor& stimuli, const JobSpec& spec) {
  if (spec.model.input_channels == 1 && stimuli.dim() == 4 && stimuli.size(1) == 3) {
    return stimuli.mean(1, /*keepdim=*/true).contiguous();
  }
  return stimuli;
}

// The stimuli of a synthetic brain: data.images (IDX, [N, H, W]) or the image folder data.stimuli.
StatusOr<at::Tensor> LoadSyntheticStimuli(const JobSpec& spec) {
  if (spec.data.images.empty()) return LoadJobStimulusFolder(spec, spec.data.stimuli);
  engine::IdxReadOptions read;
  if (spec.data.limit_stimuli > 0) read.max_items(spec.data.limit_stimuli);
  auto raw = engine::ReadIdxFile(spec.data.images, read);
  if (!raw.ok()) return Status(raw.status().code(), "data.images: " + raw.status().message());
  at::Tensor images = *raw;
  if (images.dim() != 3) {
    return InvalidArgumentError("data.images: '" + spec.data.images + "' holds a " + std::to_string(images.dim()) +
                                "-D array; expected images [N, H, W]");
  }
  images = images.scalar_type() == at::kByte ? images.to(at::kFloat) / 255.0 : images.to(at::kFloat);
  return PrepareIdxImagesFor(images, spec);
}

StatusOr<engine::NeuralData> BuildSyntheticBrain(const JobSpec& spec) {
  const SyntheticSpec& syn = *spec.data.synthetic;
  auto stimuli = LoadSyntheticStimuli(spec);
  if (!stimuli.ok()) return stimuli.status();
  // The teacher: the synthetic block's own model, else the job's model built as the job builds it.
  const ModelSpec& teacher_spec = syn.teacher ? *syn.teacher : spec.model;
  auto teacher = syn.teacher ? BuildJobModel(*syn.teacher, syn.seed) : BuildJobModel(spec.model, spec.train.seed);
  if (!teacher.ok()) {
    if (!syn.teacher) return teacher.status();
    return Status(teacher.status().code(), "data.synthetic.teacher: " + teacher.status().message());
  }
  engine::SyntheticBrainOptions options;
  options.targets(syn.targets)
      .warp_dim(syn.warp_dim)
      .warp_scale(syn.warp_scale)
      .noise(syn.noise)
      .warp_prefixes(teacher->warp_prefixes)
      .projection(ProjectionModeOf(teacher_spec))
      .fractions(spec.data.split.train, spec.data.split.val)
      .seed(syn.seed);  // the same brain for every seed of a sweep
  if (syn.trained_warp || syn.categories > 0) {
    engine::IdxReadOptions read;
    if (spec.data.limit_stimuli > 0) read.max_items(spec.data.limit_stimuli);
    auto labels = engine::ReadIdxFile(spec.data.labels, read);
    if (!labels.ok()) return Status(labels.status().code(), "data.labels: " + labels.status().message());
    if (labels->dim() != 1 || labels->size(0) != stimuli->size(0)) {
      std::ostringstream os;
      os << "data.labels: '" << spec.data.labels << "' holds " << labels->sizes()
         << "; expected one label per image (" << stimuli->size(0) << ")";
      return InvalidArgumentError(os.str());
    }
    const at::Tensor classes = labels->to(at::kLong);
    if (syn.trained_warp) options.trained_warp(classes).warp_epochs(syn.warp_epochs).warp_lr(syn.warp_lr);
    if (syn.categories > 0) options.categories(classes, syn.categories);
  }
  return engine::MakeSyntheticBrain(teacher->module, *stimuli, {}, options);
}

// What a synthetic brain depends on: the data block (images, limits, normalisation, the synthetic block with
// its teacher and seed) and the model's input shape; without a teacher of its own, the job's model and
// the seed that initialises it too.
std::string SyntheticBrainKey(const JobSpec& spec) {
  const nlohmann::json job = ToJson(spec);
  nlohmann::json key = {{"data", job["data"]},
                        {"input", {spec.model.input_channels, spec.model.input_size}}};
  if (!spec.data.synthetic->teacher) {
    key["model"] = job["model"];
    key["seed"] = spec.model.seed.value_or(spec.train.seed);
  }
  return key.dump();
}

// A worker runs every job of a sweep's synthetic brain in one process: the brain (its teacher's warp, which
// a trained warp learns, and the responses) is built once and shared by the jobs that need the same one.
// Only successes are kept; the last few brains are kept (each holds its stimuli, a few MB).
std::atomic<int64_t> synthetic_brains_built{0};

StatusOr<engine::NeuralData> LoadSyntheticBrain(const JobSpec& spec) {
  using Entry = std::shared_future<StatusOr<engine::NeuralData>>;
  static std::mutex mutex;
  static auto* cache = new std::list<std::pair<std::string, Entry>>();  // most recent first
  constexpr size_t kKept = 4;
  const std::string key = SyntheticBrainKey(spec);
  std::promise<StatusOr<engine::NeuralData>> promise;
  Entry entry;
  bool build = false;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = std::find_if(cache->begin(), cache->end(), [&](const auto& e) { return e.first == key; });
    if (it != cache->end()) {
      entry = it->second;
      cache->splice(cache->begin(), *cache, it);
    } else {
      entry = promise.get_future().share();
      cache->emplace_front(key, entry);
      if (cache->size() > kKept) cache->pop_back();
      build = true;
    }
  }
  if (build) {
    StatusOr<engine::NeuralData> built = InternalError("unset");
    try {
      synthetic_brains_built.fetch_add(1);
      built = BuildSyntheticBrain(spec);
    } catch (const std::exception& e) {
      built = InternalError(std::string("building the synthetic brain failed: ") + e.what());
    } catch (...) {
      built = InternalError("building the synthetic brain failed with an unknown exception");
    }
    if (!built.ok()) {
      std::lock_guard<std::mutex> lock(mutex);
      cache->remove_if([&](const auto& e) { return e.first == key; });
    }
    promise.set_value(std::move(built));
  }
  return entry.get();
}

engine::NanResponses NanResponsesFor(NanPolicy policy) {
  return policy == NanPolicy::kDropTargets ? engine::NanResponses::kDropTargets : engine::NanResponses::kRefuse;
}

StatusOr<engine::NeuralData> LoadNeuralDataAsStored(const JobSpec& spec) {
  const DataSpec& data = spec.data;
  switch (data.kind) {
    case DataKind::kSynthetic:
      return LoadSyntheticBrain(spec);
    case DataKind::kMajajHong: {
      engine::MajajHongOptions options;
      options.image(ImageOptionsFor(spec))
          .split(data.split.train, data.split.val, data.split.test)
          .limit_stimuli(data.limit_stimuli);
      if (!data.roi.empty()) options.rois(data.roi);  // the targets: every listed region's, in roi order
      options.stimulus_id_coord(data.coords.image_id).filename_coord(data.coords.image_name);
      options.region_coord(data.coords.region).nan_responses(NanResponsesFor(data.nan));
      return engine::LoadMajajHong(data.file, data.stimuli, options);
    }
    case DataKind::kNsd: {
      engine::NsdOptions options;
      options.rois(data.roi);  // empty: every voxel; else every listed ROI's voxels, in roi order
      options.stimulus_id_coord(data.coords.image_id).roi_coord(data.coords.region);
      options.nan_responses(NanResponsesFor(data.nan));
      // The real metadata.csv lists all 73,000 NSD images and one subject saw about 10,000: rows for
      // stimuli a voxels.nc does not hold are expected (the seed merges by stimulus_id).
      options.image(ImageOptionsFor(spec)).stimuli_dir(data.stimuli).allow_unused_metadata(true);
      options.train_fraction(data.split.train).limit_stimuli(data.limit_stimuli);
      return engine::LoadNsd(data.root, options);
    }
    case DataKind::kGeneric: {
      engine::GenericNeuralOptions options;
      options.image(ImageOptionsFor(spec)).split_column(data.split.column);
      return engine::LoadGenericNeuralData(data.root, options);
    }
    default:
      return InvalidArgumentError(std::string("data.kind = ") + DataKindName(data.kind) + " with objective " +
                                  ObjectiveName(spec.objective) +
                                  "; expected neural data (synthetic, majaj_hong, nsd or generic)");
  }
}

StatusOr<JobData> LoadNeuralJobData(const JobSpec& spec) {
  auto data = LoadNeuralDataAsStored(spec);
  if (!data.ok()) return data.status();
  for (engine::NeuralSplit* split : {&data->train, &data->validation, &data->test}) {
    split->stimuli = AsModelChannels(split->stimuli, spec);
  }
  DWARP_RETURN_IF_ERROR(engine::CheckNeuralData(*data));
  JobData out;
  out.description = data->description;
  out.train_size = data->train.size();
  out.val_size = data->validation.size();
  out.test_size = data->test.size();
  out.num_targets = data->num_targets();
  out.neural = std::move(*data);
  return out;
}

StatusOr<JobData> LoadIdxJobData(const JobSpec& spec) {
  const DataSpec& d = spec.data;
  engine::IdxClassificationOptions read;
  read.num_classes(0);
  if (d.limit_stimuli > 0) read.max_items(d.limit_stimuli);
  auto all = engine::LoadIdxClassification(d.images, d.labels, read);
  if (!all.ok()) return Status(all.status().code(), "data.images/labels: " + all.status().message());
  StatusOr<engine::ClassificationData> test_file = InternalError("no test file");
  if (!d.test_images.empty()) {
    test_file = engine::LoadIdxClassification(d.test_images, d.test_labels, read.num_classes(all->num_classes));
    if (!test_file.ok()) {
      return Status(test_file.status().code(), "data.test_images/test_labels: " + test_file.status().message());
    }
  }
  engine::LabelledSplitOptions split;
  split.train = d.split.train;
  split.validation = d.split.val;
  split.test = d.split.test;
  split.limit_classes = d.limit_classes;
  split.limit_samples = d.limit_samples;
  split.seed = spec.train.seed;
  split.stream = "idx";
  auto splits = engine::SplitLabelledRows(*all, test_file.ok() ? &*test_file : nullptr, split);
  if (!splits.ok()) return Status(splits.status().code(), "data: " + splits.status().message());
  for (engine::ClassificationData* s : {&splits->train, &splits->validation, &splits->test}) {
    auto inputs = PrepareIdxImagesFor(s->inputs, spec);
    if (!inputs.ok()) return inputs.status();
    s->inputs = *inputs;
  }
  JobData out;
  out.num_classes = splits->train.num_classes;
  out.description = "idx " + d.images + ": " + std::to_string(all->size()) + " images, " +
                    std::to_string(out.num_classes) + " classes";
  out.classes = std::move(*splits);
  return out;
}

StatusOr<JobData> LoadImageFolderJobData(const JobSpec& spec) {
  const DataSpec& d = spec.data;
  if (spec.model.input_channels != 3) {
    return InvalidArgumentError("model.input_channels = " + std::to_string(spec.model.input_channels) +
                                ": image_folder data is decoded as RGB, so expected 3");
  }
  engine::ImageFolderOptions read;
  read.limit_classes = d.limit_classes;
  read.limit_samples = d.limit_samples;
  read.train = d.split.train;
  read.val = d.split.val;
  read.test = d.split.test;
  read.seed = spec.train.seed;
  read.image = ImageOptionsFor(spec);
  auto data = engine::LoadImageFolder(d.root, read);
  if (!data.ok()) return Status(data.status().code(), "data.root: " + data.status().message());
  JobData out;
  out.classes = {data->train, data->validation, data->test};
  out.num_classes = static_cast<int64_t>(data->class_names.size());
  const int64_t images = out.classes.train.size() + out.classes.validation.size() + out.classes.test.size();
  out.description = "image_folder " + d.root + ": " + std::to_string(out.num_classes) + " classes, " +
                    std::to_string(images) + " images";
  return out;
}

StatusOr<JobData> LoadClassificationJobData(const JobSpec& spec) {
  StatusOr<JobData> data = InternalError("unset");
  switch (spec.data.kind) {
    case DataKind::kIdx: data = LoadIdxJobData(spec); break;
    case DataKind::kImageFolder: data = LoadImageFolderJobData(spec); break;
    default:
      return InvalidArgumentError(std::string("data.kind = ") + DataKindName(spec.data.kind) +
                                  " with objective classification; expected idx or image_folder data");
  }
  if (!data.ok()) return data;
  data->train_size = data->classes.train.size();
  data->val_size = data->classes.validation.size();
  data->test_size = data->classes.test.size();
  data->num_targets = data->num_classes;
  return data;
}

}  // namespace

StatusOr<JobData> LoadJobData(const JobSpec& spec) {
  if (spec.objective == Objective::kClassification) return LoadClassificationJobData(spec);
  return LoadNeuralJobData(spec);
}

StatusOr<at::Tensor> LoadJobStimulusFolder(const JobSpec& spec, const std::string& dir) {
  auto paths = engine::ListImageFiles(dir, spec.data.limit_stimuli);
  if (!paths.ok()) return Status(paths.status().code(), "data.stimuli: " + paths.status().message());
  if (paths->empty()) return InvalidArgumentError("data.stimuli: no image files in '" + dir + "'");
  auto images = engine::LoadImages(*paths, ImageOptionsFor(spec));
  if (!images.ok()) return Status(images.status().code(), "data.stimuli: " + images.status().message());
  return AsModelChannels(*images, spec);
}

int64_t SyntheticBrainsBuilt() { return synthetic_brains_built.load(); }

}  // namespace dwarp::worker
