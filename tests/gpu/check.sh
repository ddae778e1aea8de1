#!/bin/bash
# The GPU check: on a GPU box that has CUDA, CMake, ninja and a CUDA PyTorch wheel (its LibTorch) but none of
# the Debian packages, configures an engine-only CUDA build with what tests/gpu/pack.sh put in .gpu-kit/,
# builds it on all cores, runs every engine test (the *_CUDA ones included), fwht_cuda_standalone_check,
# fastfood_device_benchmark and subspace_step_benchmark on the GPU (each projection path side by side: one
# FastfoodProjection per tensor, BatchedFastfood, and BatchedFastfood with every tensor installed at once
# (the fused install); and the performance targets met or missed); then reconfigures the same build folder
# as a local-only build (DWARP_LOCAL_ONLY: `dwarp` with train, intrinsic-dim and simulate, no gRPC), builds
# `dwarp` with the kit's yaml-cpp, nlohmann/json, CLI11 and spdlog, runs one real job with `dwarp train`
# (tests/gpu/resnet18_synthetic_job.yaml: ResNet-18 on a synthetic brain over the kit's images, d = 1000)
# on the GPU and the same job on the CPU for one epoch, prints their epoch times side by side, and ends with
# a short summary. Every log goes to $OUT.
#
# From the repository root:
#   bash tests/gpu/check.sh                       # on the GPU box: CUDA kernels required
#   bash tests/gpu/check.sh --cuda AUTO --like-gpu-box   # on a CPU machine: the same steps, no CUDA
#
#   --cuda ON|AUTO|OFF  DWARP_CUDA for the build (default ON: the check fails if CUDA cannot be built)
#   --like-gpu-box      ignore the system's GoogleTest, Google Benchmark and zlib, so the build uses .gpu-kit/
#                       as on a GPU box (where they are absent and the kit is used anyway). The local build
#                       always takes yaml-cpp, nlohmann/json, CLI11 and spdlog from the kit (<pkg>_DIR), and
#                       the check proves it: no header of theirs may come from elsewhere (ninja's dependency
#                       records) and `dwarp` must load the kit's libyaml-cpp.
# Environment: OUT (logs; default build-gpu/out), BUILD_DIR (default build-gpu), PYTHON (a python that imports
# torch; default python3), JOBS (default: all cores), CUDA_ARCH (default 90: H100/H200), BENCH_MAX_LOG2
# (largest D = 2^k benchmarked; default 24), CHECK_BUDGET_S (seconds the whole check may take; default 330,
# under the 6 minutes a GPU check is sized for; a 2-core CPU machine needs about 4000), JOB_ARGS (overrides
# for both jobs, e.g. `model.input_size=64 data.limit_stimuli=300` to keep a CPU machine's run short),
# CPU_JOB_STIMULI (the CPU job's data.limit_stimuli; default 640).
# Exit status 0 when configure, build, every test, the standalone check, the benchmarks, the local build
# and both jobs succeeded.
#
# GPU time is scarce, so the check always ends with its summary ($OUT/summary.txt, also on stdout), whatever
# fails: every step runs under `timeout`, within what is left of CHECK_BUDGET_S (a step that would overrun
# is cut short or skipped, and the summary says so), a failed step never stops the later ones that can still
# run, and an unexpected exit still writes the last line. The summary names each failed test with its first
# error lines, and each failed case of fwht_cuda_standalone_check.
set -uo pipefail

summary=
fail() {
  echo "check.sh: $*" >&2
  [ -z "$summary" ] || echo "check.sh: FAILED before the build: $*" >> "$summary"
  finished=1  # the line above is the summary's last
  exit 2
}

cuda=ON
like_gpu_box=0
while (($#)); do
  case $1 in
    --cuda) [ $# -ge 2 ] || fail "--cuda needs a value: ON, AUTO or OFF"; cuda=$2; shift 2 ;;
    --like-gpu-box) like_gpu_box=1; shift ;;
    *) fail "unknown argument '$1' (expected --cuda ON|AUTO|OFF or --like-gpu-box)" ;;
  esac
