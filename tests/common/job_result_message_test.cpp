// common/rpc/job_result_message.h: a job's result crosses the wire and comes back with every field, and an
// unknown noise ceiling stays unknown (absent on the wire, NaN in memory) rather than turning into 0.
#include "common/rpc/job_result_message.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <tuple>

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

// Every field, an unknown (NaN) ceiling as an empty optional so that two unknowns compare equal.
auto Fields(const JobResult& r) {
  const std::optional<double> ceiling = r.has_noise_ceiling() ? std::optional<double>(r.noise_ceiling) : std::nullopt;
  return std::make_tuple(r.metric, r.train_score, r.val_score, r.test_score, r.test_pearson_mean,
                         r.test_pearson_median, r.epochs_run, r.best_epoch, r.seconds, r.numbers_trained,
                         r.parameters_warped, r.device, r.result_json, ceiling);
}

void ExpectSame(const JobResult& want, const JobResult& got) { EXPECT_EQ(Fields(want), Fields(got)); }

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
