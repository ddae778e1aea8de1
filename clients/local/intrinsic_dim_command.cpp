#include "clients/local/intrinsic_dim_command.h"

#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "worker/engine/datasets/idx_dataset.h"
#include "worker/engine/models/mlp.h"
#include "worker/engine/subspace_model.h"
#include "worker/engine/threading.h"

namespace dwarp::clients {
namespace {

using Clock = std::chrono::steady_clock;

std::string JoinInts(const std::vector<int64_t>& values, const char* separator) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) out += (i ? separator : "") + std::to_string(values[i]);
  return out;
}

Status CheckConfig(IntrinsicDimConfig& config) {
  if (config.train_limit < 1) {
    return InvalidArgumentError("--train-limit = " + std::to_string(config.train_limit) + "; expected >= 1");
  }
  if (config.val_size < 1) {
    return InvalidArgumentError("--val-size = " + std::to_string(config.val_size) + "; expected >= 1");
  }
  if (config.test_limit < 1) {
    return InvalidArgumentError("--test-limit = " + std::to_string(config.test_limit) + "; expected >= 1");
  }
  if (config.dims.empty() && !config.full) {
    return InvalidArgumentError("nothing to run: --dims is empty and --no-full is set");
  }
  for (int64_t d : config.dims) {
    if (d < 1) return InvalidArgumentError("--dims contains " + std::to_string(d) + "; expected every d >= 1");
  }
  std::sort(config.dims.begin(), config.dims.end());
  if (std::adjacent_find(config.dims.begin(), config.dims.end()) != config.dims.end()) {
    return InvalidArgumentError("--dims " + JoinInts(config.dims, ",") + " repeats a value; expected distinct d");
  }
  if (!(config.threshold_fraction > 0.0 && config.threshold_fraction <= 1.0)) {
    return InvalidArgumentError("--threshold = " + std::to_string(config.threshold_fraction) +
                                "; expected a fraction in (0, 1]");
  }
  if (config.repeats < 1) {
    return InvalidArgumentError("--repeats = " + std::to_string(config.repeats) + "; expected >= 1");
  }
  if (config.threads < 0) {
    return InvalidArgumentError("--threads = " + std::to_string(config.threads) + "; expected >= 1 (or 0: all cores)");
  }
  if (config.threads == 0) config.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!config.out.empty()) {
    const std::filesystem::path parent = std::filesystem::path(config.out).parent_path();
    std::error_code ec;
    if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
      return NotFoundError("--out " + config.out + ": directory '" + parent.string() + "' does not exist");
    }
  }
  // The remaining options (epochs, batch size, learning rates, widths) are checked by the engine.
  return OkStatus();
}

engine::ClassifierTrainingOptions TrainingOptions(const IntrinsicDimConfig& config, double lr, uint64_t seed,
                                                  const std::string& label) {
  return engine::ClassifierTrainingOptions()
      .epochs(config.epochs)
      .batch_size(config.batch_size)
      .learning_rate(lr)
      .schedule(config.cosine ? engine::LearningRateSchedule::kCosine : engine::LearningRateSchedule::kConstant)
      .patience(config.patience)
      .seed(seed)
      .on_epoch([label, epochs = config.epochs](const engine::EpochRecord& r) {
        spdlog::info("{:>10} epoch {}/{}: train loss {:.4f}, validation accuracy {:.4f}{} ({:.1f} s)", label, r.epoch,
                     epochs, r.train_loss, r.validation_score, r.improved ? " *" : "", r.seconds);
      });
}

void LogRunDone(const std::string& label, const engine::ClassifierTrainingResult& r) {
  spdlog::info("{:>10} done: test accuracy {:.4f} (best epoch {}, {:.1f} s)", label, r.test_accuracy, r.best_epoch,
               r.seconds);
}