done
case $cuda in ON | AUTO | OFF) ;; *) fail "--cuda $cuda: expected ON, AUTO or OFF" ;; esac

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || fail "cannot enter the repository root $root"
kit=$root/.gpu-kit
build=${BUILD_DIR:-build-gpu}
OUT=${OUT:-$root/$build/out}
python=${PYTHON:-python3}
jobs=${JOBS:-$(nproc)}
cuda_arch=${CUDA_ARCH:-90}
bench_max_log2=${BENCH_MAX_LOG2:-24}

budget=${CHECK_BUDGET_S:-330}
[[ $budget =~ ^[0-9]+$ ]] || fail "CHECK_BUDGET_S=$budget: expected a number of seconds"
started=$SECONDS
mkdir -p "$OUT" || fail "cannot create $OUT"
summary=$OUT/summary.txt
: > "$summary" || fail "cannot write $summary"
note() { echo "$*" | tee -a "$summary"; }
status=0
finished=0
# An exit anywhere (set -u, a signal) still leaves the summary's last line.
trap 'rc=$?; ((finished)) || note "check.sh: FAILED (stopped early, exit $rc) after $((SECONDS - started)) s; logs in $OUT"' EXIT

# Seconds the next step may take: at most $1, leaving $2 seconds of the budget for the steps after it
# (0 when nothing is left).
step_seconds() {
  local left=$((started + budget - SECONDS - $2))
  ((left > $1)) && left=$1
  ((left > 0)) || left=0
  echo "$left"
}
# `timeout` exits 124 when it cut the command short (137: killed after ignoring the TERM).
timed_out() { (($1 == 124 || $1 == 137)); }
# Ends the check with the summary's last line.
finish() {
  finished=1
  note "check.sh: $( ((status == 0)) && echo PASSED || echo FAILED ) in $((SECONDS - started)) s; logs in $OUT"
  exit $status
}

# What must be here before anything runs; each missing piece is named.
[ -f "$kit/googletest/CMakeLists.txt" ] && [ -f "$kit/include/stb/stb_image.h" ] && [ -f "$kit/zlib/include/zlib.h" ] ||
  fail "no complete kit at $kit: run tests/gpu/pack.sh on the Debian machine and carry .gpu-kit"
command -v cmake > /dev/null || fail "cmake not found on PATH"
command -v ninja > /dev/null || fail "ninja not found on PATH (the build uses -G Ninja)"
command -v "${CXX:-c++}" > /dev/null || fail "no C++ compiler: ${CXX:-c++} not found (set CXX)"
torch_prefix=$(timeout 60 "$python" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2> /dev/null) ||
  fail "$python cannot import torch (set PYTHON to a python with PyTorch; its LibTorch is built against)"
if [ "$cuda" != OFF ] && ! command -v nvcc > /dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
[ "$cuda" != ON ] || command -v nvcc > /dev/null || fail "--cuda ON but nvcc is neither on PATH nor in /usr/local/cuda/bin"
mkdir -p "$build" || fail "cannot create $build"

# ---- versions: the machine, the GPU, the toolchain, PyTorch ----------------------------------------------
{
  echo "== $(date -u '+%F %T UTC') on $(hostname), $(nproc) cores, $(uname -srm)"
  echo "== nvidia-smi"; timeout 30 nvidia-smi 2>&1 || echo "(no nvidia-smi, or it failed)"
  echo "== nvcc"; nvcc --version 2>&1 || echo "(no nvcc)"
  echo "== cmake"; cmake --version | head -1
  echo "== ninja"; ninja --version
  echo "== ${CXX:-c++}"; "${CXX:-c++}" --version | head -1
  echo "== torch ($python)"
  timeout 60 "$python" -c 'import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cxx11 abi", torch.compiled_with_cxx11_abi())
print("cuda available", torch.cuda.is_available(), "devices", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    print("  cuda:%d %s, capability %s" % (i, torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i)))
print("cmake prefix", torch.utils.cmake_prefix_path)' 2>&1
  echo "== kit"; cat "$kit/VERSIONS"
} 2>&1 | tee "$OUT/versions.log"

