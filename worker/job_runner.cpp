#include "worker/job_runner.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <exception>
#include <sstream>
#include <utility>

#include "worker/engine/device.h"
#include "worker/engine/subspace_model.h"
#include "worker/engine/train/classifier_training.h"
#include "worker/engine/train/encoding_training.h"
#include "worker/engine/train/feature_cache.h"
#include "worker/engine/train/metrics.h"
#include "worker/engine/train/readout_training.h"
#include "worker/engine/train/rsa_training.h"
#include "worker/job_data.h"
#include "worker/job_model.h"

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

std::function<void(const engine::EpochRecord&)> EpochCallback(const JobSpec& spec, const JobRunOptions& options) {
  if (!options.on_epoch) return {};
  auto callback = options.on_epoch;
  const int64_t max_epochs = spec.train.max_epochs;
  return [callback, max_epochs](const engine::EpochRecord& record) { callback(record, max_epochs); };
}

// The training loop's settings (engine/train/training_loop.h) from the spec's train block, the same for
// every trainer: epochs, batch size, early stopping, schedule, seed, and the caller's epoch callback and
// cancellation.
engine::TrainingLoopOptions LoopSettingsOf(const JobSpec& spec, const JobRunOptions& options) {
  const TrainSpec& t = spec.train;
  return engine::TrainingLoopOptions()
      .epochs(t.max_epochs)
      .batch_size(t.batch_size)
      .patience(t.patience)
      .min_delta(t.min_delta)
      .schedule(ScheduleOf(t))
      .seed(t.seed)
      .on_epoch(EpochCallback(spec, options))
      .should_stop(options.should_stop);
}

// What every trainer reports (engine/train/training_loop.h TrainingSummary) into the job's report.
void RecordSummary(const engine::TrainingSummary& summary, JobReport& report) {
  report.epochs_run = summary.epochs_run;
  report.best_epoch = summary.best_epoch;
  report.history = summary.history;
  report.numbers_trained = summary.numbers_trained;
  report.parameters_warped = summary.parameters_warped;
  report.representation_size = summary.representation_size;
}

// What the report says about the loaded data.
void RecordData(const JobData& data, JobReport& report) {
  report.data_description = data.description;
  report.train_size = data.train_size;
  report.val_size = data.val_size;
  report.test_size = data.test_size;
  report.num_targets = data.num_targets;
  if (data.neural.noise_ceiling.defined()) {
    report.noise_ceiling = data.neural.noise_ceiling.to(at::kDouble).mean().item<double>();
  }
}

