// The file formats under the neural datasets: .npy, CSV, images (stb + resize + normalisation), netCDF as
// xarray writes it; and the NeuralData contract check. Fixtures come from fixtures/make_neural_fixtures.py.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "tests/engine/datasets/neural_fixtures.h"
#include "worker/engine/datasets/csv_table.h"
#include "worker/engine/datasets/image_io.h"
#include "worker/engine/datasets/netcdf_file.h"
#include "worker/engine/datasets/neural_data.h"
#include "worker/engine/datasets/npy_file.h"

namespace dwarp::engine {
namespace {

namespace fs = std::filesystem;
using testing::FixturePath;

// A file in this process's scratch folder (removed at exit).
std::string TempFile(const std::string& name, const std::string& contents) {
  struct ScratchDir {
    fs::path path = fs::temp_directory_path() / ("dwarp_formats_test_" + std::to_string(::getpid()));
    ~ScratchDir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static ScratchDir dir;
  fs::create_directories(dir.path);
  const std::string path = (dir.path / name).string();
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

// ------------------------------------------------------------------ .npy

TEST(NpyFileTest, ReadsEverySupportedDtypeWithShapeAndValues) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  const at::Tensor expected = at::arange(12, at::kDouble).view({3, 4});
  const std::vector<std::pair<std::string, at::ScalarType>> cases = {
      {"f4", at::kFloat}, {"f8", at::kDouble}, {"u1", at::kByte}, {"i8", at::kLong}, {"v2", at::kFloat}};
  for (const auto& [name, dtype] : cases) {
    auto t = ReadNpyFile(FixturePath("npy/" + name + ".npy"));
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->scalar_type(), dtype) << name;
    EXPECT_EQ(t->sizes(), at::IntArrayRef({3, 4})) << name;
    EXPECT_TRUE(at::equal(t->to(at::kDouble), expected)) << name;
  }
}

TEST(NpyFileTest, RejectsFortranOrderBigEndianAndUnsupportedDtypes) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  const std::string fortran = FixturePath("npy/fortran.npy");
  EXPECT_ERROR_MENTIONS(ReadNpyFile(fortran).status(), StatusCode::kInvalidArgument, fortran, "Fortran");
  const std::string big = FixturePath("npy/big_endian.npy");
  EXPECT_ERROR_MENTIONS(ReadNpyFile(big).status(), StatusCode::kInvalidArgument, big, "'>f4'", "big-endian");
  const std::string i2 = FixturePath("npy/i2.npy");
  EXPECT_ERROR_MENTIONS(ReadNpyFile(i2).status(), StatusCode::kInvalidArgument, i2, "'<i2'");
}

TEST(NpyFileTest, RejectsMissingTruncatedAndNonNpyFiles) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  EXPECT_ERROR_MENTIONS(ReadNpyFile("/nonexistent/x.npy").status(), StatusCode::kNotFound, "/nonexistent/x.npy");
  std::ifstream in(FixturePath("npy/f4.npy"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string truncated = TempFile("truncated.npy", bytes.substr(0, bytes.size() - 4));
  EXPECT_ERROR_MENTIONS(ReadNpyFile(truncated).status(), StatusCode::kInvalidArgument, truncated, "truncated");
  const std::string extra = TempFile("extra.npy", bytes + "xx");
  EXPECT_ERROR_MENTIONS(ReadNpyFile(extra).status(), StatusCode::kInvalidArgument, extra, "2 bytes after");
  const std::string text = TempFile("text.npy", "hello, world");
  EXPECT_ERROR_MENTIONS(ReadNpyFile(text).status(), StatusCode::kInvalidArgument, text, "NUMPY");
}

TEST(NpyFileTest, ReadsUnicodeStringArrays) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  auto s = ReadNpyStrings(FixturePath("npy/strings.npy"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, (std::vector<std::string>{"train", "val", "t\xC3\xA9st"}));
  EXPECT_EQ(ReadNpyStrings(FixturePath("npy/f4.npy")).status().code(), StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------ CSV

TEST(CsvTableTest, ParsesQuotesCrlfAndPandasIndexColumn) {
  const std::string path = TempFile("quoted.csv",
                                    "\xEF\xBB\xBF,stimulus_id,filename,shared1000\r\n"
                                    "0,7,\"a, b.png\",True\r\n"
                                    "1,8,\"say \"\"hi\"\".jpg\",False\r\n");
  auto t = ReadCsvFile(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->header(), (std::vector<std::string>{"", "stimulus_id", "filename", "shared1000"}));
  EXPECT_EQ(t->num_rows(), 2u);
  EXPECT_EQ(*t->Column("filename"), (std::vector<std::string>{"a, b.png", "say \"hi\".jpg"}));
  EXPECT_EQ(*t->Column("stimulus_id"), (std::vector<std::string>{"7", "8"}));
  EXPECT_ERROR_MENTIONS(t->Column("split").status(), StatusCode::kInvalidArgument, path, "'split'", "'filename'");
}

TEST(CsvTableTest, AMissingColumnErrorNeverQuotesLongOrBinaryHeaderText) {
  // A job may name any file as its table: a password file's first line must not come back in the error.
  const std::string path = TempFile("not_a_table.csv",
                                    "root:x:0:0:root:/root:/bin/bash-and-a-much-longer-line\n"
                                    "daemon:x:1:1\n");
  auto t = ReadCsvFile(path);
  ASSERT_TRUE(t.ok()) << t.status();
  const Status status = t->Column("filename").status();
  EXPECT_ERROR_MENTIONS(status, StatusCode::kInvalidArgument, path, "'filename'", "1 columns", "not shown");
  EXPECT_EQ(status.message().find("root:x"), std::string::npos) << status;
  const std::string binary = TempFile("binary.csv", std::string("a\x01\x02" "b,ok\n1,2\n"));
  auto b = ReadCsvFile(binary);
  ASSERT_TRUE(b.ok()) << b.status();
  const Status binary_status = b->Column("filename").status();
  EXPECT_ERROR_MENTIONS(binary_status, StatusCode::kInvalidArgument, "'ok'", "not shown");
  EXPECT_EQ(binary_status.message().find("\x01"), std::string::npos) << binary_status;
}

TEST(CsvTableTest, RejectsRaggedRowsUnclosedQuotesAndMissingFiles) {
  const std::string ragged = TempFile("ragged.csv", "a,b\n1,2\n3\n");
  EXPECT_ERROR_MENTIONS(ReadCsvFile(ragged).status(), StatusCode::kInvalidArgument, ragged, "line 3", "1 fields");
  const std::string unclosed = TempFile("unclosed.csv", "a,b\n1,\"2\n");
  EXPECT_ERROR_MENTIONS(ReadCsvFile(unclosed).status(), StatusCode::kInvalidArgument, unclosed, "never closed");
  EXPECT_ERROR_MENTIONS(ReadCsvFile("/nonexistent/m.csv").status(), StatusCode::kNotFound, "/nonexistent/m.csv");
  EXPECT_TRUE(*ParseCsvBool("True", "x"));
  EXPECT_FALSE(*ParseCsvBool("False", "x"));
  EXPECT_ERROR_MENTIONS(ParseCsvBool("maybe", "row 3").status(), StatusCode::kInvalidArgument, "row 3", "'maybe'");
}

// ------------------------------------------------------------------ images

TEST(ImageIoTest, SolidColoursComeOutResizedScaledAndNormalised) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  auto red = LoadImage(FixturePath("images/red.png"), ImageOptions().size(4));  // 12 x 10 RGB
  ASSERT_TRUE(red.ok()) << red.status();
  EXPECT_EQ(red->sizes(), at::IntArrayRef({3, 4, 4}));
  EXPECT_EQ(red->scalar_type(), at::kFloat);
  EXPECT_NEAR(red->select(0, 0).min().item<float>(), (1.0f - 0.485f) / 0.229f, 1e-4);
  EXPECT_NEAR(red->select(0, 1).max().item<float>(), (0.0f - 0.456f) / 0.224f, 1e-4);
  EXPECT_NEAR(red->select(0, 2).max().item<float>(), (0.0f - 0.406f) / 0.225f, 1e-4);

  // Grayscale is replicated to 3 channels; without normalisation values stay in [0, 1].
  auto gray = LoadImage(FixturePath("images/gray.png"), ImageOptions().size(6).normalize(false));
  ASSERT_TRUE(gray.ok()) << gray.status();
  EXPECT_EQ(gray->sizes(), at::IntArrayRef({3, 6, 6}));
  EXPECT_TRUE(at::allclose(*gray, at::full({3, 6, 6}, 51.0f / 255.0f), 0, 1e-6));

  // RGBA: the alpha channel is dropped (as PIL's convert("RGB")).
  auto rgba = LoadImage(FixturePath("images/rgba.png"), ImageOptions().size(3).normalize(false));
  ASSERT_TRUE(rgba.ok()) << rgba.status();
  EXPECT_TRUE(at::allclose(rgba->select(0, 1), at::ones({3, 3})));
  EXPECT_TRUE(at::allclose(rgba->select(0, 0), at::zeros({3, 3})));

  // JPEG (lossy: near blue) with custom mean/std.
  auto blue = LoadImage(FixturePath("images/blue.jpg"),
                        ImageOptions().size(8).mean({0.5f, 0.5f, 0.5f}).stddev({0.5f, 0.5f, 0.5f}));
  ASSERT_TRUE(blue.ok()) << blue.status();
  EXPECT_NEAR(blue->select(0, 2).mean().item<float>(), 1.0f, 0.05);
  EXPECT_NEAR(blue->select(0, 0).mean().item<float>(), -1.0f, 0.05);
}

TEST(ImageIoTest, MatchesTorchvisionResizeOnPil) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  auto ours = LoadImage(FixturePath("images/gradient.png"), ImageOptions().size(5));
  ASSERT_TRUE(ours.ok()) << ours.status();
  auto expected = ReadNpyFile(FixturePath("images/gradient_expected.npy"));
  ASSERT_TRUE(expected.ok()) << expected.status();
  // PIL rounds the resized image to uint8: up to half a grey level, i.e. 0.5 / 255 / 0.224 after normalising.
  const double max_diff = (*ours - *expected).abs().max().item<double>();
  EXPECT_LT(max_diff, 0.5 / 255 / 0.224 + 1e-3) << "image_io differs from PIL's bilinear resize";
}

TEST(ImageIoTest, BatchDecodesInParallelInListOrder) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  const std::vector<std::string> paths = {FixturePath("images/gray.png"), FixturePath("images/red.png"),
                                          FixturePath("images/blue.jpg"), FixturePath("images/gray.png")};
  auto batch = LoadImages(paths, ImageOptions().size(7));
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_EQ(batch->sizes(), at::IntArrayRef({4, 3, 7, 7}));
  for (size_t i = 0; i < paths.size(); ++i) {
    auto one = LoadImage(paths[i], ImageOptions().size(7));
    ASSERT_TRUE(one.ok());
    EXPECT_TRUE(at::equal((*batch)[static_cast<int64_t>(i)], *one)) << paths[i];
  }
}

TEST(ImageIoTest, ErrorsNameTheFile) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  const std::string bad = FixturePath("images/not_an_image.png");
  EXPECT_ERROR_MENTIONS(LoadImage(bad).status(), StatusCode::kInvalidArgument, bad, "cannot decode");
  const std::string missing = FixturePath("images/missing.png");
  EXPECT_ERROR_MENTIONS(LoadImage(missing).status(), StatusCode::kNotFound, missing);
  // In a batch, the failing file is named (not the good ones around it).
  auto batch = LoadImages({FixturePath("images/red.png"), bad, FixturePath("images/gray.png")});
  EXPECT_ERROR_MENTIONS(batch.status(), StatusCode::kInvalidArgument, bad);
  EXPECT_ERROR_MENTIONS(LoadImage(FixturePath("images/red.png"), ImageOptions().size(0)).status(),
                        StatusCode::kInvalidArgument, "image size = 0");
  EXPECT_ERROR_MENTIONS(
      LoadImage(FixturePath("images/red.png"), ImageOptions().stddev({1.0f, 0.0f, 1.0f})).status(),
      StatusCode::kInvalidArgument, "stddev[1]");
}

