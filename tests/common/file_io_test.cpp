// ReadWholeFile and WriteFileAtomically (common/file_io.h) on real files in a temporary folder: the bytes
// come back as written, and every error names the kind of file and the path.
#include "common/file_io.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/support/test_dir.h"

namespace dwarp {
namespace {

namespace fs = std::filesystem;

class FileIoTest : public dwarp::testing::FreshDirTest {
 protected:
  FileIoTest() : FreshDirTest("dwarp_file_io") {}
};

TEST_F(FileIoTest, ReadsBackWhatWasWrittenByteForByte) {
  const std::string path = (dir_ / "sub" / "data.bin").string();
  const std::string bytes("a\0b\r\n\xff", 6);
  ASSERT_TRUE(WriteFileAtomically(path, bytes, "--out").ok());
  auto read = ReadWholeFile(path, "data file");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
  ASSERT_TRUE(WriteFileAtomically(path, "", "--out").ok());
  auto empty = ReadWholeFile(path, "data file");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->empty());
}

TEST_F(FileIoTest, ReadErrorsNameTheKindOfFileAndThePath) {
  const std::string missing = (dir_ / "nope.yaml").string();
  auto absent = ReadWholeFile(missing, "job spec file");
  EXPECT_EQ(absent.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(absent.status().message(), "job spec file '" + missing + "' does not exist");
  fs::create_directories(dir_);
  auto folder = ReadWholeFile(dir_.string(), "image file");
  EXPECT_EQ(folder.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(folder.status().message(), "image file '" + dir_.string() + "' is not a regular file");
}

}  // namespace
}  // namespace dwarp
