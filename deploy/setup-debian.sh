#!/usr/bin/env bash
# Installs every Debian 12 package dwarp's build, tests and benchmarks need.
# Idempotent: when everything is already installed it only runs dpkg-query and exits (well under a second).
# Usage: deploy/setup-debian.sh            (as root, or with sudo available)
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # engine: LibTorch (CPU build) and a fast BLAS for it (the reference BLAS is ~13x slower for matmul)
  libtorch-dev libopenblas0-pthread
  # common/: configs, logging
  nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  # service: wire contract, RPC, store, event loop, CLI
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libsqlite3-dev libboost-dev libabsl-dev
  libcli11-dev
  # datasets: image decode, netCDF (BrainIO / xarray files), gzip (IDX files ship gzipped)
  libstb-dev libnetcdf-dev zlib1g-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # TLS tests make their certificates with it
  openssl
  # cross-checks and fixtures (torchvision export, xarray-written netCDF, PIL-written images)
  python3 python3-numpy python3-torch python3-torchvision python3-xarray python3-netcdf4 python3-pil python3-protobuf
  python3-yaml
  # real data that ships in Debian (python3-skimage: the photographs of the image-transform cross-check)
  dataset-fashion-mnist python3-skimage
  # deploy tests: a one-node Slurm cluster (tests/deploy/slurm_test.sh) and systemd-analyze for the units
  slurm-wlm munge systemd
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${#missing[@]} missing packages: ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
