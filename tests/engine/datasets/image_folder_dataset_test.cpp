#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>  // from DWARP_STB_INCLUDE_DIR, as image_io.cpp finds stb_image.h

#include "worker/engine/datasets/image_folder_dataset.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tests/support/test_dir.h"

namespace dwarp::engine {
namespace {

namespace fs = std::filesystem;

// Writes a w x w RGB PNG filled with one colour.
void WritePng(const fs::path& path, int w, unsigned char r, unsigned char g, unsigned char b) {
  std::vector<unsigned char> px(static_cast<size_t>(w * w * 3));
  for (size_t i = 0; i < px.size(); i += 3) { px[i] = r; px[i + 1] = g; px[i + 2] = b; }
  ASSERT_NE(stbi_write_png(path.string().c_str(), w, w, 3, px.data(), w * 3), 0) << path;
}

class ImageFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dwarp::testing::FreshTestDir("dwarp_image_folder");
    // Classes c_blue (12 images), a_red (10), b_green (10, mixed extension case), plus a non-image file.
    MakeClass("a_red", 10, 200, 0, 0, ".png");
    MakeClass("b_green", 10, 0, 200, 0, ".PNG");
    MakeClass("c_blue", 12, 0, 0, 200, ".png");
    std::ofstream(root_ / "a_red" / "notes.txt") << "not an image";
  }
  void TearDown() override { fs::remove_all(root_); }
  void MakeClass(const std::string& name, int n, unsigned char r, unsigned char g, unsigned char b,
                 const std::string& ext) {
    fs::create_directories(root_ / name);
    for (int i = 0; i < n; ++i) {
      WritePng(root_ / name / ("img" + std::to_string(100 + i) + ext), 8, r, g, static_cast<unsigned char>(b + i));
    }
  }
  ImageFolderOptions Options(uint64_t seed = 7) {
    ImageFolderOptions o;
    o.seed = seed;
    o.image.size(16).normalize(false);
    return o;
  }
  fs::path root_;
};

std::set<std::string> AsSet(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

TEST_F(ImageFolderTest, LoadsClassesAndSplits) {
  auto data = LoadImageFolder(root_.string(), Options());
  ASSERT_TRUE(data.ok()) << data.status().message();
  EXPECT_EQ(data->class_names, (std::vector<std::string>{"a_red", "b_green", "c_blue"}));
  // Per class: 10 -> 6/2/2, 12 -> 8/2/2 (floor of 7.2 / 2.4 / 2.4 gives val 2, test 2, train the rest).
  EXPECT_EQ(data->train.size(), 6 + 6 + 8);
  EXPECT_EQ(data->validation.size(), 6);
  EXPECT_EQ(data->test.size(), 6);
  EXPECT_EQ(data->train.num_classes, 3);
  EXPECT_EQ(data->test.num_classes, 3);
  EXPECT_EQ(data->train.inputs.sizes().vec(), (std::vector<int64_t>{20, 3, 16, 16}));
  EXPECT_TRUE(CheckClassificationData(data->train, "train").ok());
  for (const auto* split : {&data->train, &data->validation, &data->test}) {
    auto counts = at::bincount(split->labels, {}, 3);
    for (int c = 0; c < 3; ++c) EXPECT_GT(counts[c].item<int64_t>(), 0);
  }
  // Labels follow the class: red images have label 0 and a high red channel.
  for (int64_t i = 0; i < data->train.size(); ++i) {
    const int64_t label = data->train.labels[i].item<int64_t>();
    EXPECT_GT(data->train.inputs[i][label].mean().item<float>(), 0.7f) << i;
  }
  auto tr = AsSet(data->train_files), va = AsSet(data->validation_files), te = AsSet(data->test_files);
  EXPECT_EQ(tr.size() + va.size() + te.size(), 32u);
  for (const auto& f : va) EXPECT_EQ(tr.count(f) + te.count(f), 0u) << f;
  for (const auto& f : te) EXPECT_EQ(tr.count(f), 0u) << f;
  for (const auto& f : tr) EXPECT_EQ(f.find("notes.txt"), std::string::npos);
}

TEST_F(ImageFolderTest, SeededAndDeterministic) {
  auto a = ListImageFolder(root_.string(), Options(7));
  auto b = ListImageFolder(root_.string(), Options(7));
  auto c = ListImageFolder(root_.string(), Options(8));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->train_files, b->train_files);
  EXPECT_EQ(a->test_files, b->test_files);
  EXPECT_NE(a->train_files, c->train_files);
}

