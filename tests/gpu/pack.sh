#!/bin/bash
# Packs what a GPU box lacks for an engine-only build and its tests into .gpu-kit/ at the repository root
# (ignored by git, sent to the box with the run tool's carry: [".gpu-kit"]); tests/gpu/check.sh uses it there.
# Run on the Debian machine, from anywhere in the repository:
#
#   tests/gpu/pack.sh
#
# .gpu-kit/ holds
#   googletest/          Debian's /usr/src/googletest (libgtest-dev), built by CMake when no GoogleTest is installed
#   include/stb/         stb_image.h, stb_image_write.h (libstb-dev)
#   zlib/include, lib/   zlib.h, zconf.h and libz.so.1 (zlib1g-dev, zlib1g), for a box without zlib's headers
#   VERSIONS             the Debian package versions copied
# A box has LibTorch (in its PyTorch wheel), CUDA, CMake and ninja; nothing else is assumed.
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
kit="$root/.gpu-kit"
fail() { echo "pack.sh: $*" >&2; exit 1; }

gtest_src=/usr/src/googletest
stb_dir=/usr/include/stb
zlib_lib=$(readlink -f /lib/x86_64-linux-gnu/libz.so.1 2>/dev/null || true)
[ -f "$gtest_src/CMakeLists.txt" ] && [ -d "$gtest_src/googlemock" ] ||
  fail "no GoogleTest sources at $gtest_src (Debian: apt-get install libgtest-dev)"
for header in stb_image.h stb_image_write.h; do
  [ -f "$stb_dir/$header" ] || fail "no $stb_dir/$header (Debian: apt-get install libstb-dev)"
done
for header in zlib.h zconf.h; do
  [ -f "/usr/include/$header" ] || fail "no /usr/include/$header (Debian: apt-get install zlib1g-dev)"
done
[ -n "$zlib_lib" ] && [ -f "$zlib_lib" ] || fail "no /lib/x86_64-linux-gnu/libz.so.1 (Debian: zlib1g)"
git -C "$root" check-ignore -q .gpu-kit/ || fail "$kit is not ignored by git (.gitignore should list /.gpu-kit/)"

rm -rf "$kit"
mkdir -p "$kit/include/stb" "$kit/zlib/include" "$kit/zlib/lib"
cp -rL "$gtest_src" "$kit/googletest"
cp "$stb_dir/stb_image.h" "$stb_dir/stb_image_write.h" "$kit/include/stb/"
cp /usr/include/zlib.h /usr/include/zconf.h "$kit/zlib/include/"
cp "$zlib_lib" "$kit/zlib/lib/libz.so.1"
dpkg-query -W -f '${Package} ${Version}\n' libgtest-dev libstb-dev zlib1g-dev zlib1g > "$kit/VERSIONS"

# The run tool sends the working tree (tracked and untracked, not ignored) plus the carried paths: 64 MiB in all.
kit_bytes=$(du -sb "$kit" | cut -f1)
tree_bytes=$(cd "$root" && git ls-files -z --cached --others --exclude-standard |
             xargs -0 -r stat -c %s -- 2>/dev/null | awk '{s += $1} END {print s + 0}')
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "packed $kit: $(mib "$kit_bytes") ($(find "$kit" -type f | wc -l) files; $(tr '\n' ';' < "$kit/VERSIONS"))"
echo "working tree sent with it: $(mib "$tree_bytes"); together $(mib $((kit_bytes + tree_bytes))) of the 64 MiB a run may carry"
(( kit_bytes + tree_bytes < 48 * 1048576 )) || fail "the kit and working tree exceed 48 MiB: too close to the 64 MiB limit"
cat <<'RUN'

On a GPU box, call the run tool with:
  command:   bash tests/gpu/check.sh
  carry:     [".gpu-kit"]
  timeout_s: 480
The logs come back in $OUT (7 files): summary.txt (also on stdout), versions.log, configure.log, build.log,
ctest.log, standalone.log, bench.log.
RUN
