// GoogleTest main for every dwarp test binary: GPU tests are named *_CUDA and filtered out when no CUDA
// device is present, as in PyTorch's C++ tests, so CPU-only machines run the rest unchanged.
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!at::hasCUDA()) {
    std::string filter = ::testing::GTEST_FLAG(filter);
    filter += filter.find('-') == std::string::npos ? "-*_CUDA" : ":*_CUDA";
    ::testing::GTEST_FLAG(filter) = filter;
    std::printf("No CUDA device: tests named *_CUDA are filtered out.\n");
  }
  return RUN_ALL_TESTS();
}