# ---- configure -------------------------------------------------------------------------------------------
# (DWARP_LOCAL_ONLY=OFF: a rerun in a folder the local build below reconfigured.)
cmake_args=(-S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDWARP_ENGINE_ONLY=ON -DDWARP_LOCAL_ONLY=OFF
            -DDWARP_CUDA="$cuda"
            -DCMAKE_PREFIX_PATH="$torch_prefix" -DDWARP_GTEST_SOURCE_DIR="$kit/googletest"
            -DDWARP_STB_INCLUDE_DIR="$kit/include/stb")
# LibTorch's headers need C++20 from PyTorch 2.12 on (the project is C++17 otherwise).
if "$python" -c 'import sys, torch; sys.exit(tuple(map(int, torch.__version__.split(".")[:2])) < (2, 12))' 2> /dev/null; then
  cmake_args+=(-DCMAKE_CXX_STANDARD=20)
fi
if [ "$cuda" != OFF ] && command -v nvcc > /dev/null; then
  cmake_args+=(-DCMAKE_CUDA_COMPILER="$(command -v nvcc)" -DCMAKE_CUDA_ARCHITECTURES="$cuda_arch")
  # LibTorch's CMake files turn this into its own nvcc flags; without it they probe the GPUs.
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-${cuda_arch:0:-1}.${cuda_arch: -1}}
fi
# zlib: the system's when it has the headers and the library, otherwise the kit's copy.
zlib_probe=$(mktemp -d)
if ((like_gpu_box)) ||
   ! printf '#include <zlib.h>\nint main() { return zlibVersion()[0] == 0; }\n' |
     "${CXX:-c++}" -x c++ - -lz -o "$zlib_probe/a.out" > /dev/null 2>&1; then
  cmake_args+=(-DZLIB_INCLUDE_DIR="$kit/zlib/include" -DZLIB_LIBRARY="$kit/zlib/lib/libz.so.1")
  zlib_from="the kit"
else
  zlib_from="the system"
fi
rm -rf "$zlib_probe"
if ((like_gpu_box)); then
  cmake_args+=(-DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON)
fi
note "check.sh: DWARP_CUDA=$cuda, CUDA arch $cuda_arch, like GPU box: $like_gpu_box, zlib from $zlib_from, $jobs jobs, budget $budget s"
note "torch: $(grep '^torch ' "$OUT/versions.log"); GPUs: $(grep -c '^  cuda:' "$OUT/versions.log")"

echo "== cmake ${cmake_args[*]}" > "$OUT/configure.log"
# (timeout 0 would mean no limit: every step checks that time is left first.)
configure_seconds=$(step_seconds 120 60)
((configure_seconds >= 10)) || { status=1; note "configure: SKIPPED, out of time"; finish; }
timeout "$configure_seconds" cmake "${cmake_args[@]}" >> "$OUT/configure.log" 2>&1
configure_rc=$?
if ((configure_rc != 0)); then
  status=1
  note "configure: FAILED$(timed_out $configure_rc && echo ', out of time') (configure.log); its last 20 lines:"
  tail -20 "$OUT/configure.log" | cut -c1-300 | tee -a "$summary"
  finish
fi
note "configure: ok ($(grep -o 'dwarp: engine only=.*' "$OUT/configure.log"))"
grep -h "GoogleTest\|Google Benchmark\|netCDF\|libnetcdf" "$OUT/configure.log" | sed 's/^-- /  /' | tee -a "$summary"

# ---- build (-k 0: everything that can be built is, so the tests that built still run) ----------------------
# What the build leaves of the budget: enough for the tests, the standalone check and the benchmark.
build_start=$SECONDS
build_seconds=$(step_seconds "$budget" 150)
((build_seconds >= 10)) || { status=1; note "build: SKIPPED, out of time"; finish; }
timeout "$build_seconds" cmake --build "$build" -j "$jobs" -- -k 0 > "$OUT/build.log" 2>&1
build_rc=$?
build_seconds=$((SECONDS - build_start))
if ((build_rc == 0)); then
  note "build: ok in ${build_seconds} s"
