#!/bin/bash
# Packs what a GPU box lacks for an engine-only build and its tests, and for a local-only build (`dwarp
# train`, CMake DWARP_LOCAL_ONLY) and one job, into .gpu-kit/ at the repository root (ignored by git, sent to
# the box with the run tool's carry: [".gpu-kit"]); tests/gpu/check.sh uses it there.
# Run on the Debian machine, from anywhere in the repository:
#
#   tests/gpu/pack.sh
#
# .gpu-kit/ holds
#   googletest/          Debian's /usr/src/googletest (libgtest-dev), built by CMake when no GoogleTest is installed
#   include/stb/         stb_image.h, stb_image_write.h (libstb-dev)
#   zlib/include, lib/   zlib.h, zconf.h and libz.so.1 (zlib1g-dev, zlib1g), for a box without zlib's headers
#   local/include/       the headers of yaml-cpp (libyaml-cpp-dev), nlohmann/json (nlohmann-json3-dev), CLI11
#                        (libcli11-dev), spdlog and fmt (libspdlog-dev, libfmt-dev: both used header-only)
#   local/lib/           libyaml-cpp.so.0.7 (libyaml-cpp0.7; needs glibc 2.32 and GLIBCXX 3.4.29 or later)
#   local/cmake/<pkg>/   CMake package files for those five, found through <pkg>_DIR: they define the targets
#                        the project links (yaml-cpp, nlohmann_json::nlohmann_json, CLI11::CLI11,
#                        spdlog::spdlog) on the kit's own paths, wherever the kit is
#   data/fashion-mnist-train-2000-images-idx3-ubyte.gz
#                        the first 2,000 Fashion-MNIST training images as a gzipped IDX file
#                        (dataset-fashion-mnist): the stimuli of check.sh's job
#   VERSIONS             the Debian package versions copied
# A box has LibTorch (in its PyTorch wheel), CUDA, CMake and ninja; nothing else is assumed.
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
kit="$root/.gpu-kit"
fail() { echo "pack.sh: $*" >&2; exit 1; }

gtest_src=/usr/src/googletest
stb_dir=/usr/include/stb
zlib_lib=$(readlink -f /lib/x86_64-linux-gnu/libz.so.1 2>/dev/null || true)
[ -f "$gtest_src/CMakeLists.txt" ] && [ -d "$gtest_src/googlemock" ] ||
  fail "no GoogleTest sources at $gtest_src (Debian: apt-get install libgtest-dev)"
for header in stb_image.h stb_image_write.h; do
  [ -f "$stb_dir/$header" ] || fail "no $stb_dir/$header (Debian: apt-get install libstb-dev)"
done
for header in zlib.h zconf.h; do
  [ -f "/usr/include/$header" ] || fail "no /usr/include/$header (Debian: apt-get install zlib1g-dev)"
done
[ -n "$zlib_lib" ] && [ -f "$zlib_lib" ] || fail "no /lib/x86_64-linux-gnu/libz.so.1 (Debian: zlib1g)"
# The local job path's libraries: header directories, and yaml-cpp's shared library (Debian has no sources).
yaml_lib=$(readlink -f /usr/lib/x86_64-linux-gnu/libyaml-cpp.so.0.7 2>/dev/null || true)
for dir in yaml-cpp:libyaml-cpp-dev nlohmann:nlohmann-json3-dev CLI:libcli11-dev spdlog:libspdlog-dev fmt:libfmt-dev; do
  [ -d "/usr/include/${dir%%:*}" ] || fail "no /usr/include/${dir%%:*} (Debian: apt-get install ${dir#*:})"
done
[ -n "$yaml_lib" ] && [ -f "$yaml_lib" ] ||
  fail "no /usr/lib/x86_64-linux-gnu/libyaml-cpp.so.0.7 (Debian: apt-get install libyaml-cpp0.7)"
