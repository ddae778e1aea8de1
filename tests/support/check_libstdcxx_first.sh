#!/bin/bash
# Checks the dynamic-link order of every ELF file under a build tree that links LibTorch: libstdc++.so.6
# must come before every libtorch*.so and libc10*.so in its NEEDED entries.
#
# Why: the dynamic linker binds each symbol to the first object in the global search order (the program,
# then its NEEDED entries in order) that defines it. A PyTorch wheel's libtorch.so (and libtorch_cpu.so)
# export std::filesystem symbols of their own; a program that lists them before libstdc++.so.6, as a default
# link puts them, binds std::filesystem::remove_all & co. into libtorch.so and crashes there. CMake's
# dwarp_torch target (cmake/dwarp_torch.cmake) links libstdc++ first for every program that uses LibTorch.
#
#   check_libstdcxx_first.sh BUILD_DIR
# Prints one line per file checked; exits 1 when one is out of order or when no file links LibTorch (then
# there was nothing to check, which is itself a sign that something is wrong), 2 on bad usage.
set -uo pipefail

build=${1:-}
[ -n "$build" ] && [ -d "$build" ] || { echo "usage: $0 BUILD_DIR (a built CMake tree)" >&2; exit 2; }
command -v readelf > /dev/null || { echo "readelf not found (binutils)" >&2; exit 2; }

checked=0
bad=0
while IFS= read -r -d '' file; do
  # Only ELF files: the first four bytes are 0x7f 'E' 'L' 'F'.
  [ "$(head -c 4 "$file" 2> /dev/null | od -An -c | tr -d ' ')" = '177ELF' ] || continue
  needed=$(readelf -d "$file" 2> /dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p')
  torch_at=$(grep -nE '^lib(torch|c10)[A-Za-z0-9_]*\.so' <<< "$needed" | head -1 | cut -d: -f1)
  [ -n "$torch_at" ] || continue
  checked=$((checked + 1))
  stdcxx_at=$(grep -nx 'libstdc++\.so\.6' <<< "$needed" | head -1 | cut -d: -f1)
  order=$(tr '\n' ' ' <<< "$needed")
  if [ -n "$stdcxx_at" ] && ((stdcxx_at < torch_at)); then
    echo "ok   ${file#"$build"/}: $order"
  else
    bad=$((bad + 1))
    where=${stdcxx_at:+"entry $stdcxx_at"}
    echo "FAIL ${file#"$build"/}: libstdc++.so.6 is ${where:-absent}, the first LibTorch library entry" \
         "$torch_at; NEEDED: $order"
  fi
done < <(find "$build" -type f -perm -u+x -not -path '*/CMakeFiles/*' -print0 | sort -z)

if ((checked == 0)); then
  echo "FAIL: no executable under $build links LibTorch; build the project first"
  exit 1
fi
echo "$checked files link LibTorch; $bad with libstdc++.so.6 after a LibTorch library"
((bad == 0))
