#!/usr/bin/env bash
# deploy/k8s manifests: each file parses as YAML; the objects are the expected kinds with the fields the
# deployment relies on (one Recreate coordinator on a PVC, grpc health probes on the Service's port, the token
# Secret mounted as a file, GPU workers whose grace period outlasts their drain timeout and that reach the
# coordinator through the Service). Then `kubectl apply --dry-run=client` when kubectl can do it offline
# (it needs an API server for discovery; without one that step is skipped and says so).
# Skipped (exit 77) without a python3 that has PyYAML.
# Usage: k8s_test.sh
set -u
k8s="$(cd "$(dirname "$0")/../../deploy/k8s" && pwd)"
py=/usr/bin/python3
[ -x "$py" ] && "$py" -c 'import yaml' 2> /dev/null || py=python3
"$py" -c 'import yaml' 2> /dev/null || { echo "skipped: no python3 with PyYAML"; exit 77; }

"$py" - "$k8s" <<'PY' || exit 1
import glob, os, re, sys
import yaml

k8s = sys.argv[1]
objects = {}
for path in sorted(glob.glob(os.path.join(k8s, "*.yaml"))):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    assert docs, f"{path}: no YAML documents"
    for d in docs:
        for field in ("apiVersion", "kind", "metadata"):
            assert field in d, f"{path}: a document lacks {field}: {d}"
        key = (d["kind"], d["metadata"]["name"])
        assert key not in objects, f"{path}: {key} defined twice"
        objects[key] = d

def get(kind, name):
    assert (kind, name) in objects, f"missing {kind}/{name}; found {sorted(objects)}"
    return objects[(kind, name)]

def container(deployment):
    spec = deployment["spec"]["template"]["spec"]
    assert len(spec["containers"]) == 1, spec["containers"]
    return spec, spec["containers"][0]

def selects(deployment):
    sel = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in sel.items()), f"selector {sel} does not match labels {labels}"
    return labels

def token_mount(spec, c):
    secret_volumes = {v["name"] for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "dwarp-token"}
    mounts = [m for m in c["volumeMounts"] if m["name"] in secret_volumes]
    assert mounts, f"{c['name']}: the dwarp-token Secret is not mounted"
    return mounts[0]["mountPath"]

# The token Secret: a template with a placeholder, never a real token.
secret = get("Secret", "dwarp-token")
assert secret["apiVersion"] == "v1"
assert "REPLACE" in secret["stringData"]["token"], "token-secret.yaml must hold a placeholder only"

# The coordinator.
pvc = get("PersistentVolumeClaim", "dwarp-coordinator-db")
assert pvc["spec"]["resources"]["requests"]["storage"]
coord = get("Deployment", "dwarp-coordinator")
assert coord["apiVersion"] == "apps/v1"
assert coord["spec"]["replicas"] == 1, "one coordinator: it is the only writer of its database"
assert coord["spec"]["strategy"]["type"] == "Recreate", "RollingUpdate would run two coordinators on one database"
coord_labels = selects(coord)
spec, c = container(coord)
args = " ".join(c.get("command", []) + c.get("args", []))
assert "dwarp-coordinator" in args, args
port = c["ports"][0]["containerPort"]
assert re.search(rf"--listen[= ]0\.0\.0\.0:{port}\b", args), f"coordinator must listen on its port {port}: {args}"
for probe in ("readinessProbe", "livenessProbe"):
    assert c[probe]["grpc"]["port"] == port, f"{probe} must be a grpc probe on {port}: {c[probe]}"
db_volumes = {v["name"] for v in spec["volumes"]
              if v.get("persistentVolumeClaim", {}).get("claimName") == "dwarp-coordinator-db"}
db_dirs = [m["mountPath"] for m in c["volumeMounts"] if m["name"] in db_volumes]
assert db_dirs and re.search(rf"--db[= ]{re.escape(db_dirs[0])}/", args), f"--db must be on the PVC {db_dirs}: {args}"
mount = token_mount(spec, c)
assert re.search(rf"--token-file[= ]{re.escape(mount)}/token\b", args), f"--token-file must read the Secret: {args}"

service = get("Service", "dwarp-coordinator")
assert all(coord_labels.get(k) == v for k, v in service["spec"]["selector"].items()), "Service does not select the coordinator"
svc_port = service["spec"]["ports"][0]
assert svc_port["targetPort"] in (port, c["ports"][0].get("name")), svc_port

# The workers.
workers = get("Deployment", "dwarp-worker")
selects(workers)
spec, c = container(workers)
args = " ".join(c.get("command", []) + c.get("args", []))
assert "dwarp-worker" in args and "--devices=cuda:0" in args, args
assert int(c["resources"]["limits"]["nvidia.com/gpu"]) == 1, "one GPU per worker pod"
drain = float(re.search(r"--drain-timeout[= ]([0-9.]+)", args).group(1))
grace = spec["terminationGracePeriodSeconds"]
assert grace > drain, f"terminationGracePeriodSeconds {grace} must outlast --drain-timeout {drain}"
env = {e["name"]: e for e in c["env"]}
assert env["DWARP_COORDINATOR"]["value"] == f"{service['metadata']['name']}:{svc_port['port']}", env["DWARP_COORDINATOR"]
mount = token_mount(spec, c)
assert env["DWARP_TOKEN_FILE"]["value"] == f"{mount}/token", env["DWARP_TOKEN_FILE"]
for name in re.findall(r"\$\((\w+)\)", args):
    assert name in env, f"args use $({name}) but the container has no such env"
print(f"ok: {len(objects)} objects: " + ", ".join(f"{k}/{n}" for k, n in sorted(objects)))
PY

if command -v kubectl > /dev/null; then
  if out="$(kubectl apply --dry-run=client --validate=false -f "$k8s" 2>&1)"; then
    echo "$out"
  elif echo "$out" | grep -Eq "connection refused|no configuration has been provided|dial tcp"; then
    echo "note: kubectl apply --dry-run=client needs an API server for discovery here; that check was skipped"
  else
    echo "FAIL: kubectl apply --dry-run=client: $out"; exit 1
  fi
fi
