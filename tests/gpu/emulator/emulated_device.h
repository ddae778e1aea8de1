// Host emulation of CUDA's execution model, for running fwht_cuda.cu's kernels as written on a machine
// without a GPU (tests/gpu/emulate_cuda.sh; convert_launches.py turns each `kernel<<<config>>>(args)` into
// emulated::Launch). Every block of a launch runs in turn; its threads run as coroutines (ucontext) in one
// OS thread, one at a time, each until it finishes or reaches a barrier: __syncthreads waits for the whole
// block, a warp shuffle for its 32 lanes. Threads run in ascending order in even blocks and descending in
// odd ones, so that a missing __syncthreads shows whichever of writer and reader has the lower index (as
// a wrong result); a barrier that not every thread reaches aborts (on a GPU: a hang or garbage).
// Shared memory, static and dynamic, is the block's own and starts as NaN bytes, as a GPU's may hold
// anything. atomicAdd is a plain add (one thread runs at a time). Launch limits are checked (grid
// y and z <= 65535, block <= 1024 threads, dynamic shared memory <= 48 KiB). Not emulated: timing, streams
// (cuda_runtime.h here runs everything in program order), memory ordering between concurrent threads.
#pragma once

#include <ucontext.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <vector>

#include "cuda_runtime.h"

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

#define __global__
#define __device__
#define __forceinline__
#define __launch_bounds__(threads)
using std::max;
using std::min;

namespace emulated {

struct LaunchConfig {
  dim3 grid, block;
  size_t shared_bytes;
};
inline LaunchConfig Config(dim3 grid, dim3 block, size_t shared_bytes = 0, cudaStream_t = nullptr) {
  return {grid, block, shared_bytes};
}

enum class State { kReady, kAtSyncthreads, kAtShuffle, kDone };

struct Thread {
  ucontext_t context;
  State state = State::kReady;
  unsigned index = 0;
  std::vector<char> stack;
};

struct Device {
  ucontext_t scheduler;
  std::vector<Thread> threads;
  Thread* current = nullptr;
  dim3 block_index, grid_size, block_size;
  std::vector<float> dynamic_shared;
  std::map<int, std::vector<char>> static_shared;  // by the declaration's line
  std::vector<float> shuffle_slots;  // one per thread of the block
  const std::function<void()>* kernel = nullptr;
  int64_t launches = 0;
  int64_t blocks = 0;
};

inline Device& device() {
  static Device d;
  return d;
}

[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "emulated device: %s\n", what);
  std::abort();
}

inline void RunThread() {
  (*device().kernel)();
  device().current->state = State::kDone;
  swapcontext(&device().current->context, &device().scheduler);
}

// Parks the running thread at a barrier until its group (block or warp) has arrived.
inline void Park(State state) {
  Device& d = device();
  d.current->state = state;
  swapcontext(&d.current->context, &d.scheduler);
}

// Releases the threads of [begin, end) parked at `barrier` once every one of them is; aborts where some have
// finished instead (a barrier not every thread reaches).
inline bool Release(unsigned begin, unsigned end, State barrier) {
  Device& d = device();
  unsigned parked = 0, done = 0;
  for (unsigned t = begin; t < end; ++t) {
    parked += d.threads[t].state == barrier;
    done += d.threads[t].state == State::kDone;
  }
  if (parked == 0 || parked + done < end - begin) return false;
  if (done > 0) Fail(barrier == State::kAtSyncthreads ? "__syncthreads not reached by every thread of a block"
                                                       : "a shuffle not reached by every lane of a warp");
  for (unsigned t = begin; t < end; ++t) d.threads[t].state = State::kReady;
  return true;
}

