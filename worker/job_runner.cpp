#include "worker/job_runner.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <future>
#include <list>
#include <mutex>
#include <sstream>
#include <utility>

#include "worker/engine/datasets/generic_neural_dataset.h"
#include "worker/engine/device.h"
#include "worker/engine/datasets/idx_dataset.h"
#include "worker/engine/datasets/image_folder_dataset.h"
#include "worker/engine/datasets/image_io.h"
#include "worker/engine/datasets/majaj_hong_dataset.h"
#include "worker/engine/datasets/nsd_dataset.h"
#include "worker/engine/datasets/synthetic_brain.h"
#include "worker/engine/models/model_registry.h"
#include "worker/engine/subspace_model.h"
#include "worker/engine/train/classifier_training.h"
#include "worker/engine/train/encoding_training.h"
#include "worker/engine/train/feature_cache.h"
#include "worker/engine/train/metrics.h"
#include "worker/engine/train/readout_training.h"
#include "worker/engine/train/rsa_training.h"

namespace dwarp::worker {
namespace {

using engine::ReadoutModel;

// Reports the phase, or returns Cancelled instead when the caller asked the job to stop: phase boundaries
// are where a job that is not training (loading, caching features) can stop.
Status EnterPhase(const JobRunOptions& options, const std::string& text) {
  if (options.should_stop && options.should_stop()) return CancelledError("cancelled: stopped before " + text);
  if (options.on_phase) options.on_phase(text);
  return OkStatus();
}

// `seed` initialises a built-in arch without weights unless the spec fixes model.seed.
StatusOr<ReadoutModel> BuildModel(const ModelSpec& m, uint64_t seed, int64_t num_classes) {
  engine::ModelOptions options;
  options.layer(m.layer).seed(m.seed.value_or(seed)).weights(m.weights).hidden(m.hidden);
  if (m.input_channels > 0) options.in_channels(m.input_channels);
  if (m.input_size > 0) options.image_size(m.input_size, m.input_size);
  if (num_classes > 0) options.num_classes(num_classes);
  auto model = engine::CreateModel(ModelArchName(m.arch), options);
  if (!model.ok()) {
    return Status(model.status().code(), "model (arch " + std::string(ModelArchName(m.arch)) + ", layer '" +
                                             m.layer + "'): " + model.status().message());
  }
  return model;
}

// Moves the model's parameters and buffers to `device` (a no-op on the CPU).
void PlaceModel(ReadoutModel& model, c10::Device device) {
  if (!device.is_cpu()) model.module.to(device);
}

engine::ProjectionMode ProjectionModeOf(const ModelSpec& m) {
  switch (m.projection) {
    case Projection::kPerTensor: return engine::ProjectionMode::kPerTensor;
    case Projection::kGlobal: return engine::ProjectionMode::kGlobal;
    case Projection::kReference: return engine::ProjectionMode::kReference;
    case Projection::kSizeWeighted: return engine::ProjectionMode::kSizeWeighted;
  }
  return engine::ProjectionMode::kPerTensor;
}

// The subspace of a d > 0 job: its seed, the model's warped parameters and layer groups, the projection.
engine::SubspaceOptions SubspaceOptionsOf(const JobSpec& spec, const ReadoutModel& model) {
  engine::SubspaceOptions sub(spec.d.value);
  sub.seed(spec.train.seed)
      .warp_prefixes(model.warp_prefixes)
      .projection(ProjectionModeOf(spec.model))
      .layer_groups(spec.model.layer_groups.value_or(model.layer_groups));
  return sub;
}

// Adam's rate on theta_d (d > 0) or on the model (full): low_dim_lr (default lr) scaled with d as the
// spec says; full trains at lr.
double ModelLearningRate(const TrainSpec& t, const SubspaceDim& d) {
  if (!d.is_subspace()) return t.lr;
  return LowDimLearningRate(t.low_dim_lr.value_or(t.lr), d.value, t.low_dim_lr_scaling);
}

engine::LearningRateSchedule ScheduleOf(const TrainSpec& t) {
  switch (t.schedule) {
    case LrSchedule::kConstant: return engine::LearningRateSchedule::kConstant;
    case LrSchedule::kCosine: return engine::LearningRateSchedule::kCosine;
    case LrSchedule::kWarmupCosine: return engine::LearningRateSchedule::kWarmupCosine;
  }
  return engine::LearningRateSchedule::kConstant;
}

int64_t ParameterCount(const torch::jit::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

engine::ImageOptions ImageOptionsFor(const JobSpec& spec) {
  engine::ImageOptions image;
  const int64_t size = spec.data.image_size > 0 ? spec.data.image_size : spec.model.input_size;
  if (size > 0) image.size(size);
  image.transform(spec.data.transform == DataTransform::kWeights ? engine::ImageTransform::kWeights
                                                                 : engine::ImageTransform::kSquash);
  auto pick = [](const std::vector<double>& v, size_t c, float fallback) {
    if (v.empty()) return fallback;
    return static_cast<float>(v.size() == 1 ? v[0] : v[std::min(c, v.size() - 1)]);
  };
  const engine::ImageOptions defaults;
  image.mean({pick(spec.data.mean, 0, defaults.mean_[0]), pick(spec.data.mean, 1, defaults.mean_[1]),
              pick(spec.data.mean, 2, defaults.mean_[2])});
  image.stddev({pick(spec.data.std, 0, defaults.stddev_[0]), pick(spec.data.std, 1, defaults.stddev_[1]),
                pick(spec.data.std, 2, defaults.stddev_[2])});
  return image;
}

// IDX images [N, 1, H, W] in [0, 1] -> the model's input: resized, channels repeated, normalised.
StatusOr<at::Tensor> PrepareIdxImages(at::Tensor images, const JobSpec& spec) {
  const int64_t size = spec.data.image_size > 0 ? spec.data.image_size : spec.model.input_size;
  const int64_t channels = spec.model.input_channels;
  if (images.dim() == 3) images = images.unsqueeze(1);
  images = images.to(at::kFloat);
  if (size > 0 && (images.size(2) != size || images.size(3) != size)) {
    std::vector<int64_t> out{size, size};
    images = at::upsample_bilinear2d(images, at::IntArrayRef(out), false, c10::nullopt, c10::nullopt);
  }
  if (channels > 0 && images.size(1) != channels) {
    if (images.size(1) != 1) {
      return InvalidArgumentError("data.images: images have " + std::to_string(images.size(1)) +
                                  " channels but model.input_channels = " + std::to_string(channels));
    }
    images = images.expand({images.size(0), channels, images.size(2), images.size(3)}).contiguous();
  }
  const int64_t c = images.size(1);
  std::vector<double> mean = spec.data.mean, stdv = spec.data.std;
  if (mean.empty()) mean = {0.0};
  if (stdv.empty()) stdv = {1.0};
  auto column = [c](const std::vector<double>& v) {
    std::vector<float> out(static_cast<size_t>(c));
    for (int64_t i = 0; i < c; ++i) out[i] = static_cast<float>(v.size() == 1 ? v[0] : v[std::min<size_t>(i, v.size() - 1)]);
    return at::tensor(out).view({1, c, 1, 1});
  };
  return ((images - column(mean)) / column(stdv)).contiguous();
}

StatusOr<at::Tensor> LoadStimulusFolder(const std::string& dir, const JobSpec& spec) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return NotFoundError("data.stimuli: image folder '" + dir + "' does not exist");
  }
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".gif") {
      paths.push_back(entry.path().string());
    }
  }
  std::sort(paths.begin(), paths.end());
  if (spec.data.limit_stimuli > 0 && static_cast<int64_t>(paths.size()) > spec.data.limit_stimuli) {
    paths.resize(static_cast<size_t>(spec.data.limit_stimuli));
  }
  if (paths.empty()) return InvalidArgumentError("data.stimuli: no image files in '" + dir + "'");
  auto images = engine::LoadImages(paths, ImageOptionsFor(spec));
  if (!images.ok()) return Status(images.status().code(), "data.stimuli: " + images.status().message());
  // LoadImages gives RGB; a one-channel model sees the channel mean (grayscale).
  if (spec.model.input_channels == 1) return images->mean(1, /*keepdim=*/true).contiguous();
  return images;
}