else
  status=1
  if timed_out $build_rc; then
    note "build: STOPPED after ${build_seconds} s, out of time (build.log); what was built is tested"
  else
    note "build: FAILED in ${build_seconds} s (build.log); the first errors:"
  fi
  grep -m 20 -E "error|FAILED:" "$OUT/build.log" | cut -c1-300 | tee -a "$summary"
fi

# ---- tests: ctest -V keeps every test's output (each line prefixed "N: ", N the test number), so the log
# shows which *_CUDA cases ran. fwht_cuda_standalone_check runs on its own below, not twice.
ctest_seconds=$(step_seconds 180 60)
if ((ctest_seconds < 20)); then
  status=1
  note "ctest: SKIPPED, out of time"
else
  (cd "$build" && timeout -k 10 "$ctest_seconds" ctest -V -j "$(( jobs / 4 > 2 ? jobs / 4 : 2 ))" \
     --timeout "$(( ctest_seconds > 150 ? 150 : ctest_seconds ))" -E '^fwht_cuda_standalone_check') > "$OUT/ctest.log" 2>&1
  ctest_rc=$?
  ((ctest_rc == 0)) || status=1
  timed_out $ctest_rc && note "ctest: STOPPED after $ctest_seconds s, out of time; the tests not finished are missing below"
  note "ctest: $(grep -E '[0-9]+% tests passed' "$OUT/ctest.log" || echo "no result line (ctest exit $ctest_rc)")"
  # Each failed test by name (from ctest's progress lines, which are there even when ctest was stopped),
  # then its first error lines: GoogleTest's first failure and the failed cases, or (a crash, a script)
  # the last lines it printed.
  sed -nE 's/^ *[0-9]+\/[0-9]+ +Test +#([0-9]+): ([^ ]+) \.*\*\*\*(.*[^ ]) +[0-9.]+ sec$/\1 \2 \3/p' "$OUT/ctest.log" |
    while read -r number name result; do
      note "  FAILED $name ($result)"
      lines=$(sed -n "s/^$number: //p" "$OUT/ctest.log")
      {
        if [ "$result" = "Not Run" ]; then
          grep -m 1 "^Could not find executable .*/$name\$" "$OUT/ctest.log" || echo "(not run)"
        elif grep -qE ': Failure$|^\[  FAILED  \]' <<< "$lines"; then
          # The first failure's message: from its "file:line: Failure" up to GoogleTest's next status line.
          awk '/: Failure$/ {on = 1} on && /^\[ / {exit} on && n++ < 6' <<< "$lines"
          grep -E '^\[  FAILED  \] [A-Za-z0-9_/.]+\.[A-Za-z0-9_/]+' <<< "$lines" | sed 's/ ([0-9]* ms)$//' | sort -u |
            head -5
        else
          grep -v -E '^(Test command|Working Directory|Test timeout computed)' <<< "$lines" | tail -6
        fi
      } | cut -c1-300 | sed 's/^/      /' | tee -a "$summary"
    done
  # Tests that started but never finished (ctest stopped for lack of time).
  for number in $(sed -nE 's/^ +Start +([0-9]+): .*/\1/p' "$OUT/ctest.log"); do
    grep -qE "Test +#$number: " "$OUT/ctest.log" ||
      note "  NOT FINISHED $(sed -nE "s/^ +Start +$number: (.*)/\1/p" "$OUT/ctest.log" | head -1)"
  done
  cuda_ok=$(grep -cE '\[       OK \] [A-Za-z0-9_/.]+_CUDA' "$OUT/ctest.log")
  cuda_failed=$(grep -E '\[  FAILED  \] [A-Za-z0-9_/.]+_CUDA \(' "$OUT/ctest.log" | sort -u | wc -l)
  cuda_skipped=$(grep -cE '\[  SKIPPED \] [A-Za-z0-9_/.]+_CUDA' "$OUT/ctest.log")
  filtered=$(grep -c "No CUDA device: tests named \*_CUDA are filtered out" "$OUT/ctest.log")
  note "GoogleTest *_CUDA cases: $cuda_ok passed, $cuda_failed failed, $cuda_skipped skipped; binaries that saw no CUDA device: $filtered"
  # Each case by name, so that a case missing from the build or filtered out shows.
  for outcome in "       OK :passed" "  SKIPPED :skipped"; do
    names=$(grep -oE "\[${outcome%%:*}\] [A-Za-z0-9_/.]+_CUDA" "$OUT/ctest.log" | sed 's/^.*\] //' | sort -u |
            paste -sd ' ' -)
    [ -z "$names" ] || note "  ${outcome##*:}: $names"
  done