TEST_F(ImageFolderTest, Limits) {
  auto o = Options();
  o.limit_classes = 2;
  o.limit_samples = 5;
  auto data = LoadImageFolder(root_.string(), o);
  ASSERT_TRUE(data.ok()) << data.status().message();
  EXPECT_EQ(data->class_names, (std::vector<std::string>{"a_red", "b_green"}));
  EXPECT_EQ(data->train.num_classes, 2);
  // 5 per class -> val floor(1.0) = 1, test 1, train 3.
  EXPECT_EQ(data->train.size(), 6);
  EXPECT_EQ(data->validation.size(), 2);
  EXPECT_EQ(data->test.size(), 2);
  // The limited sample differs between seeds.
  auto o2 = o;
  o2.seed = 99;
  auto l1 = ListImageFolder(root_.string(), o), l2 = ListImageFolder(root_.string(), o2);
  ASSERT_TRUE(l1.ok() && l2.ok());
  std::vector<std::string> all1 = l1->train_files, all2 = l2->train_files;
  all1.insert(all1.end(), l1->test_files.begin(), l1->test_files.end());
  all2.insert(all2.end(), l2->test_files.begin(), l2->test_files.end());
  EXPECT_NE(AsSet(all1), AsSet(all2));
}

TEST_F(ImageFolderTest, SmallClasses) {
  MakeClass("d_two", 2, 9, 9, 9, ".png");
  MakeClass("e_one", 1, 9, 9, 9, ".png");
  auto l = ListImageFolder(root_.string(), Options());
  ASSERT_TRUE(l.ok()) << l.status().message();
  auto count = [](const std::vector<int64_t>& v, int64_t c) { return std::count(v.begin(), v.end(), c); };
  EXPECT_EQ(count(l->train_labels, 3), 1);
  EXPECT_EQ(count(l->validation_labels, 3), 1);
  EXPECT_EQ(count(l->test_labels, 3), 0);
  EXPECT_EQ(count(l->train_labels, 4), 1);
  EXPECT_EQ(count(l->validation_labels, 4) + count(l->test_labels, 4), 0);
}

TEST_F(ImageFolderTest, Errors) {
  auto missing = LoadImageFolder((root_ / "nope").string(), Options());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);

  fs::create_directories(root_ / "empty_root");
  auto no_classes = LoadImageFolder((root_ / "empty_root").string(), Options());
  ASSERT_FALSE(no_classes.ok());
  EXPECT_NE(no_classes.status().message().find("no class"), std::string::npos);
  fs::remove_all(root_ / "empty_root");

  fs::create_directories(root_ / "z_empty");
  std::ofstream(root_ / "z_empty" / "readme.md") << "x";
  auto empty_class = LoadImageFolder(root_.string(), Options());
  ASSERT_FALSE(empty_class.ok());
  EXPECT_NE(empty_class.status().message().find("z_empty"), std::string::npos);
  fs::remove_all(root_ / "z_empty");

  std::ofstream(root_ / "b_green" / "broken.png") << "not a png";
  auto o = Options();
  o.train = 0.99; o.val = 0.005; o.test = 0.005;  // broken.png lands in some split: all are decoded
  auto unreadable = LoadImageFolder(root_.string(), o);
  ASSERT_FALSE(unreadable.ok());
  EXPECT_NE(unreadable.status().message().find("broken.png"), std::string::npos) << unreadable.status().message();

  auto bad = Options();
  bad.train = 0.5;
  EXPECT_FALSE(ListImageFolder(root_.string(), bad).ok());
}

// One rule for image files (image_io.h): the class folders and a job's stimulus folder list the same files.
TEST_F(ImageFolderTest, ListImageFilesKeepsImagesOfAnyCaseSortedAndLimited) {
  EXPECT_TRUE(IsImageFile("a/x.PNG"));
  EXPECT_TRUE(IsImageFile("x.jpeg"));
  EXPECT_TRUE(IsImageFile("x.gif"));
  EXPECT_FALSE(IsImageFile("x.txt"));
  EXPECT_FALSE(IsImageFile("png"));
  auto all = ListImageFiles((root_ / "a_red").string());
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 10u);  // notes.txt is not an image
  EXPECT_TRUE(std::is_sorted(all->begin(), all->end()));
  EXPECT_EQ(fs::path(all->front()).filename(), "img100.png");
  auto first3 = ListImageFiles((root_ / "b_green").string(), 3);
  ASSERT_TRUE(first3.ok()) << first3.status();
  ASSERT_EQ(first3->size(), 3u);
  EXPECT_EQ(fs::path(first3->back()).filename(), "img102.PNG");
  auto missing = ListImageFiles((root_ / "nope").string());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos) << missing.status();
}

}  // namespace
}  // namespace dwarp::engine
