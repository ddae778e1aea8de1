#!/usr/bin/python3
"""The projection-mode study: how fast and how well training through a random subspace learns under each
way theta_d can reach the network's tensors (model.projection), on real labels and on the synthetic brain.

Every point is one real `dwarp train` job (the job path a sweep runs), its result JSON kept under --out, so
a rerun only runs what is missing. Then it prints the README's tables (markdown):

  Fashion-MNIST (Debian's dataset-fashion-mnist): the first 7,000 training images train, the next 1,000
  validate, the 10,000 test images are scored; pixels / 255; 784-200-200-10 MLP and LeNet read out at their
  logits (classification, no head); d = 10 .. 3000; 10 epochs, batch 128.
  Synthetic brain (a random warp of a small CNN, BRAIN_DATA below): small_cnn, lenet and mlp;
  d = 5 .. 1000; 10 epochs, batch 32, head started from the d = 0 ridge fit.

For each (data, model, mode): the mean training loss of epoch 1 and of the last epoch (the per-epoch speed),
the test score per d, and whether the score rises with d (every step up, or down by less than the seed
noise allowance). Every mode runs with the same rule (Adam on theta_d at its rate for d = 1000, scaled by
1000 / d: train.low_dim_lr_scaling inverse_d; train.schedule warmup_cosine), at its own rate: on the
synthetic brain at the better of two rates per mode (both reported in the JSON files), on Fashion-MNIST at
the rate a scan at d = 300 chose (README). Plus `reference` at the research code's settings (Adam 1e-3 at
every d, constant, 100 epochs) on the MLP against the default.

Usage (from the repository root, after building):
  /usr/bin/python3 tests/study/projection_study.py [--out runs/study] [--dwarp build/clients/dwarp]
      [--only fashion|brain|readouts|research|quickstart] [--seeds 1] [--quick]
"""
import argparse
import json
import os
import subprocess
import sys
import time

MODES = ["reference", "per_tensor", "global", "size_weighted"]
FASHION = "/usr/share/datasets/fashion-mnist"


def fashion_job(arch, d):
    model = {"arch": arch, "layer_groups": []}
    if arch == "mlp":
        model.update({"hidden": [200, 200], "layer": "fc3"})
    else:
        model["layer"] = "fc3"
    return {
        "model": model,
        "data": {
            "kind": "idx",
            "images": FASHION + "/train-images-idx3-ubyte.gz",
            "labels": FASHION + "/train-labels-idx1-ubyte.gz",
            "test_images": FASHION + "/t10k-images-idx3-ubyte.gz",
            "test_labels": FASHION + "/t10k-labels-idx1-ubyte.gz",
            "limit_stimuli": 8000,
            "split": {"train": 0.875, "val": 0.125},
        },
        "d": d,
        "objective": "classification",
        "train": {"batch_size": 128, "max_epochs": 10, "patience": 0, "threads": 0},
    }


# The random-warp brain the study was run on (the quickstart's until it became a category-selective brain):
# 32 neuroids reading a small CNN's avgpool representation after a random 20-dimensional warp, 10% noise.
BRAIN_DATA = {
    "kind": "synthetic",
    "images": FASHION + "/train-images-idx3-ubyte.gz",
    "limit_stimuli": 2000,
    "synthetic": {"targets": 32, "warp_dim": 20, "warp_scale": 1.0, "noise": 0.1, "seed": 0,
                  "teacher": {"arch": "small_cnn", "layer": "avgpool", "projection": "per_tensor"}},
}
BRAIN_MODELS = {
    "small_cnn": {"arch": "small_cnn", "seed": 0, "layer": "avgpool", "layer_groups": []},
    "lenet": {"arch": "lenet", "layer": "fc2", "layer_groups": []},
    "mlp": {"arch": "mlp", "hidden": [256, 128], "layer": "fc2", "layer_groups": []},
}


def brain_job(arch, d):
    train = {"lr": 3.0e-4, "batch_size": 32, "head_init": "ridge", "max_epochs": 10, "patience": 0, "threads": 0}
    return {"model": dict(BRAIN_MODELS[arch]), "data": dict(BRAIN_DATA), "d": d, "objective": "regression",
            "train": train}


def run_job(dwarp, job, overrides, path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    spec_path = path[:-5] + ".spec.json"
    with open(spec_path, "w") as f:
        json.dump(job, f)
    started = time.time()
    command = [dwarp, "train", spec_path] + overrides + ["--out", path]
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(command), done.stderr[-2000:]))
    print("  %-70s %6.1f s" % (os.path.basename(path), time.time() - started), file=sys.stderr)
    with open(path) as f:
        return json.load(f)


def score(result):
    test = result["scores"]["test"]
    return test["accuracy"] if "accuracy" in test else test["r2"]


def rises(scores, allowance):
    return all(b >= a - allowance for a, b in zip(scores, scores[1:]))