fi

# ---- the raw CUDA launchers (CUDA builds only) -----------------------------------------------------------
standalone=$build/tests/fwht_cuda_standalone_check
standalone_seconds=$(step_seconds 90 30)
if [ -x "$standalone" ] && ((standalone_seconds < 10)); then
  status=1
  note "fwht_cuda_standalone_check: SKIPPED, out of time"
elif [ -x "$standalone" ]; then
  timeout "$standalone_seconds" "$standalone" > "$OUT/standalone.log" 2>&1
  standalone_rc=$?
  ((standalone_rc == 0)) || status=1
  note "fwht_cuda_standalone_check: exit $standalone_rc$(timed_out $standalone_rc && echo ', out of time'), $(
    grep -E '^[0-9]+ passed, [0-9]+ failed' "$OUT/standalone.log" | tail -1)"
  # Passed / failed per family of cases (fwht_*, gather, fold_*, batched_*, order_*), on one line.
  awk '/^== summary by family/ { on = 1; next } on && /^(failed cases:|[0-9]+ passed)/ { exit }
       on && NF >= 4 { printf "%s%s %s/%s", (n++ ? ", " : "  families (passed/failed): "), $1, $2, $4 }
       END { if (n) print "" }' "$OUT/standalone.log" | tee -a "$summary"
  # The failed cases, each with its first difference (at most 10).
  grep -E '^FAIL ' "$OUT/standalone.log" | head -10 | cut -c1-300 | sed 's/^/  /' | tee -a "$summary"
elif [ "$cuda" = ON ]; then
  status=1
  note "fwht_cuda_standalone_check: NOT BUILT"
else
  note "fwht_cuda_standalone_check: not built (no CUDA kernels in this build)"
fi

# ---- the Fastfood benchmark on the GPU (on the CPU when this build has no CUDA kernels) --------------------
# The benchmarks leave this much of the budget to the local job path after them (on the H200 it needs about
# 100 s: configure, `dwarp`'s 8 sources, the two jobs).
local_reserve=110
bench=$build/tests/bench/fastfood_device_benchmark
bench_device=cpu
grep -q "CUDA kernels=ON" "$OUT/configure.log" && bench_device=cuda
bench_seconds=$(step_seconds 240 "$local_reserve")
if [ -x "$bench" ] && ((bench_seconds < 10)); then
  status=1
  note "fastfood_device_benchmark: SKIPPED, out of time"
elif [ -x "$bench" ]; then
  timeout "$bench_seconds" "$bench" --device "$bench_device" --max_log2 "$bench_max_log2" > "$OUT/bench.log" 2>&1
  bench_rc=$?
  ((bench_rc == 0)) || status=1
  note "fastfood_device_benchmark --device $bench_device: exit $bench_rc$(timed_out $bench_rc && echo ', out of time')"
  grep -E "^(device:|D |2\^|ResNet-18,)" "$OUT/bench.log" | tee -a "$summary"
  # A crash or an error message, not the table again when it was only cut short.
  ((bench_rc == 0)) || timed_out $bench_rc || tail -5 "$OUT/bench.log" | cut -c1-300 | sed 's/^/  /' | tee -a "$summary"
else
  status=1
  note "fastfood_device_benchmark: NOT BUILT"
fi

