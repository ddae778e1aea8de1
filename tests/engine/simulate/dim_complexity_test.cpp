// Contract of worker/engine/simulate/dim_complexity.h: the pre-fits reach their functions, warping at a
// large d fits the target far better than at d = 1, runs are deterministic for a seed, and bad options
// fail naming the value. Small MLPs and few steps keep the whole file to seconds.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "worker/engine/simulate/dim_complexity.h"

namespace dwarp::engine {
namespace {

DimComplexityOptions Small() {
  return DimComplexityOptions()
      .hidden({16, 16})
      .train_points(32)
      .pretrain_epochs(400)
      .epochs(200)
      .dims({1, 100})
      .full(false)
      .threshold(0.9)
      .seed(3);
}

DimComplexityResult RunOk(const DimComplexityOptions& options) {
  auto result = RunDimComplexity(options);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? std::move(result).value() : DimComplexityResult{};
}

TEST(DimComplexityTest, FunctionsAreTheSeeds) {
  EXPECT_DOUBLE_EQ(*DimComplexityFunction("square", -0.5), 0.25);
  EXPECT_DOUBLE_EQ(*DimComplexityFunction("cube", -0.5), -0.125);
  EXPECT_NEAR(*DimComplexityFunction("sine", 1.0), 1.0, 1e-12);
  EXPECT_NEAR(*DimComplexityFunction("target", 1.0), std::sin(1.5 * M_PI / 2), 1e-12);
  EXPECT_NEAR(*DimComplexityFunction("target", 1.0 / 3.0), std::sin(M_PI / 4), 1e-12);
  auto unknown = DimComplexityFunction("quartic", 0.0);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("'quartic'"), std::string::npos) << unknown.status();
}

TEST(DimComplexityTest, PreFitsReachTheirFunctionsAndWarpingImprovesWithD) {
  const DimComplexityResult result = RunOk(Small());
  ASSERT_EQ(result.functions.size(), 3u);
  ASSERT_FALSE(result.grid.empty());
  EXPECT_EQ(result.grid.size(), result.target.size());
  // Held-out x lie strictly between training points: inside (-1, 1), ascending.
  EXPECT_GT(result.grid.front(), -1.0);
  EXPECT_LT(result.grid.back(), 1.0);
  EXPECT_EQ(result.parameter_count, (1 + 1) * 16 + (16 + 1) * 16 + (16 + 1) * 1);
  for (const auto& f : result.functions) {
    SCOPED_TRACE(f.name);
    EXPECT_GT(f.pretrain_r2, 0.98);
    EXPECT_EQ(f.initial_curve.size(), result.grid.size());
    ASSERT_EQ(f.fits.size(), 2u);
    ASSERT_TRUE(f.fits[0].d.has_value());
    EXPECT_EQ(*f.fits[0].d, 1);
    EXPECT_EQ(*f.fits[1].d, 100);
    EXPECT_EQ(f.fits[1].curve.size(), result.grid.size());
    // The largest d fits the target well, and never worse than d = 1 (allowing a little noise).
    EXPECT_GT(f.fits[1].r2, 0.95);
    EXPECT_GE(f.fits[1].r2, f.fits[0].r2 - 0.01);
    // Warping starts from the pre-fit: d = 1 cannot do much worse than not warping at all.
    EXPECT_GE(f.fits[0].r2, f.initial_target_r2 - 0.01);
  }
  // x² is even where the target is odd: one direction cannot fix that, 100 can.
  const auto& square = result.functions[0];
  EXPECT_EQ(square.name, "square");
  EXPECT_LT(square.initial_target_r2, 0.0);
  EXPECT_LT(square.fits[0].r2, 0.5);
  EXPECT_GT(square.fits[1].r2 - square.fits[0].r2, 0.45);
  // The seed's point: the initial function closest to the target reaches the threshold at a d no larger.
  const auto& sine = result.functions[2];
  ASSERT_TRUE(square.crossing.reached);
  ASSERT_TRUE(sine.crossing.reached);
  EXPECT_EQ(square.crossing.grid_d, 100);
  EXPECT_EQ(sine.crossing.grid_d, 1);
}

TEST(DimComplexityTest, FullRunFitsTheTarget) {
  const DimComplexityResult result = RunOk(Small().functions({"cube"}).dims({}).full(true));
  ASSERT_EQ(result.functions.size(), 1u);
  ASSERT_EQ(result.functions[0].fits.size(), 1u);
  EXPECT_FALSE(result.functions[0].fits[0].d.has_value());
  EXPECT_GT(result.functions[0].fits[0].r2, 0.95);
  EXPECT_GT(result.functions[0].fits[0].r2, result.functions[0].initial_target_r2);
  EXPECT_FALSE(result.functions[0].crossing.reached);  // no subspace runs: nothing to cross
}

TEST(DimComplexityTest, DeterministicForASeed) {
  const DimComplexityOptions options = Small().functions({"cube"}).dims({5});
  const DimComplexityResult a = RunOk(options), b = RunOk(options);
  ASSERT_EQ(a.functions.size(), 1u);
  ASSERT_EQ(b.functions.size(), 1u);
  EXPECT_EQ(a.functions[0].initial_curve, b.functions[0].initial_curve);
  ASSERT_EQ(a.functions[0].fits.size(), 1u);
  EXPECT_EQ(a.functions[0].fits[0].r2, b.functions[0].fits[0].r2);
  EXPECT_EQ(a.functions[0].fits[0].curve, b.functions[0].fits[0].curve);
  // Another seed is another initialisation and another subspace.
  const DimComplexityResult c = RunOk(DimComplexityOptions(options).seed(4));
  ASSERT_EQ(c.functions.size(), 1u);
  EXPECT_NE(a.functions[0].initial_curve, c.functions[0].initial_curve);
  EXPECT_NE(a.functions[0].fits[0].r2, c.functions[0].fits[0].r2);
}

void ExpectInvalid(const DimComplexityOptions& options, const std::string& needle) {
  auto result = RunDimComplexity(options);
  ASSERT_FALSE(result.ok()) << "expected a failure naming " << needle;
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find(needle), std::string::npos) << result.status();
}

TEST(DimComplexityTest, BadOptionsFailNamingTheValue) {
  ExpectInvalid(Small().dims({5, 0}), "d = 0");
  ExpectInvalid(Small().dims({-3}), "d = -3");
  ExpectInvalid(Small().dims({5, 5}), "d = 5 twice");
  ExpectInvalid(Small().functions({"cube", "quartic"}), "'quartic'");
  ExpectInvalid(Small().functions({"target"}), "'target'");  // the target is not an initial function
  ExpectInvalid(Small().functions({}), "functions is empty");
  ExpectInvalid(Small().dims({}).full(false), "nothing to run");
  ExpectInvalid(Small().hidden({16, 0}), "hidden width 0");
  ExpectInvalid(Small().epochs(0), "epochs = 0");
  ExpectInvalid(Small().lr(-1.0), "lr = -1");
  ExpectInvalid(Small().train_points(2), "train_points = 2");
  ExpectInvalid(Small().threshold(NAN), "threshold = nan");
}

}  // namespace
}  // namespace dwarp::engine
