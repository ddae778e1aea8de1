// NSD, Majaj-Hong 2015 and the generic layout, each loaded from a small fixture in its real layout
// (fixtures/make_neural_fixtures.py: netCDF written by xarray, CSV by pandas, images by PIL, .npy by numpy).
// The fixtures' responses are chosen so averaged rows are known exactly: NSD stimulus s, voxel j -> 10 s + j
// (voxel ROIs V1v LOC V1v FFA-1);
// Majaj-Hong image i, neuroid j -> 10 i + j.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tests/engine/datasets/neural_fixtures.h"
#include "worker/engine/datasets/generic_neural_dataset.h"
#include "worker/engine/datasets/majaj_hong_dataset.h"
#include "worker/engine/datasets/netcdf_file.h"
#include "worker/engine/datasets/npy_file.h"
#include "worker/engine/datasets/nsd_dataset.h"

namespace dwarp::engine {
namespace {

namespace fs = std::filesystem;
using testing::FixtureCopy;
using testing::FixturePath;

#define REQUIRE_NETCDF_FIXTURES()                                   \
  do {                                                              \
    DWARP_REQUIRE_NEURAL_FIXTURES();                                \
    if (!NetcdfAvailable()) GTEST_SKIP() << "built without libnetcdf"; \
  } while (0)

std::vector<std::string> Ids(std::initializer_list<int> ids, const std::string& prefix = "") {
  std::vector<std::string> out;
  for (int i : ids) out.push_back(prefix + std::to_string(i));
  return out;
}

// Rows id_value(id) * 10 + column(j) for each id, as float32 [ids, columns].
at::Tensor Expected(const std::vector<double>& id_values, const std::vector<int64_t>& columns) {
  at::Tensor out = at::empty({static_cast<int64_t>(id_values.size()), static_cast<int64_t>(columns.size())});
  for (size_t i = 0; i < id_values.size(); ++i) {
    for (size_t j = 0; j < columns.size(); ++j) {
      out[static_cast<int64_t>(i)][static_cast<int64_t>(j)] = id_values[i] * 10 + static_cast<double>(columns[j]);
    }
  }
  return out;
}

void ExpectDisjoint(const NeuralData& data) {
  std::set<std::string> seen;
  for (const NeuralSplit* s : {&data.train, &data.validation, &data.test}) {
    for (const auto& id : s->stimulus_ids) EXPECT_TRUE(seen.insert(id).second) << "stimulus " << id << " in two splits";
  }
}

// ------------------------------------------------------------------ NSD

TEST(NsdDatasetTest, LoadsSplitsAsTheSeedAndAveragesRepeatedPresentations) {
  REQUIRE_NETCDF_FIXTURES();
  auto data = LoadNsd(FixturePath("nsd"), NsdOptions().image(ImageOptions().size(8)));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(CheckNeuralData(*data).ok());
  // 7 non-shared stimuli: floor(0.8 * 7) = 5 train, 2 validation; 3 shared1000 = test, in voxels.nc order.
  EXPECT_EQ(data->train.stimulus_ids, Ids({100, 101, 102, 103, 104}));
  EXPECT_EQ(data->validation.stimulus_ids, Ids({105, 106}));
  EXPECT_EQ(data->test.stimulus_ids, Ids({107, 108, 109}));
  ExpectDisjoint(*data);
  EXPECT_EQ(data->num_targets(), 4);
  EXPECT_EQ(data->train.stimuli.sizes(), at::IntArrayRef({5, 3, 8, 8}));
  EXPECT_EQ(data->test.stimuli.sizes(), at::IntArrayRef({3, 3, 8, 8}));
  // 100 was shown 3 times, 103 twice: averaged to exactly 10 s + j.
  EXPECT_TRUE(at::allclose(data->train.responses, Expected({100, 101, 102, 103, 104}, {0, 1, 2, 3})));
  EXPECT_TRUE(at::allclose(data->validation.responses, Expected({105, 106}, {0, 1, 2, 3})));
  EXPECT_TRUE(at::allclose(data->test.responses, Expected({107, 108, 109}, {0, 1, 2, 3})));
  EXPECT_FALSE(data->noise_ceiling.defined());
  // The image of stimulus 104 is the solid colour (4, 20, 200), ImageNet-normalised.
  EXPECT_NEAR(data->train.stimuli[4][0].mean().item<float>(), (4 / 255.0f - 0.485f) / 0.229f, 1e-4);
  EXPECT_NEAR(data->train.stimuli[4][2].mean().item<float>(), (200 / 255.0f - 0.406f) / 0.225f, 1e-4);
  // 101 is a grayscale PNG: replicated to 3 equal channels.
  auto gray = data->train.stimuli[1];
  EXPECT_TRUE(at::allclose(gray[0] * 0.229f + 0.485f, gray[1] * 0.224f + 0.456f, 1e-5, 1e-5));
}

TEST(NsdDatasetTest, LimitsStimuliPerSplitAfterSplitting) {
  REQUIRE_NETCDF_FIXTURES();
  auto data = LoadNsd(FixturePath("nsd"), NsdOptions().image(ImageOptions().size(4)).max_stimuli_per_split(1));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->train.stimulus_ids, Ids({100}));
  EXPECT_EQ(data->validation.stimulus_ids, Ids({105}));
  EXPECT_EQ(data->test.stimulus_ids, Ids({107}));
}

TEST(NsdDatasetTest, MissingFilesAndImagesAreNamed) {
  REQUIRE_NETCDF_FIXTURES();
  FixtureCopy no_voxels("nsd");
  fs::remove(no_voxels.path("voxels.nc"));
  EXPECT_ERROR_MENTIONS(LoadNsd(no_voxels.path()).status(), StatusCode::kNotFound, no_voxels.path("voxels.nc"));

  FixtureCopy no_metadata("nsd");
  fs::remove(no_metadata.path("metadata.csv"));
  EXPECT_ERROR_MENTIONS(LoadNsd(no_metadata.path()).status(), StatusCode::kNotFound,
                        no_metadata.path("metadata.csv"));

  FixtureCopy no_image("nsd");
  fs::remove(no_image.path("stimuli/nsd_104.png"));
  EXPECT_ERROR_MENTIONS(LoadNsd(no_image.path(), NsdOptions().image(ImageOptions().size(4))).status(),
                        StatusCode::kNotFound, no_image.path("stimuli/nsd_104.png"));

  FixtureCopy bad_image("nsd");
  bad_image.Write("stimuli/nsd_106.png", "not a png");
  EXPECT_ERROR_MENTIONS(LoadNsd(bad_image.path(), NsdOptions().image(ImageOptions().size(4))).status(),
                        StatusCode::kInvalidArgument, bad_image.path("stimuli/nsd_106.png"), "cannot decode");
}

TEST(NsdDatasetTest, StimulusIdsMustMatchBetweenVoxelsAndMetadata) {
  REQUIRE_NETCDF_FIXTURES();
  // metadata.csv lacks stimulus 105, which voxels.nc holds.
  FixtureCopy lacking("nsd");
  std::string csv = lacking.Read("metadata.csv");
  const size_t row = csv.find("\n5,105,");
  ASSERT_NE(row, std::string::npos) << csv;
  csv.erase(row, csv.find('\n', row + 1) - row);
  lacking.Write("metadata.csv", csv);
  EXPECT_ERROR_MENTIONS(LoadNsd(lacking.path()).status(), StatusCode::kInvalidArgument, "'105'",
                        "missing from metadata.csv", lacking.path("voxels.nc"));

  // metadata.csv has stimulus 555, which voxels.nc lacks: an error unless allowed.
  FixtureCopy extra("nsd");
  extra.Write("metadata.csv", extra.Read("metadata.csv") + "10,555,nsd_555.png,False,5555\n");
  EXPECT_ERROR_MENTIONS(LoadNsd(extra.path()).status(), StatusCode::kInvalidArgument, "'555'",
                        "missing from voxels.nc", extra.path("metadata.csv"));
  auto allowed =
      LoadNsd(extra.path(), NsdOptions().allow_unused_metadata(true).image(ImageOptions().size(4)));
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_EQ(allowed->train.size() + allowed->validation.size() + allowed->test.size(), 10);

  FixtureCopy bad_bool("nsd");
  std::string text = bad_bool.Read("metadata.csv");
  text.replace(text.find(",True,"), 6, ",maybe,");
  bad_bool.Write("metadata.csv", text);
  EXPECT_ERROR_MENTIONS(LoadNsd(bad_bool.path()).status(), StatusCode::kInvalidArgument, "'maybe'", "shared1000");
}

TEST(NsdDatasetTest, NanResponseIsNamedByStimulusAndVoxel) {
  REQUIRE_NETCDF_FIXTURES();
  EXPECT_ERROR_MENTIONS(LoadNsd(FixturePath("nsd_nan")).status(), StatusCode::kInvalidArgument, "voxels.nc",
                        "row 5", "stimulus '104'", "column 2", "nan");
}

// The NSD fixture's voxels are labelled V1v LOC V1v FFA-1 by its `roi` coordinate.
TEST(NsdDatasetTest, OneRoiIsThatRoisVoxelsOfTheFullLoad) {
  REQUIRE_NETCDF_FIXTURES();
  const auto options = NsdOptions().image(ImageOptions().size(4));
  auto full = LoadNsd(FixturePath("nsd"), options);
  auto v1v = LoadNsd(FixturePath("nsd"), NsdOptions(options).roi("V1v"));
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_TRUE(v1v.ok()) << v1v.status();
  EXPECT_TRUE(CheckNeuralData(*v1v).ok());
  EXPECT_EQ(full->num_targets(), 4);  // no rois: every voxel
  EXPECT_EQ(v1v->target_names, (std::vector<std::string>{"0", "2"}));
  const at::Tensor columns = at::tensor(std::vector<int64_t>{0, 2}, at::kLong);
  for (const auto& [roi, all] : {std::pair{&v1v->train, &full->train}, std::pair{&v1v->validation, &full->validation},
                                 std::pair{&v1v->test, &full->test}}) {
    EXPECT_EQ(roi->stimulus_ids, all->stimulus_ids);
    EXPECT_TRUE(at::equal(roi->responses, all->responses.index_select(1, columns)));
    EXPECT_TRUE(at::equal(roi->stimuli, all->stimuli));
  }
  EXPECT_TRUE(at::allclose(v1v->test.responses, Expected({107, 108, 109}, {0, 2})));
  EXPECT_NE(v1v->description.find("nsd V1v:"), std::string::npos) << v1v->description;
}

TEST(NsdDatasetTest, SeveralRoisAreTheirVoxelsInRoiOrder) {
  REQUIRE_NETCDF_FIXTURES();
  const auto options = NsdOptions().image(ImageOptions().size(4));
  auto full = LoadNsd(FixturePath("nsd"), options);
  // FFA-1 first: roi order, not the file's voxel order.
  auto both = LoadNsd(FixturePath("nsd"), NsdOptions(options).rois({"FFA-1", "V1v"}));
  ASSERT_TRUE(full.ok()) << full.status();
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_TRUE(CheckNeuralData(*both).ok());
  EXPECT_EQ(both->target_names, (std::vector<std::string>{"3", "0", "2"}));
  const at::Tensor columns = at::tensor(std::vector<int64_t>{3, 0, 2}, at::kLong);
  EXPECT_TRUE(at::equal(both->train.responses, full->train.responses.index_select(1, columns)));
  EXPECT_TRUE(at::equal(both->validation.responses, full->validation.responses.index_select(1, columns)));
  EXPECT_TRUE(at::equal(both->test.responses, full->test.responses.index_select(1, columns)));
  EXPECT_TRUE(at::allclose(both->train.responses, Expected({100, 101, 102, 103, 104}, {3, 0, 2})));
  EXPECT_NE(both->description.find("nsd FFA-1+V1v:"), std::string::npos) << both->description;
}

TEST(NsdDatasetTest, UnknownOrRepeatedRoiIsAnError) {
  REQUIRE_NETCDF_FIXTURES();
  const std::string voxels = FixturePath("nsd/voxels.nc");
  EXPECT_ERROR_MENTIONS(LoadNsd(FixturePath("nsd"), NsdOptions().rois({"V1v", "V5"})).status(),
                        StatusCode::kInvalidArgument, "'V5' matches no voxel", voxels,
                        "the available regions (coordinate 'roi') are 'V1v', 'LOC', 'FFA-1'");
  EXPECT_ERROR_MENTIONS(LoadNsd(FixturePath("nsd"), NsdOptions().rois({"LOC", "V1v", "LOC"})).status(),
                        StatusCode::kInvalidArgument, "'LOC' is listed twice", "entries 0 and 2");
}

TEST(NsdDatasetTest, RoisNeedTheRoiCoordinateOnTheVoxelDimension) {
  REQUIRE_NETCDF_FIXTURES();
  const std::string voxels = FixturePath("nsd/voxels.nc");
  // As a voxels.nc without a per-voxel ROI label (e.g. one ROI's voxels already cut out).
  EXPECT_ERROR_MENTIONS(
      LoadNsd(FixturePath("nsd"), NsdOptions().roi("LOC").roi_coord("nsd_roi")).status(),
      StatusCode::kInvalidArgument, voxels, "no 1-D coordinate 'nsd_roi'", "'stimulus_id'", "'subject'", "'roi'",
      "'LOC'", "a voxels.nc that already holds one ROI's voxels needs no data.roi");
  EXPECT_ERROR_MENTIONS(LoadNsd(FixturePath("nsd"), NsdOptions().roi("subj01").roi_coord("subject")).status(),
                        StatusCode::kInvalidArgument, voxels, "'subject' lies on dimension 'presentation'",
                        "expected the voxel dimension 'neuroid'");
}

TEST(NsdDatasetTest, OnlyTheSelectedVoxelsMustBeFinite) {
  REQUIRE_NETCDF_FIXTURES();
  // nsd_nan: voxel 2 (V1v) of stimulus 104 is NaN.
  auto loc = LoadNsd(FixturePath("nsd_nan"), NsdOptions().roi("LOC").image(ImageOptions().size(4)));
  ASSERT_TRUE(loc.ok()) << loc.status();
  EXPECT_TRUE(at::allclose(loc->train.responses, Expected({100, 101, 102, 103, 104}, {1})));
  EXPECT_ERROR_MENTIONS(LoadNsd(FixturePath("nsd_nan"), NsdOptions().roi("V1v")).status(),
                        StatusCode::kInvalidArgument, "stimulus '104'", "column 1", "target '2'", "nan");
}

// ------------------------------------------------------------------ Majaj-Hong

TEST(MajajHongDatasetTest, BrainIoAssemblyFiltersRoiAveragesRepetitionsAndSplits60_20_20) {
  REQUIRE_NETCDF_FIXTURES();
  auto data = LoadMajajHong(FixturePath("majaj/brainio.nc"), FixturePath("majaj/stimuli"),
                            MajajHongOptions().roi("IT").image(ImageOptions().size(6)));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(CheckNeuralData(*data).ok());
  EXPECT_EQ(data->target_names, (std::vector<std::string>{"Chabo_L_M_0", "Chabo_L_M_2", "Chabo_L_M_4"}));
  EXPECT_EQ(data->train.stimulus_ids, Ids({0, 1, 2, 3, 4, 5}, "img"));
  EXPECT_EQ(data->validation.stimulus_ids, Ids({6, 7}, "img"));
  EXPECT_EQ(data->test.stimulus_ids, Ids({8, 9}, "img"));
  ExpectDisjoint(*data);
  EXPECT_EQ(data->train.stimuli.sizes(), at::IntArrayRef({6, 3, 6, 6}));
  // Two repetitions (offsets -0.5, +0.5) averaged: 10 i + j for the IT neuroids j = 0, 2, 4.
  EXPECT_TRUE(at::allclose(data->train.responses, Expected({0, 1, 2, 3, 4, 5}, {0, 2, 4})));
  EXPECT_TRUE(at::allclose(data->test.responses, Expected({8, 9}, {0, 2, 4})));
  // img3's image is the solid colour (30, 100, 50).
  EXPECT_NEAR(data->train.stimuli[3][0].mean().item<float>(), (30 / 255.0f - 0.485f) / 0.229f, 1e-4);

  auto v4 = LoadMajajHong(FixturePath("majaj/brainio.nc"), FixturePath("majaj/stimuli"),
                          MajajHongOptions().roi("V4").image(ImageOptions().size(4)));
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(v4->num_targets(), 2);
  EXPECT_TRUE(at::allclose(v4->validation.responses, Expected({6, 7}, {1, 3})));
}

TEST(MajajHongDatasetTest, SeedLayoutWithImageIdDimensionAndCharRegionsGivesTheSameData) {
  REQUIRE_NETCDF_FIXTURES();
  const auto options = MajajHongOptions().image(ImageOptions().size(4));
  auto brainio = LoadMajajHong(FixturePath("majaj/brainio.nc"), FixturePath("majaj/stimuli"), options);
  auto seed = LoadMajajHong(FixturePath("majaj/seed.nc"), FixturePath("majaj/stimuli"), options);
  ASSERT_TRUE(brainio.ok()) << brainio.status();
  ASSERT_TRUE(seed.ok()) << seed.status();  // no image_name coordinate: files are <image_id>.png
  EXPECT_EQ(seed->test.stimulus_ids, brainio->test.stimulus_ids);
  EXPECT_TRUE(at::allclose(seed->train.responses, brainio->train.responses));
  EXPECT_TRUE(at::equal(seed->validation.stimuli, brainio->validation.stimuli));
  EXPECT_EQ(seed->target_names, (std::vector<std::string>{"0", "2", "4"}));
}

TEST(MajajHongDatasetTest, UnknownRoiListsTheAvailableRegions) {
  REQUIRE_NETCDF_FIXTURES();
  EXPECT_ERROR_MENTIONS(
      LoadMajajHong(FixturePath("majaj/brainio.nc"), FixturePath("majaj/stimuli"), MajajHongOptions().roi("V1"))
          .status(),
      StatusCode::kInvalidArgument, "'V1'", "'IT', 'V4'", "brainio.nc");
}

TEST(MajajHongDatasetTest, SeveralRoisAreTheSingleRegionLoadsSideBySideInRoiOrder) {
  REQUIRE_NETCDF_FIXTURES();
  const std::string nc = FixturePath("majaj/brainio.nc");
  const std::string images = FixturePath("majaj/stimuli");
  const auto options = MajajHongOptions().image(ImageOptions().size(4));
  auto it = LoadMajajHong(nc, images, MajajHongOptions(options).roi("IT"));
  auto v4 = LoadMajajHong(nc, images, MajajHongOptions(options).roi("V4"));
  // V4 first: roi order, not the file's neuroid order (IT V4 IT V4 IT).
  auto both = LoadMajajHong(nc, images, MajajHongOptions(options).rois({"V4", "IT"}));
  ASSERT_TRUE(it.ok()) << it.status();
  ASSERT_TRUE(v4.ok()) << v4.status();
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_TRUE(CheckNeuralData(*both).ok());
  EXPECT_EQ(both->num_targets(), it->num_targets() + v4->num_targets());
  EXPECT_EQ(both->num_targets(), 5);
  EXPECT_EQ(both->target_names, (std::vector<std::string>{"Chabo_L_M_1", "Chabo_L_M_3", "Chabo_L_M_0",
                                                          "Chabo_L_M_2", "Chabo_L_M_4"}));
  const std::pair<const NeuralSplit*, std::pair<const NeuralSplit*, const NeuralSplit*>> splits[] = {
      {&both->train, {&v4->train, &it->train}},
      {&both->validation, {&v4->validation, &it->validation}},
      {&both->test, {&v4->test, &it->test}}};
  for (const auto& [combined, single] : splits) {
    EXPECT_EQ(combined->stimulus_ids, single.second->stimulus_ids);
    EXPECT_TRUE(at::equal(combined->responses.slice(1, 0, 2), single.first->responses));
    EXPECT_TRUE(at::equal(combined->responses.slice(1, 2, 5), single.second->responses));
    EXPECT_TRUE(at::equal(combined->stimuli, single.second->stimuli));
  }
  EXPECT_TRUE(at::allclose(both->test.responses, Expected({8, 9}, {1, 3, 0, 2, 4})));
  EXPECT_NE(both->description.find("majaj_hong V4+IT:"), std::string::npos) << both->description;
}

TEST(MajajHongDatasetTest, RoiListedTwiceUnknownInAListOrEmptyIsAnError) {
  REQUIRE_NETCDF_FIXTURES();
  const std::string nc = FixturePath("majaj/brainio.nc");
  const std::string images = FixturePath("majaj/stimuli");
  EXPECT_ERROR_MENTIONS(LoadMajajHong(nc, images, MajajHongOptions().rois({"IT", "V4", "IT"})).status(),
                        StatusCode::kInvalidArgument, "'IT' is listed twice", "entries 0 and 2",
                        "expected each region once");
  EXPECT_ERROR_MENTIONS(LoadMajajHong(nc, images, MajajHongOptions().rois({"IT", "V1"})).status(),
                        StatusCode::kInvalidArgument, "'V1' matches no neuroid", "'IT', 'V4'", "brainio.nc");
  EXPECT_ERROR_MENTIONS(LoadMajajHong(nc, images, MajajHongOptions().rois({})).status(),
                        StatusCode::kInvalidArgument, "no roi", "'IT', 'V4'");
}

TEST(MajajHongDatasetTest, CoordinateNamesAndMetadataAreOptions) {
  REQUIRE_NETCDF_FIXTURES();
  EXPECT_ERROR_MENTIONS(LoadMajajHong(FixturePath("majaj/brainio.nc"), FixturePath("majaj/stimuli"),
                                      MajajHongOptions().stimulus_id_coord("stimulus_id"))
                            .status(),
                        StatusCode::kInvalidArgument, "'stimulus_id'", "'image_id'", "'repetition'");

  // The seed's neural.nc + metadata.csv variant: file names from the CSV (here reversed: imgK -> img(9-K).png).
  FixtureCopy majaj("majaj");
  std::string csv = "image_id,filename,object_name\n";
  for (int k = 0; k < 10; ++k) csv += "img" + std::to_string(k) + ",img" + std::to_string(9 - k) + ".png,car\n";
  majaj.Write("metadata.csv", csv);
  const auto options = MajajHongOptions().metadata_csv(majaj.path("metadata.csv")).image(ImageOptions().size(4));
  auto data = LoadMajajHong(majaj.path("seed.nc"), majaj.path("stimuli"), options);
  ASSERT_TRUE(data.ok()) << data.status();
  auto img9 = LoadImage(majaj.path("stimuli/img9.png"), ImageOptions().size(4));
  ASSERT_TRUE(img9.ok());
  EXPECT_TRUE(at::equal(data->train.stimuli[0], *img9));  // img0's row shows img9.png

  majaj.Write("metadata.csv", csv.substr(0, csv.rfind("img9,")));
  EXPECT_ERROR_MENTIONS(LoadMajajHong(majaj.path("seed.nc"), majaj.path("stimuli"), options).status(),
                        StatusCode::kInvalidArgument, "'img9'", majaj.path("metadata.csv"));
}

TEST(MajajHongDatasetTest, MissingFilesAreNamed) {
  REQUIRE_NETCDF_FIXTURES();
  EXPECT_ERROR_MENTIONS(LoadMajajHong("/nonexistent/mh.nc", FixturePath("majaj/stimuli")).status(),
                        StatusCode::kNotFound, "/nonexistent/mh.nc");
  EXPECT_ERROR_MENTIONS(LoadMajajHong(FixturePath("majaj/brainio.nc"), "/nonexistent/stimuli").status(),
                        StatusCode::kNotFound, "/nonexistent/stimuli");
  FixtureCopy majaj("majaj");
  fs::remove(majaj.path("stimuli/img7.png"));
  EXPECT_ERROR_MENTIONS(LoadMajajHong(majaj.path("brainio.nc"), majaj.path("stimuli"),
                                      MajajHongOptions().image(ImageOptions().size(4)))
                            .status(),
                        StatusCode::kNotFound, majaj.path("stimuli/img7.png"));
}

// The lab layouts (fixtures/majaj_lab): the BrainIO assembly's first repetition, one row per image, image_id the
// dimension, regions IT V4 IT V4 IT V1, responses exactly 10 i + j, written by xarray as netCDF3 and netCDF4
// with char and variable-length strings, with and without image_id values.
TEST(MajajHongLabLayoutTest, CharAndVariableLengthStringsInNetcdf3AndNetcdf4LoadTheSame) {
  REQUIRE_NETCDF_FIXTURES();
  const auto options = MajajHongOptions().rois({"V4", "IT"}).image(ImageOptions().size(4));
  auto reference = LoadMajajHong(FixturePath("majaj/brainio.nc"), FixturePath("majaj/stimuli"), options);
  ASSERT_TRUE(reference.ok()) << reference.status();
  for (const char* layout : {"netcdf3.nc", "netcdf3_classic.nc", "s1.nc", "vlen.nc"}) {
    SCOPED_TRACE(layout);
    auto data = LoadMajajHong(FixturePath(std::string("majaj_lab/") + layout), FixturePath("majaj/stimuli"), options);
    ASSERT_TRUE(data.ok()) << data.status();
    EXPECT_EQ(data->train.stimulus_ids, reference->train.stimulus_ids);
    EXPECT_EQ(data->test.stimulus_ids, Ids({8, 9}, "img"));
    EXPECT_EQ(data->target_names, reference->target_names);
    EXPECT_TRUE(at::allclose(data->train.responses, reference->train.responses));
    EXPECT_TRUE(at::allclose(data->test.responses, Expected({8, 9}, {1, 3, 0, 2, 4})));
    EXPECT_TRUE(at::equal(data->validation.stimuli, reference->validation.stimuli));
  }
}

TEST(MajajHongLabLayoutTest, NetcdfCharStringsAreReadAsXarrayDecodesThem) {
  REQUIRE_NETCDF_FIXTURES();
  auto file = NetcdfFile::Open(FixturePath("majaj_lab/netcdf3.nc"));
  ASSERT_TRUE(file.ok()) << file.status();
  const NetcdfVariable* ids = file->FindVariable("image_id");
  ASSERT_NE(ids, nullptr);
  EXPECT_TRUE(ids->IsCharArray());
  EXPECT_EQ(ids->dims, (std::vector<std::string>{"image_id", "string4"}));
  EXPECT_EQ(ids->ValueDims(), (std::vector<std::string>{"image_id"}));
  auto values = file->ReadStrings("image_id");
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_EQ(*values, Ids({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, "img"));
  auto regions = file->ReadStrings("region");  // "IT" fills its string2 exactly: no NUL to strip
  ASSERT_TRUE(regions.ok()) << regions.status();
  EXPECT_EQ(*regions, (std::vector<std::string>{"IT", "V4", "IT", "V4", "IT", "V1"}));
  // The char-array dimension coordinate is a coordinate, not a second data variable.
  auto name = FindDataArrayVariable(*file);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(*name, "dicarlo.MajajHong2015.public");
  EXPECT_EQ(file->VariablesOnDimension("image_id"),
            (std::vector<std::string>{"image_id", "image_name", "object_name"}));
}

TEST(MajajHongLabLayoutTest, WithoutImageIdValuesTheRowPositionIsTheId) {
  REQUIRE_NETCDF_FIXTURES();
  const auto options = MajajHongOptions().image(ImageOptions().size(4));
  auto reference = LoadMajajHong(FixturePath("majaj_lab/vlen.nc"), FixturePath("majaj/stimuli"), options);
  ASSERT_TRUE(reference.ok()) << reference.status();
  for (const char* layout : {"no_ids_netcdf4.nc", "no_ids_netcdf3.nc"}) {
    SCOPED_TRACE(layout);
    auto data = LoadMajajHong(FixturePath(std::string("majaj_lab/") + layout), FixturePath("majaj/stimuli"), options);
    ASSERT_TRUE(data.ok()) << data.status();
    EXPECT_EQ(data->train.stimulus_ids, Ids({0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(data->test.stimulus_ids, Ids({8, 9}));
    // The images still come from image_name: the same stimuli and responses as with ids.
    EXPECT_TRUE(at::equal(data->train.stimuli, reference->train.stimuli));
    EXPECT_TRUE(at::allclose(data->test.responses, Expected({8, 9}, {0, 2, 4})));
  }
  EXPECT_ERROR_MENTIONS(
      LoadMajajHong(FixturePath("majaj_lab/no_ids_no_names.nc"), FixturePath("majaj/stimuli"), options).status(),
      StatusCode::kInvalidArgument, "no_ids_no_names.nc", "'image_id' has no coordinate values",
      "file-name coordinate 'image_name'");
}

TEST(MajajHongLabLayoutTest, CoordinateNamesComeFromTheOptions) {
  REQUIRE_NETCDF_FIXTURES();
  const std::string renamed = FixturePath("majaj_lab/renamed.nc");
  const auto options = MajajHongOptions().image(ImageOptions().size(4));
  EXPECT_ERROR_MENTIONS(LoadMajajHong(renamed, FixturePath("majaj/stimuli"), options).status(),
                        StatusCode::kInvalidArgument, "no 1-D coordinate 'region'", "'area'");
  auto data = LoadMajajHong(renamed, FixturePath("majaj/stimuli"),
                            MajajHongOptions(options).stimulus_id_coord("stim").filename_coord("file").region_coord(
                                "area"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->test.stimulus_ids, Ids({8, 9}, "img"));
  EXPECT_TRUE(at::allclose(data->test.responses, Expected({8, 9}, {0, 2, 4})));
}

TEST(MajajHongLabLayoutTest, RegionsAreTheFilesRegions) {
  REQUIRE_NETCDF_FIXTURES();
  const std::string nc = FixturePath("majaj_lab/netcdf3.nc");
  const auto options = MajajHongOptions().image(ImageOptions().size(4));
  auto v1 = LoadMajajHong(nc, FixturePath("majaj/stimuli"), MajajHongOptions(options).rois({"V1", "IT"}));
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(v1->target_names, (std::vector<std::string>{"Chabo_L_M_5", "Chabo_L_M_0", "Chabo_L_M_2", "Chabo_L_M_4"}));
  EXPECT_TRUE(at::allclose(v1->test.responses, Expected({8, 9}, {5, 0, 2, 4})));
  EXPECT_ERROR_MENTIONS(LoadMajajHong(nc, FixturePath("majaj/stimuli"), MajajHongOptions(options).roi("pIT")).status(),
                        StatusCode::kInvalidArgument, "'pIT' matches no neuroid", "'IT', 'V4', 'V1'");
}

TEST(MajajHongLabLayoutTest, NanResponsesAreRefusedOrTheirNeuroidsDropped) {
  REQUIRE_NETCDF_FIXTURES();
  const std::string nc = FixturePath("majaj_lab/nan.nc");
  const auto options = MajajHongOptions().image(ImageOptions().size(4));
  // Image 4, neuroid 2 (IT) is NaN.
  EXPECT_ERROR_MENTIONS(LoadMajajHong(nc, FixturePath("majaj/stimuli"), options).status(),
                        StatusCode::kInvalidArgument, "nan.nc", "stimulus 'img4'", "target 'Chabo_L_M_2'", "nan");
  auto dropped = LoadMajajHong(nc, FixturePath("majaj/stimuli"),
                               MajajHongOptions(options).nan_responses(NanResponses::kDropTargets));
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(dropped->target_names, (std::vector<std::string>{"Chabo_L_M_0", "Chabo_L_M_4"}));
  EXPECT_TRUE(at::allclose(dropped->train.responses, Expected({0, 1, 2, 3, 4, 5}, {0, 4})));
  EXPECT_NE(dropped->description.find("x 2 neuroids; 1 of 3 neuroids dropped for NaN responses: 'Chabo_L_M_2'"),
            std::string::npos)
      << dropped->description;
  // V4 holds no NaN: nothing dropped, nothing said.
  auto v4 = LoadMajajHong(nc, FixturePath("majaj/stimuli"),
                          MajajHongOptions(options).roi("V4").nan_responses(NanResponses::kDropTargets));
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(v4->num_targets(), 2);
  EXPECT_EQ(v4->description.find("dropped"), std::string::npos) << v4->description;
}

// nsd_masks: the NSD fixture as netCDF3 with ROIs as boolean masks roi_V1v = voxels 0, 1 and roi_LOC = 1, 2.
TEST(NsdDatasetTest, RoisFromBooleanMaskCoordinates) {
  REQUIRE_NETCDF_FIXTURES();
  const auto options = NsdOptions().image(ImageOptions().size(4));
  auto both = LoadNsd(FixturePath("nsd_masks"), NsdOptions(options).rois({"LOC", "V1v"}));
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(both->target_names, (std::vector<std::string>{"1", "2", "0", "1"}));
  EXPECT_TRUE(at::allclose(both->test.responses, Expected({107, 108, 109}, {1, 2, 0, 1})));
  EXPECT_EQ(both->train.stimulus_ids, Ids({100, 101, 102, 103, 104}));
  EXPECT_NE(both->description.find("nsd LOC+V1v:"), std::string::npos) << both->description;
  EXPECT_ERROR_MENTIONS(LoadNsd(FixturePath("nsd_masks"), NsdOptions(options).roi("FFA-1")).status(),
                        StatusCode::kInvalidArgument, "'FFA-1' matches no voxel", "masks 'roi_<name>'",
                        "'V1v', 'LOC'");
}

TEST(NsdDatasetTest, NanVoxelsMayBeDropped) {
  REQUIRE_NETCDF_FIXTURES();
  // nsd_nan: voxel 2 (V1v) of stimulus 104 is NaN.
  auto data = LoadNsd(FixturePath("nsd_nan"),
                      NsdOptions().image(ImageOptions().size(4)).nan_responses(NanResponses::kDropTargets));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->target_names, (std::vector<std::string>{"0", "1", "3"}));
  EXPECT_TRUE(at::allclose(data->train.responses, Expected({100, 101, 102, 103, 104}, {0, 1, 3})));
  EXPECT_NE(data->description.find("1 of 4 voxels dropped for NaN responses: '2'"), std::string::npos)
      << data->description;
}

// ------------------------------------------------------------------ generic layout

TEST(GenericNeuralDatasetTest, ImagesListedInCsvWithSplitColumnAndNoiseCeiling) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  auto data = LoadGenericNeuralData(FixturePath("generic_images"),
                                    GenericNeuralOptions().image(ImageOptions().size(5).normalize(false)));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_TRUE(CheckNeuralData(*data).ok());
  // split column: train, test, train, val, train, validation, test, train
  EXPECT_EQ(data->train.stimulus_ids, Ids({0, 2, 4, 7}, "s"));
  EXPECT_EQ(data->validation.stimulus_ids, Ids({3, 5}, "s"));
  EXPECT_EQ(data->test.stimulus_ids, Ids({1, 6}, "s"));
  EXPECT_EQ(data->train.stimuli.sizes(), at::IntArrayRef({4, 3, 5, 5}));
  // responses.npy float64 = arange(24).reshape(8, 3): row r is 3r, 3r+1, 3r+2.
  EXPECT_TRUE(at::equal(data->validation.responses,
                        at::tensor({9.0f, 10.0f, 11.0f, 15.0f, 16.0f, 17.0f}).view({2, 3})));
  // g7.png is the solid colour (140, 0, 0).
  EXPECT_NEAR(data->train.stimuli[3][0].mean().item<float>(), 140 / 255.0f, 1e-5);
  ASSERT_TRUE(data->noise_ceiling.defined());
  EXPECT_TRUE(at::allclose(data->noise_ceiling, at::tensor({0.5f, 0.6f, 0.7f})));
}

TEST(GenericNeuralDatasetTest, NamedSplitColumnDecidesTheSplit) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  FixtureCopy folds("generic_images");
  // The fixture's `split` column stays (and a split.npy is added): the named column overrides both.
  std::string csv = "stimulus_id,filename,split,heldout_fold_b\n";
  const char* fold_b[] = {"test", "train", "val", "train", "test", "train", "validation", "train"};
  const char* split[] = {"train", "test", "train", "val", "train", "validation", "test", "train"};
  for (int i = 0; i < 8; ++i) {
    csv += "s" + std::to_string(i) + ",g" + std::to_string(i) + ".png," + split[i] + "," + fold_b[i] + "\n";
  }
  folds.Write("stimuli.csv", csv);
  fs::copy_file(FixturePath("generic_array/split.npy"), folds.path("split.npy"));
  const auto options = GenericNeuralOptions().image(ImageOptions().size(4)).split_column("heldout_fold_b");
  auto data = LoadGenericNeuralData(folds.path(), options);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->train.stimulus_ids, Ids({1, 3, 5, 7}, "s"));
  EXPECT_EQ(data->validation.stimulus_ids, Ids({2, 6}, "s"));
  EXPECT_EQ(data->test.stimulus_ids, Ids({0, 4}, "s"));
  // responses.npy row r is 3r, 3r+1, 3r+2: the test split holds rows 0 and 4.
  EXPECT_TRUE(at::equal(data->test.responses, at::tensor({0.0f, 1.0f, 2.0f, 12.0f, 13.0f, 14.0f}).view({2, 3})));
  // g4.png is the solid colour (80, 0, 0): the test split's second image.
  EXPECT_NEAR(data->test.stimuli[1][0].mean().item<float>(), (80 / 255.0f - 0.485f) / 0.229f, 1e-4);

  // A bad value in the named column: its row, column and value.
  FixtureCopy bad_value("generic_images");
  bad_value.Write("stimuli.csv", csv.substr(0, csv.rfind(",train\n")) + ",holdout\n");
  EXPECT_ERROR_MENTIONS(LoadGenericNeuralData(bad_value.path(), options).status(), StatusCode::kInvalidArgument,
                        "row 8", "column 'heldout_fold_b'", "'holdout'", "expected train, val");

  // A column stimuli.csv lacks: named, with the columns present.
  EXPECT_ERROR_MENTIONS(
      LoadGenericNeuralData(FixturePath("generic_images"), GenericNeuralOptions().split_column("heldout_fold_b"))
          .status(),
      StatusCode::kInvalidArgument, "'heldout_fold_b'", "'stimulus_id', 'filename', 'split'");
  // No stimuli.csv at all.
  EXPECT_ERROR_MENTIONS(
      LoadGenericNeuralData(FixturePath("generic_array"), GenericNeuralOptions().split_column("heldout_fold_b"))
          .status(),
      StatusCode::kNotFound, "stimuli.csv", "'heldout_fold_b'");
}

TEST(GenericNeuralDatasetTest, ArrayStimuliWithSplitNpy) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  auto data = LoadGenericNeuralData(FixturePath("generic_array"));
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->train.stimuli.sizes(), at::IntArrayRef({5, 3, 4, 4}));
  EXPECT_EQ(data->validation.size(), 2);
  EXPECT_EQ(data->test.size(), 2);
  EXPECT_EQ(data->test.stimulus_ids, Ids({7, 8}));
  // uint8 stimuli scaled by 1/255, used as is.
  auto raw = ReadNpyFile(FixturePath("generic_array/stimuli.npy"));
  ASSERT_TRUE(raw.ok());
  EXPECT_TRUE(at::allclose(data->validation.stimuli, raw->slice(0, 5, 7).to(at::kFloat) / 255.0f));
  EXPECT_FLOAT_EQ(data->test.responses[1][1].item<float>(), 8.5f);  // (8 * 2 + 1) / 2
  EXPECT_FALSE(data->noise_ceiling.defined());
  ExpectDisjoint(*data);

