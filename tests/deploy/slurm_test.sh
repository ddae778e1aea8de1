#!/usr/bin/env bash
# deploy/slurm/dwarp-workers.sbatch end to end on a one-node Slurm cluster that this test starts itself:
# munged with a throw-away key, slurmctld and slurmd on free ports with a temporary slurm.conf (the host's
# /etc/slurm is never read or written), a dwarp-coordinator on loopback, an array of 2 CPU workers submitted
# with sbatch, a tiny sweep run to the end with the CLI; then scancel must drain both workers ("drained,
# exiting", exit 0). Everything started here is stopped on exit.
# Skipped (exit 77) when not root, without the slurm-wlm/munge binaries or Debian's dataset-fashion-mnist.
# Usage: slurm_test.sh DWARP DWARP_COORDINATOR DWARP_WORKER
set -u
dwarp="$1" coordinator_bin="$2" worker_bin="$3"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
sbatch_script="$repo/deploy/slurm/dwarp-workers.sbatch"
images=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
[ "$(id -u)" -eq 0 ] || { echo "skipped: needs root to run slurmctld/slurmd"; exit 77; }
for b in munged slurmctld slurmd sbatch squeue scancel scontrol; do
  command -v "$b" > /dev/null || [ -x "/usr/sbin/$b" ] || { echo "skipped: $b not installed (slurm-wlm, munge)"; exit 77; }
done
[ -f "$images" ] || { echo "skipped: $images not installed"; exit 77; }
export PATH="$PATH:/usr/sbin"

dir="$(mktemp -d)"
chmod 755 "$dir"  # slurmd and munged check the permissions of the folders their files are in
pids=()
job=""
cleanup() {
  if [ -n "$job" ]; then
    # Let slurmd end the job (SIGTERM, then SIGKILL after KillWait) before the daemons go: killing slurmd
    # first would leave slurmstepd and the workers behind.
    scancel "$job" 2>/dev/null
    for _ in $(seq 100); do [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  # slurmctld/slurmd/munged write pid files; the coordinator is our own child.
  for f in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munged.pid; do
    [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
  done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  sleep 1
  for f in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munged.pid; do
    [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
  done
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  for f in "$dir"/*.log "$dir"/log/*; do [ -f "$f" ] && { echo "--- $f"; tail -30 "$f"; }; done
  exit 1
}
unset DWARP_COORDINATOR DWARP_TOKEN DWARP_TOKEN_FILE SLURM_JOB_ID SLURM_ARRAY_JOB_ID

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# munge: a private key and socket; Slurm finds the socket through AuthInfo below.
mkdir -p "$dir/munge" "$dir/log" "$dir/state" "$dir/spool" "$dir/out"
chmod 700 "$dir/munge"
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
       --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" \
  || fail "munged did not start"

host="$(hostname -s)"
ctld_port="$(free_port)"
slurmd_port="$(free_port)"
while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port="$(free_port)"; done
cpus="$(nproc)"
export SLURM_CONF="$dir/slurm.conf"
cat > "$SLURM_CONF" <<CONF
ClusterName=dwarptest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
# No cgroups in a container: plain process tracking, no task binding, no accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# scancel: SIGTERM, then SIGKILL after KillWait; the workers must drain inside it.
KillWait=20
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
slurmctld -f "$SLURM_CONF" -i || fail "slurmctld did not start"
slurmd -f "$SLURM_CONF" -N "$host" || fail "slurmd did not start"
for _ in $(seq 100); do
  sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed)' && break; sleep 0.2
done
sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed)' || fail "the node never became idle: $(sinfo 2>&1)"

"$coordinator_bin" --db "$dir/dwarp.db" --listen 127.0.0.1:0 --port-file "$dir/port" \
  > "$dir/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
[ -s "$dir/port" ] || fail "the coordinator did not start"
DWARP_COORDINATOR="127.0.0.1:$(cat "$dir/port")"
export DWARP_COORDINATOR

# Two CPU workers, the way the script's usage says; --cpus-per-task shrunk to fit this node.
job="$(DWARP_DEVICES=cpu DWARP_WORKER_BIN="$worker_bin" DWARP_DRAIN_TIMEOUT=10 \
       sbatch --parsable --gres=none --array=0-1 --cpus-per-task=1 --time=10 \
              --output="$dir/out/worker-%A_%a.log" "$sbatch_script" 2> "$dir/sbatch.log")" \
  || fail "sbatch failed: $(cat "$dir/sbatch.log")"
job="${job%%;*}"
echo "submitted array job $job"

# Both array tasks register with the coordinator.
for _ in $(seq 150); do
  [ "$("$dwarp" workers 2>/dev/null | grep -c "slurm-${job}_")" -ge 2 ] && break; sleep 0.2
done
"$dwarp" workers > "$dir/workers.log" 2>&1 || fail "workers exited $?"
grep -q "slurm-${job}_0" "$dir/workers.log" && grep -q "slurm-${job}_1" "$dir/workers.log" \
  || fail "both array tasks should be listed by dwarp workers: $(cat "$dir/workers.log"; squeue)"

mkdir -p "$dir/sweeps"
cat > "$dir/sweeps/slurm.yaml" <<YAML
name: slurm
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
"$dwarp" submit "$dir/sweeps/slurm.yaml" > "$dir/submit.log" 2>&1 || fail "submit exited $?"
grep -q "slurm-1" "$dir/submit.log" || fail "submit did not print the sweep id slurm-1"
for _ in $(seq 600); do
  "$dwarp" list 2>/dev/null | grep -Eq "slurm-1 +slurm +done" && break; sleep 0.2
done
"$dwarp" list > "$dir/list.log" 2>&1
grep -Eq "slurm-1 +slurm +done" "$dir/list.log" || fail "the sweep did not finish: $(cat "$dir/list.log")"
"$dwarp" results slurm-1 --format csv -o "$dir/results.csv" > /dev/null 2>&1 || fail "results exited $?"
[ "$(grep -c ',succeeded,' "$dir/results.csv")" -eq 6 ] || fail "all 6 jobs should have succeeded"

scancel "$job" || fail "scancel failed"
for _ in $(seq 200); do
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break; sleep 0.2
done
[ -z "$(squeue -h -j "$job" 2>/dev/null)" ] || fail "the array job did not end after scancel: $(squeue)"
for task in 0 1; do
  log="$dir/out/worker-${job}_${task}.log"
  [ -f "$log" ] || fail "no log for array task $task"
  grep -q "drained, exiting" "$log" || fail "array task $task did not drain: $(tail -20 "$log")"
done
# Slurm's record of the tasks: exit code 0, no signal (a SIGKILL after KillWait would read 0:9).
for task in 0 1; do
  state="$(scontrol show job "${job}_${task}" 2>/dev/null | grep -o 'ExitCode=[0-9:]*' | head -1)"
  [ "$state" = "ExitCode=0:0" ] || fail "array task $task ended with '$state', expected ExitCode=0:0"
done
echo "ok: sbatch array of 2 CPU workers ran a sweep, registered both, and drained on scancel"
