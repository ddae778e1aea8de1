// Data roots (worker/daemon/data_roots.h): which paths a job spec may name on a worker started with
// --data-root, decided on the resolved path, never by string prefix.
#include "worker/daemon/data_roots.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "tests/support/test_dir.h"

namespace dwarp::worker {
namespace {

namespace fs = std::filesystem;

class DataRootsTest : public dwarp::testing::FreshDirTest {
 protected:
  DataRootsTest() : FreshDirTest("dwarp_data_roots") {}

  void SetUp() override {
    fs::create_directories(dir_ / "data" / "nsd");
    fs::create_directories(dir_ / "data2");
    fs::create_directories(dir_ / "elsewhere");
    std::ofstream(dir_ / "elsewhere" / "secret") << "SECRET";
    fs::create_directory_symlink(dir_ / "elsewhere", dir_ / "data" / "link");
    auto roots = CanonicalDataRoots({(dir_ / "data").string()});
    ASSERT_TRUE(roots.ok()) << roots.status();
    roots_ = *roots;
  }

  Status CheckImages(const std::string& path) {
    JobSpec spec;
    spec.data.images = path;
    return CheckJobPathsUnderDataRoots(spec, roots_);
  }

  std::vector<fs::path> roots_;
};

TEST_F(DataRootsTest, PathsUnderARootPassWhetherOrNotTheyExist) {
  EXPECT_TRUE(CheckImages((dir_ / "data" / "nsd").string()).ok());
  EXPECT_TRUE(CheckImages((dir_ / "data" / "nsd" / "not-yet.idx").string()).ok());
  EXPECT_TRUE(CheckImages((dir_ / "data").string()).ok());
  EXPECT_TRUE(CheckImages((dir_ / "data" / "nsd" / ".." / "x").string()).ok());
}

TEST_F(DataRootsTest, PathsOutsideAreRefusedNamingFieldPathAndRoots) {
  const std::string outside = (dir_ / "elsewhere" / "secret").string();
  Status status = CheckImages(outside);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("data.images '" + outside + "'"), std::string::npos) << status;
  EXPECT_NE(status.message().find(roots_[0].string()), std::string::npos) << status;
  EXPECT_EQ(status.message().find("SECRET"), std::string::npos) << status;
  EXPECT_EQ(CheckImages("/etc/passwd").code(), StatusCode::kInvalidArgument);
  // A sibling whose name starts with the root's is not under it.
  EXPECT_EQ(CheckImages((dir_ / "data2" / "x").string()).code(), StatusCode::kInvalidArgument);
  // `..` and symbolic links are followed before deciding.
  EXPECT_EQ(CheckImages((dir_ / "data" / ".." / "elsewhere" / "secret").string()).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckImages((dir_ / "data" / "link" / "secret").string()).code(), StatusCode::kInvalidArgument);
}

TEST_F(DataRootsTest, RelativePathsResolveFromTheWorkingDirectory) {
  const fs::path cwd = fs::current_path();
  fs::current_path(dir_ / "data");
  const Status inside = CheckImages("nsd/images.idx");
  const Status escaping = CheckImages("../elsewhere/secret");
  fs::current_path(cwd);
  EXPECT_TRUE(inside.ok()) << inside;
  EXPECT_EQ(escaping.code(), StatusCode::kInvalidArgument);
}

TEST_F(DataRootsTest, EveryPathFieldIsChecked) {
  const std::string outside = "/etc/passwd";
  auto refused = [&](const std::function<void(JobSpec&)>& set, const std::string& field) {
    JobSpec spec;
    set(spec);
    Status status = CheckJobPathsUnderDataRoots(spec, roots_);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(status.message().find(field), std::string::npos) << status;
  };
  refused([&](JobSpec& s) { s.model.weights = outside; }, "model.weights");
  refused([&](JobSpec& s) { s.data.root = outside; }, "data.root");
  refused([&](JobSpec& s) { s.data.file = outside; }, "data.file");
  refused([&](JobSpec& s) { s.data.stimuli = outside; }, "data.stimuli");
  refused([&](JobSpec& s) { s.data.labels = outside; }, "data.labels");
  refused([&](JobSpec& s) { s.data.test_images = outside; }, "data.test_images");
  refused([&](JobSpec& s) { s.data.test_labels = outside; }, "data.test_labels");
  refused(
      [&](JobSpec& s) {
        s.data.synthetic.emplace();
        s.data.synthetic->teacher.emplace();
        s.data.synthetic->teacher->weights = outside;
      },
      "data.synthetic.teacher.weights");
}

TEST_F(DataRootsTest, NoRootsAllowEveryPath) {
  JobSpec spec;
  spec.data.images = "/etc/passwd";
  EXPECT_TRUE(CheckJobPathsUnderDataRoots(spec, {}).ok());
}

TEST_F(DataRootsTest, RootsMustBeExistingDirectories) {
  EXPECT_EQ(CanonicalDataRoots({(dir_ / "missing").string()}).status().code(), StatusCode::kInvalidArgument);
  Status file = CanonicalDataRoots({(dir_ / "elsewhere" / "secret").string()}).status();
  EXPECT_EQ(file.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(file.message().find("not an existing directory"), std::string::npos) << file;
  EXPECT_EQ(CanonicalDataRoots({""}).status().code(), StatusCode::kInvalidArgument);
  // A root given through a symbolic link is the folder it names.
  auto linked = CanonicalDataRoots({(dir_ / "data" / "link").string()});
  ASSERT_TRUE(linked.ok()) << linked.status();
  EXPECT_EQ(linked->at(0), fs::canonical(dir_ / "elsewhere"));
}

}  // namespace
}  // namespace dwarp::worker
