#include "common/rpc/job_result_message.h"

namespace dwarp::rpc {

v1::JobResult JobResultToProto(const JobResult& result) {
  v1::JobResult out;
  out.set_metric(result.metric);
  out.set_train_score(result.train_score);
  out.set_val_score(result.val_score);
  out.set_test_score(result.test_score);
  out.set_test_pearson_mean(result.test_pearson_mean);
  out.set_test_pearson_median(result.test_pearson_median);
  out.set_epochs_run(result.epochs_run);
  out.set_best_epoch(result.best_epoch);
  out.set_seconds(result.seconds);
  out.set_numbers_trained(result.numbers_trained);
  out.set_parameters_warped(result.parameters_warped);
  out.set_device(result.device);
  out.set_result_json(result.result_json);
  if (result.has_noise_ceiling()) out.set_noise_ceiling(result.noise_ceiling);
  return out;
}

JobResult JobResultFromProto(const v1::JobResult& message) {
  JobResult out;
  out.metric = message.metric();
  out.train_score = message.train_score();
  out.val_score = message.val_score();
  out.test_score = message.test_score();
  out.test_pearson_mean = message.test_pearson_mean();
  out.test_pearson_median = message.test_pearson_median();
  out.epochs_run = message.epochs_run();
  out.best_epoch = message.best_epoch();
  out.seconds = message.seconds();
  out.numbers_trained = message.numbers_trained();
  out.parameters_warped = message.parameters_warped();
  out.device = message.device();
  out.result_json = message.result_json();
  // Absent = unknown; a non-finite value sent anyway reads the same (the d_warp estimate ignores it too).
  if (message.has_noise_ceiling() && std::isfinite(message.noise_ceiling())) out.noise_ceiling = message.noise_ceiling();
  return out;
}

}  // namespace dwarp::rpc