# ---- a ResNet-18 encoding step: through a subspace against all parameters ---------------------------------
step_bench=$build/tests/bench/subspace_step_benchmark
step_args=(--device "$bench_device")
# On a CPU machine a small problem, so that the check stays short; the GPU runs the real size.
[ "$bench_device" = cuda ] || step_args+=(--batch 4 --size 64 --steps 3)
step_bench_seconds=$(step_seconds 120 "$local_reserve")
if [ -x "$step_bench" ] && ((step_bench_seconds >= 10)); then
  timeout "$step_bench_seconds" "$step_bench" "${step_args[@]}" > "$OUT/step_bench.log" 2>&1
  step_rc=$?
  ((step_rc == 0)) || status=1
  note "subspace_step_benchmark ${step_args[*]}: exit $step_rc$(timed_out $step_rc && echo ', out of time')"
  grep -E "^(ResNet|all parameters|subspace)" "$OUT/step_bench.log" | tee -a "$summary"
  ((step_rc == 0)) || timed_out $step_rc || tail -5 "$OUT/step_bench.log" | cut -c1-300 | sed 's/^/  /' | tee -a "$summary"
fi

# ---- the performance targets, read from the two benchmarks' logs (meaningful on the GPU) -------------------
# Fastfood forward + backward at 2^16 <= 0.03 ms; at 2^24 <= 2.5x four device copies of the padded vector;
# the ResNet-18 subspace step (size_weighted, the jobs' default) <= 1.3x the all-parameters step. Each for
# the per-tensor path and the batched one (BatchedFastfood); the step also with the fused install.
if [ -s "$OUT/bench.log" ] || [ -s "$OUT/step_bench.log" ]; then
  {
    echo "targets on $bench_device (per tensor | batched):"
    awk '$1 == "2^16" { printf "  fwd+bwd at 2^16 <= 0.03 ms: %s ms | %s ms: %s\n", $2, $7, ($7 + 0 <= 0.03 ? "met (batched)" : ($2 + 0 <= 0.03 ? "met (per tensor)" : "MISSED")) }
         $1 == "2^24" { printf "  fwd+bwd at 2^24 <= 2.5x 4 copies: %sx | %sx: %s\n", $5, $8, ($8 + 0 <= 2.5 ? "met (batched)" : ($5 + 0 <= 2.5 ? "met (per tensor)" : "MISSED")) }' \
        "$OUT/bench.log" 2> /dev/null
    for variant in "per tensor" batched fused; do
      ratio=$(sed -nE "s/^subspace, size_weighted, $variant .*subspace \/ all parameters ([0-9.]+).*/\1/p" "$OUT/step_bench.log" 2> /dev/null)
      [ -z "$ratio" ] || echo "  ResNet-18 step, size_weighted, $variant: ${ratio}x all parameters (target <= 1.3): $(
        awk -v r="$ratio" 'BEGIN { print (r <= 1.3 ? "met" : "MISSED") }')"
    done
  } | tee -a "$summary"
elif [ -x "$step_bench" ]; then
  status=1
  note "subspace_step_benchmark: SKIPPED, out of time"
else
  status=1
  note "subspace_step_benchmark: NOT BUILT"
fi

# ---- the local job path: the same build folder reconfigured as a local-only build (`dwarp` without gRPC) --
# The engine's objects are reused (its flags do not change), so only the job specs, the job runner and the
# CLI's sources compile. A failure here ends this part only: the summary says which step failed.
local_kit=$kit/local
job_file=tests/gpu/resnet18_synthetic_job.yaml
job_images=$kit/data/fashion-mnist-train-2000-images-idx3-ubyte.gz
dwarp_bin=$build/clients/dwarp
local_ok=0
if [ ! -f "$local_kit/cmake/spdlog/spdlogConfig.cmake" ] || [ ! -f "$job_images" ]; then
  status=1
  note "local build: SKIPPED, the kit has no local/ or data/ (an older kit): run tests/gpu/pack.sh again"