// ------------------------------------------------------------------ netCDF

TEST(NetcdfFileTest, ReadsAnXarrayDataArrayWithIntegerAndStringCoordinates) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  if (!NetcdfAvailable()) GTEST_SKIP() << "built without libnetcdf";
  auto file = NetcdfFile::Open(FixturePath("nsd/voxels.nc"));
  ASSERT_TRUE(file.ok()) << file.status();
  auto name = FindDataArrayVariable(*file);
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(*name, "__xarray_dataarray_variable__");
  const NetcdfVariable* var = file->FindVariable(*name);
  ASSERT_NE(var, nullptr);
  EXPECT_EQ(var->dims, (std::vector<std::string>{"presentation", "neuroid"}));
  EXPECT_EQ(var->shape, (std::vector<int64_t>{13, 4}));
  auto values = file->ReadNumeric(*name);
  ASSERT_TRUE(values.ok()) << values.status();
  EXPECT_EQ(values->scalar_type(), at::kFloat);
  EXPECT_FLOAT_EQ((*values)[1][3].item<float>(), 1013.0f);  // stimulus 101, voxel 3
  auto ids = file->ReadStrings("stimulus_id");  // int64 coordinate
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ((*ids)[0], "100");
  EXPECT_EQ((*ids)[12], "100");
  auto subject = file->ReadStrings("subject");  // NC_STRING coordinate
  ASSERT_TRUE(subject.ok()) << subject.status();
  EXPECT_EQ(subject->size(), 13u);
  EXPECT_EQ((*subject)[4], "subj01");
  EXPECT_EQ(file->VariablesOnDimension("presentation"), (std::vector<std::string>{"stimulus_id", "subject"}));
}

