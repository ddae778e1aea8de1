#!/usr/bin/env bash
# deploy/docker Dockerfiles, lint level only (no image is built: that needs a registry): a FROM line opens
# each; every COPY/ADD source exists in the repository (the build context is the repository root); nothing
# copied is excluded by the Dockerfile's own .dockerignore; the three binaries are built and installed; the
# GPU image points CMake at its LibTorch (CMAKE_PREFIX_PATH) and installs the gRPC/Protobuf/SQLite dev
# packages the worker needs; the CPU image runs deploy/setup-debian.sh; and the sources each one copies,
# laid out as in the image, configure with CMake (with this machine's packages, tests and benchmarks off as
# in the images), so no file the build includes is left out of the image. hadolint runs too when installed.
# Usage: docker_test.sh
set -u
repo="$(cd "$(dirname "$0")/../.." && pwd)"
docker_dir="$repo/deploy/docker"
fail() { echo "FAIL: $*"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for df in "$docker_dir/Dockerfile.cpu" "$docker_dir/Dockerfile.gpu"; do
  n="$(basename "$df")"
  [ -f "$df" ] || fail "missing $df"
  # Join continuation lines, drop comments, so each instruction is one line.
  flat="$(sed -e '/^[[:space:]]*#/d' "$df" | sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta')"
  first="$(echo "$flat" | grep -Ev '^[[:space:]]*$' | grep -Ev '^ARG ' | head -1)"
  [[ "$first" == FROM* ]] || fail "$n: the first instruction after ARGs is not FROM: $first"
  echo "$flat" | grep -Eq '^FROM [^ ]+' || fail "$n: no FROM line"
  copies=0
  rm -rf "$work/image" "$work/build"
  while read -r instr rest; do
    [[ "$rest" == *--from=* ]] && continue  # from another stage, not the context
    # shellcheck disable=SC2206
    words=($rest)
    srcs=()
    for w in "${words[@]}"; do [[ "$w" == --* ]] || srcs+=("$w"); done
    [ "${#srcs[@]}" -ge 2 ] || fail "$n: $instr without source and destination: $rest"
    dest="${srcs[${#srcs[@]}-1]}"
    unset 'srcs[${#srcs[@]}-1]'  # the last word is the destination
    for s in "${srcs[@]}"; do
      [ -e "$repo/$s" ] || fail "$n: $instr source '$s' does not exist in the repository"
      if [ -f "$df.dockerignore" ]; then
        while read -r pattern; do
          [[ -z "$pattern" || "$pattern" == \#* ]] && continue
          p="${pattern%/}"
          # shellcheck disable=SC2053
          [[ "$s" == $p || "$s" == $p/* ]] && fail "$n: '$s' is copied but excluded by $(basename "$df").dockerignore"
        done < "$df.dockerignore"
      fi
      copies=$((copies + 1))
      # Where the image gets it: into a folder when the destination ends in '/', else at the destination.
      target="$work/image$dest"
      [[ "$dest" == */ ]] && target="$target$(basename "$s")"
      mkdir -p "$(dirname "$target")" && cp -r "$repo/$s" "$target"
    done
  done < <(echo "$flat" | grep -E '^(COPY|ADD) ')
  [ "$copies" -gt 0 ] || fail "$n: copies nothing from the repository"
  if command -v cmake > /dev/null; then
    cmake -S "$work/image/src" -B "$work/build" -G Ninja -DDWARP_BUILD_TESTS=OFF -DDWARP_BUILD_BENCHMARKS=OFF \
      > "$work/configure.log" 2>&1 ||
      fail "$n: the sources it copies to /src do not configure: $(grep -m 1 -A 3 'CMake Error' "$work/configure.log")"
  fi
  for target in dwarp dwarp-coordinator dwarp-worker; do
    echo "$flat" | grep -Eq -- "--target[^&]* $target( |$)" || fail "$n: does not build $target"
  done
  for bin in clients/dwarp coordinator/dwarp-coordinator worker/daemon/dwarp-worker; do
    echo "$flat" | grep -q "$bin" || fail "$n: does not install $bin"
  done
  echo "$flat" | grep -q '^USER ' || fail "$n: runs as root (no USER)"
  if command -v hadolint > /dev/null; then hadolint "$df" || fail "$n: hadolint"; fi
done
gpu="$(cat "$docker_dir/Dockerfile.gpu")"
echo "$gpu" | grep -q -- "-DCMAKE_PREFIX_PATH=" || fail "Dockerfile.gpu: CMake is not pointed at the image's LibTorch"
for pkg in libgrpc++-dev libprotobuf-dev protobuf-compiler-grpc libsqlite3-dev; do
  echo "$gpu" | grep -q -- "$pkg" || fail "Dockerfile.gpu: does not install $pkg (the worker needs gRPC)"
done
grep -q '^RUN .*deploy/setup-debian.sh' "$docker_dir/Dockerfile.cpu" || fail "Dockerfile.cpu: does not run setup-debian.sh"
grep -q '^FROM debian:12' "$docker_dir/Dockerfile.cpu" || fail "Dockerfile.cpu: not Debian 12"
echo "ok: both Dockerfiles start FROM an image, copy only files that exist, build and install the three binaries"
