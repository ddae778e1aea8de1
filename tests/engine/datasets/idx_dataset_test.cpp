#include "worker/engine/datasets/idx_dataset.h"
#include "worker/engine/datasets/classification_data.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace dwarp::engine {
namespace {

namespace fs = std::filesystem;

// Builds IDX bytes: header for (type, shape) followed by `payload` (already big-endian).
std::vector<unsigned char> IdxBytes(unsigned char type, const std::vector<uint32_t>& shape,
                                    const std::vector<unsigned char>& payload) {
  std::vector<unsigned char> bytes{0, 0, type, static_cast<unsigned char>(shape.size())};
  for (uint32_t s : shape) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<unsigned char>(s >> shift));
  }
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  return bytes;
}

template <typename T>
std::vector<unsigned char> BigEndian(const std::vector<T>& values) {
  std::vector<unsigned char> out;
  for (const T& v : values) {
    unsigned char raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    // Tests run on little-endian hosts (x86-64, aarch64): reverse into big-endian.
    for (size_t i = 0; i < sizeof(T); ++i) out.push_back(raw[sizeof(T) - 1 - i]);
  }
  return out;
}

class IdxDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("dwarp_idx_test_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string WritePlain(const std::string& name, const std::vector<unsigned char>& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  std::string WriteGzip(const std::string& name, const std::vector<unsigned char>& bytes) {
    const std::string path = (dir_ / name).string();
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
    gzclose(f);
    return path;
  }

  fs::path dir_;
};

// Expects `status` to be an error of `code` whose message contains every one of `parts`.
void ExpectError(const Status& status, StatusCode code, const std::vector<std::string>& parts) {
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), code) << status;
  for (const auto& part : parts) EXPECT_NE(status.message().find(part), std::string::npos) << status << "\nmissing: " << part;
}

std::vector<unsigned char> Iota(size_t n) {
  std::vector<unsigned char> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<unsigned char>(i);
  return v;
}

TEST_F(IdxDatasetTest, ReadsPlainUint8) {
  const std::string path = WritePlain("u8.idx", IdxBytes(0x08, {3, 2, 4}, Iota(24)));
  auto t = ReadIdxFile(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->scalar_type(), at::kByte);
  EXPECT_EQ(t->sizes(), (std::vector<int64_t>{3, 2, 4}));
  EXPECT_EQ(t->flatten()[0].item<int>(), 0);
  EXPECT_EQ((*t)[2][1][3].item<int>(), 23);
}

TEST_F(IdxDatasetTest, ReadsGzippedUint8AndHonoursMaxItems) {
  const std::string path = WriteGzip("u8.idx.gz", IdxBytes(0x08, {5, 3}, Iota(15)));
  auto all = ReadIdxFile(path);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->sizes(), (std::vector<int64_t>{5, 3}));
  EXPECT_EQ((*all)[4][2].item<int>(), 14);

  auto first_two = ReadIdxFile(path, IdxReadOptions().max_items(2));
  ASSERT_TRUE(first_two.ok()) << first_two.status();
  EXPECT_EQ(first_two->sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(first_two->equal(all->narrow(0, 0, 2)));

  auto more_than_there = ReadIdxFile(path, IdxReadOptions().max_items(50));
  ASSERT_TRUE(more_than_there.ok()) << more_than_there.status();
  EXPECT_EQ(more_than_there->size(0), 5);
}

TEST_F(IdxDatasetTest, ReadsBigEndianFloat32PlainAndGzipped) {
  const std::vector<float> values{1.5f, -2.25f, 3.0e-3f, 1.0e6f, -0.0f, 42.0f};
  const auto bytes = IdxBytes(0x0D, {2, 3}, BigEndian(values));
  for (const std::string& path : {WritePlain("f32.idx", bytes), WriteGzip("f32.idx.gz", bytes)}) {
    auto t = ReadIdxFile(path);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->scalar_type(), at::kFloat);
    EXPECT_EQ(t->sizes(), (std::vector<int64_t>{2, 3}));
    for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(t->flatten()[i].item<float>(), values[i]) << path << " " << i;
  }
}