TEST(NetcdfFileTest, ReadsNamedArraysCharArraysAndDimensionCoordinates) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  if (!NetcdfAvailable()) GTEST_SKIP() << "built without libnetcdf";
  auto brainio = NetcdfFile::Open(FixturePath("majaj/brainio.nc"));
  ASSERT_TRUE(brainio.ok()) << brainio.status();
  auto name = FindDataArrayVariable(*brainio);  // a named DataArray: found by exclusion of coordinates
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_EQ(*name, "dicarlo.MajajHong2015.public");
  auto seed = NetcdfFile::Open(FixturePath("majaj/seed.nc"));
  ASSERT_TRUE(seed.ok()) << seed.status();
  auto regions = seed->ReadStrings("region");  // bytes -> NC_CHAR [neuroid, string2]
  ASSERT_TRUE(regions.ok()) << regions.status();
  EXPECT_EQ(*regions, (std::vector<std::string>{"IT", "V4", "IT", "V4", "IT"}));
  auto image_ids = seed->ReadStrings("image_id");  // a string dimension coordinate
  ASSERT_TRUE(image_ids.ok()) << image_ids.status();
  EXPECT_EQ((*image_ids)[9], "img9");
  EXPECT_EQ(seed->ReadNumeric("region").status().code(), StatusCode::kInvalidArgument);
}

