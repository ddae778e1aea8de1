# dwarp_torch: LibTorch as every dwarp target links it (never `torch` directly), with libstdc++.so.6 the
# first NEEDED entry of each program that uses it.
#
# Why: a PyTorch wheel's libtorch.so and libtorch_cpu.so export std::filesystem symbols of their own. The
# dynamic linker binds a symbol to the first object in the program's NEEDED order that defines it, and a
# default link lists the torch libraries first (libstdc++ comes last, added by the compiler driver), so
# std::filesystem::remove_all & co. of a program bound into libtorch.so and crashed there. Naming libstdc++
# in the link options puts it ahead of every library: CMake places link options before the objects and
# libraries on the link line. --no-as-needed keeps the entry even where the toolchain links --as-needed by
# default (Ubuntu); --push-state/--pop-state leave that default alone for the rest of the line.
# tests/support/check_libstdcxx_first.sh (a ctest test) checks the order in every binary of the build.
add_library(dwarp_torch INTERFACE)
target_link_libraries(dwarp_torch INTERFACE torch)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang" AND NOT APPLE)
  target_link_options(dwarp_torch INTERFACE "LINKER:--push-state,--no-as-needed,-lstdc++,--pop-state")
endif()
