// How many CPU threads the engine's math uses, set in one place for the whole process.
//
// LibTorch parallelises its own kernels (and dwarp's Fastfood kernels) on an OpenMP pool, while matrix
// products go to the BLAS, which on Debian is OpenBLAS with its own pthread pool sized to every core.
// Both pools spin while waiting for work, so when both have several threads they take cores from each
// other: on a 2-core machine an MLP training step ran 2.6x slower with both at 2 threads than with
// OpenMP at 2 and OpenBLAS at 1, and OpenBLAS's thread count also changes results (its reductions
// split differently). So the BLAS gets one thread and `threads` goes to LibTorch's pool.
#pragma once

namespace dwarp::engine {

// Sets LibTorch's intra-op threads to `threads` (>= 1) and, when the process uses OpenBLAS, OpenBLAS's
// threads to 1. Call once, before any work, from the main thread. Returns true when OpenBLAS was found
// and set.
bool SetComputeThreads(int threads);

}  // namespace dwarp::engine
