#!/bin/bash
# Runs fwht_cuda_standalone_check against worker/engine/fwht_cuda.cu's kernels as written, on the host: the
# kernels are compiled as C++ against tests/gpu/emulator/ (every block's threads as coroutines, barriers
# and shuffles honoured, launch limits checked, fresh device memory and shared memory NaN) and the check's
# cases up to MAX_ELEMENTS floats run (the stream-ordering cases, which need a GPU, are over it). For
# reviewing CUDA changes on a machine without a GPU before the GPU check (tests/gpu/check.sh) runs them for
# real: it checks what the kernels compute, not timing or stream ordering.
#
#   bash tests/gpu/emulate_cuda.sh            # MAX_ELEMENTS=1048576 (2^20): about 6 minutes on 2 cores
#   MAX_ELEMENTS=65536 bash tests/gpu/emulate_cuda.sh      # the small cases, about a minute
#   SANITIZE=1 bash tests/gpu/emulate_cuda.sh  # with AddressSanitizer and UBSan (out-of-bounds reads, ...)
#   MAX_ELEMENTS=8000000 bash tests/gpu/emulate_cuda.sh --only batched   # every batched case: about 20 minutes
# Arguments go to the check (--only PREFIX).
# Environment: OUT_DIR (default build/emulated-cuda), CXX (default c++), PYTHON (default python3).
# Exit status: the check's (0 when every case that ran passed).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT_DIR:-$root/build/emulated-cuda}
max_elements=${MAX_ELEMENTS:-1048576}
mkdir -p "$out"
"${PYTHON:-python3}" "$root/tests/gpu/emulator/convert_launches.py" "$root/worker/engine/fwht_cuda.cu" \
  "$out/fwht_cuda_emulated.cpp"
flags=(-std=c++17 -O2 -g -Wno-unknown-pragmas)
if [ "${SANITIZE:-0}" = 1 ]; then
  flags+=(-fsanitize=address,undefined -fno-omit-frame-pointer)
  # (ASan warns that it does not fully support swapcontext; the coroutines' stacks are plain heap memory.)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_stack_use_after_return=0}
fi
"${CXX:-c++}" "${flags[@]}" -I "$root/tests/gpu/emulator" -I "$root" "$out/fwht_cuda_emulated.cpp" \
  -x c++ "$root/tests/engine/fwht_cuda_standalone_check.cu" -o "$out/fwht_cuda_standalone_check_emulated"
"$out/fwht_cuda_standalone_check_emulated" --max_elements "$max_elements" "$@"
