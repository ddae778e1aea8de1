#include "clients/local/train_command.h"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "common/file_io.h"
#include "common/job_spec.h"
#include "worker/engine/threading.h"
#include "worker/job_runner.h"

namespace dwarp::clients {
namespace {

std::string UtcStamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y%m%dT%H%M%SZ", &tm);
  return buffer;
}

std::string Bar(int64_t done, int64_t total, int width = 24) {
  const int64_t filled = total > 0 ? std::min<int64_t>(width, done * width / total) : 0;
  return "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), '.') + "]";
}

}  // namespace

StatusOr<std::string> RunTrainCommand(const TrainCommandConfig& config) {
  auto spec = LoadJobSpecFile(config.job_file, config.overrides);
  if (!spec.ok()) return spec.status();  // LoadJobSpecFile names the file

  int threads = static_cast<int>(spec->train.threads);
  if (threads <= 0) threads = std::max(1u, std::thread::hardware_concurrency());
  engine::SetComputeThreads(threads);

  std::string out = config.out;
  if (out.empty()) {
    out = (std::filesystem::path("runs") /
           (std::filesystem::path(config.job_file).stem().string() + "-" + UtcStamp() + ".json"))
              .string();
  }

  const bool tty = ::isatty(::fileno(stderr)) != 0;
  worker::JobRunOptions options;
  options.on_phase = [](const std::string& phase) { spdlog::info("{}", phase); };
  options.on_epoch = [tty](const engine::EpochRecord& r, int64_t max_epochs) {
    if (tty) {
      std::fprintf(stderr, "\r%s epoch %lld/%lld  loss %.5g  val %.4f%s   ", Bar(r.epoch, max_epochs).c_str(),
                   static_cast<long long>(r.epoch), static_cast<long long>(max_epochs), r.train_loss,
                   r.validation_score, r.improved ? " *" : "  ");
    } else {
      std::fprintf(stderr, "epoch %lld/%lld loss %.6g val %.6g%s (%.1f s)\n", static_cast<long long>(r.epoch),
                   static_cast<long long>(max_epochs), r.train_loss, r.validation_score, r.improved ? " best" : "",
                   r.seconds);
    }
    std::fflush(stderr);
  };
  auto result = worker::RunJob(*spec, options);
  if (tty) std::fputs("\n", stderr);
  if (!result.ok()) return Status(result.status().code(), config.job_file + ": " + result.status().message());

  // A job run here has no database to keep its spec: its result file carries it (defaults resolved).
  nlohmann::json document = worker::JobReportToJson(*result);
  document["spec"] = ToJson(result->spec);
  DWARP_RETURN_IF_ERROR(WriteFileAtomically(out, document.dump(2) + "\n", "--out"));
  const worker::JobReport& r = *result;
  const char* label = r.metric == "accuracy" ? "accuracy" : r.metric == "rsa" ? "RSA" : "R2";
  std::printf("d = %s (D = %lld): %s train %.4f  val %.4f  test %.4f  (%lld epochs, %.1f s)\n",
              r.spec.d.ToString().c_str(), static_cast<long long>(r.parameters_warped), label,
              worker::MetricScore(r.metric, r.train), worker::MetricScore(r.metric, r.validation),
              worker::MetricScore(r.metric, r.test), static_cast<long long>(r.epochs_run), r.seconds);
  std::printf("result written to %s\n", out.c_str());
  std::fflush(stdout);
  return out;
}

void AddTrainCommand(CLI::App& app) {
  auto config = std::make_shared<TrainCommandConfig>();
  CLI::App* cmd = app.add_subcommand("train", "Run one job (a YAML or JSON job file, configs/jobs/) on this machine and "
                                              "write its result as JSON");
  cmd->add_option("job", config->job_file, "Job file (.yaml, .yml or .json)")->required();
  cmd->add_option("overrides", config->overrides, "Hydra-style overrides: key=value, ~key, +key=value");
  cmd->add_option("--out", config->out, "Result JSON (default: runs/<job>-<UTC time>.json)");
  cmd->callback([config]() {
    auto written = RunTrainCommand(*config);
    if (!written.ok()) {
      spdlog::error("train failed: {}", written.status().ToString());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace dwarp::clients