TEST_F(IdxDatasetTest, ReadsEveryElementType) {
  auto check = [&](unsigned char code, const std::vector<unsigned char>& payload, at::ScalarType dtype,
                   const std::vector<double>& expected) {
    const std::string path = WritePlain("type" + std::to_string(code) + ".idx",
                                        IdxBytes(code, {static_cast<uint32_t>(expected.size())}, payload));
    auto t = ReadIdxFile(path);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->scalar_type(), dtype) << "type code " << int(code);
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ((*t)[static_cast<int64_t>(i)].item<double>(), expected[i]) << "type code " << int(code);
    }
  };
  check(0x08, {0, 255}, at::kByte, {0, 255});
  check(0x09, BigEndian<int8_t>({-128, 127}), at::kChar, {-128, 127});
  check(0x0B, BigEndian<int16_t>({-30000, 258}), at::kShort, {-30000, 258});
  check(0x0C, BigEndian<int32_t>({-2000000000, 16909060}), at::kInt, {-2000000000, 16909060});
  check(0x0D, BigEndian<float>({0.5f, -8.0f}), at::kFloat, {0.5, -8.0});
  check(0x0E, BigEndian<double>({1e-300, -3.25}), at::kDouble, {1e-300, -3.25});
}

TEST_F(IdxDatasetTest, MissingFileIsNotFound) {
  const std::string path = (dir_ / "absent.idx").string();
  ExpectError(ReadIdxFile(path).status(), StatusCode::kNotFound, {path, "does not exist"});
}

TEST_F(IdxDatasetTest, BadMagicSaysWhatWasExpectedWithoutQuotingTheFilesBytes) {
  auto bytes = IdxBytes(0x08, {2}, {1, 2});
  bytes[0] = 0x42;
  const std::string path = WritePlain("bad_magic.idx", bytes);
  const Status status = ReadIdxFile(path).status();
  ExpectError(status, StatusCode::kInvalidArgument, {path, "bad magic", "0x00 0x00 <type> <ndim>"});
  EXPECT_EQ(status.message().find("0x42"), std::string::npos) << status.message();
}

TEST_F(IdxDatasetTest, UnknownTypeCodeIsNamed) {
  const std::string path = WritePlain("bad_type.idx", IdxBytes(0x0A, {2}, {1, 2}));
  ExpectError(ReadIdxFile(path).status(), StatusCode::kInvalidArgument, {path, "0x0a", "expected 0x08"});
}

TEST_F(IdxDatasetTest, TruncatedDataSaysHowMuchIsMissing) {
  const std::string plain = WritePlain("short.idx", IdxBytes(0x08, {4, 4}, Iota(10)));
  ExpectError(ReadIdxFile(plain).status(), StatusCode::kInvalidArgument, {plain, "truncated", "16 bytes", "after 10"});
  const std::string gz = WriteGzip("short.idx.gz", IdxBytes(0x0D, {3}, BigEndian<float>({1.0f, 2.0f})));
  ExpectError(ReadIdxFile(gz).status(), StatusCode::kInvalidArgument, {gz, "truncated", "12 bytes", "after 8"});
  const std::string header_only = WritePlain("header.idx", {0, 0, 0x08, 3, 0, 0});
  ExpectError(ReadIdxFile(header_only).status(), StatusCode::kInvalidArgument, {header_only, "truncated", "dimension"});
}

TEST_F(IdxDatasetTest, TrailingBytesAreRejected) {
  const std::string path = WritePlain("long.idx", IdxBytes(0x08, {2, 2}, Iota(6)));
  ExpectError(ReadIdxFile(path).status(), StatusCode::kInvalidArgument, {path, "bytes after the 4 elements"});
  // Reading only a prefix does not look at the end of the file.
  EXPECT_TRUE(ReadIdxFile(path, IdxReadOptions().max_items(1)).ok());
}

TEST_F(IdxDatasetTest, CorruptGzipStreamIsReported) {
  auto gz_bytes = IdxBytes(0x08, {64}, std::vector<unsigned char>(64, 7));
  const std::string good = WriteGzip("good.gz", gz_bytes);
  std::ifstream in(good, std::ios::binary);
  std::vector<unsigned char> compressed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  compressed.resize(compressed.size() / 2);  // cut the deflate stream in the middle
  const std::string cut = WritePlain("cut.gz", compressed);
  const Status status = ReadIdxFile(cut).status();
  ExpectError(status, StatusCode::kInvalidArgument, {cut});
}