nlohmann::ordered_json RunJson(const IntrinsicDimRun& run) {
  const auto& r = run.result;
  nlohmann::ordered_json history = nlohmann::ordered_json::array();
  for (const auto& e : r.history) {
    history.push_back({{"epoch", e.epoch},
                       {"train_loss", e.train_loss},
                       {"validation_accuracy", e.validation_score},
                       {"seconds", e.seconds}});
  }
  nlohmann::ordered_json d = run.d ? nlohmann::ordered_json(*run.d) : nlohmann::ordered_json("full");
  return {{"d", d},
          {"seed", run.seed},
          {"trained_parameters", r.numbers_trained},
          {"D", r.parameters_warped},
          {"test_accuracy", r.test_accuracy},
          {"best_validation_accuracy", r.best_validation_accuracy},
          {"best_epoch", r.best_epoch},
          {"epochs", r.epochs_run},
          {"seconds", r.seconds},
          {"learning_rate", run.learning_rate},
          {"history", history}};
}

}  // namespace

double SubspaceLearningRate(const IntrinsicDimConfig& config, int64_t d) {
  return LowDimLearningRate(config.lr, d, config.scale_lr ? LowDimLrScaling::kInverseD : LowDimLrScaling::kNone);
}

namespace {

StatusOr<IntrinsicDimReport> RunIntrinsicDimOrThrow(IntrinsicDimConfig config) {
  const auto start = Clock::now();
  DWARP_RETURN_IF_ERROR(CheckConfig(config));
  const bool blas_single_threaded = engine::SetComputeThreads(config.threads);

  IntrinsicDimReport report;
  report.config = config;

  spdlog::info("loading {} (train: first {} + {} images, test: first {})", config.data_dir, config.train_limit,
               config.val_size, config.test_limit);
  auto train_file = engine::LoadMnistStyleSplit(
      config.data_dir, "train", engine::IdxClassificationOptions().max_items(config.train_limit + config.val_size));
  if (!train_file.ok()) {
    const Status& status = train_file.status();
    const std::string hint = status.code() == StatusCode::kNotFound
                                 ? " (Debian's dataset-fashion-mnist package installs Fashion-MNIST in "
                                   "/usr/share/datasets/fashion-mnist)"
                                 : "";
    return Status(status.code(), "--data-dir: " + status.message() + hint);
  }
  if (train_file->size() < config.train_limit + config.val_size) {
    return InvalidArgumentError("the training file in " + config.data_dir + " has " +
                                std::to_string(train_file->size()) + " images; --train-limit " +
                                std::to_string(config.train_limit) + " plus --val-size " +
                                std::to_string(config.val_size) + " need " +
                                std::to_string(config.train_limit + config.val_size));
  }
  auto test_file =
      engine::LoadMnistStyleSplit(config.data_dir, "t10k", engine::IdxClassificationOptions().max_items(config.test_limit));
  if (!test_file.ok()) return Status(test_file.status().code(), "--data-dir: " + test_file.status().message());

  engine::ClassifierSplits splits;
  splits.train = engine::SliceRows(*train_file, 0, config.train_limit);
  splits.validation = engine::SliceRows(*train_file, config.train_limit, config.val_size);
  splits.test = std::move(test_file).value();
  report.train_size = splits.train.size();
  report.val_size = splits.validation.size();
  report.test_size = splits.test.size();
  report.num_classes = splits.train.num_classes;

  const int64_t in_features = splits.train.inputs[0].numel();
  const auto mlp_options = engine::MlpOptions(in_features, report.num_classes).hidden(config.hidden).seed(config.seed);
  auto mlp = engine::CreateMlp(mlp_options);
  if (!mlp.ok()) return mlp.status();
  report.widths.push_back(in_features);
  report.widths.insert(report.widths.end(), config.hidden.begin(), config.hidden.end());
  report.widths.push_back(report.num_classes);
  report.parameter_count = engine::MlpParameterCount(mlp_options);
  spdlog::info("MLP {} (D = {}); {} threads{}; {} subspace runs{}", JoinInts(report.widths, "-"),
               report.parameter_count, config.threads, blas_single_threaded ? " (OpenBLAS: 1)" : "",
               config.dims.size() * static_cast<size_t>(config.repeats),
               config.full ? (config.repeats > 1 ? " + full runs" : " + full") : "");

  auto projection = engine::ProjectionModeNamed(config.projection);
  if (!projection.ok()) return Status(projection.status().code(), "--projection: " + projection.status().message());
  // Every run trains the same initial MLP; repeat r varies the projections and the minibatch order.
  std::vector<DimScore> points;
  for (int64_t d : config.dims) {
    for (int64_t repeat = 0; repeat < config.repeats; ++repeat) {
      const uint64_t seed = config.seed + static_cast<uint64_t>(repeat);
      const std::string label = "d=" + std::to_string(d) + (config.repeats > 1 ? "/" + std::to_string(seed) : "");
      auto model = engine::SubspaceModel::Create(*mlp, engine::SubspaceOptions(d).seed(seed).projection(*projection));
      if (!model.ok()) return model.status();
      const double lr = SubspaceLearningRate(config, d);
      auto result = engine::TrainClassifierInSubspace(*model, splits, TrainingOptions(config, lr, seed, label));
      if (!result.ok()) return Status(result.status().code(), label + ": " + result.status().message());
      LogRunDone(label, *result);
      points.push_back({d, result->test_accuracy});
      report.runs.push_back({d, seed, lr, std::move(result).value()});
    }
  }
  double full_sum = 0.0;
  for (int64_t repeat = 0; config.full && repeat < config.repeats; ++repeat) {
    const uint64_t seed = config.seed + static_cast<uint64_t>(repeat);
    const std::string label = "full" + (config.repeats > 1 ? "/" + std::to_string(seed) : std::string());
    torch::jit::Module module = mlp->deepcopy();
    auto result = engine::TrainClassifierFull(module, splits, TrainingOptions(config, config.full_lr, seed, label));
    if (!result.ok()) return Status(result.status().code(), label + ": " + result.status().message());
    LogRunDone(label, *result);
    full_sum += result->test_accuracy;
    report.runs.push_back({std::nullopt, seed, config.full_lr, std::move(result).value()});
  }

  if (config.full) {
    report.threshold_reference = config.repeats > 1 ? "mean full" : "full";
    report.reference_accuracy = full_sum / static_cast<double>(config.repeats);
  } else {
    report.threshold_reference = config.repeats > 1 ? "best mean subspace" : "best subspace";
    auto curve = MeanScoreCurve(points);
    if (!curve.ok()) return curve.status();
    for (const auto& p : *curve) report.reference_accuracy = std::max(report.reference_accuracy, p.score);
  }
  if (!points.empty()) {
    auto crossing = FindThresholdCrossing(points, config.threshold_fraction * report.reference_accuracy);
    if (!crossing.ok()) return crossing.status();
    report.crossing = *crossing;
  } else {
    report.crossing.threshold = config.threshold_fraction * report.reference_accuracy;
  }
  report.total_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return report;
}

}  // namespace