  auto limited = LoadGenericNeuralData(FixturePath("generic_array"), GenericNeuralOptions().max_stimuli_per_split(1));
  ASSERT_TRUE(limited.ok()) << limited.status();
  EXPECT_EQ(limited->train.size() + limited->validation.size() + limited->test.size(), 3);
}

TEST(GenericNeuralDatasetTest, CountMismatchesAreNamed) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  EXPECT_ERROR_MENTIONS(LoadGenericNeuralData(FixturePath("generic_count_mismatch")).status(),
                        StatusCode::kInvalidArgument, "stimuli.csv", "8 rows", "responses.npy", "has 7");
  EXPECT_ERROR_MENTIONS(LoadGenericNeuralData(FixturePath("generic_array_mismatch")).status(),
                        StatusCode::kInvalidArgument, "stimuli.npy", "5 stimuli", "6 rows");
}

TEST(GenericNeuralDatasetTest, NanResponseIsNamedByRowAndColumn) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  EXPECT_ERROR_MENTIONS(LoadGenericNeuralData(FixturePath("generic_nan")).status(), StatusCode::kInvalidArgument,
                        "responses.npy", "row 4", "column 1", "nan");
}

TEST(GenericNeuralDatasetTest, MissingAndAmbiguousFilesAreNamed) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  FixtureCopy no_responses("generic_array");
  fs::remove(no_responses.path("responses.npy"));
  EXPECT_ERROR_MENTIONS(LoadGenericNeuralData(no_responses.path()).status(), StatusCode::kNotFound,
                        no_responses.path("responses.npy"));

  FixtureCopy no_split("generic_array");
  fs::remove(no_split.path("split.npy"));
  EXPECT_ERROR_MENTIONS(LoadGenericNeuralData(no_split.path()).status(), StatusCode::kNotFound, "split.npy",
                        "'split' column");

  FixtureCopy two_splits("generic_images");
  fs::copy_file(FixturePath("generic_array/split.npy"), two_splits.path("split.npy"));
  EXPECT_ERROR_MENTIONS(LoadGenericNeuralData(two_splits.path()).status(), StatusCode::kInvalidArgument,
                        "both split.npy and a 'split' column");

  FixtureCopy bad_split("generic_images");
  std::string csv = bad_split.Read("stimuli.csv");
  csv.replace(csv.find(",val\n"), 5, ",training\n");
  bad_split.Write("stimuli.csv", csv);
  EXPECT_ERROR_MENTIONS(LoadGenericNeuralData(bad_split.path()).status(), StatusCode::kInvalidArgument, "row 4",
                        "'training'");

  FixtureCopy missing_image("generic_images");
  fs::remove(missing_image.path("stimuli/g5.png"));
  EXPECT_ERROR_MENTIONS(LoadGenericNeuralData(missing_image.path()).status(), StatusCode::kNotFound,
                        missing_image.path("stimuli/g5.png"));

  FixtureCopy bad_ceiling("generic_images");
  fs::copy_file(FixturePath("generic_array/responses.npy"), bad_ceiling.path("noise_ceiling.npy"),
                fs::copy_options::overwrite_existing);
  EXPECT_ERROR_MENTIONS(LoadGenericNeuralData(bad_ceiling.path()).status(), StatusCode::kInvalidArgument,
                        "noise_ceiling.npy", "[9, 2]", "[3]");
}

}  // namespace
}  // namespace dwarp::engine
