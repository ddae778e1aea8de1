#!/usr/bin/env bash
# `dwarp run` end to end: a small sweep runs with a local coordinator and worker that dwarp starts itself;
# the run folder gets the database, results.csv and dwarp.json; a second run of the same sweep reuses the
# finished one without training; an interrupted run (SIGINT) resumes; bad input fails clearly.
# Skipped (exit 77) without Debian's dataset-fashion-mnist. Usage: run_command_test.sh DWARP
set -u
dwarp="$1"
images=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
[ -f "$images" ] || { echo "skipped: $images not installed"; exit 77; }
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; for f in "$dir"/*.log "$dir"/run/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -25 "$f"; }; done; exit 1; }
unset DWARP_COORDINATOR DWARP_TOKEN DWARP_TOKEN_FILE

cat > "$dir/run.yaml" <<YAML
name: runtest
models:
  - {name: small, arch: mlp, hidden: [16], layers: [fc1], layer_groups: []}
datasets:
  - {name: syn, kind: synthetic, images: $images, limit_stimuli: 300, synthetic: {targets: 4, warp_dim: 3}}
dims: [0, 10, 100]
seeds: 2
train: {lr: 1.0e-2, batch_size: 32, max_epochs: 3, patience: 0}
threshold: {kind: fraction_of_group_best, value: 0.9}
YAML

"$dwarp" run "$dir/run.yaml" --run-dir "$dir/run" --slots 2 > "$dir/first.log" 2>&1 || fail "first run exited $?"
grep -q "submitted sweep runtest-1: 6 jobs" "$dir/first.log" || fail "the first run did not submit 6 jobs"
grep -Eq "^dataset +model +layer" "$dir/first.log" || fail "the first run did not print the d_warp table"
[ -f "$dir/run/dwarp.db" ] || fail "no database in the run folder"
[ "$(wc -l < "$dir/run/results.csv")" -eq 7 ] || fail "results.csv should hold a header and 6 rows"
[ "$(grep -c ',succeeded,' "$dir/run/results.csv")" -eq 6 ] || fail "every job should have succeeded"
/usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert len(r)==1 and (r[0]['status'] in ('reached','not_reached') or (r[0]['status']=='provisional' and 'the seeds leave open' in r[0]['note'])), r" \
  "$dir/run/dwarp.json" || fail "dwarp.json is not one final record"
pgrep -f "$dir/run" > /dev/null && fail "a child process outlived dwarp run"

# The same sweep again: reported from the database, nothing trained.
"$dwarp" run "$dir/run.yaml" --run-dir "$dir/run" > "$dir/second.log" 2>&1 || fail "second run exited $?"
grep -q "already finished in this run folder" "$dir/second.log" || fail "the second run did not reuse the finished sweep"
[ "$(grep -c 'succeeded (attempt' "$dir/second.log")" -eq 0 ] || fail "the second run trained again"
# An override changes the sweep: it runs anew.
"$dwarp" run "$dir/run.yaml" seeds=1 --run-dir "$dir/run" > "$dir/third.log" 2>&1 || fail "third run exited $?"
grep -q "submitted sweep runtest-2: 3 jobs" "$dir/third.log" || fail "a changed sweep should be submitted anew"

# Ctrl-C mid-sweep: the worker hands its jobs back, everything stops, and the same command resumes.
sed -e 's/name: runtest/name: slow/' -e 's/limit_stimuli: 300/limit_stimuli: 2000/' -e 's/max_epochs: 3/max_epochs: 25/' \
    -e 's/dims: \[0, 10, 100\]/dims: [10, 30]/' "$dir/run.yaml" > "$dir/slow.yaml"
"$dwarp" run "$dir/slow.yaml" --run-dir "$dir/slow" --slots 1 > "$dir/slow1.log" 2>&1 &
run_pid=$!
for _ in $(seq 300); do grep -q "epoch 2 " "$dir/slow1.log" 2>/dev/null && break; sleep 0.1; done
grep -q "epoch 2 " "$dir/slow1.log" || fail "the slow sweep never reported its second epoch"
kill -INT "$run_pid"
wait "$run_pid"
code=$?
[ "$code" -eq 1 ] || fail "an interrupted run should exit 1, got $code"
grep -q "run the same command again to resume" "$dir/slow1.log" || fail "the interrupted run should say how to resume"
pgrep -f "$dir/slow" > /dev/null && fail "a child process outlived the interrupted run"
"$dwarp" run "$dir/slow.yaml" --run-dir "$dir/slow" --slots 2 > "$dir/slow2.log" 2>&1 || fail "the resumed run exited $?"
grep -q "resuming sweep slow-1" "$dir/slow2.log" || fail "the second run should resume the interrupted sweep"
[ "$(grep -c ',succeeded,' "$dir/slow/results.csv")" -eq 4 ] || fail "the resumed sweep should end with 4 results"

# Bad input: a clear error, exit 2, nothing started.
printf 'name: broken\nmodels: [ {name: a\n' > "$dir/broken.yaml"
"$dwarp" run "$dir/broken.yaml" --run-dir "$dir/broken" > "$dir/broken.log" 2>&1
[ $? -eq 2 ] || fail "a malformed sweep should exit 2"
grep -q "broken.yaml" "$dir/broken.log" || fail "the error should name the file"
[ -e "$dir/broken" ] && fail "a malformed sweep must not create the run folder"
"$dwarp" run "$dir/run.yaml" --run-dir "$dir/other" --coordinator-bin /nonexistent/dwarp-coordinator > "$dir/bin.log" 2>&1
[ $? -eq 2 ] || fail "a missing coordinator program should exit 2"
grep -q "/nonexistent/dwarp-coordinator" "$dir/bin.log" || fail "the error should name the program"
# A device the worker cannot use: the worker refuses it at start and the run stops with its reason (on a
# CUDA build with a GPU the same command runs the sweep there instead).
"$dwarp" run "$dir/run.yaml" --run-dir "$dir/gpu" --devices cuda:0 > "$dir/gpu.log" 2>&1
code=$?
if grep -q "built without CUDA\|sees no CUDA device" "$dir/gpu.log"; then
  [ "$code" -eq 1 ] || fail "a worker that cannot use its device should fail the run with exit 1, got $code"
  grep -q "exited with code 2 before the sweep finished" "$dir/gpu.log" || fail "the run should say the worker exited"
  grep -q -- "--devices = 'cuda:0'" "$dir/gpu.log" || fail "the run should show the worker's reason"
else
  [ "$code" -eq 0 ] || fail "a run on cuda:0 exited $code"
  [ "$(grep -c ',succeeded,' "$dir/gpu/results.csv")" -eq 6 ] || fail "every job on cuda:0 should have succeeded"
fi
pgrep -f "$dir/gpu" > /dev/null && fail "a child process outlived the run whose worker exited"
echo "ok: dwarp run, reuse, rerun with an override, interrupt and resume, bad input, unusable device"