def curve(args, name, make_job, arch, mode, dims, lr, extra):
    """Mean test score per d, mean epoch-1 and last-epoch training loss, and the mean validation score."""
    per_d, first, last, val = [], [], [], []
    for d in dims:
        seeds_scores = []
        for seed in range(args.seeds):
            overrides = ["model.projection=" + mode, "train.low_dim_lr=%g" % lr, "train.low_dim_lr_scaling=inverse_d",
                         "train.schedule=warmup_cosine", "train.seed=%d" % seed] + extra
            path = os.path.join(args.out, "%s-%s-%s-lr%g-d%d-s%d.json" % (name, arch, mode, lr, d, seed))
            r = run_job(args.dwarp, make_job(arch, d), overrides, path)
            seeds_scores.append(score(r))
            first.append(r["history"][0]["train_loss"])
            last.append(r["history"][-1]["train_loss"])
            val.append(r["scores"]["val"].get("accuracy", r["scores"]["val"].get("r2")))
        per_d.append(sum(seeds_scores) / len(seeds_scores))
    return per_d, sum(first) / len(first), sum(last) / len(last), sum(val) / len(val)


def study(args, name, make_job, archs, dims, rates, extra, metric, allowance):
    rows = []
    for arch in archs:
        for mode in MODES:
            # The better rate by mean validation score over d (the test split chooses nothing).
            best = None
            for lr in rates[mode]:
                per_d, f, l, v = curve(args, name, make_job, arch, mode, dims, lr, extra)
                if best is None or v > best[4]:
                    best = (lr, per_d, f, l, v)
            lr, per_d, f, l, _ = best
            rows.append((arch, mode, lr, f, l, per_d, rises(per_d, allowance)))
    print("\n%s (%s per d; train loss = mean over d and seeds)\n" % (name, metric))
    print("| model | mode | rate at d = 1000 | loss, epoch 1 | loss, last epoch | " +
          " | ".join("d = %d" % d for d in dims) + " | rises with d |")
    print("|---|---|---|---|---|" + "---|" * len(dims) + "---|")
    for arch, mode, lr, f, l, per_d, up in rows:
        print("| %s | %s | %g | %.3f | %.3f | %s | %s |" % (arch, mode, lr, f, l,
                                                            " | ".join("%.3f" % s for s in per_d),
                                                            "yes" if up else "no"))
    sys.stdout.flush()
    return rows


def research(args, default_mode, default_rate):
    """reference at the research code's settings (Adam 1e-3 at every d, 100 epochs) against the default."""
    print("\nFashion-MNIST MLP: the research code's settings against dwarp's default (test accuracy)\n")
    print("| | d = 300 | d = 750 |")
    print("|---|---|---|")
    for label, overrides, epochs in [
        ("reference, Adam 1e-3 constant, 100 epochs",
         ["model.projection=reference", "train.low_dim_lr=0.001", "train.low_dim_lr_scaling=none",
          "train.schedule=constant"], 100),
        ("%s, its rate (inverse_d, warmup_cosine), 10 epochs" % default_mode,
         ["model.projection=" + default_mode, "train.low_dim_lr=%g" % default_rate,
          "train.low_dim_lr_scaling=inverse_d", "train.schedule=warmup_cosine"], 10),
    ]:
        cells = []
        for d in (300, 750):
            tag = "research" if epochs == 100 else "default"
            path = os.path.join(args.out, "research-%s-d%d.json" % (tag, d))
            r = run_job(args.dwarp, fashion_job("mlp", d), overrides + ["train.max_epochs=%d" % epochs], path)
            cells.append("%.3f" % score(r))
        print("| %s | %s |" % (label, " | ".join(cells)))


def readouts(args, dims, rate):
    """The two regression readouts of a warped job on the brain: a separately trained head started from the
    ridge fit (train.head_init ridge, the quickstart's) against readout prefit_warped (the ridge head warped
    with the network through theta_d), both with the default projection."""
    print("\nbrain: readouts at d > 0 (test R² per d; size_weighted, rate %g at d = 1000)\n" % rate)
    print("| model | readout | " + " | ".join("d = %d" % d for d in dims) + " | rises with d |")
    print("|---|---|" + "---|" * len(dims) + "---|")
    for arch in ["small_cnn", "lenet", "mlp"]:
        for label, extra in [("head from ridge, own Adam", []),
                             ("prefit_warped", ["readout=prefit_warped", "~train.head_init"])]:
            per_d = []
            for d in dims:
                tag = "prefit" if extra else "head"
                path = os.path.join(args.out, "readout-%s-%s-d%d.json" % (arch, tag, d))
                overrides = ["model.projection=size_weighted", "train.low_dim_lr=%g" % rate,
                             "train.low_dim_lr_scaling=inverse_d", "train.schedule=warmup_cosine"] + extra
                per_d.append(score(run_job(args.dwarp, brain_job(arch, d), overrides, path)))
            print("| %s | %s | %s | %s |" % (arch, label, " | ".join("%.3f" % x for x in per_d),
                                             "yes" if rises(per_d, 0.005) else "no"))
    sys.stdout.flush()


