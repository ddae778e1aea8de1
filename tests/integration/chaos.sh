#!/usr/bin/env bash
# The chaos test for by-hand runs: many rounds of SIGKILLs over several seeds.
#   tests/integration/chaos.sh [BUILD_DIR] [ROUNDS] [SEEDS...]
# e.g. tests/integration/chaos.sh build 20 1 2 3 4 5. A failing seed is printed; replay it with
#   DWARP_CHAOS_SEED=<seed> DWARP_CHAOS_ROUNDS=<rounds> BUILD_DIR/tests/integration/sweep_chaos_test
set -u
build=${1:-build}
rounds=${2:-20}
shift $(( $# >= 2 ? 2 : $# ))
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3 4 5)
binary="$build/tests/integration/sweep_chaos_test"
[ -x "$binary" ] || { echo "chaos.sh: $binary not built (cmake --build $build --target sweep_chaos_test)" >&2; exit 2; }
failed=()
for seed in "${seeds[@]}"; do
  echo "=== seed $seed, $rounds rounds"
  if ! DWARP_CHAOS_SEED=$seed DWARP_CHAOS_ROUNDS=$rounds "$binary"; then failed+=("$seed"); fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "chaos.sh: failed seeds: ${failed[*]} ($rounds rounds)" >&2
  exit 1
fi
echo "chaos.sh: ${#seeds[@]} seed(s) x $rounds rounds passed"
