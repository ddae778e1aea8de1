// Large CPU tensors whose memory is kept for reuse when they are freed, instead of going back to the OS.
//
// Why: glibc serves allocations above 32 MiB with a fresh mmap, so every such tensor is first touched
// page by page. For a 64 MiB Fastfood buffer those 16k page faults cost about three memcpys of it, more
// than the projection's arithmetic, and a training step would pay them on every call.
//
// Thread-safety: all functions may be called concurrently.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace dwarp::engine {

// An uninitialised contiguous CPU tensor of `sizes` whose storage holds at least `capacity` elements
// (capacity >= the product of sizes), so one padded-length buffer can back a shorter result. Storage of
// at least kPooledMinBytes comes from the pool; smaller requests are plain at::empty.
at::Tensor PooledEmpty(at::IntArrayRef sizes, int64_t capacity, at::ScalarType dtype);

// Accounting, for tests and benchmarks: bytes parked for reuse, bytes held by live tensors, and the
// highest value `live` reached since the last ResetPooledPeak().
struct PoolStats {
  int64_t free = 0;
  int64_t live = 0;
  int64_t peak_live = 0;
};
PoolStats PooledStats();
void ResetPooledPeak();

constexpr int64_t kPooledMinBytes = int64_t{1} << 20;
// Free buffers beyond this total are returned to the OS.
constexpr int64_t kPoolMaxFreeBytes = int64_t{2} << 30;

}  // namespace dwarp::engine
