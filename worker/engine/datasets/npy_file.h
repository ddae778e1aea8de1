// NumPy .npy files (numpy.save), read into CPU tensors.
//
// Format: the magic "\x93NUMPY", a major/minor version (1.0: 2-byte header length; 2.0 and 3.0: 4-byte), then
// a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, T), } padded with spaces, then
// the raw elements. Supported: C order, little-endian (or byte-order-free) float32 '<f4', float64 '<f8',
// uint8 '|u1', int32 '<i4', int64 '<i8', bool '|b1'; and for ReadNpyStrings, unicode '<U<n>' arrays (what
// numpy.save writes for np.array(["train", "val"])).
//
// Errors name the file: NotFound, Unavailable (cannot read), InvalidArgument (bad magic or header, Fortran
// order, big-endian or unsupported dtype, truncated data, trailing bytes). Thread-safety: no shared state.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "common/status.h"

namespace dwarp::engine {

// The array with its shape and dtype (float32, float64, uint8, int32, int64 or bool).
StatusOr<at::Tensor> ReadNpyFile(const std::string& path);

// A 1-D unicode ('<U<n>') array as UTF-8 strings (trailing NULs removed).
StatusOr<std::vector<std::string>> ReadNpyStrings(const std::string& path);

}  // namespace dwarp::engine
