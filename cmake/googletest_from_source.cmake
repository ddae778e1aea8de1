# GoogleTest built from DWARP_GTEST_SOURCE_DIR (the layout of Debian's /usr/src/googletest: a top-level
# CMakeLists.txt with googletest/ and googlemock/), exposing the targets an installed GoogleTest gives:
# GTest::gtest, GTest::gtest_main, GTest::gmock, GTest::gmock_main.
if(NOT EXISTS "${DWARP_GTEST_SOURCE_DIR}/CMakeLists.txt" OR NOT EXISTS "${DWARP_GTEST_SOURCE_DIR}/googlemock")
  message(FATAL_ERROR "DWARP_GTEST_SOURCE_DIR = '${DWARP_GTEST_SOURCE_DIR}' is not a GoogleTest source tree "
                      "(expected CMakeLists.txt and googlemock/ in it, as in Debian's /usr/src/googletest)")
endif()
message(STATUS "dwarp: no installed GoogleTest; building it from ${DWARP_GTEST_SOURCE_DIR}")
set(BUILD_GMOCK ON CACHE BOOL "" FORCE)
set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
add_subdirectory("${DWARP_GTEST_SOURCE_DIR}" "${CMAKE_BINARY_DIR}/googletest" EXCLUDE_FROM_ALL)

# The tests pass std::string to GoogleTest and link LibTorch: GoogleTest must use LibTorch's libstdc++ ABI
# (pip wheels before PyTorch 2.7 used the old one).
string(REGEX MATCH "_GLIBCXX_USE_CXX11_ABI=[01]" DWARP_TORCH_CXX11_ABI "${TORCH_CXX_FLAGS}")
foreach(name gtest gtest_main gmock gmock_main)
  if(NOT TARGET ${name})
    message(FATAL_ERROR "GoogleTest from ${DWARP_GTEST_SOURCE_DIR} defined no target '${name}'")
  endif()
  if(DWARP_TORCH_CXX11_ABI)
    target_compile_definitions(${name} PUBLIC ${DWARP_TORCH_CXX11_ABI})
  endif()
  if(NOT TARGET GTest::${name})
    add_library(GTest::${name} ALIAS ${name})
  endif()
endforeach()
