#!/usr/bin/env bash
# The sweep commands of `dwarp` as a process, where no coordinator is needed (clients/sweep/sweep_commands.h
# "Exit codes"). Usage: sweep_cli_test.sh DWARP CASE
#   unreachable     `dwarp list` against a port nothing listens on: exit 3, "coordinator unreachable at ..."
#   missing_file    `dwarp submit` of a file that does not exist: exit 2, naming the file
#   malformed_file  `dwarp submit` of broken YAML: exit 2, naming the file; no coordinator is contacted
#   bad_format      `dwarp results --format xml`: exit 2, naming the value
#   usage           `dwarp status` without a sweep id (a CLI11 usage error), or an unknown command: exit 2
set -u
dwarp="$1"
case_name="$2"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

fail() { echo "FAIL: $*"; echo "--- output:"; cat "$dir/log"; exit 1; }

# expect CODE PATTERN COMMAND...: runs COMMAND, checks its exit code and that its output matches PATTERN.
expect() {
  local code="$1" pattern="$2"
  shift 2
  "$@" > "$dir/log" 2>&1
  local got=$?
  [ "$got" -eq "$code" ] || fail "exit code $got, expected $code: $*"
  grep -Eq -- "$pattern" "$dir/log" || fail "output does not match '$pattern': $*"
  echo "ok: $* -> $got"
}

# Port 1 on loopback: nothing listens there, so the connection is refused at once. The unset variables
# keep a developer's environment from changing what is tested.
unset DWARP_COORDINATOR DWARP_TOKEN DWARP_TOKEN_FILE
case "$case_name" in
  unreachable)
    expect 3 "^error: coordinator unreachable at 127\.0\.0\.1:1 \(" \
      "$dwarp" list --coordinator 127.0.0.1:1 --timeout 2
    expect 3 "coordinator unreachable at 127\.0\.0\.1:1" \
      "$dwarp" workers --coordinator 127.0.0.1:1 --timeout 2
    expect 3 "coordinator unreachable at 127\.0\.0\.1:1" \
      "$dwarp" watch some-sweep --coordinator 127.0.0.1:1 --timeout 2
    ;;
  missing_file)
    expect 2 "$dir/nope\.yaml" "$dwarp" submit "$dir/nope.yaml" --coordinator 127.0.0.1:1
    ;;
  malformed_file)
    printf 'name: broken\nmodels: [ {name: a\n' > "$dir/broken.yaml"
    # The coordinator address is unreachable: a coordinator error (3) here would mean the file was sent.
    expect 2 "^error: .*$dir/broken\.yaml" "$dwarp" submit "$dir/broken.yaml" --coordinator 127.0.0.1:1
    printf '{"name": "x", "models": []}' > "$dir/empty_models.json"
    expect 2 "$dir/empty_models\.json.*models" "$dwarp" submit "$dir/empty_models.json" --coordinator 127.0.0.1:1
    ;;
  bad_format)
    expect 2 "'xml'" "$dwarp" results some-sweep --format xml --coordinator 127.0.0.1:1
    ;;
  usage)
    expect 2 "sweep is required|required" "$dwarp" status
    # A misspelt command is named, with the commands there are.
    expect 2 "^error: unknown command 'stauts'; expected one of: .*status" "$dwarp" stauts cli-1
    expect 2 "^error: unknown command 'dim'; expected one of: dim-complexity \(dwarp simulate --help" \
      "$dwarp" simulate dim
    ;;
  *)
    echo "unknown case '$case_name'"; exit 1 ;;
esac