Scores FromRegression(const engine::RegressionScores& s) {
  Scores out;
  out.r2 = s.r2;
  out.pearson_mean = s.pearson_mean;
  out.pearson_median = s.pearson_median;
  return out;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The job's model wrapped in its d-dimensional subspace (d > 0), then the phase `training` reported.
StatusOr<engine::SubspaceModel> WrapInSubspace(const JobSpec& spec, const JobRunOptions& options,
                                               const ReadoutModel& model, const std::string& training) {
  auto wrapped = engine::SubspaceModel::Create(model.module, SubspaceOptionsOf(spec, model));
  if (!wrapped.ok()) {
    return Status(wrapped.status().code(), "d = " + spec.d.ToString() + ": " + wrapped.status().message());
  }
  DWARP_RETURN_IF_ERROR(EnterPhase(options, training + " in a " + spec.d.ToString() + "-dimensional subspace"));
  return wrapped;
}

// d > 0 or full, for every objective: `in_subspace` trains the model wrapped in its subspace, `full` trains
// all of the model's parameters (a handle on the job's module, which it changes in place).
template <typename Result, typename InSubspace, typename Full>
StatusOr<Result> TrainSubspaceOrFull(const JobSpec& spec, const JobRunOptions& options, const ReadoutModel& model,
                                     InSubspace in_subspace, Full full) {
  if (spec.d.is_subspace()) {
    auto wrapped = WrapInSubspace(spec, options, model, "training");
    if (!wrapped.ok()) return wrapped.status();
    return in_subspace(*wrapped);
  }
  DWARP_RETURN_IF_ERROR(EnterPhase(options, "training all parameters"));
  torch::jit::Module module = model.module;
  return full(module);
}

// What no trainer supports, refused before any data are loaded.
Status CheckTrainerSupports(const JobSpec& spec) {
  if (spec.objective == Objective::kClassification && spec.readout == Readout::kRidge) {
    return InvalidArgumentError("readout = ridge with objective classification; expected readout sgd (ridge fits "
                                "regression targets in closed form; a classification job at d = 0 trains its linear "
                                "classifier with Adam on cross-entropy)");
  }
  return OkStatus();
}

// regression: d = 0 a readout (ridge or SGD) on cached features; d > 0 or full the encoder (network and
// head), or readout prefit_warped (the ridge head, then both through one subspace).
Status TrainRegression(const JobSpec& spec, const JobRunOptions& options, const ReadoutModel& model,
                       c10::Device device, const engine::NeuralData& data, JobReport& report) {
  report.metric = "r2";
  const TrainSpec& t = spec.train;
  if (spec.d.is_linear()) {
    DWARP_RETURN_IF_ERROR(EnterPhase(options, "caching features"));
    auto features = engine::CacheFeatures(engine::FrozenModelExtractor(model.module), data,
                                          engine::FeatureCacheOptions().device(device));
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
      const auto sgd = engine::SgdReadoutOptions()
                           .loop(LoopSettingsOf(spec, options))
                           .head_learning_rate(t.lr)
                           .head_weight_decay(t.weight_decay);
      readout = engine::TrainSgdReadout(*features, sgd);
    }
    if (!readout.ok()) return readout.status();
    readout->parameters_warped = ParameterCount(model.module);  // the readout saw features only
    RecordSummary(*readout, report);
    report.train = FromRegression(readout->train);
    report.validation = FromRegression(readout->validation);
    report.test = FromRegression(readout->test);
    return OkStatus();
  }
  engine::EncodingTrainingOptions enc;
  enc.loop(LoopSettingsOf(spec, options))
      .learning_rate(ModelLearningRate(t, spec.d))
      .head_learning_rate(t.lr)
      .head_weight_decay(t.weight_decay)
      .freeze_head(t.freeze_head)
      .head_init(t.head_init == HeadInit::kRidge ? engine::HeadInit::kRidge : engine::HeadInit::kDefault);
  if (spec.ridge.has_value()) {
    enc.head_ridge(engine::RidgeOptions().alphas(spec.ridge->alphas).per_target(spec.ridge->per_target)
                       .folds(spec.ridge->folds));
  }
  StatusOr<engine::EncodingTrainingResult> trained = InternalError("unset");
  if (spec.readout == Readout::kPrefitWarped) {
    DWARP_RETURN_IF_ERROR(EnterPhase(options, "fitting the ridge head, then training network and head in a " +
                                                  spec.d.ToString() + "-dimensional subspace"));
    trained = engine::TrainPrefitWarpedEncoder(model.module, SubspaceOptionsOf(spec, model), data, enc);
    if (!trained.ok()) {
      return Status(trained.status().code(), "d = " + spec.d.ToString() + ": " + trained.status().message());
    }
  } else {
    trained = TrainSubspaceOrFull<engine::EncodingTrainingResult>(
        spec, options, model, [&](engine::SubspaceModel& m) { return engine::TrainEncoderInSubspace(m, data, enc); },
        [&](torch::jit::Module& m) { return engine::TrainEncoderFull(m, data, enc); });
  }
  if (!trained.ok()) return trained.status();
  RecordSummary(*trained, report);
  report.train = FromRegression(trained->train);
  report.validation = FromRegression(trained->validation);
  report.test = FromRegression(trained->test);
  return OkStatus();
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

// classification: a linear classifier on cached features at d = 0, the model through its subspace (d > 0)
// or all of it (full), with or without a head.
Status TrainClassification(const JobSpec& spec, const JobRunOptions& options, const ReadoutModel& model,
                           c10::Device device, const engine::ClassifierSplits& splits, JobReport& report) {
  const int64_t num_classes = splits.train.num_classes;
  const TrainSpec& t = spec.train;
  const bool head = UsesLinearHead(spec, model, num_classes);
  if (!head && (t.weight_decay != 0.0 || t.freeze_head)) {
    std::ostringstream os;
    os << "train.weight_decay = " << t.weight_decay << ", train.freeze_head = " << std::boolalpha << t.freeze_head
       << ": both apply to a linear classification head, but this job (d = " << spec.d.ToString()
       << ", model.layer = " << model.layer << ", the output layer with " << num_classes
       << " logits) reads the model's own logits and has none; expected weight_decay = 0 and freeze_head = false, "
          "or an inner model.layer";
    return InvalidArgumentError(os.str());
  }
  report.metric = "accuracy";
  report.linear_head = head;
  const auto cls = engine::ClassifierTrainingOptions()
                       .loop(LoopSettingsOf(spec, options))
                       .learning_rate(ModelLearningRate(t, spec.d))
                       .linear_head(head)
                       .head_learning_rate(t.lr)
                       .head_weight_decay(t.weight_decay)
                       .freeze_head(t.freeze_head)
                       .feature_device(device);
  StatusOr<engine::ClassifierTrainingResult> trained = InternalError("unset");
  if (spec.d.is_linear()) {
    DWARP_RETURN_IF_ERROR(EnterPhase(options, "caching features and training a linear classifier"));
    trained = engine::TrainLinearClassifier(engine::FrozenModelExtractor(model.module), splits, cls);
    if (trained.ok()) trained->parameters_warped = ParameterCount(model.module);
  } else {
    trained = TrainSubspaceOrFull<engine::ClassifierTrainingResult>(
        spec, options, model,
        [&](engine::SubspaceModel& m) { return engine::TrainClassifierInSubspace(m, splits, cls); },
        [&](torch::jit::Module& m) { return engine::TrainClassifierFull(m, splits, cls); });
  }
  if (!trained.ok()) return trained.status();
  RecordSummary(*trained, report);
  report.train.accuracy = trained->train_accuracy;
  report.validation.accuracy = trained->best_validation_accuracy;
  report.test.accuracy = trained->test_accuracy;
  return OkStatus();
}

// rsa: no head; d = 0 scores the frozen model's RDMs, d > 0 trains theta_d (rsa_training.h).
Status TrainRsa(const JobSpec& spec, const JobRunOptions& options, const ReadoutModel& model,
                const engine::NeuralData& data, JobReport& report) {
  report.metric = "rsa";
  const auto rsa = engine::RsaTrainingOptions()
                       .loop(LoopSettingsOf(spec, options))
                       .learning_rate(ModelLearningRate(spec.train, spec.d));
  StatusOr<engine::RsaTrainingResult> run = InternalError("unset");
  if (spec.d.is_linear()) {
    DWARP_RETURN_IF_ERROR(EnterPhase(options, "scoring the model's RDMs"));
    run = engine::ScoreRsa(model.module, data, rsa);
    if (run.ok()) run->parameters_warped = ParameterCount(model.module);
  } else {
    auto wrapped = WrapInSubspace(spec, options, model, "training RDMs");
    if (!wrapped.ok()) return wrapped.status();
    run = engine::TrainRsaInSubspace(*wrapped, data, rsa);
  }
  if (!run.ok()) return run.status();
  RecordSummary(*run, report);
  report.train.rsa = run->scores.train;
  report.validation.rsa = run->scores.validation;
  report.test.rsa = run->scores.test;
  return OkStatus();
}

// Every job in the same order: the device, the data (LoadJobData, by data.kind), the model (sized by the
// data's classes for classification), then the objective's trainer. The data stay on the CPU (a synthetic
// brain's teacher runs there); the model moves to the device once; minibatches are sent there.
Status LoadDataBuildModelAndTrain(const JobSpec& spec, const JobRunOptions& options, JobReport& report) {
  auto device = engine::ResolveDevice(spec.train.device, "train.device");
  if (!device.ok()) return device.status();
  report.device = device->str();
  DWARP_RETURN_IF_ERROR(CheckTrainerSupports(spec));
  DWARP_RETURN_IF_ERROR(EnterPhase(options, "loading data"));
  auto data = LoadJobData(spec);
  if (!data.ok()) return data.status();
  // The log says what was loaded, including any targets data.nan: drop_targets removed.
  if (options.on_phase) options.on_phase("loaded " + data->description);
  RecordData(*data, report);
  DWARP_RETURN_IF_ERROR(EnterPhase(options, "building the model"));
  auto model = BuildJobModel(spec.model, spec.train.seed, data->num_classes);
  if (!model.ok()) return model.status();
  if (!device->is_cpu()) model->module.to(*device);
  const auto start = std::chrono::steady_clock::now();
  Status trained;
  switch (spec.objective) {
    case Objective::kClassification:
      trained = TrainClassification(spec, options, *model, *device, data->classes, report);
      break;
    case Objective::kRsa:
      trained = TrainRsa(spec, options, *model, data->neural, report);
      break;
    case Objective::kRegression:
      trained = TrainRegression(spec, options, *model, *device, data->neural, report);
      break;
  }
  report.train_seconds = SecondsSince(start);
  return trained;
}

}  // namespace

