// Host stand-in for the CUDA runtime calls that fwht_cuda.cu and fwht_cuda_standalone_check.cu make, for
// the host emulation (tests/gpu/emulate_cuda.sh): "device" memory is host memory, copies and fills happen at
// once, streams and events order nothing (everything is already in program order). Not a GPU: stream
// ordering and timing are not emulated, only what the launchers compute.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>

typedef int cudaError_t;
typedef void* cudaStream_t;
typedef void* cudaEvent_t;
enum { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost };
enum { cudaStreamNonBlocking = 1, cudaEventDisableTiming = 2 };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount };

// An H100's / H200's multiprocessor count, so that the fold's work split is the one the GPU gets.
constexpr int kEmulatedMultiprocessors = 132;

inline const char* cudaGetErrorString(cudaError_t) { return "emulated CUDA error"; }
inline cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* device) { *device = 0; return cudaSuccess; }
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr, int) {
  *value = kEmulatedMultiprocessors;
  return cudaSuccess;
}
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, int) {
  static char token;
  *stream = &token;
  return cudaSuccess;
}
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, int) {
  static char token;
  *event = &token;
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, int) { return cudaSuccess; }

// Fresh "device" memory holds NaN bytes: a launcher that reads what it never wrote shows.
template <typename T>
cudaError_t cudaMalloc(T** ptr, size_t bytes) {
  *ptr = static_cast<T*>(std::malloc(bytes));
  if (*ptr == nullptr) return cudaErrorMemoryAllocation;
  std::memset(static_cast<void*>(*ptr), 0xff, bytes);
  return cudaSuccess;
}
template <typename T>
cudaError_t cudaMallocHost(T** ptr, size_t bytes) {
  *ptr = static_cast<T*>(std::malloc(bytes));
  return *ptr == nullptr ? cudaErrorMemoryAllocation : cudaSuccess;
}
inline cudaError_t cudaFree(void* ptr) { std::free(ptr); return cudaSuccess; }
inline cudaError_t cudaFreeHost(void* ptr) { std::free(ptr); return cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t) {
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t) {
  std::memset(dst, value, bytes);
  return cudaSuccess;
}
