#!/usr/bin/env bash
# `dwarp train` end to end, as a process. Usage: train_command_test.sh DWARP CASE FASHION_MNIST_DIR
#   synthetic_subspace  a synthetic brain (teacher: the job's tiny MLP) on Fashion-MNIST images, d = 20
#   ridge               the same data, d = 0 with a closed-form ridge readout
#   classification      Fashion-MNIST classification (idx) at d = 100 through the MLP's logits
#   bad_layer           model.layer = fc9 (the MLP has fc1, fc2): non-zero exit naming fc9, no output file
#   missing_file        data.images does not exist: non-zero exit naming the path, no output file
# Exit 77 (ctest: skipped) when the Fashion-MNIST files are not installed.
set -u
dwarp=$1 case=$2 data=$3
images=$data/train-images-idx3-ubyte.gz
if [[ $case != missing_file && ! -f $images ]]; then
  echo "skipped: $images not installed"; exit 77
fi
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

job() {  # job LAYER D IMAGES EXTRA
  cat > "$dir/job.yaml" <<JOB
model: {arch: mlp, hidden: [32], layer: $1, layer_groups: []}
data:
  kind: synthetic
  images: $3
  limit_stimuli: 400
  synthetic: {targets: 8, warp_dim: 5, noise: 0.1}
d: $2
train: {lr: 1.0e-2, batch_size: 64, max_epochs: 20, patience: 0, seed: 0, threads: 1}
$4
JOB
}

expect_scores() {  # expect_scores JSON
  [[ -s $1 ]] || fail "no result file $1"
  /usr/bin/python3 - "$1" <<'PY' || exit 1
import json, math, sys
r = json.load(open(sys.argv[1]))
for split in ("train", "val", "test"):
    v = r["scores"][split]["r2"]
    assert math.isfinite(v), (split, v)
assert r["D"] > 0 and r["wall_seconds"] > 0 and r["device"] == "cpu", r
assert r["spec"]["model"]["arch"] == "mlp", r["spec"]
print("scores:", {k: round(v["r2"], 4) for k, v in r["scores"].items()}, "d", r["d"], "D", r["D"],
      "epochs", r["epochs_run"])
PY
  ls "$(dirname "$1")" | grep -q '\.tmp\.' && fail "temporary file left behind"
  return 0
}

expect_failure() {  # expect_failure NEEDLE
  out=$dir/out/result.json
  "$dwarp" train "$dir/job.yaml" --out "$out" > "$dir/log" 2>&1 && { cat "$dir/log"; fail "exit status 0"; }
  cat "$dir/log"
  grep -q -- "$1" "$dir/log" || fail "message does not name '$1'"
  [[ -e $out ]] && fail "output file written"
  ls "$dir/out" 2>/dev/null | grep -q . && fail "something written under out/"
  echo PASS
}

case $case in
  synthetic_subspace)
    job fc1 20 "$images" ""
    # Overrides go to the spec parser: 15 epochs instead of 20.
    "$dwarp" train "$dir/job.yaml" train.max_epochs=15 --out "$dir/out/result.json" 2>&1 | tee "$dir/log"
    [[ ${PIPESTATUS[0]} == 0 ]] || fail "dwarp train failed"
    grep -q "epoch 15/15" "$dir/log" || fail "no progress line for epoch 15/15"
    expect_scores "$dir/out/result.json"
    /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['d']=='20' and r['epochs_run']==15 and r['trained_parameters']==20 and r['scores']['val']['r2']>0.2, r['scores']" \
      "$dir/out/result.json" || fail "d / epochs wrong"
    echo PASS ;;
  ridge)
    job fc1 0 "$images" "readout: ridge
ridge: {alphas: [0.1, 1, 10]}"
    # The d > 0 job's training settings do nothing in a closed-form fit: refused, naming them and the
    # overrides that drop them; with those overrides the job runs and records none of them.
    "$dwarp" train "$dir/job.yaml" --out "$dir/ridge.json" > "$dir/log" 2>&1 && fail "unused settings accepted"
    cat "$dir/log"
    grep -q 'train.lr = 0.01; expected no value' "$dir/log" || fail "train.lr not named"
    drop=$(grep -o '~model.layer_groups[^`]*\|~train.lr[^`]*' "$dir/log" | head -1)
    [[ -n $drop ]] || fail "no overrides offered"
    [[ -e $dir/ridge.json ]] && fail "output written for a refused job"
    # shellcheck disable=SC2086  # the offered overrides, one word each
    "$dwarp" train "$dir/job.yaml" $drop --out "$dir/ridge.json" 2>&1 | tee "$dir/log"
    [[ ${PIPESTATUS[0]} == 0 ]] || fail "dwarp train failed"
    expect_scores "$dir/ridge.json"
    /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert r['d']=='0' and r['scores']['train']['r2']>0.5, r['scores']; assert 'lr' not in r['spec']['train'] and 'layer_groups' not in r['spec']['model'], r['spec']" \
      "$dir/ridge.json" || fail "ridge did not fit, or an unused setting was recorded"
    echo PASS ;;
  classification)
    cat > "$dir/job.json" <<JOB
{"model": {"arch": "mlp", "hidden": [32], "layer": "fc2", "layer_groups": []},
 "data": {"kind": "idx", "images": "$images", "labels": "$data/train-labels-idx1-ubyte.gz", "limit_stimuli": 3000},
 "d": 100, "objective": "classification",
 "train": {"lr": 0.3, "batch_size": 64, "max_epochs": 3, "seed": 0, "threads": 1}}
JOB
    "$dwarp" train "$dir/job.json" --out "$dir/cls.json" 2>&1 | tee "$dir/log"
    [[ ${PIPESTATUS[0]} == 0 ]] || fail "dwarp train failed"
    /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); s=r['scores']; assert r['metric']=='accuracy' and r['d']=='100' and s['test']['accuracy']>0.3 and s['train']['accuracy']>0.3, s" \
      "$dir/cls.json" || fail "classifier did not learn"
    echo PASS ;;
  bad_layer)
    job fc9 20 "$images" ""
    expect_failure "fc9" ;;
  missing_file)
    job fc1 20 /nonexistent/dwarp/images-idx3-ubyte.gz ""
    expect_failure "/nonexistent/dwarp/images-idx3-ubyte.gz" ;;
  *) fail "unknown case $case" ;;
esac