StatusOr<IntrinsicDimReport> RunIntrinsicDim(IntrinsicDimConfig config) {
  // The training runs catch LibTorch's exceptions themselves; this catches the rest (model construction,
  // slicing) so that the command always ends with a Status (STYLE.md rule 4).
  try {
    return RunIntrinsicDimOrThrow(std::move(config));
  } catch (const c10::Error& e) {
    return InternalError(std::string("LibTorch: ") + e.what_without_backtrace());
  } catch (const std::exception& e) {
    return InternalError(e.what());
  }
}

std::string FormatIntrinsicDimTable(const IntrinsicDimReport& report) {
  std::ostringstream os;
  char line[160];
  std::snprintf(line, sizeof line, "%10s | %8s | %4s | %13s | %6s | %7s\n", "d", "D", "seed", "test accuracy", "epochs",
                "seconds");
  os << line << std::string(10, '-') << "-+-" << std::string(8, '-') << "-+-" << std::string(4, '-') << "-+-"
     << std::string(13, '-') << "-+-" << std::string(6, '-') << "-+-" << std::string(7, '-') << "\n";
  for (const auto& run : report.runs) {
    const auto& r = run.result;
    const std::string d = run.d ? std::to_string(*run.d) : "full";
    std::snprintf(line, sizeof line, "%10s | %8lld | %4llu | %13.4f | %6lld | %7.1f\n", d.c_str(),
                  static_cast<long long>(r.parameters_warped), static_cast<unsigned long long>(run.seed),
                  r.test_accuracy,
                  static_cast<long long>(r.epochs_run), r.seconds);
    os << line;
  }
  if (report.config.repeats > 1) {
    std::vector<DimScore> points;
    for (const auto& run : report.runs) {
      if (run.d) points.push_back({*run.d, run.result.test_accuracy});
    }
    auto curve = MeanScoreCurve(points);
    if (curve.ok()) {
      os << "mean test accuracy:";
      for (const auto& p : *curve) {
        std::snprintf(line, sizeof line, " d=%lld %.4f", static_cast<long long>(p.d), p.score);
        os << line;
      }
      os << "\n";
    }
  }
  const auto& c = report.crossing;
  const int percent = static_cast<int>(report.config.threshold_fraction * 100.0 + 0.5);
  std::snprintf(line, sizeof line, "threshold: %.4f = %.2f x %.4f (%s accuracy)\n", c.threshold,
                report.config.threshold_fraction, report.reference_accuracy, report.threshold_reference.c_str());
  os << line;
  if (report.runs.empty() || report.config.dims.empty()) {
    os << "d_int" << percent << ": no subspace runs\n";
  } else if (!c.reached) {
    std::snprintf(line, sizeof line, "d_int%d: not reached (best subspace accuracy %.4f at d = %lld)\n", percent,
                  c.best_score, static_cast<long long>(c.best_d));
    os << line;
  } else if (c.interpolated) {
    std::snprintf(line, sizeof line, "d_int%d: %.0f (first grid d reaching it: %lld; interpolated in log d from d = %lld)\n",
                  percent, c.d, static_cast<long long>(c.grid_d), static_cast<long long>(c.below_d));
    os << line;
  } else {
    std::snprintf(line, sizeof line, "d_int%d: %lld (%s)\n", percent, static_cast<long long>(c.grid_d),
                  c.below_d < 0 ? "the smallest d run already reaches it; the true value may be lower"
                                : "exact hit on the grid");
    os << line;
  }
  std::snprintf(line, sizeof line, "total wall time: %.1f s\n", report.total_seconds);
  os << line;
  return os.str();
}

