#include "worker/engine/buffer_pool.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

namespace dwarp::engine {
namespace {

class BufferPool {
 public:
  void* Acquire(int64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.live += bytes;
      stats_.peak_live = std::max(stats_.peak_live, stats_.live);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        stats_.free -= bytes;
        return p;
      }
    }
    void* p = nullptr;
    TORCH_CHECK(posix_memalign(&p, 64, static_cast<size_t>(bytes)) == 0, "PooledEmpty: out of memory allocating ",
                bytes, " bytes");
    return p;
  }

  void Release(void* p, int64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.live -= bytes;
      if (stats_.free + bytes <= kPoolMaxFreeBytes) {
        free_[bytes].push_back(p);
        stats_.free += bytes;
        return;
      }
    }
    std::free(p);
  }

  PoolStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void ResetPeak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_live = stats_.live;
  }

 private:
  std::mutex mu_;
  std::map<int64_t, std::vector<void*>> free_;  // guarded by mu_
  PoolStats stats_;                             // guarded by mu_
};

// Never destroyed: tensors may be freed during static destruction.
BufferPool& Pool() {
  static BufferPool* pool = new BufferPool();
  return *pool;
}

}  // namespace

at::Tensor PooledEmpty(at::IntArrayRef sizes, int64_t capacity, at::ScalarType dtype) {
  int64_t numel = 1;
  for (const int64_t s : sizes) numel *= s;
  TORCH_CHECK(capacity >= numel, "PooledEmpty: capacity ", capacity, " is smaller than the ", numel,
              " elements of shape ", sizes);
  const int64_t bytes = capacity * static_cast<int64_t>(c10::elementSize(dtype));
  if (bytes < kPooledMinBytes) {
    // Shrinking keeps the storage: a plain tensor (not a view) backed by `capacity` elements.
    at::Tensor t = at::empty({capacity}, dtype);
    t.resize_(sizes);
    return t;
  }
  void* data = Pool().Acquire(bytes);
  return at::from_blob(
      data, sizes, [bytes](void* p) { Pool().Release(p, bytes); }, at::TensorOptions().dtype(dtype));
}

PoolStats PooledStats() { return Pool().stats(); }
void ResetPooledPeak() { Pool().ResetPeak(); }

}  // namespace dwarp::engine