def quickstart_modes(args):
    """The quickstart's sweep (configs/quickstart.yaml: the category brain, four candidates, three seeds) once
    per projection mode and rate: its d_warp table per mode, through `dwarp run` as a researcher runs it."""
    import csv
    import math
    import re
    import sqlite3
    with open("configs/quickstart.yaml") as f:
        text = f.read()
    candidates = re.findall(r"\{name: (\w+), arch", text)
    ceiling = 1.0 / (1.0 + 0.1 ** 2)
    threshold = float(re.search(r"threshold: \{kind: fraction_of_noise_ceiling, value: ([0-9.]+)\}", text).group(1)) * ceiling
    print("\n### The quickstart (category brain) per mode: test R², mean of 3 seeds\n")
    header = None
    for mode in MODES:
        for rate in (0.02, 0.005):
            name = "quickstart_%s_%g" % (mode, rate)
            run_dir = os.path.join(args.out, name)
            if not os.path.exists(os.path.join(run_dir, "results.csv")):
                sweep = os.path.join(args.out, name + ".yaml")
                with open(sweep, "w") as f:
                    f.write(re.sub(r"layer_groups: \[\]\}", "layer_groups: [], projection: %s}" % mode, text)
                            .replace("name: quickstart", "name: " + name, 1))
                subprocess.run([args.dwarp, "run", sweep, "--run-dir", run_dir, "train.low_dim_lr=%g" % rate],
                               check=True, stdout=subprocess.DEVNULL)
            scores = {}
            for row in csv.DictReader(open(os.path.join(run_dir, "results.csv"))):
                scores.setdefault(row["model"], {}).setdefault(int(row["d"]), []).append(float(row["test"]))
            db = sqlite3.connect(os.path.join(run_dir, "dwarp.db"))
            first = {}
            for model, loss in db.execute("SELECT j.model, m.train_loss FROM metrics m JOIN jobs j USING (job_id) "
                                          "WHERE m.epoch = 1 AND j.d != '0'"):
                first.setdefault(model, []).append(loss)
            for model in candidates:
                curve = sorted((d, sum(v) / len(v)) for d, v in scores[model].items())
                if header is None:
                    header = "| mode | rate at d = 1000 | model | loss, epoch 1 | %s | d_warp | rises with d |" % (
                        " | ".join("d = %d" % d for d, _ in curve))
                    print(header)
                    print("|---" * (len(curve) + 6) + "|")
                d_warp, below = None, None
                for d, mean in curve:
                    if mean >= threshold:
                        d_warp = d if below is None or below[0] == 0 else 10 ** (
                            math.log10(below[0]) + (threshold - below[1]) / (mean - below[1]) *
                            (math.log10(d) - math.log10(below[0])))
                        break
                    below = (d, mean)
                print("| %s | %g | %s | %.3f | %s | %s | %s |" % (
                    mode, rate, model, sum(first[model]) / len(first[model]),
                    " | ".join("%.3f" % m for _, m in curve), "not reached" if d_warp is None else "%.0f" % d_warp,
                    "yes" if rises([m for _, m in curve], 0.005) else "no"))
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/study")
    parser.add_argument("--dwarp", default="build/clients/dwarp")
    parser.add_argument("--only", choices=["fashion", "brain", "research", "readouts", "quickstart"])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer d (a smoke run)")
    parser.add_argument("--default-mode", default="size_weighted")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    # Adam's rate on theta_d at d = 1000 per mode, chosen on the MLP at d = 300 (README).
    # Fashion-MNIST: the best rate of a scan at d = 300 (3 epochs, rates 0.003 .. 1), as a rate at d = 1000.
    fashion_rates = {"reference": [0.01], "per_tensor": [0.03], "global": [0.1], "size_weighted": [0.1]}
    # The synthetic brain (a regression from a ridge-fitted head): two rates per mode, the better kept.
    brain_rates = {"reference": [0.001, 0.003], "per_tensor": [0.001, 0.003], "global": [0.003, 0.01],
                   "size_weighted": [0.003, 0.01]}
    if args.only in (None, "fashion"):
        dims = [10, 100, 1000] if args.quick else [10, 30, 100, 300, 1000, 3000]
        study(args, "fashion", fashion_job, ["mlp", "lenet"], dims, fashion_rates, [], "test accuracy", 0.01)
    if args.only in (None, "brain"):
        dims = [5, 50, 1000] if args.quick else [5, 20, 50, 200, 1000]
        study(args, "brain", brain_job, ["small_cnn", "lenet", "mlp"], dims, brain_rates, [], "test R²", 0.005)
    if args.only in (None, "readouts"):
        readouts(args, [5, 50, 1000] if args.quick else [5, 20, 50, 200, 1000], 0.01)
    if args.only in (None, "research"):
        research(args, args.default_mode, fashion_rates[args.default_mode][0])
    if args.only in (None, "quickstart"):
        quickstart_modes(args)


if __name__ == "__main__":
    main()