else
  local_args=("${cmake_args[@]/#-DDWARP_ENGINE_ONLY=ON/-DDWARP_ENGINE_ONLY=OFF}")
  local_args=("${local_args[@]/#-DDWARP_LOCAL_ONLY=OFF/-DDWARP_LOCAL_ONLY=ON}")
  for package in yaml-cpp nlohmann_json CLI11 spdlog; do
    local_args+=("-D${package}_DIR=$local_kit/cmake/$package")
  done
  echo "== cmake ${local_args[*]}" > "$OUT/local_configure.log"
  local_configure_seconds=$(step_seconds 90 80)
  if ((local_configure_seconds < 10)); then
    status=1
    note "local configure: SKIPPED, out of time"
  else
    timeout "$local_configure_seconds" cmake "${local_args[@]}" >> "$OUT/local_configure.log" 2>&1
    local_configure_rc=$?
    if ((local_configure_rc != 0)); then
      status=1
      note "local configure: FAILED$(timed_out $local_configure_rc && echo ', out of time') (local_configure.log); its last 10 lines:"
      tail -10 "$OUT/local_configure.log" | cut -c1-300 | sed 's/^/  /' | tee -a "$summary"
    else
      local_build_start=$SECONDS
      local_build_seconds=$(step_seconds 300 60)
      if ((local_build_seconds < 10)); then
        status=1
        note "local build: SKIPPED, out of time"
      else
        timeout "$local_build_seconds" cmake --build "$build" -j "$jobs" --target dwarp > "$OUT/local_build.log" 2>&1
        local_build_rc=$?
        steps=$(grep -cE '^\[[0-9]+/[0-9]+\] Building' "$OUT/local_build.log")
        if ((local_build_rc == 0)) && [ -x "$dwarp_bin" ]; then
          local_ok=1
          note "local build (DWARP_LOCAL_ONLY, target dwarp): ok in $((SECONDS - local_build_start)) s, $steps sources compiled"
        else
          status=1
          note "local build (DWARP_LOCAL_ONLY, target dwarp): FAILED$(timed_out $local_build_rc && echo ', out of time') after $((SECONDS - local_build_start)) s (local_build.log); the first errors:"
          grep -m 12 -E "error|FAILED:" "$OUT/local_build.log" | cut -c1-300 | sed 's/^/  /' | tee -a "$summary"
        fi
      fi
    fi
  fi
fi

# What the local build used: every header of the kit's five libraries from the kit (ninja's dependency
# records of every object; relative paths, as ccache writes them, are taken from the build folder), and the
# kit's libyaml-cpp loaded by `dwarp`.
if ((local_ok)); then
  kit_include=$(realpath -m "$local_kit/include")
  deps=$(cd "$build" && timeout 30 ninja -t deps 2> /dev/null | sed -nE 's/^ +//p' |
         grep -E '(^|/)(yaml-cpp|nlohmann|CLI|spdlog|fmt)/' | sort -u | xargs -r realpath -m --)
  from_kit=$(grep -c "^$kit_include/" <<< "$deps")
  elsewhere=$(grep -v "^$kit_include/" <<< "$deps" | grep -c .)
  yaml_loaded=$(ldd "$dwarp_bin" 2> /dev/null | sed -nE 's/^\s*libyaml-cpp\.so[^ ]* => ([^ ]+) .*/\1/p')
  [ -z "$yaml_loaded" ] || yaml_loaded=$(realpath -m "$yaml_loaded")
  if ((from_kit > 0 && elsewhere == 0)) && [[ $yaml_loaded == "$(realpath -m "$local_kit/lib")/"* ]]; then
    note "local build: all $from_kit headers of yaml-cpp, nlohmann/json, CLI11, spdlog and fmt from the kit; libyaml-cpp from the kit"
  else
    status=1
    note "local build: NOT from the kit alone: $from_kit headers from the kit, $elsewhere from elsewhere; libyaml-cpp: ${yaml_loaded:-not found}"
    grep -v "^$kit_include/" <<< "$deps" | head -5 | sed 's/^/  /' | tee -a "$summary"
  fi
fi