TEST_F(IdxDatasetTest, LoadsClassificationPairs) {
  const std::string images = WriteGzip("img.gz", IdxBytes(0x08, {4, 2, 3}, std::vector<unsigned char>(24, 255)));
  const std::string labels = WritePlain("lab.idx", IdxBytes(0x08, {4}, {3, 0, 9, 1}));
  auto data = LoadIdxClassification(images, labels);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->inputs.scalar_type(), at::kFloat);
  EXPECT_EQ(data->inputs.sizes(), (std::vector<int64_t>{4, 1, 2, 3}));
  EXPECT_FLOAT_EQ(data->inputs.max().item<float>(), 1.0f);
  EXPECT_EQ(data->labels.scalar_type(), at::kLong);
  EXPECT_EQ(data->labels[2].item<int64_t>(), 9);
  EXPECT_EQ(data->num_classes, 10);

  auto limited = LoadIdxClassification(images, labels, IdxClassificationOptions().max_items(3));
  ASSERT_TRUE(limited.ok()) << limited.status();
  EXPECT_EQ(limited->size(), 3);
  EXPECT_EQ(limited->inputs.size(0), 3);

  auto inferred = LoadIdxClassification(images, labels, IdxClassificationOptions().num_classes(0));
  ASSERT_TRUE(inferred.ok()) << inferred.status();
  EXPECT_EQ(inferred->num_classes, 10);
}

TEST_F(IdxDatasetTest, ScalesUint8ImagesToUnitInterval) {
  const std::string images = WritePlain("img.idx", IdxBytes(0x08, {1, 1, 3}, {0, 51, 255}));
  const std::string labels = WritePlain("lab.idx", IdxBytes(0x08, {1}, {0}));
  auto data = LoadIdxClassification(images, labels);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_FLOAT_EQ(data->inputs.flatten()[1].item<float>(), 0.2f);
  EXPECT_FLOAT_EQ(data->inputs.flatten()[2].item<float>(), 1.0f);
}

TEST_F(IdxDatasetTest, CountMismatchNamesBothFiles) {
  const std::string images = WritePlain("img.idx", IdxBytes(0x08, {3, 1, 1}, {1, 2, 3}));
  const std::string labels = WritePlain("lab.idx", IdxBytes(0x08, {2}, {0, 1}));
  ExpectError(LoadIdxClassification(images, labels).status(), StatusCode::kInvalidArgument,
              {images, labels, "3 images", "2 labels"});
}

TEST_F(IdxDatasetTest, LabelOutOfRangeNamesValueAndIndex) {
  const std::string images = WritePlain("img.idx", IdxBytes(0x08, {3, 1, 1}, {1, 2, 3}));
  const std::string labels = WritePlain("lab.idx", IdxBytes(0x08, {3}, {0, 12, 1}));
  ExpectError(LoadIdxClassification(images, labels).status(), StatusCode::kInvalidArgument,
              {labels, "label 12", "index 1", "[0, 10)"});
  const std::string negative = WritePlain("neg.idx", IdxBytes(0x09, {3}, BigEndian<int8_t>({0, 1, -1})));
  ExpectError(LoadIdxClassification(images, negative).status(), StatusCode::kInvalidArgument,
              {negative, "label -1", "index 2"});
}

TEST_F(IdxDatasetTest, WrongShapesAndTypesAreRejected) {
  const std::string flat_images = WritePlain("flat.idx", IdxBytes(0x08, {3}, {1, 2, 3}));
  const std::string labels = WritePlain("lab.idx", IdxBytes(0x08, {3}, {0, 1, 2}));
  ExpectError(LoadIdxClassification(flat_images, labels).status(), StatusCode::kInvalidArgument,
              {flat_images, "[3]", "3 dimensions"});
  const std::string images = WritePlain("img.idx", IdxBytes(0x08, {3, 1, 1}, {1, 2, 3}));
  const std::string float_labels = WritePlain("flab.idx", IdxBytes(0x0D, {3}, BigEndian<float>({0, 1, 2})));
  ExpectError(LoadIdxClassification(images, float_labels).status(), StatusCode::kInvalidArgument,
              {float_labels, "float32", "integer"});
}

