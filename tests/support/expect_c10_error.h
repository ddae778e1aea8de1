// For engine tests: a LibTorch check that fails (TORCH_CHECK throws c10::Error) with the expected message.
// Header-only.
#pragma once

#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>

namespace dwarp::testing {

// Expects `call` to throw a c10::Error whose message contains `expected`.
inline void ExpectC10ErrorContaining(const std::function<void()>& call, const std::string& expected) {
  try {
    call();
    ADD_FAILURE() << "expected an error containing \"" << expected << "\"";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

}  // namespace dwarp::testing
