#!/usr/bin/env bash
# deploy/systemd units: `systemd-analyze verify` on copies whose binary and EnvironmentFile paths point at
# this build (verify checks that ExecStart is executable), with any warning (an unknown or misspelt key is
# only a warning there) counted as a failure; then the settings the deployment relies on: SIGTERM drain with
# a stop timeout longer than the worker's drain timeout, restart on failure, a dedicated user, a state
# directory for the database, the env file, and one worker per GPU (%i -> --devices cuda:%i).
# Skipped (exit 77) without systemd-analyze.
# Usage: systemd_test.sh DWARP_COORDINATOR DWARP_WORKER
set -u
coordinator_bin="$(realpath "$1")" worker_bin="$(realpath "$2")"
units="$(cd "$(dirname "$0")/../../deploy/systemd" && pwd)"
command -v systemd-analyze > /dev/null || { echo "skipped: systemd-analyze not installed"; exit 77; }
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

coord="$units/dwarp-coordinator.service" worker="$units/dwarp-worker@.service"
for f in "$coord" "$worker" "$units/dwarp.env.example"; do [ -f "$f" ] || fail "missing $f"; done
: > "$dir/dwarp.env"
for f in "$coord" "$worker"; do
  sed -e "s|/usr/local/bin/dwarp-coordinator|$coordinator_bin|" -e "s|/usr/local/bin/dwarp-worker|$worker_bin|" \
      -e "s|/etc/dwarp/dwarp.env|$dir/dwarp.env|" "$f" > "$dir/$(basename "$f")"
done
# A template is verified through an instance.
cp "$dir/dwarp-worker@.service" "$dir/dwarp-worker@0.service"
(cd "$dir" && systemd-analyze verify --man=no ./dwarp-coordinator.service ./dwarp-worker@0.service) \
  > "$dir/verify.log" 2>&1 || fail "systemd-analyze verify failed: $(cat "$dir/verify.log")"
# Warnings about the units themselves (not about the host's other units) fail the test.
if grep -E "dwarp-(coordinator|worker)" "$dir/verify.log"; then fail "systemd-analyze verify warned (above)"; fi

# The verifier must reject a broken unit, or the check above proves nothing.
sed "s|$coordinator_bin|/nonexistent/dwarp-coordinator|" "$dir/dwarp-coordinator.service" > "$dir/broken.service"
(cd "$dir" && systemd-analyze verify --man=no ./broken.service) > /dev/null 2>&1 \
  && fail "systemd-analyze verify accepted a unit whose binary does not exist"

value() { sed -n "s/^$2=//p" "$1" | tail -1; }
for f in "$coord" "$worker"; do
  n="$(basename "$f")"
  [ "$(value "$f" KillSignal)" = SIGTERM ] || fail "$n: KillSignal should be SIGTERM"
  [ "$(value "$f" Restart)" = on-failure ] || fail "$n: Restart should be on-failure"
  [ "$(value "$f" User)" = dwarp ] || fail "$n: should run as the dedicated user dwarp"
  [ "$(value "$f" EnvironmentFile)" = /etc/dwarp/dwarp.env ] || fail "$n: EnvironmentFile should be /etc/dwarp/dwarp.env"
done
[ "$(value "$coord" StateDirectory)" = dwarp ] || fail "coordinator: StateDirectory should be dwarp"
value "$coord" ExecStart | grep -q -- "--db %S/dwarp/" || fail "coordinator: --db should live in the state directory"
value "$coord" ExecStart | grep -q -- "--token-file" || fail "coordinator: should be started with --token-file"
value "$worker" ExecStart | grep -q -- "--devices cuda:%i" || fail "worker: %i should select the GPU (--devices cuda:%i)"
drain="$(sed -n "s/^Environment=DWARP_DRAIN_TIMEOUT=//p" "$worker")"
env_drain="$(sed -n 's/^DWARP_DRAIN_TIMEOUT=//p' "$units/dwarp.env.example")"
stop="$(value "$worker" TimeoutStopSec)"
[ -n "$drain" ] && [ -n "$stop" ] || fail "worker: DWARP_DRAIN_TIMEOUT and TimeoutStopSec must be set"
[ "$stop" -gt "$drain" ] || fail "worker: TimeoutStopSec=$stop must outlast the drain timeout $drain"
[ -z "$env_drain" ] || [ "$stop" -gt "$env_drain" ] || fail "dwarp.env.example drain $env_drain >= TimeoutStopSec=$stop"
value "$worker" ExecStart | grep -q -- '--drain-timeout ${DWARP_DRAIN_TIMEOUT}' || fail "worker: --drain-timeout not passed"
echo "ok: systemd-analyze verify accepts both units; drain, restart, user, state and GPU settings present"
