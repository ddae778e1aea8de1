// Portable, deterministic random streams. The same (seed, name) yields the same numbers in any process,
// on any machine and with any LibTorch version, which is what lets a worker regenerate a job's Fastfood
// projection from its seed instead of shipping it. (LibTorch's and the standard library's generators and
// distributions do not promise that.)
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace dwarp::engine {

// 64-bit FNV-1a of `text`: stable across platforms, used to derive per-target seeds from names.
uint64_t StableHash(std::string_view text);

// A SplitMix64 stream seeded from (seed, name). Not thread-safe: one stream per thread.
class SeededStream {
 public:
  SeededStream(uint64_t seed, std::string_view name);

  uint64_t NextU64();
  // Uniform integer in [0, bound), unbiased (multiply-and-reject). bound >= 1.
  uint64_t Below(uint64_t bound);
  // Uniform double in the open interval (0, 1), 53 random bits.
  double Uniform01();
  // Standard normal deviate (Box–Muller in double precision).
  double Normal();

 private:
  uint64_t state_;
  double spare_normal_ = 0.0;
  bool has_spare_ = false;
};

// Fisher-Yates shuffle of `items` with draws from `stream` (the same order everywhere for a seed).
template <typename T>
void SeededShuffle(std::vector<T>& items, SeededStream& stream) {
  for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[static_cast<size_t>(stream.Below(i))]);
}

}  // namespace dwarp::engine