# spdlog is used header-only (no SPDLOG_COMPILED_LIB) with fmt header-only (FMT_HEADER_ONLY): that needs the
# -inl.h files of both, which Debian ships.
[ -f /usr/include/spdlog/spdlog-inl.h ] && [ -f /usr/include/fmt/format-inl.h ] ||
  fail "spdlog's or fmt's -inl.h headers are missing: they cannot be used header-only"
fmnist=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
[ -f "$fmnist" ] || fail "no $fmnist (Debian: apt-get install dataset-fashion-mnist)"
git -C "$root" check-ignore -q .gpu-kit/ || fail "$kit is not ignored by git (.gitignore should list /.gpu-kit/)"

rm -rf "$kit"
mkdir -p "$kit/include/stb" "$kit/zlib/include" "$kit/zlib/lib"
cp -rL "$gtest_src" "$kit/googletest"
cp "$stb_dir/stb_image.h" "$stb_dir/stb_image_write.h" "$kit/include/stb/"
cp /usr/include/zlib.h /usr/include/zconf.h "$kit/zlib/include/"
cp "$zlib_lib" "$kit/zlib/lib/libz.so.1"

# ---- the local job path: headers, yaml-cpp's library, CMake package files ---------------------------------
local_dir=$kit/local
mkdir -p "$local_dir/include" "$local_dir/lib" "$local_dir/cmake"
for dir in yaml-cpp nlohmann CLI spdlog fmt; do cp -rL "/usr/include/$dir" "$local_dir/include/"; done
cp "$yaml_lib" "$local_dir/lib/libyaml-cpp.so.0.7"
nlohmann_version=$(dpkg-query -W -f '${Version}' nlohmann-json3-dev | sed 's/-.*//')
# package_file NAME: writes $local_dir/cmake/NAME/NAMEConfig.cmake from stdin, after a common preamble that
# finds the kit from the file's own folder (the kit moves: here, then the box).
package_file() {
  mkdir -p "$local_dir/cmake/$1"
  {
    echo "# Written by tests/gpu/pack.sh: $1 from this GPU kit (Debian's headers, see the kit's VERSIONS)."
    cat <<'PREAMBLE'
get_filename_component(_dwarp_kit_local "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
# The kit's headers reach the compiler as -I, not -isystem: -I folders are searched before every -isystem
# one, so they win over same-named copies elsewhere on the path (a PyTorch wheel's include/ has its own fmt).
macro(_dwarp_kit_headers_first target)
  if(CMAKE_VERSION VERSION_GREATER_EQUAL 3.25)
    set_target_properties(${target} PROPERTIES SYSTEM OFF)
  else()
    set_target_properties(${target} PROPERTIES IMPORTED_NO_SYSTEM ON)
  endif()
endmacro()
PREAMBLE
    cat
  } > "$local_dir/cmake/$1/$1Config.cmake"
}
package_file yaml-cpp <<'CMAKE'
# yaml-cpp 0.7's target name (0.8 and later: yaml-cpp::yaml-cpp); Debian's shared library.
if(NOT TARGET yaml-cpp)
  add_library(yaml-cpp SHARED IMPORTED)
  set_target_properties(yaml-cpp PROPERTIES
    IMPORTED_LOCATION "${_dwarp_kit_local}/lib/libyaml-cpp.so.0.7"
    IMPORTED_SONAME "libyaml-cpp.so.0.7"
    INTERFACE_INCLUDE_DIRECTORIES "${_dwarp_kit_local}/include")
  _dwarp_kit_headers_first(yaml-cpp)
endif()
set(YAML_CPP_INCLUDE_DIR "${_dwarp_kit_local}/include")
set(YAML_CPP_LIBRARIES yaml-cpp)
CMAKE
package_file nlohmann_json <<'CMAKE'
if(NOT TARGET nlohmann_json::nlohmann_json)
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
  set_target_properties(nlohmann_json::nlohmann_json PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_dwarp_kit_local}/include")
  _dwarp_kit_headers_first(nlohmann_json::nlohmann_json)
endif()
CMAKE
# find_package(nlohmann_json 3.2) asks for a version: same major, at least the one asked for.
cat > "$local_dir/cmake/nlohmann_json/nlohmann_jsonConfigVersion.cmake" <<CMAKE
set(PACKAGE_VERSION "$nlohmann_version")
if(PACKAGE_FIND_VERSION_MAJOR STREQUAL "" OR (PACKAGE_FIND_VERSION_MAJOR EQUAL 3 AND
   NOT PACKAGE_VERSION VERSION_LESS PACKAGE_FIND_VERSION))
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
else()
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
endif()
CMAKE
package_file CLI11 <<'CMAKE'
if(NOT TARGET CLI11::CLI11)
  add_library(CLI11::CLI11 INTERFACE IMPORTED)
  set_target_properties(CLI11::CLI11 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_dwarp_kit_local}/include")
  _dwarp_kit_headers_first(CLI11::CLI11)
endif()
CMAKE
package_file spdlog <<'CMAKE'
# Header-only: no SPDLOG_COMPILED_LIB; Debian's tweakme.h sets SPDLOG_FMT_EXTERNAL, and fmt is header-only too.
include(CMakeFindDependencyMacro)
find_dependency(Threads)
if(NOT TARGET spdlog::spdlog)
  add_library(spdlog::spdlog INTERFACE IMPORTED)
  set_target_properties(spdlog::spdlog PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_dwarp_kit_local}/include"
    INTERFACE_COMPILE_DEFINITIONS "SPDLOG_FMT_EXTERNAL;FMT_HEADER_ONLY"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
  _dwarp_kit_headers_first(spdlog::spdlog)
endif()
CMAKE

# ---- the job's stimuli: the first 2,000 Fashion-MNIST training images, a valid gzipped IDX file -----------
mkdir -p "$kit/data"
python3 - "$fmnist" "$kit/data/fashion-mnist-train-2000-images-idx3-ubyte.gz" <<'PY'
import gzip, struct, sys
count = 2000
with gzip.open(sys.argv[1], "rb") as f:
    magic, n, rows, cols = struct.unpack(">IIII", f.read(16))
    assert magic == 0x803 and n >= count, (hex(magic), n)
    pixels = f.read(count * rows * cols)
    assert len(pixels) == count * rows * cols
with gzip.GzipFile(sys.argv[2], "wb", mtime=0) as out:  # mtime 0: the same bytes every time
    out.write(struct.pack(">IIII", magic, count, rows, cols) + pixels)
PY

dpkg-query -W -f '${Package} ${Version}\n' libgtest-dev libstb-dev zlib1g-dev zlib1g libyaml-cpp-dev libyaml-cpp0.7 \
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev dataset-fashion-mnist > "$kit/VERSIONS"

# The run tool sends the working tree (tracked and untracked, not ignored) plus the carried paths: 64 MiB in all.
kit_bytes=$(du -sb "$kit" | cut -f1)
tree_bytes=$(cd "$root" && git ls-files -z --cached --others --exclude-standard |
             xargs -0 -r stat -c %s -- 2>/dev/null | awk '{s += $1} END {print s + 0}')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "packed $kit: $(mib "$kit_bytes") ($(find "$kit" -type f | wc -l) files; $(tr '\n' ';' < "$kit/VERSIONS"))"
echo "working tree sent with it: $(mib "$tree_bytes"); together $(mib $((kit_bytes + tree_bytes))) of the 64 MiB a run may carry"
(( kit_bytes + tree_bytes < 48 * 1048576 )) || fail "the kit and working tree exceed 48 MiB: too close to the 64 MiB limit"
cat <<'RUN'

On a GPU box, call the run tool with:
  command:   bash tests/gpu/check.sh
  carry:     [".gpu-kit"]
  timeout_s: 480
The logs come back in $OUT: summary.txt (also on stdout), versions.log, configure.log, build.log, ctest.log,
standalone.log, bench.log, step_bench.log, local_configure.log, local_build.log, job_device.log and
job_cpu.log (`dwarp train` on the GPU and on the CPU) with their results, job_device.json and job_cpu.json.
RUN
