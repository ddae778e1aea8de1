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
#
# The shared library is named by its full path, not as -lstdc++: a toolchain whose libstdc++.so link is
# missing or broken (the H200 box's /opt/gcc has a dangling one) resolves -lstdc++ to libstdc++.a, links
# the C++ runtime statically and, at the front of the line, pulls nothing from the archive, so the symbols
# still bind into libtorch.so. The path comes from the compiler (-print-file-name), else the usual places.
add_library(dwarp_torch INTERFACE)
target_link_libraries(dwarp_torch INTERFACE torch)
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang" AND NOT APPLE)
  execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-file-name=libstdc++.so.6
                  OUTPUT_VARIABLE dwarp_libstdcxx OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(NOT IS_ABSOLUTE "${dwarp_libstdcxx}" OR NOT EXISTS "${dwarp_libstdcxx}")
    find_file(dwarp_libstdcxx_found NAMES libstdc++.so.6
              PATHS /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /lib/x86_64-linux-gnu NO_DEFAULT_PATH)
    set(dwarp_libstdcxx "${dwarp_libstdcxx_found}")
  endif()
  if(dwarp_libstdcxx)
    get_filename_component(dwarp_libstdcxx "${dwarp_libstdcxx}" REALPATH)
    message(STATUS "dwarp: libstdc++ linked ahead of LibTorch: ${dwarp_libstdcxx}")
    target_link_options(dwarp_torch INTERFACE "LINKER:--push-state,--no-as-needed,${dwarp_libstdcxx},--pop-state")
  else()
    message(WARNING "dwarp: no shared libstdc++.so.6 found; programs may bind std::filesystem into libtorch.so")
  endif()
endif()