StatusOr<engine::NeuralData> BuildSynthetic(const JobSpec& spec, const ReadoutModel& model) {
  const SyntheticSpec& syn = *spec.data.synthetic;
  at::Tensor stimuli;
  if (!spec.data.images.empty()) {
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
    auto prepared = PrepareIdxImages(images, spec);
    if (!prepared.ok()) return prepared.status();
    stimuli = *prepared;
  } else {
    auto loaded = LoadStimulusFolder(spec.data.stimuli, spec);
    if (!loaded.ok()) return loaded.status();
    stimuli = *loaded;
  }
  const ReadoutModel* teacher = &model;
  StatusOr<ReadoutModel> own_teacher = InternalError("unused");
  if (syn.teacher.has_value()) {
    own_teacher = BuildModel(*syn.teacher, syn.seed, 0);
    if (!own_teacher.ok()) {
      return Status(own_teacher.status().code(), "data.synthetic.teacher: " + own_teacher.status().message());
    }
    teacher = &*own_teacher;
  }
  engine::SyntheticBrainOptions options;
  options.targets(syn.targets)
      .warp_dim(syn.warp_dim)
      .warp_scale(syn.warp_scale)
      .noise(syn.noise)
      .warp_prefixes(teacher->warp_prefixes)
      .projection(ProjectionModeOf(syn.teacher ? *syn.teacher : spec.model))
      .fractions(spec.data.split.train, spec.data.split.val)
      .seed(syn.seed);  // the same brain for every seed of a sweep
  if (syn.trained_warp || syn.categories > 0) {
    engine::IdxReadOptions read;
    if (spec.data.limit_stimuli > 0) read.max_items(spec.data.limit_stimuli);
    auto labels = engine::ReadIdxFile(spec.data.labels, read);
    if (!labels.ok()) return Status(labels.status().code(), "data.labels: " + labels.status().message());
    if (labels->dim() != 1 || labels->size(0) != stimuli.size(0)) {
      std::ostringstream os;
      os << "data.labels: '" << spec.data.labels << "' holds " << labels->sizes() << "; expected one label per image ("
         << stimuli.size(0) << ")";
      return InvalidArgumentError(os.str());
    }
    const at::Tensor classes = labels->to(at::kLong);
    if (syn.trained_warp) options.trained_warp(classes).warp_epochs(syn.warp_epochs).warp_lr(syn.warp_lr);
    if (syn.categories > 0) options.categories(classes, syn.categories);
  }
  return engine::MakeSyntheticBrain(teacher->module, stimuli, {}, options);
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

StatusOr<engine::NeuralData> LoadSynthetic(const JobSpec& spec, const ReadoutModel& model) {
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
      built = BuildSynthetic(spec, model);
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

StatusOr<engine::NeuralData> LoadRegressionDataAsStored(const JobSpec& spec, const ReadoutModel& model) {
  const DataSpec& data = spec.data;
  switch (data.kind) {
    case DataKind::kSynthetic:
      return LoadSynthetic(spec, model);
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
      return InvalidArgumentError(std::string("data.kind = ") + DataKindName(data.kind) +
                                  ": not supported for regression by dwarp train");
  }
}

// The data, its RGB images shown to a one-channel model as their channel mean (grayscale), as LoadStimuli
// does for image folders.
StatusOr<engine::NeuralData> LoadRegressionData(const JobSpec& spec, const ReadoutModel& model) {
  auto data = LoadRegressionDataAsStored(spec, model);
  if (!data.ok() || spec.model.input_channels != 1) return data;
  for (engine::NeuralSplit* split : {&data->train, &data->validation, &data->test}) {
    if (split->stimuli.dim() == 4 && split->stimuli.size(1) == 3)
      split->stimuli = split->stimuli.mean(1, /*keepdim=*/true).contiguous();
  }
  return data;
}

Scores FromRegression(const engine::RegressionScores& s) {
  Scores out;
  out.r2 = s.r2;
  out.pearson_mean = s.pearson_mean;
  out.pearson_median = s.pearson_median;
  return out;
}


// What every trainer reports (engine/train/training_loop.h TrainingSummary) into the job's result.
void RecordSummary(const engine::TrainingSummary& summary, JobResult& result) {
  result.epochs_run = summary.epochs_run;
  result.best_epoch = summary.best_epoch;
  result.history = summary.history;
  result.d = summary.trained_parameter_count;
  result.D = summary.model_parameter_count;
  result.representation_size = summary.representation_size;
}

std::function<void(const engine::EpochRecord&)> EpochCallback(const JobSpec& spec, const JobRunOptions& options) {
  if (!options.on_epoch) return {};
  auto callback = options.on_epoch;
  const int64_t max_epochs = spec.train.max_epochs;
  return [callback, max_epochs](const engine::EpochRecord& record) { callback(record, max_epochs); };
}

// The neural data of a regression or RSA job, with what the result says about them; the model is moved to
// `device` after the data are loaded (a synthetic brain's teacher runs on the CPU). The data stay on the
// CPU: minibatches are sent to the device.
StatusOr<engine::NeuralData> LoadNeuralJobData(const JobSpec& spec, const JobRunOptions& options, ReadoutModel& model,
                                               c10::Device device, JobResult& result) {
  DWARP_RETURN_IF_ERROR(EnterPhase(options, "loading data"));
  auto data = LoadRegressionData(spec, model);
  if (!data.ok()) return data.status();
  PlaceModel(model, device);
  DWARP_RETURN_IF_ERROR(engine::CheckNeuralData(*data));
  // The log says what was loaded, including any targets data.nan: drop_targets removed.
  if (options.on_phase) options.on_phase("loaded " + data->description);
  result.data_description = data->description;
  result.train_size = data->train.size();
  result.val_size = data->validation.size();
  result.test_size = data->test.size();
  result.num_targets = data->num_targets();
  return data;
}

Status RunRegression(const JobSpec& spec, const JobRunOptions& options, ReadoutModel& model, c10::Device device,
                     JobResult& result) {
  auto data = LoadNeuralJobData(spec, options, model, device, result);
  if (!data.ok()) return data.status();
  if (data->noise_ceiling.defined()) result.noise_ceiling = data->noise_ceiling.to(at::kDouble).mean().item<double>();
  result.metric = "r2";
  const TrainSpec& t = spec.train;
  const auto start = std::chrono::steady_clock::now();

  if (spec.d.is_linear()) {
    DWARP_RETURN_IF_ERROR(EnterPhase(options, "caching features"));
    torch::jit::Module module = model.module;
    module.eval();
    engine::FeatureExtractor extractor = [module](const at::Tensor& x) mutable {
      return module.forward({x}).toTensor();
    };
    auto features = engine::CacheFeatures(extractor, *data, engine::FeatureCacheOptions().device(device));
    if (!features.ok()) return features.status();
    StatusOr<engine::ReadoutResult> readout = InternalError("unset");
    if (spec.readout == Readout::kRidge) {
      DWARP_RETURN_IF_ERROR(EnterPhase(options, "fitting ridge readout"));
      engine::RidgeOptions ridge;
      if (spec.ridge.has_value())
        ridge.alphas(spec.ridge->alphas).per_target(spec.ridge->per_target).folds(spec.ridge->folds);
      readout = engine::TrainRidgeReadout(*features, ridge);
    } else {
      DWARP_RETURN_IF_ERROR(EnterPhase(options, "training SGD readout"));
      engine::SgdReadoutOptions sgd;
      sgd.learning_rate(t.lr)
          .schedule(ScheduleOf(t))
          .weight_decay(t.weight_decay)
          .batch_size(t.batch_size)
          .max_epochs(t.max_epochs)
          .patience(t.patience)
          .min_delta(t.min_delta)
          .seed(t.seed)
          .on_epoch(EpochCallback(spec, options))
          .should_stop(options.should_stop);
      readout = engine::TrainSgdReadout(*features, sgd);
    }
    if (!readout.ok()) return readout.status();
    readout->model_parameter_count = ParameterCount(model.module);  // the readout saw features only
    RecordSummary(*readout, result);
    result.train = FromRegression(readout->train);
    result.validation = FromRegression(readout->validation);
    result.test = FromRegression(readout->test);
  } else {
    engine::EncodingTrainingOptions enc;
    enc.lr(t.lr)
        .low_dim_lr(ModelLearningRate(t, spec.d))
        .schedule(ScheduleOf(t))
        .weight_decay(t.weight_decay)
        .batch_size(t.batch_size)
        .max_epochs(t.max_epochs)
        .patience(t.patience)
        .min_delta(t.min_delta)
        .freeze_head(t.freeze_head)
        .head_init(t.head_init == HeadInit::kRidge ? engine::HeadInit::kRidge : engine::HeadInit::kDefault)
        .seed(t.seed)
        .on_epoch(EpochCallback(spec, options))
        .should_stop(options.should_stop);
    if (spec.ridge.has_value()) {
      enc.head_ridge(engine::RidgeOptions().alphas(spec.ridge->alphas).per_target(spec.ridge->per_target)
                         .folds(spec.ridge->folds));
    }
    StatusOr<engine::EncodingTrainingResult> trained = InternalError("unset");
    if (spec.readout == Readout::kPrefitWarped) {
      DWARP_RETURN_IF_ERROR(EnterPhase(options, "fitting the ridge head, then training network and head in a " +
                                                    spec.d.ToString() + "-dimensional subspace"));
      trained = engine::TrainPrefitWarpedEncoder(model.module, SubspaceOptionsOf(spec, model), *data, enc);
      if (!trained.ok()) {
        return Status(trained.status().code(), "d = " + spec.d.ToString() + ": " + trained.status().message());
      }
    } else if (spec.d.is_subspace()) {
      auto wrapped = engine::SubspaceModel::Create(model.module, SubspaceOptionsOf(spec, model));
      if (!wrapped.ok()) return Status(wrapped.status().code(), "d = " + spec.d.ToString() + ": " + wrapped.status().message());
      DWARP_RETURN_IF_ERROR(EnterPhase(options, "training in a " + spec.d.ToString() + "-dimensional subspace"));
      trained = engine::TrainEncoderInSubspace(*wrapped, *data, enc);
    } else {
      DWARP_RETURN_IF_ERROR(EnterPhase(options, "training all parameters"));
      trained = engine::TrainEncoderFull(model.module, *data, enc);
    }
    if (!trained.ok()) return trained.status();
    RecordSummary(*trained, result);
    result.train = FromRegression(trained->train);
    result.validation = FromRegression(trained->validation);
    result.test = FromRegression(trained->test);
  }
  result.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return Status();
}

engine::ClassificationData Prepared(const engine::ClassificationData& data, const at::Tensor& inputs) {
  engine::ClassificationData out = data;
  out.inputs = inputs;
  return out;
}

Status TrainClassification(const JobSpec& spec, const JobRunOptions& options, c10::Device device,
                           engine::ClassifierSplits splits, const std::string& description, JobResult& result);

// image_folder: one sub-folder per class, sampled and split per class by the job's seed; images decoded,
// resized and normalised as the spec says (always 3 channels).
Status RunImageFolderClassification(const JobSpec& spec, const JobRunOptions& options, c10::Device device,
                                    JobResult& result) {
  const DataSpec& d = spec.data;
  if (spec.model.input_channels != 3) {
    return InvalidArgumentError("model.input_channels = " + std::to_string(spec.model.input_channels) +
                                ": image_folder data is decoded as RGB, so expected 3");
  }
  DWARP_RETURN_IF_ERROR(EnterPhase(options, "loading data"));
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
  engine::ClassifierSplits splits{data->train, data->validation, data->test};
  const std::string description = "image_folder " + d.root + ": " + std::to_string(data->class_names.size()) +
                                  " classes, " +
                                  std::to_string(splits.train.size() + splits.validation.size() + splits.test.size()) +
                                  " images";
  return TrainClassification(spec, options, device, std::move(splits), description, result);
}

Status RunClassification(const JobSpec& spec, const JobRunOptions& options, c10::Device device, JobResult& result) {
  const DataSpec& d = spec.data;
  if (d.kind != DataKind::kIdx && d.kind != DataKind::kImageFolder) {
    return InvalidArgumentError(std::string("data.kind = ") + DataKindName(d.kind) +
                                ": classification is supported by dwarp train for idx and image_folder data only");
  }
  if (spec.readout == Readout::kRidge) {
    return InvalidArgumentError("readout = ridge with objective classification; expected readout sgd (ridge fits "
                                "regression targets in closed form; a classification job at d = 0 trains its linear "
                                "classifier with Adam on cross-entropy)");
  }
  if (d.kind == DataKind::kImageFolder) return RunImageFolderClassification(spec, options, device, result);
  DWARP_RETURN_IF_ERROR(EnterPhase(options, "loading data"));
  engine::IdxClassificationOptions read;
  read.num_classes(0);
  if (d.limit_stimuli > 0) read.max_items(d.limit_stimuli);
  auto all = engine::LoadIdxClassification(d.images, d.labels, read);
  if (!all.ok()) return Status(all.status().code(), "data.images/labels: " + all.status().message());
  engine::ClassifierSplits splits;
  const int64_t n = all->size();
  const int64_t n_train = static_cast<int64_t>(n * d.split.train);
  const bool few_shot = d.limit_classes > 0 || d.limit_samples > 0;
  if (few_shot) {
    // As the image-folder loader: the first limit_classes classes, limit_samples images of each drawn with
    // train.seed, each class split by the fractions; a test file keeps all its images of those classes.
    engine::FewShotOptions subset;
    subset.limit_classes = d.limit_classes;
    subset.limit_samples = d.limit_samples;
    subset.validation = d.split.val;
    subset.test = d.test_images.empty() ? d.split.test : 0.0;
    subset.seed = spec.train.seed;
    subset.stream = "idx";
    auto rows = engine::SelectFewShotRows(all->labels, subset);
    if (!rows.ok()) return Status(rows.status().code(), "data.limit_classes / limit_samples: " + rows.status().message());
    auto take = [](const engine::ClassificationData& data, const at::Tensor& index, int64_t classes) {
      return engine::ClassificationData{data.inputs.index_select(0, index), data.labels.index_select(0, index), classes};
    };
    splits.train = take(*all, rows->train, rows->num_classes);
    splits.validation = take(*all, rows->validation, rows->num_classes);
    if (d.test_images.empty()) {
      splits.test = take(*all, rows->test, rows->num_classes);
    } else {
      engine::IdxClassificationOptions test_read = read;
      test_read.num_classes(all->num_classes);
      auto test = engine::LoadIdxClassification(d.test_images, d.test_labels, test_read);
      if (!test.ok()) return Status(test.status().code(), "data.test_images/test_labels: " + test.status().message());
      splits.test = take(*test, at::nonzero(test->labels < rows->num_classes).flatten(), rows->num_classes);
    }
    for (auto* split : {&splits.train, &splits.validation, &splits.test}) {
      if (split->size() == 0)
        return InvalidArgumentError("data.limit_classes = " + std::to_string(d.limit_classes) + ", limit_samples = " +
                                    std::to_string(d.limit_samples) + " leave an empty split; expected more samples "
                                    "per class for the split fractions");
    }
  } else if (!d.test_images.empty()) {
    engine::IdxClassificationOptions test_read = read;
    test_read.num_classes(all->num_classes);
    auto test = engine::LoadIdxClassification(d.test_images, d.test_labels, test_read);
    if (!test.ok()) return Status(test.status().code(), "data.test_images/test_labels: " + test.status().message());
    splits.train = engine::SliceRows(*all, 0, n_train);
    splits.validation = engine::SliceRows(*all, n_train, n - n_train);
    splits.test = *test;
  } else {
    const int64_t n_val = static_cast<int64_t>(n * d.split.val);
    splits.train = engine::SliceRows(*all, 0, n_train);
    splits.validation = engine::SliceRows(*all, n_train, n_val);
    splits.test = engine::SliceRows(*all, n_train + n_val, n - n_train - n_val);
  }
  const int64_t num_classes =
      few_shot ? splits.train.num_classes : std::max(all->num_classes, splits.test.num_classes);
  splits.train.num_classes = splits.validation.num_classes = splits.test.num_classes = num_classes;
  for (auto* split : {&splits.train, &splits.validation, &splits.test}) {
    auto inputs = PrepareIdxImages(split->inputs, spec);
    if (!inputs.ok()) return inputs.status();
    *split = Prepared(*split, *inputs);
  }
  const std::string description = "idx " + d.images + ": " + std::to_string(n) + " images, " +
                                  std::to_string(num_classes) + " classes";
  return TrainClassification(spec, options, device, std::move(splits), description, result);
}

// Whether a classification job classifies through a linear head on its read-out layer (true) or reads the
// model's own output as its logits (false). The logits are used only when something in the model trains
// (d > 0 or full: the intrinsic-dimension paper's setup) and the read-out layer is the network's output
// layer (ReadoutModel::output_layer) with one column per class. Every other job reads out a representation,
// so it gets a head: d = 0 (a linear classifier on the frozen model), an inner layer, or a torchscript
// model's own output of another width than the class count.
bool UsesLinearHead(const JobSpec& spec, const ReadoutModel& model, int64_t num_classes) {
  return spec.d.is_linear() || !model.output_layer || model.feature_count != num_classes;
}

// Builds the job's model over prepared classification splits and trains it: a linear classifier on cached
// features at d = 0, the model through its subspace (d > 0) or all of it (full), with or without a head.
Status TrainClassification(const JobSpec& spec, const JobRunOptions& options, c10::Device device,
                           engine::ClassifierSplits splits, const std::string& description, JobResult& result) {
  const int64_t num_classes = splits.train.num_classes;
  DWARP_RETURN_IF_ERROR(EnterPhase(options, "building the model"));
  auto model = BuildModel(spec.model, spec.train.seed, num_classes);
  if (!model.ok()) return model.status();
  PlaceModel(*model, device);
  const TrainSpec& t = spec.train;
  const bool head = UsesLinearHead(spec, *model, num_classes);
  if (!head && (t.weight_decay != 0.0 || t.freeze_head)) {
    std::ostringstream os;
    os << "train.weight_decay = " << t.weight_decay << ", train.freeze_head = " << std::boolalpha << t.freeze_head
       << ": both apply to a linear classification head, but this job (d = " << spec.d.ToString()
       << ", model.layer = " << model->layer << ", the output layer with " << num_classes
       << " logits) reads the model's own logits and has none; expected weight_decay = 0 and freeze_head = false, "
          "or an inner model.layer";
    return InvalidArgumentError(os.str());
  }
  result.metric = "accuracy";
  result.linear_head = head;
  result.train_size = splits.train.size();
  result.val_size = splits.validation.size();
  result.test_size = splits.test.size();
  result.num_targets = num_classes;
  result.data_description = description;
  engine::ClassifierTrainingOptions cls;
  cls.epochs(t.max_epochs)
      .batch_size(t.batch_size)
      .learning_rate(ModelLearningRate(t, spec.d))
      .schedule(ScheduleOf(t))
      .linear_head(head)
      .head_learning_rate(t.lr)
      .head_weight_decay(t.weight_decay)
      .freeze_head(t.freeze_head)
      .feature_device(device)
      .patience(t.patience)
      .min_delta(t.min_delta)
      .seed(t.seed)
      .on_epoch(EpochCallback(spec, options))
      .should_stop(options.should_stop);
  const auto start = std::chrono::steady_clock::now();
  StatusOr<engine::ClassifierTrainingResult> trained = InternalError("unset");
  if (spec.d.is_linear()) {
    DWARP_RETURN_IF_ERROR(EnterPhase(options, "caching features and training a linear classifier"));
    torch::jit::Module module = model->module;
    module.eval();
    engine::FeatureExtractor extractor = [module](const at::Tensor& x) mutable {
      return module.forward({x}).toTensor();
    };
    trained = engine::TrainLinearClassifier(extractor, splits, cls);
    if (!trained.ok()) return trained.status();
    trained->model_parameter_count = ParameterCount(model->module);
  } else if (spec.d.is_subspace()) {
    auto wrapped = engine::SubspaceModel::Create(model->module, SubspaceOptionsOf(spec, *model));
    if (!wrapped.ok()) return Status(wrapped.status().code(), "d = " + spec.d.ToString() + ": " + wrapped.status().message());
    DWARP_RETURN_IF_ERROR(EnterPhase(options, "training in a " + spec.d.ToString() + "-dimensional subspace"));
    trained = engine::TrainClassifierInSubspace(*wrapped, splits, cls);
  } else {
    DWARP_RETURN_IF_ERROR(EnterPhase(options, "training all parameters"));
    trained = engine::TrainClassifierFull(model->module, splits, cls);
  }
  if (!trained.ok()) return trained.status();
  result.train.accuracy = trained->train_accuracy;
  result.validation.accuracy = trained->best_validation_accuracy;
  result.test.accuracy = trained->test_accuracy;
  RecordSummary(*trained, result);
  result.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return Status();
}

// objective rsa: no head; d = 0 scores the frozen model's RDMs, d > 0 trains theta_d (rsa_training.h).
Status RunRsa(const JobSpec& spec, const JobRunOptions& options, ReadoutModel& model, c10::Device device,
              JobResult& result) {
  auto data = LoadNeuralJobData(spec, options, model, device, result);
  if (!data.ok()) return data.status();
  result.metric = "rsa";
  const TrainSpec& t = spec.train;
  const auto rsa = engine::RsaTrainingOptions()
                       .low_dim_lr(ModelLearningRate(t, spec.d))
                       .batch_size(t.batch_size)
                       .max_epochs(t.max_epochs)
                       .patience(t.patience)
                       .min_delta(t.min_delta)
                       .schedule(ScheduleOf(t))
                       .seed(t.seed)
                       .on_epoch(EpochCallback(spec, options))
                       .should_stop(options.should_stop);
  const auto start = std::chrono::steady_clock::now();
  StatusOr<engine::RsaTrainingResult> run = InternalError("unset");
  if (spec.d.is_linear()) {
    DWARP_RETURN_IF_ERROR(EnterPhase(options, "scoring the model's RDMs"));
    run = engine::ScoreRsa(model.module, *data, rsa);
    if (run.ok()) run->model_parameter_count = ParameterCount(model.module);
  } else {
    auto wrapped = engine::SubspaceModel::Create(model.module, SubspaceOptionsOf(spec, model));
    if (!wrapped.ok()) return Status(wrapped.status().code(), "d = " + spec.d.ToString() + ": " + wrapped.status().message());
    DWARP_RETURN_IF_ERROR(EnterPhase(options, "training RDMs in a " + spec.d.ToString() + "-dimensional subspace"));
    run = engine::TrainRsaInSubspace(*wrapped, *data, rsa);
  }
  if (!run.ok()) return run.status();
  RecordSummary(*run, result);
  result.train.rsa = run->scores.train;
  result.validation.rsa = run->scores.validation;
  result.test.rsa = run->scores.test;
  result.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return Status();
}

Status RunJobBody(const JobSpec& spec, const JobRunOptions& options, JobResult& result) {
  auto device = engine::ResolveDevice(spec.train.device, "train.device");
  if (!device.ok()) return device.status();
  result.device = device->str();
  if (spec.objective == Objective::kClassification) return RunClassification(spec, options, *device, result);
  DWARP_RETURN_IF_ERROR(EnterPhase(options, "building the model"));
  auto model = BuildModel(spec.model, spec.train.seed, 0);
  if (!model.ok()) return model.status();
  if (spec.objective == Objective::kRsa) return RunRsa(spec, options, *model, *device, result);
  return RunRegression(spec, options, *model, *device, result);
}

}  // namespace

StatusOr<JobResult> RunJob(const JobSpec& spec, const JobRunOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  JobResult result;
  result.spec = spec;
  result.device = spec.train.device;
  Status status;
  try {
    status = RunJobBody(spec, options, result);
  } catch (const c10::Error& e) {
    status = InternalError(std::string("job failed in LibTorch: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    status = InternalError(std::string("job failed: ") + e.what());
  } catch (...) {
    status = InternalError("job failed with an unknown exception");
  }
  if (!status.ok()) return status;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

double MetricScore(const std::string& metric, const Scores& scores) {
  if (metric == "accuracy") return scores.accuracy;
  if (metric == "rsa") return scores.rsa;
  return scores.r2;
}

int64_t SyntheticBrainsBuilt() { return synthetic_brains_built.load(); }

StatusOr<at::Tensor> JobFeaturesOfImageFolder(const JobSpec& spec, const std::string& dir) {
  try {
    auto images = LoadStimulusFolder(dir, spec);
    if (!images.ok()) return images.status();
    auto model = BuildModel(spec.model, spec.train.seed, 0);
    if (!model.ok()) return model.status();
    torch::jit::Module module = model->module;
    module.eval();
    at::NoGradGuard no_grad;
    return module.forward({*images}).toTensor();
  } catch (const c10::Error& e) {
    return InternalError(std::string("computing features failed in LibTorch: ") + e.what_without_backtrace());
  }
}

nlohmann::json JobResultToJson(const JobResult& r) {
  auto scores = [&r](const Scores& s) {
    if (r.metric == "accuracy") return nlohmann::json{{"accuracy", s.accuracy}};
    if (r.metric == "rsa") return nlohmann::json{{"rsa", s.rsa}};
    return nlohmann::json{{"r2", s.r2}, {"pearson_mean", s.pearson_mean}, {"pearson_median", s.pearson_median}};
  };
  nlohmann::json history = nlohmann::json::array();
  for (const auto& e : r.history) {
    history.push_back({{"epoch", e.epoch},
                       {"train_loss", e.train_loss},
                       {"validation_score", e.validation_score},
                       {"improved", e.improved},
                       {"seconds", e.seconds}});
  }
  nlohmann::json out = {
      {"d", r.spec.d.ToString()},
      {"trained_parameters", r.d},
      {"D", r.D},
      {"metric", r.metric},
      {"scores", {{"train", scores(r.train)}, {"val", scores(r.validation)}, {"test", scores(r.test)}}},
      {"epochs_run", r.epochs_run},
      {"best_epoch", r.best_epoch},
      {"wall_seconds", r.seconds},
      {"train_seconds", r.train_seconds},
      {"device", r.device},
      {"representation_size", r.representation_size},
      {"data", {{"description", r.data_description},
                {"train", r.train_size},
                {"val", r.val_size},
                {"test", r.test_size},
                {"targets", r.num_targets}}},
      {"noise_ceiling", std::isnan(r.noise_ceiling) ? nlohmann::json(nullptr) : nlohmann::json(r.noise_ceiling)},
      {"history", history},
      {"spec", ToJson(r.spec)},
  };
  if (r.metric == "accuracy") out["linear_head"] = r.linear_head;
  return out;
}

}  // namespace dwarp::worker