TEST_F(IdxDatasetTest, MnistStyleSplitFindsGzOrPlainAndNamesMissingFiles) {
  WriteGzip("train-images-idx3-ubyte.gz", IdxBytes(0x08, {2, 2, 2}, Iota(8)));
  WritePlain("train-labels-idx1-ubyte", IdxBytes(0x08, {2}, {4, 5}));
  auto data = LoadMnistStyleSplit(dir_.string(), "train");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->inputs.sizes(), (std::vector<int64_t>{2, 1, 2, 2}));

  ExpectError(LoadMnistStyleSplit(dir_.string(), "t10k").status(), StatusCode::kNotFound,
              {"t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz"});
  const std::string missing_dir = (dir_ / "nowhere").string();
  ExpectError(LoadMnistStyleSplit(missing_dir, "train").status(), StatusCode::kNotFound, {missing_dir});
}

TEST(FashionMnistTest, RealFilesLoadWithTheirShapes) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "Fashion-MNIST not installed at " << dir;
  auto train = LoadMnistStyleSplit(dir, "train");
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->inputs.sizes(), (std::vector<int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(train->labels.sizes(), (std::vector<int64_t>{60000}));
  // Fashion-MNIST is balanced: 6000 training images per class.
  EXPECT_EQ(at::bincount(train->labels).min().item<int64_t>(), 6000);
  EXPECT_GE(train->inputs.min().item<float>(), 0.0f);
  EXPECT_LE(train->inputs.max().item<float>(), 1.0f);
  // Reference values from numpy reading the same gzip files (offset 16 / 8, uint8).
  EXPECT_NEAR(train->inputs[0].sum().item<double>() * 255.0, 76247.0, 0.05);
  EXPECT_NEAR(train->inputs[59999].sum().item<double>() * 255.0, 16684.0, 0.05);
  EXPECT_EQ(train->inputs.mul(255.0f).round().to(at::kLong).sum().item<int64_t>(), 3431114169);
  EXPECT_EQ(train->labels.narrow(0, 0, 10).to(at::kInt).equal(at::tensor({9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, at::kInt)), true);
  EXPECT_EQ(train->labels[59999].item<int64_t>(), 5);

  auto test = LoadMnistStyleSplit(dir, "t10k");
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->inputs.sizes(), (std::vector<int64_t>{10000, 1, 28, 28}));
  EXPECT_EQ(test->labels.sizes(), (std::vector<int64_t>{10000}));
  EXPECT_EQ(at::bincount(test->labels).max().item<int64_t>(), 1000);
}

TEST(FewShotRowsTest, DrawsTheFirstClassesAndSamplesPerClassWithTheSeed) {
  // 5 classes x 10 rows, interleaved.
  std::vector<int64_t> values;
  for (int64_t i = 0; i < 50; ++i) values.push_back(i % 5);
  const at::Tensor labels = at::tensor(values, at::kLong);
  FewShotOptions options;
  options.limit_classes = 3;
  options.limit_samples = 5;
  options.validation = 0.2;
  options.test = 0.2;
  options.seed = 7;
  auto rows = SelectFewShotRows(labels, options);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->num_classes, 3);
  EXPECT_EQ(rows->train.numel(), 9);  // 5 per class: 3 train, 1 validation, 1 test
  EXPECT_EQ(rows->validation.numel(), 3);
  EXPECT_EQ(rows->test.numel(), 3);
  const at::Tensor all = at::cat({rows->train, rows->validation, rows->test});
  EXPECT_EQ(std::get<0>(at::_unique(all)).numel(), 15) << "splits are disjoint";
  EXPECT_TRUE(at::all(labels.index_select(0, all) < 3).item<bool>());
  for (int64_t c = 0; c < 3; ++c)
    EXPECT_EQ((labels.index_select(0, all) == c).sum().item<int64_t>(), 5) << "class " << c;
  // Same seed, same draw; another seed, another draw.
  auto again = SelectFewShotRows(labels, options);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(at::equal(rows->train, again->train));
  options.seed = 8;
  auto other = SelectFewShotRows(labels, options);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(at::equal(std::get<0>(at::cat({rows->train, rows->validation, rows->test}).sort()),
                         std::get<0>(at::cat({other->train, other->validation, other->test}).sort())));
  // Bad options name the value.
  options.limit_samples = -1;
  auto bad = SelectFewShotRows(labels, options);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("limit_samples = -1"), std::string::npos) << bad.status();
  options.limit_samples = 5;
  options.validation = 0.6;
  options.test = 0.5;
  EXPECT_FALSE(SelectFewShotRows(labels, options).ok());
}

