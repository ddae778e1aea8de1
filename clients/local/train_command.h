// `dwarp train JOB.yaml [key=value ...]`: runs one job (common/job_spec.h) on this machine without the
// sweep service and writes its result as JSON: worker/job_runner.h JobReportToJson plus the spec it ran
// ("spec", defaults resolved), which a job run by a worker leaves to the coordinator's job row.
//
//   dwarp train configs/jobs/fashion_mnist_mlp_d300.yaml d=100 train.max_epochs=2 --out r.json
//
// Overrides are Hydra-style and go to the spec parser (`train.lr=0.01`, `d=full`, `~key`, `+key=v`).
// Progress goes to stderr: one \r-updated bar per epoch on a terminal, plain lines otherwise.
// --out FILE.json (default: runs/<job name>-<UTC time>.json, whose path is printed). The JSON is written
// to a temporary file next to the target and renamed, so a failed or interrupted run leaves no file.
// On failure the reason is logged and the command exits non-zero (CLI::RuntimeError(1)).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace CLI {
class App;
}

namespace dwarp::clients {

struct TrainCommandConfig {
  std::string job_file;
  std::vector<std::string> overrides;
  std::string out;  // empty: runs/<stem>-<time>.json
};

// Runs the command; on success returns the path of the JSON written.
StatusOr<std::string> RunTrainCommand(const TrainCommandConfig& config);

void AddTrainCommand(CLI::App& app);

}  // namespace dwarp::clients