std::string IntrinsicDimReportJson(const IntrinsicDimReport& report) {
  const auto& cfg = report.config;
  const auto& c = report.crossing;
  nlohmann::ordered_json runs = nlohmann::ordered_json::array();
  for (const auto& run : report.runs) runs.push_back(RunJson(run));
  nlohmann::ordered_json crossing = {{"reached", c.reached}, {"threshold", c.threshold}};
  if (c.reached) {
    crossing["d"] = c.d;
    crossing["grid_d"] = c.grid_d;
    crossing["interpolated"] = c.interpolated;
    crossing["below_d"] = c.below_d < 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(c.below_d);
  }
  crossing["best_d"] = c.best_d;
  crossing["best_accuracy"] = c.best_score;
  nlohmann::ordered_json out = {
      {"command", "intrinsic-dim"},
      {"dataset",
       {{"dir", cfg.data_dir},
        {"train", report.train_size},
        {"validation", report.val_size},
        {"test", report.test_size},
        {"num_classes", report.num_classes}}},
      {"model", {{"kind", "mlp"}, {"widths", report.widths}, {"parameters", report.parameter_count}}},
      {"training",
       {{"epochs", cfg.epochs},
        {"batch_size", cfg.batch_size},
        {"subspace_lr", cfg.lr},
        {"subspace_lr_scaling", cfg.scale_lr ? "lr * 1000 / d" : "none"},
        {"full_lr", cfg.full_lr},
        {"schedule", cfg.cosine ? "cosine" : "constant"},
        {"patience", cfg.patience},
        {"projection", cfg.projection},
        {"seed", cfg.seed},
        {"repeats", cfg.repeats},
        {"threads", cfg.threads}}},
      {"runs", runs},
      {"threshold",
       {{"fraction", cfg.threshold_fraction},
        {"reference", report.threshold_reference},
        {"reference_accuracy", report.reference_accuracy}}},
      {"d_int", crossing},
      {"total_seconds", report.total_seconds},
  };
  return out.dump(2) + "\n";
}