TEST(PrepareIdxImagesTest, ResizesRepeatsChannelsAndNormalises) {
  const at::Tensor images = at::full({2, 4, 4}, 0.5, at::kFloat);
  IdxImageOptions options;
  options.size = 8;
  options.channels = 3;
  options.mean = {0.25};
  options.stddev = {0.5, 0.25};  // the last value repeats for the third channel
  auto prepared = PrepareIdxImages(images, options);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  EXPECT_EQ(prepared->sizes(), (std::vector<int64_t>{2, 3, 8, 8}));
  EXPECT_NEAR(prepared->select(1, 0).max().item<double>(), 0.5, 1e-6);  // (0.5 - 0.25) / 0.5
  EXPECT_NEAR(prepared->select(1, 2).min().item<double>(), 1.0, 1e-6);  // (0.5 - 0.25) / 0.25
  auto unchanged = PrepareIdxImages(images, IdxImageOptions{});
  ASSERT_TRUE(unchanged.ok()) << unchanged.status();
  EXPECT_TRUE(at::equal(*unchanged, images.unsqueeze(1)));
  IdxImageOptions one_channel;
  one_channel.channels = 1;
  auto refused = PrepareIdxImages(at::zeros({2, 3, 4, 4}), one_channel);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("images have 3 channels; expected 1"), std::string::npos)
      << refused.status();
}

ClassificationData Labelled(std::vector<int64_t> labels, int64_t classes) {
  const auto n = static_cast<int64_t>(labels.size());
  return {at::arange(n, at::kFloat).view({n, 1}), at::tensor(labels, at::kLong), classes};
}

TEST(SplitLabelledRowsTest, CutsInOrderOrTakesTheTestFileOrDrawsAFewShotSubset) {
  const ClassificationData all = Labelled({0, 1, 2, 0, 1, 2, 0, 1, 2, 0}, 3);
  LabelledSplitOptions options;
  options.train = 0.6;
  options.validation = 0.2;
  auto ordered = SplitLabelledRows(all, nullptr, options);
  ASSERT_TRUE(ordered.ok()) << ordered.status();
  EXPECT_EQ(ordered->train.size(), 6);
  EXPECT_EQ(ordered->validation.size(), 2);
  EXPECT_EQ(ordered->test.size(), 2);
  EXPECT_EQ(ordered->test.inputs[0].item<float>(), 8.0f);  // rows 8 and 9, in order

  const ClassificationData test_file = Labelled({3, 0}, 4);
  auto with_file = SplitLabelledRows(all, &test_file, options);
  ASSERT_TRUE(with_file.ok()) << with_file.status();
  EXPECT_EQ(with_file->train.size(), 6);
  EXPECT_EQ(with_file->validation.size(), 4);  // the rest: no test fraction is cut
  EXPECT_EQ(with_file->test.size(), 2);
  EXPECT_EQ(with_file->train.num_classes, 4);  // the larger count of the two files

  options.limit_classes = 2;
  options.limit_samples = 3;
  options.seed = 5;
  auto few = SplitLabelledRows(all, &test_file, options);
  ASSERT_TRUE(few.ok()) << few.status();
  EXPECT_EQ(few->train.num_classes, 2);
  EXPECT_EQ(few->train.size() + few->validation.size(), 6);  // 3 of class 0, 3 of class 1
  EXPECT_EQ(few->test.size(), 1);                            // the test file's rows of classes 0 and 1
  EXPECT_LT(few->train.labels.max().item<int64_t>(), 2);

  options.limit_samples = 1;
  options.test = 0.4;
  auto empty = SplitLabelledRows(all, nullptr, options);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("limit_samples = 1 leave an empty split"), std::string::npos)
      << empty.status();
}

}  // namespace
}  // namespace dwarp::engine