inline void Launch(const LaunchConfig& config, const std::function<void()>& kernel) {
  Device& d = device();
  const unsigned n = config.block.x;
  if (config.grid.x == 0 || config.grid.y == 0 || config.grid.z == 0 || n == 0) Fail("a launch of no threads");
  if (config.grid.y > 65535 || config.grid.z > 65535) Fail("grid y or z above 65535");
  if (n > 1024 || config.block.y != 1 || config.block.z != 1) Fail("blocks other than 1..1024 threads in x");
  if (config.shared_bytes > 48 * 1024) Fail("more than 48 KiB of dynamic shared memory");
  ++d.launches;
  d.grid_size = config.grid;
  d.block_size = config.block;
  d.kernel = &kernel;
  d.threads.resize(n);
  d.shuffle_slots.assign(n, 0.0f);
  for (Thread& t : d.threads) {
    if (t.stack.empty()) t.stack.resize(256 * 1024);
  }
  for (unsigned z = 0; z < config.grid.z; ++z) {
    for (unsigned y = 0; y < config.grid.y; ++y) {
      for (unsigned x = 0; x < config.grid.x; ++x) {
        ++d.blocks;
        d.block_index = dim3(x, y, z);
        d.dynamic_shared.assign(config.shared_bytes / sizeof(float) + 1, __builtin_nanf(""));
        d.static_shared.clear();
        for (unsigned t = 0; t < n; ++t) {
          Thread& thread = d.threads[t];
          thread.index = t;
          thread.state = State::kReady;
          getcontext(&thread.context);
          thread.context.uc_stack.ss_sp = thread.stack.data();
          thread.context.uc_stack.ss_size = thread.stack.size();
          thread.context.uc_link = nullptr;
          makecontext(&thread.context, RunThread, 0);
        }
        while (true) {
          bool ran = false;
          const bool descending = (x + y + z) % 2 == 1;
          for (unsigned i = 0; i < n; ++i) {
            Thread& thread = d.threads[descending ? n - 1 - i : i];
            if (thread.state != State::kReady) continue;
            d.current = &thread;
            swapcontext(&d.scheduler, &thread.context);
            ran = true;
          }
          if (std::all_of(d.threads.begin(), d.threads.end(), [](const Thread& t) { return t.state == State::kDone; })) {
            break;
          }
          bool released = Release(0, n, State::kAtSyncthreads);
          for (unsigned w = 0; w < n; w += 32) released = Release(w, std::min(n, w + 32), State::kAtShuffle) || released;
          if (!ran && !released) Fail("threads wait at barriers that never release");
        }
      }
    }
  }
}

inline float* DynamicShared() { return device().dynamic_shared.data(); }

// The block's copy of a `__shared__` array declared at `line`: made (NaN bytes) by the first thread that
// reaches the declaration, shared by the others.
inline void* StaticShared(size_t bytes, int line) {
  std::vector<char>& storage = device().static_shared[line];
  if (storage.empty()) storage.assign(bytes, static_cast<char>(0xff));
  return storage.data();
}

}  // namespace emulated

#define EMULATED_CONFIG(...) emulated::Config(__VA_ARGS__)
#define threadIdx (dim3(emulated::device().current->index))
#define blockIdx (emulated::device().block_index)
#define blockDim (emulated::device().block_size)
#define gridDim (emulated::device().grid_size)

inline void __syncthreads() { emulated::Park(emulated::State::kAtSyncthreads); }

// Every lane publishes its value, the warp meets, each reads its partner's, the warp meets again (so that
// no slot is overwritten before it is read).
inline float __shfl_xor_sync(unsigned, float value, int lane_mask) {
  emulated::Device& d = emulated::device();
  const unsigned t = d.current->index;
  d.shuffle_slots[t] = value;
  emulated::Park(emulated::State::kAtShuffle);
  const float other = d.shuffle_slots[(t & ~31u) | ((t & 31u) ^ static_cast<unsigned>(lane_mask))];
  emulated::Park(emulated::State::kAtShuffle);
  return other;
}

inline float atomicAdd(float* address, float value) {
  const float old = *address;
  *address = old + value;
  return old;
}