void AddIntrinsicDimCommand(CLI::App& app) {
  auto config = std::make_shared<IntrinsicDimConfig>();
  CLI::App* cmd = app.add_subcommand(
      "intrinsic-dim",
      "Measure the intrinsic dimension (Li et al. 2018) of an MLP classifier on an MNIST-style dataset: train it "
      "through random Fastfood subspaces of growing d and with all parameters, report test accuracy per d and "
      "d_int90");
  cmd->add_option("--data-dir", config->data_dir,
                  "Directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]")
      ->capture_default_str();
  cmd->add_option("--train-limit", config->train_limit, "Training images (the first ones of the training file)")
      ->capture_default_str();
  cmd->add_option("--val-size", config->val_size, "Validation images (the ones after the training images)")
      ->capture_default_str();
  cmd->add_option("--test-limit", config->test_limit, "Test images (the first ones of the test file)")
      ->capture_default_str();
  cmd->add_option("--dims", config->dims, "Subspace dimensions d, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_flag("!--no-full", config->full, "Skip the run that trains all parameters (then the threshold is a "
                                            "fraction of the best subspace run)");
  cmd->add_option("--hidden", config->hidden, "Hidden layer widths, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--epochs", config->epochs, "Epochs per run")->capture_default_str();
  cmd->add_option("--batch-size", config->batch_size, "Minibatch size")->capture_default_str();
  cmd->add_option("--lr", config->lr, "Adam learning rate of theta_d at d = 1000 (other d: lr * 1000 / d)")
      ->capture_default_str();
  cmd->add_option("--projection", config->projection,
                  "How theta_d reaches the parameters: per_tensor, global, reference or size_weighted (README)")
      ->check(CLI::IsMember({"per_tensor", "global", "reference", "size_weighted"}))
      ->capture_default_str();
  cmd->add_flag("!--constant-lr", config->cosine, "Keep learning rates constant instead of cosine-annealing them to 0");
  cmd->add_flag("!--no-lr-scaling", config->scale_lr, "Use --lr for every d instead of lr * 1000 / d");
  cmd->add_option("--full-lr", config->full_lr, "Adam learning rate of the full run")->capture_default_str();
  cmd->add_option("--patience", config->patience, "Stop a run after this many epochs without a better validation "
                                                  "accuracy (0: never)")
      ->capture_default_str();
  cmd->add_option("--threshold", config->threshold_fraction, "Fraction of the reference accuracy defining d_int")
      ->capture_default_str();
  cmd->add_option("--seed", config->seed, "Seed of the initialisation, the projections and the minibatch order")
      ->capture_default_str();
  cmd->add_option("--repeats", config->repeats,
                  "Runs per d (and of full), with seeds --seed, --seed + 1, ...; d_int uses the mean accuracy per d")
      ->capture_default_str();
  cmd->add_option("--threads", config->threads, "Intra-op threads (0: all cores)")->capture_default_str();
  cmd->add_option("--out", config->out, "Write the report as JSON to this file");

  cmd->callback([config]() {
    auto report = RunIntrinsicDim(*config);
    if (!report.ok()) {
      spdlog::error("intrinsic-dim failed: {}", report.status().ToString());
      throw CLI::RuntimeError(1);
    }
    std::fputs(("\n" + FormatIntrinsicDimTable(*report)).c_str(), stdout);
    std::fflush(stdout);
    if (!config->out.empty()) {
      std::ofstream file(config->out);
      file << IntrinsicDimReportJson(*report);
      file.close();
      if (!file) {
        spdlog::error("intrinsic-dim: cannot write the report to '{}'", config->out);
        throw CLI::RuntimeError(1);
      }
      spdlog::info("report written to {}", config->out);
    }
  });
}

}  // namespace dwarp::clients