TEST(NetcdfFileTest, ErrorsNameTheFile) {
  DWARP_REQUIRE_NEURAL_FIXTURES();
  if (!NetcdfAvailable()) GTEST_SKIP() << "built without libnetcdf";
  EXPECT_ERROR_MENTIONS(NetcdfFile::Open("/nonexistent/v.nc").status(), StatusCode::kNotFound, "/nonexistent/v.nc");
  const std::string not_nc = FixturePath("images/not_an_image.png");
  EXPECT_ERROR_MENTIONS(NetcdfFile::Open(not_nc).status(), StatusCode::kInvalidArgument, not_nc);
  auto file = NetcdfFile::Open(FixturePath("nsd/voxels.nc"));
  ASSERT_TRUE(file.ok());
  EXPECT_ERROR_MENTIONS(file->ReadStrings("nope").status(), StatusCode::kNotFound, "'nope'");
}

// ------------------------------------------------------------------ CheckNeuralData

NeuralData SmallData() {
  NeuralData d;
  auto split = [](int64_t n) {
    NeuralSplit s;
    s.stimuli = at::zeros({n, 3, 2, 2});
    s.responses = at::zeros({n, 2});
    for (int64_t i = 0; i < n; ++i) s.stimulus_ids.push_back("s" + std::to_string(i));
    return s;
  };
  d.train = split(4);
  d.validation = split(2);
  d.test = split(2);
  d.target_names = {"a", "b"};
  return d;
}

TEST(CheckNeuralDataTest, AcceptsTheContractAndNamesEachViolation) {
  EXPECT_TRUE(CheckNeuralData(SmallData()).ok());

  NeuralData nan = SmallData();
  nan.validation.responses[1][0] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_ERROR_MENTIONS(CheckNeuralData(nan), StatusCode::kInvalidArgument, "validation", "row 1", "column 0", "s1");

  NeuralData count = SmallData();
  count.test.stimuli = at::zeros({3, 3, 2, 2});
  EXPECT_ERROR_MENTIONS(CheckNeuralData(count), StatusCode::kInvalidArgument, "test", "3 stimuli", "2 response rows");

  NeuralData shape = SmallData();
  shape.test.stimuli = at::zeros({2, 3, 4, 4});
  EXPECT_ERROR_MENTIONS(CheckNeuralData(shape), StatusCode::kInvalidArgument, "test", "[2, 3, 4, 4]");

  NeuralData dtype = SmallData();
  dtype.train.responses = at::zeros({4, 2}, at::kDouble);
  EXPECT_ERROR_MENTIONS(CheckNeuralData(dtype), StatusCode::kInvalidArgument, "train", "float32");

  NeuralData targets = SmallData();
  targets.target_names = {"a"};
  EXPECT_ERROR_MENTIONS(CheckNeuralData(targets), StatusCode::kInvalidArgument, "2 columns", "1 targets");

  NeuralData ceiling = SmallData();
  ceiling.noise_ceiling = at::ones({3});
  EXPECT_ERROR_MENTIONS(CheckNeuralData(ceiling), StatusCode::kInvalidArgument, "noise ceiling", "[3]");
  ceiling.noise_ceiling = at::ones({2});
  EXPECT_TRUE(CheckNeuralData(ceiling).ok());
}

}  // namespace
}  // namespace dwarp::engine
