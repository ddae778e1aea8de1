#include "worker/engine/seeded_random.h"

#include <cassert>
#include <cmath>

namespace dwarp::engine {

uint64_t StableHash(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : text) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

SeededStream::SeededStream(uint64_t seed, std::string_view name) : state_(seed ^ StableHash(name)) {
  // Decorrelate nearby (seed, name) pairs before the first output.
  NextU64();
}

uint64_t SeededStream::NextU64() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SeededStream::Below(uint64_t bound) {
  assert(bound >= 1);
  // Lemire's method: the high word of a 128-bit product, rejecting the few low words that would bias it.
  unsigned __int128 m = static_cast<unsigned __int128>(NextU64()) * bound;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < bound) {
    const uint64_t threshold = (0 - bound) % bound;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(NextU64()) * bound;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

double SeededStream::Uniform01() {
  // (k + 0.5) / 2^53 for k in [0, 2^53): never 0, never 1.
  return (static_cast<double>(NextU64() >> 11) + 0.5) * 0x1.0p-53;
}

double SeededStream::Normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_normal_;
  }
  const double radius = std::sqrt(-2.0 * std::log(Uniform01()));
  const double angle = 2.0 * M_PI * Uniform01();
  spare_normal_ = radius * std::sin(angle);
  has_spare_ = true;
  return radius * std::cos(angle);
}

}  // namespace dwarp::engine