StatusOr<JobReport> RunJob(const JobSpec& spec, const JobRunOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  JobReport report;
  report.spec = spec;
  report.device = spec.train.device;
  Status status;
  try {
    status = LoadDataBuildModelAndTrain(spec, options, report);
  } catch (const c10::Error& e) {
    status = InternalError(std::string("job failed in LibTorch: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    status = InternalError(std::string("job failed: ") + e.what());
  } catch (...) {
    status = InternalError("job failed with an unknown exception");
  }
  if (!status.ok()) return status;
  report.seconds = SecondsSince(start);
  return report;
}

double MetricScore(const std::string& metric, const Scores& scores) {
  if (metric == "accuracy") return scores.accuracy;
  if (metric == "rsa") return scores.rsa;
  return scores.r2;
}

StatusOr<at::Tensor> JobFeaturesOfImageFolder(const JobSpec& spec, const std::string& dir) {
  try {
    auto images = LoadJobStimulusFolder(spec, dir);
    if (!images.ok()) return images.status();
    auto model = BuildJobModel(spec.model, spec.train.seed);
    if (!model.ok()) return model.status();
    return engine::ComputeFeatures(engine::FrozenModelExtractor(model->module), *images);
  } catch (const c10::Error& e) {
    return InternalError(std::string("computing features failed in LibTorch: ") + e.what_without_backtrace());
  }
}

nlohmann::json JobReportToJson(const JobReport& r) {
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
      {"trained_parameters", r.numbers_trained},
      {"D", r.parameters_warped},
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
  };
  if (r.metric == "accuracy") out["linear_head"] = r.linear_head;
  return out;
}

JobResult JobResultOf(const JobReport& report) {
  JobResult out;
  out.metric = report.metric;
  out.train_score = MetricScore(report.metric, report.train);
  out.val_score = MetricScore(report.metric, report.validation);
  out.test_score = MetricScore(report.metric, report.test);
  out.test_pearson_mean = report.test.pearson_mean;
  out.test_pearson_median = report.test.pearson_median;
  out.epochs_run = report.epochs_run;
  out.best_epoch = report.best_epoch;
  out.seconds = report.seconds;
  out.numbers_trained = report.numbers_trained;
  out.parameters_warped = report.parameters_warped;
  out.device = report.device;
  out.noise_ceiling = report.noise_ceiling;
  out.result_json = JobReportToJson(report).dump();
  return out;
}

}  // namespace dwarp::worker