# ---- one real job: `dwarp train` on the device (the GPU; the CPU where this build has no CUDA kernels), then
# the same job on the CPU for one epoch over fewer stimuli --------------------------------------------------
# run_job TAG SECONDS OVERRIDE...: runs the job file with the overrides, its output to $OUT/job_TAG.log and
# its result to $OUT/job_TAG.json, and notes the outcome.
run_job() {
  local tag=$1 seconds=$2
  shift 2
  if ((seconds < 10)); then
    status=1
    note "job $tag: SKIPPED, out of time"
    return
  fi
  rm -f "$OUT/job_$tag.json"
  local start=$SECONDS
  echo "== $dwarp_bin train $job_file $*" > "$OUT/job_$tag.log"
  timeout -k 10 "$seconds" "$dwarp_bin" train "$job_file" "$@" --out "$OUT/job_$tag.json" >> "$OUT/job_$tag.log" 2>&1
  local rc=$?
  if ((rc == 0)) && [ -s "$OUT/job_$tag.json" ]; then
    note "job $tag: ok in $((SECONDS - start)) s: $(grep -m 1 -E '^d = ' "$OUT/job_$tag.log")"
  else
    status=1
    note "job $tag: FAILED$(timed_out $rc && echo ', out of time') (exit $rc) after $((SECONDS - start)) s (job_$tag.log); its last lines:"
    grep -v '^== ' "$OUT/job_$tag.log" | tail -5 | cut -c1-300 | sed 's/^/  /' | tee -a "$summary"
  fi
}
# The device job runs where the benchmarks did: the GPU, or the CPU where this build has no CUDA kernels.
read -r -a job_args <<< "${JOB_ARGS:-}"
cpu_job_stimuli=${CPU_JOB_STIMULI:-640}
if ((local_ok)); then
  note "jobs: $job_file on $bench_device, then on the CPU for 1 epoch over $cpu_job_stimuli stimuli${JOB_ARGS:+; JOB_ARGS: $JOB_ARGS}"
  # JOB_ARGS before each job's own settings, which therefore win.
  # The device job takes the batched projection on CUDA too (SubspaceOptions::batched is off there unless
  # DWARP_BATCHED_FASTFOOD_CUDA=1), so that its epoch time is the batched path's.
  DWARP_BATCHED_FASTFOOD_CUDA=1 run_job device "$(step_seconds 150 45)" "data.images=$job_images" "${job_args[@]}" \
    "train.device=$bench_device"
  run_job cpu "$(step_seconds 120 0)" "data.images=$job_images" "${job_args[@]}" train.device=cpu \
          train.max_epochs=1 "data.limit_stimuli=$cpu_job_stimuli"
  # Per-epoch seconds side by side (each result's history), and per 1,000 training stimuli, as the two jobs
  # see different numbers of them: the device's epochs after its first (which includes warm-up: cuDNN's
  # algorithm choices, the caching allocator) against the CPU's one epoch.
  timeout 30 "$python" - "$OUT/job_device.json" "$OUT/job_cpu.json" << 'PY' 2>&1 | tee -a "$summary"
import json, math, statistics, sys
def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
device, cpu = load(sys.argv[1]), load(sys.argv[2])
if device is None or cpu is None:
    print("job epoch times: not compared (a job has no result)")
    sys.exit(0)
def describe(tag, r):
    spec, data = r["spec"], r["data"]
    seconds = [e["seconds"] for e in r["history"]]
    print("  %s job on %s: %d train / %d val stimuli at %s px, %d targets, d = %s of D = %d, batch %d; test R2 %.4f"
          % (tag, r["device"], data["train"], data["val"], spec["model"].get("input_size") or "?", data["targets"],
             r["d"], r["D"], spec["train"]["batch_size"], r["scores"]["test"]["r2"]))
    print("    epoch seconds: " + " ".join("%.2f" % s for s in seconds))
    steady = seconds[1:] or seconds
    return statistics.median(steady) / data["train"] * 1000.0
print("job epoch times (from each result's history):")
a, b = describe("device", device), describe("cpu", cpu)
print("  seconds per 1,000 train stimuli (device: median epoch after its first; cpu: its one epoch): "
      "device %.2f, cpu %.2f; cpu / device = %.1fx" % (a, b, b / a))
bad = [r["device"] for r in (device, cpu) if not all(math.isfinite(r["scores"][s]["r2"]) for s in ("train", "val", "test"))]
if bad:
    print("  NOT FINITE: the R2 scores of the job on " + ", ".join(bad))
    sys.exit(1)
PY
  ((${PIPESTATUS[0]} == 0)) || status=1
fi

finish
