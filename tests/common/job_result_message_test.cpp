// common/rpc/job_result_message.h: a job's result crosses the wire and comes back with every field, and an
// unknown noise ceiling stays unknown (absent on the wire, NaN in memory) rather than turning into 0.
#include "common/rpc/job_result_message.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace dwarp::rpc {
namespace {

// Every field set to a value other than its default, doubles that do not survive a careless text round trip.
JobResult EveryFieldSet() {
  JobResult r;
  r.metric = "accuracy";
  r.train_score = 0.1 + 0.2;
  r.val_score = 1.0 / 3.0;
  r.test_score = 0.6875;
  r.test_pearson_mean = 0.7071067811865476;
  r.test_pearson_median = -0.25;
  r.epochs_run = 42;
  r.best_epoch = 37;
  r.seconds = 1234.5678;
  r.numbers_trained = 1000;
  r.parameters_warped = 11'689'512;
  r.device = "cuda:1";
  r.noise_ceiling = 1.0 / 1.01;
  r.result_json = R"({"d":"1000","note":"a\"b ü"})";
  return r;
}

void ExpectSame(const JobResult& want, const JobResult& got) {
  EXPECT_EQ(want.metric, got.metric);
  EXPECT_EQ(want.train_score, got.train_score);
  EXPECT_EQ(want.val_score, got.val_score);
  EXPECT_EQ(want.test_score, got.test_score);
  EXPECT_EQ(want.test_pearson_mean, got.test_pearson_mean);
  EXPECT_EQ(want.test_pearson_median, got.test_pearson_median);
  EXPECT_EQ(want.epochs_run, got.epochs_run);
  EXPECT_EQ(want.best_epoch, got.best_epoch);
  EXPECT_EQ(want.seconds, got.seconds);
  EXPECT_EQ(want.numbers_trained, got.numbers_trained);
  EXPECT_EQ(want.parameters_warped, got.parameters_warped);
  EXPECT_EQ(want.device, got.device);
  EXPECT_EQ(want.result_json, got.result_json);
  EXPECT_EQ(want.has_noise_ceiling(), got.has_noise_ceiling());
  if (want.has_noise_ceiling()) EXPECT_EQ(want.noise_ceiling, got.noise_ceiling);
}

TEST(JobResultMessageTest, EveryFieldSurvivesTheRoundTrip) {
  const JobResult sent = EveryFieldSet();
  const v1::JobResult message = JobResultToProto(sent);
  // The wire form itself, field by field (the numbers other processes read).
  EXPECT_EQ(message.metric(), "accuracy");
  EXPECT_EQ(message.train_score(), sent.train_score);
  EXPECT_EQ(message.val_score(), sent.val_score);
  EXPECT_EQ(message.test_score(), 0.6875);
  EXPECT_EQ(message.test_pearson_mean(), sent.test_pearson_mean);
  EXPECT_EQ(message.test_pearson_median(), -0.25);
  EXPECT_EQ(message.epochs_run(), 42);
  EXPECT_EQ(message.best_epoch(), 37);
  EXPECT_EQ(message.seconds(), 1234.5678);
  EXPECT_EQ(message.numbers_trained(), 1000);
  EXPECT_EQ(message.parameters_warped(), 11'689'512);
  EXPECT_EQ(message.device(), "cuda:1");
  EXPECT_EQ(message.result_json(), sent.result_json);
  ASSERT_TRUE(message.has_noise_ceiling());
  EXPECT_EQ(message.noise_ceiling(), 1.0 / 1.01);

  // Through the bytes, as gRPC carries it.
  v1::JobResult parsed;
  ASSERT_TRUE(parsed.ParseFromString(message.SerializeAsString()));
  ExpectSame(sent, JobResultFromProto(parsed));
}

TEST(JobResultMessageTest, AnUnknownNoiseCeilingStaysUnknown) {
  JobResult sent = EveryFieldSet();
  sent.noise_ceiling = std::numeric_limits<double>::quiet_NaN();
  const v1::JobResult message = JobResultToProto(sent);
  EXPECT_FALSE(message.has_noise_ceiling()) << "NaN must not be sent as a ceiling";
  const JobResult back = JobResultFromProto(message);
  EXPECT_TRUE(std::isnan(back.noise_ceiling)) << back.noise_ceiling;
  EXPECT_FALSE(back.has_noise_ceiling());
  ExpectSame(sent, back);

  // A message with no ceiling (a worker that never sets it) reads as unknown, not as 0.
  v1::JobResult bare;
  bare.set_metric("r2");
  EXPECT_TRUE(std::isnan(JobResultFromProto(bare).noise_ceiling));
  // A ceiling of 0 that is present is a ceiling of 0.
  bare.set_noise_ceiling(0.0);
  EXPECT_EQ(JobResultFromProto(bare).noise_ceiling, 0.0);
  // A non-finite ceiling sent anyway is unknown too.
  bare.set_noise_ceiling(std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(JobResultFromProto(bare).noise_ceiling));
}

}  // namespace
}  // namespace dwarp::rpc
