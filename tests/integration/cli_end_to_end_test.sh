#!/usr/bin/env bash
# The `dwarp` sweep commands against a real dwarp-coordinator and dwarp-worker on loopback (ports chosen by
# the OS): submit --watch runs a small sweep to the end, then list, status, results (csv, json), dwarp,
# workers and cancel answer about it as they must. Skipped (exit 77) without Debian's dataset-fashion-mnist.
# Usage: cli_end_to_end_test.sh DWARP DWARP_COORDINATOR DWARP_WORKER
set -u
dwarp="$1" coordinator_bin="$2" worker_bin="$3"
images=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
[ -f "$images" ] || { echo "skipped: $images not installed"; exit 77; }
dir="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done; rm -rf "$dir"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$dir"/*.log; do echo "--- $f"; tail -30 "$f"; done; exit 1; }
unset DWARP_COORDINATOR DWARP_TOKEN DWARP_TOKEN_FILE

"$coordinator_bin" --db "$dir/dwarp.db" --listen 127.0.0.1:0 --port-file "$dir/port" > "$dir/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
[ -s "$dir/port" ] || fail "the coordinator did not start"
export DWARP_COORDINATOR="127.0.0.1:$(cat "$dir/port")"
"$worker_bin" --devices cpu --slots-per-device 2 --threads 1 --name cli-test > "$dir/worker.log" 2>&1 &
pids+=($!)

mkdir -p "$dir/sweeps"
cat > "$dir/sweeps/cli.yaml" <<YAML
name: cli
models:
  - {name: small, arch: mlp, hidden: [16], layers: [fc1], layer_groups: []}
  - {name: wide, arch: mlp, hidden: [48], layers: [fc1], layer_groups: []}
datasets:
  - {name: syn, kind: synthetic, images: $images, limit_stimuli: 300, synthetic: {targets: 4, warp_dim: 3}}
dims: [0, 10, 100]
seeds: 1
train: {lr: 1.0e-2, batch_size: 32, max_epochs: 3, patience: 0, threads: 1}
threshold: {kind: fraction_of_dataset_best, value: 0.8}
YAML

# An override reaches the coordinator: seeds=2 doubles the jobs.
"$dwarp" submit "$dir/sweeps/cli.yaml" seeds=2 --watch > "$dir/submit.log" 2>&1 || fail "submit --watch exited $?"
grep -q "cli-1" "$dir/submit.log" || fail "submit did not print the sweep id"
grep -Eq "12 jobs" "$dir/submit.log" || fail "submit did not print 12 jobs"

"$dwarp" list > "$dir/list.log" 2>&1 || fail "list exited $?"
grep -Eq "cli-1 +cli +done" "$dir/list.log" || fail "list does not show cli-1 done"

"$dwarp" results cli-1 --format csv -o "$dir/results.csv" > "$dir/results.log" 2>&1 || fail "results exited $?"
[ "$(wc -l < "$dir/results.csv")" -eq 13 ] || fail "results.csv should have a header and 12 rows"
[ "$(grep -c ',succeeded,' "$dir/results.csv")" -eq 12 ] || fail "every job should have succeeded"

"$dwarp" dwarp cli-1 --format json > "$dir/dwarp.json" 2> "$dir/dwarp.log" || fail "dwarp exited $?"
/usr/bin/python3 - "$dir/dwarp.json" <<'PY' || fail "the d_warp JSON is not what was expected"
import json, sys
records = json.load(open(sys.argv[1]))
assert len(records) == 2, records
for r in records:
    # Final: reached or not_reached, or provisional only because the two seeds leave the crossing open.
    assert r["status"] in ("reached", "not_reached") or (
        r["status"] == "provisional" and "the seeds leave open" in r["note"]), r
    if r["status"] != "not_reached":
        assert r["d_warp_low"] is not None and r["interval"] in ("bootstrap", "bracket"), r
PY

"$dwarp" status cli-1 > "$dir/status.log" 2>&1 || fail "status exited $?"
grep -q "succeeded" "$dir/status.log" || fail "status does not list succeeded jobs"
"$dwarp" workers > "$dir/workers.log" 2>&1 || fail "workers exited $?"
grep -q "cli-test" "$dir/workers.log" || fail "workers does not list the worker"

"$dwarp" cancel cli-1 > "$dir/cancel.log" 2>&1
code=$?
[ "$code" -eq 1 ] || fail "cancel of a finished sweep exited $code, expected 1"
grep -q "already done" "$dir/cancel.log" || fail "cancel does not say the sweep is already done"
# A sweep is named by its id or by its name (the latest sweep of that name), and each command's help says so.
"$dwarp" status cli > "$dir/by_name.log" 2>&1 || fail "status by the sweep's name exited $?"
grep -q "sweep cli-1 (cli): done" "$dir/by_name.log" || fail "status by name does not answer about cli-1"
for command in status watch results dwarp cancel plot tensorboard; do
  "$dwarp" "$command" --help 2>&1 | grep -q "or a sweep name" || fail "$command --help does not say a name works"
done
"$dwarp" status nope-9 > "$dir/missing.log" 2>&1
[ $? -eq 1 ] && grep -q "nope-9" "$dir/missing.log" || fail "status of an unknown sweep must exit 1 naming it"
echo "ok: submit --watch, list, results, dwarp, status, workers, cancel against a real coordinator"
